/**
 * The access_token, shared by every instance through the database.
 * - stable_token in normal mode: repeated calls return the same token, so even a race is harmless;
 * - one instance at a time refreshes (a lease taken by conditional UPDATE); the others wait for its result;
 * - a token reported invalid (40001/40014/42001) is refreshed only if it is still the one in the database.
 * @see https://developers.weixin.qq.com/doc/service/api/base/api_getstableaccesstoken
 */
import { randomUUID } from 'node:crypto';
import { and, eq, isNull, lt, or, sql } from 'drizzle-orm';
import type { Db } from '../db/client.ts';
import type { Clock } from '../platform/clock.ts';
import { wechatAccessTokens } from './tables.ts';

export interface StableTokenFetcher {
  (forceRefresh: boolean): Promise<{ access_token: string; expires_in: number }>;
}

export interface TokenManager {
  get(): Promise<string>;
  /** The token failed with 40001/40014/42001: get a fresh one (once, across instances). */
  refreshAfterRejection(rejected: string): Promise<string>;
}

// Treat a token as expired a minute early so no call goes out with one about to lapse.
const EARLY_MS = 60_000;
const LEASE_MS = 15_000;
const WAIT_STEP_MS = 50;

export function createTokenManager(opts: { db: Db; appId: string; fetchToken: StableTokenFetcher; clock: Clock; sleep?: (ms: number) => Promise<void> }): TokenManager {
  const { db, appId, fetchToken, clock } = opts;
  const sleep = opts.sleep ?? ((ms: number) => new Promise((r) => setTimeout(r, ms)));
  const owner = randomUUID();
  let cached: { token: string; expiresAt: number } | undefined;
  let inflight: Promise<string> | undefined;

  const fresh = (row: { accessToken: string | null; expiresAt: Date | null } | undefined) =>
    !!row?.accessToken && !!row.expiresAt && row.expiresAt.getTime() - EARLY_MS > clock.now().getTime();

  async function read() {
    const [row] = await db.select().from(wechatAccessTokens).where(eq(wechatAccessTokens.appid, appId));
    return row;
  }

  /** Refresh unless someone already replaced `stale`; wait for a refresh in progress elsewhere. */
  async function refresh(stale: string | null, forceIfSame: boolean): Promise<string> {
    await db.insert(wechatAccessTokens).values({ appid: appId }).onConflictDoNothing();
    const deadline = clock.now().getTime() + 3 * LEASE_MS;
    for (;;) {
      const now = clock.now();
      const [lease] = await db
        .update(wechatAccessTokens)
        .set({ leaseOwner: owner, leaseUntil: new Date(now.getTime() + LEASE_MS) })
        .where(and(
          eq(wechatAccessTokens.appid, appId),
          or(isNull(wechatAccessTokens.leaseUntil), lt(wechatAccessTokens.leaseUntil, now)),
          stale === null ? isNull(wechatAccessTokens.accessToken) : sql`${wechatAccessTokens.accessToken} IS NOT DISTINCT FROM ${stale}`,
        ))
        .returning();
      if (lease) {
        try {
          let got = await fetchToken(false);
          // Normal mode hands back the current token; if that is the one WeChat just rejected, force a new one.
          if (forceIfSame && got.access_token === stale) got = await fetchToken(true);
          const expiresAt = new Date(clock.now().getTime() + got.expires_in * 1000);
          await db
            .update(wechatAccessTokens)
            .set({ accessToken: got.access_token, expiresAt, leaseOwner: null, leaseUntil: null, updatedAt: clock.now() })
            .where(and(eq(wechatAccessTokens.appid, appId), eq(wechatAccessTokens.leaseOwner, owner)));
          cached = { token: got.access_token, expiresAt: expiresAt.getTime() };
          return got.access_token;
        } catch (err) {
          await db.update(wechatAccessTokens).set({ leaseOwner: null, leaseUntil: null }).where(and(eq(wechatAccessTokens.appid, appId), eq(wechatAccessTokens.leaseOwner, owner)));
          throw err;
        }
      }
      const row = await read();
      if (row?.accessToken && row.accessToken !== stale && fresh(row)) {
        cached = { token: row.accessToken, expiresAt: row.expiresAt!.getTime() };
        return row.accessToken;
      }
      if (clock.now().getTime() > deadline) throw new Error('timed out waiting for another instance to refresh the access_token');
      await sleep(WAIT_STEP_MS);
    }
  }

  function single(fn: () => Promise<string>): Promise<string> {
    // Within one process, concurrent callers share one refresh.
    inflight ??= fn().finally(() => {
      inflight = undefined;
    });
    return inflight;
  }

  return {
    async get() {
      if (cached && cached.expiresAt - EARLY_MS > clock.now().getTime()) return cached.token;
      return single(async () => {
        const row = await read();
        if (fresh(row)) {
          cached = { token: row!.accessToken!, expiresAt: row!.expiresAt!.getTime() };
          return row!.accessToken!;
        }
        return refresh(row?.accessToken ?? null, false);
      });
    },
    async refreshAfterRejection(rejected) {
      if (cached?.token === rejected) cached = undefined;
      return single(() => refresh(rejected, true));
    },
  };
}
