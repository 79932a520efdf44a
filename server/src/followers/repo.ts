import { and, eq, sql } from 'drizzle-orm';
import type { Tx } from '../db/client.ts';
import { followers } from './tables.ts';

export function createFollowersRepo(db: Tx) {
  return {
    async findByOpenid(openid: string) {
      const [row] = await db.select().from(followers).where(eq(followers.openid, openid));
      return row;
    },

    /** Subscribe (or re-subscribe): count it, remember the source scene. */
    async markSubscribed(openid: string, at: Date, scene: string | null) {
      await db
        .insert(followers)
        .values({ openid, subscribed: true, subscribeScene: scene, subscribedAt: at, subscribeCount: 1, firstSeenAt: at, lastInteractionAt: at })
        .onConflictDoUpdate({
          target: followers.openid,
          set: {
            subscribed: true,
            subscribeScene: scene,
            subscribedAt: at,
            subscribeCount: sql`${followers.subscribeCount} + 1`,
          },
        });
    },

    /** The unionid user/info reported (it never changes for an openid). */
    async setUnionid(openid: string, unionid: string) {
      await db.update(followers).set({ unionid }).where(sql`${followers.openid} = ${openid} AND ${followers.unionid} IS DISTINCT FROM ${unionid}`);
    },

    async markUnsubscribed(openid: string, at: Date) {
      await db.update(followers).set({ subscribed: false, unsubscribedAt: at }).where(and(eq(followers.openid, openid)));
    },
  };
}
export type FollowersRepo = ReturnType<typeof createFollowersRepo>;
