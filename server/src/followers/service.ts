import type { FastifyBaseLogger } from 'fastify';
import type { Db } from '../db/client.ts';
import { createFollowersRepo } from './repo.ts';

export interface FollowersServiceDeps {
  db: Db;
  /** user/info, to learn the unionid that links a follower to the same person's mini-program member. */
  followerInfo?: (openid: string) => Promise<{ subscribed: boolean; unionid: string | null }>;
  /** A follower's unionid became known (members link a mini-program-first member to this follower). */
  onUnionid?: (openid: string, unionid: string) => Promise<unknown>;
  log?: FastifyBaseLogger;
}

export function createFollowersService(deps: FollowersServiceDeps) {
  const repo = createFollowersRepo(deps.db);
  const inflight = new Set<Promise<unknown>>();

  /** Beside the reply (a follow must be answered within WeChat's 5 s whatever user/info does). */
  function learnUnionid(openid: string) {
    if (!deps.followerInfo) return;
    const p = deps.followerInfo(openid)
      .then(async (info) => {
        if (!info.unionid) return;
        await repo.setUnionid(openid, info.unionid);
        await deps.onUnionid?.(openid, info.unionid);
      })
      .catch((err) => deps.log?.warn({ err, openid }, 'learning the follower\'s unionid failed; it is tried again at the next follow'));
    inflight.add(p);
    void p.finally(() => inflight.delete(p));
  }

  return {
    get: (openid: string) => repo.findByOpenid(openid),
    /** Follow or re-follow, with the QR scene it came through (null for search, article, …); then learn the unionid. */
    async subscribed(openid: string, at: Date, scene: string | null) {
      await repo.markSubscribed(openid, at, scene);
      learnUnionid(openid);
    },
    unsubscribed: (openid: string, at: Date) => repo.markUnsubscribed(openid, at),
    /** Wait for user/info calls in flight (graceful shutdown, tests). */
    async drain() {
      while (inflight.size > 0) await Promise.allSettled([...inflight]);
    },
  };
}
export type FollowersService = ReturnType<typeof createFollowersService>;
