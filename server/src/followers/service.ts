import type { Db } from '../db/client.ts';
import { createFollowersRepo } from './repo.ts';

export function createFollowersService(deps: { db: Db }) {
  const repo = createFollowersRepo(deps.db);
  return {
    get: (openid: string) => repo.findByOpenid(openid),
    /** Follow or re-follow, with the QR scene it came through (null for search, article, …). */
    subscribed: (openid: string, at: Date, scene: string | null) => repo.markSubscribed(openid, at, scene),
    unsubscribed: (openid: string, at: Date) => repo.markUnsubscribed(openid, at),
  };
}
export type FollowersService = ReturnType<typeof createFollowersService>;
