/**
 * The members' `redemption` earn rule: points for each redeemed pack code (chat or mini program), on top of what the
 * campaign's prize table gives. Off by default (migration 0003). The credit runs beside the reply, not in it (the
 * redemption path stays one statement), keyed `earn:redemption:<redemptionId>` so it happens once; a catch-up pass
 * credits redemptions whose credit a crash or an error lost (those since the rule's last change), walking the
 * redemptions' primary key.
 */
import type { FastifyBaseLogger } from 'fastify';
import { sql } from 'drizzle-orm';
import type { Db } from '../db/client.ts';
import { rowsOf } from '../db/retry.ts';
import type { Clock } from '../platform/clock.ts';
import type { Earn } from './earn.ts';

/** A redemption younger than this is left to its own in-flight credit. */
const SETTLE_MS = 60_000;

export function createRedemptionEarn(deps: { db: Db; clock: Clock; earn: Earn; log: FastifyBaseLogger }) {
  const { db, clock, earn, log } = deps;
  const inflight = new Set<Promise<unknown>>();
  let cursor: number | undefined;

  /** The rule while it is on: redemptions from before its last change (e.g. when it was off) earn nothing later. */
  async function activeRule() {
    const r = await earn.rule('redemption');
    return r?.enabled ? r : undefined;
  }

  async function credit(openid: string, redemptionId: string) {
    if (!(await activeRule())) return;
    await earn.earn(openid, 'redemption', redemptionId, { detail: { redemptionId } });
  }

  return {
    /** The redemption services' `onRedeemed`: fire and forget (errors are logged; the catch-up pass retries). */
    onRedeemed(openid: string, redemptionId: string) {
      const p = credit(openid, redemptionId).catch((err) => log.error({ err, redemptionId }, 'redemption earn failed'));
      inflight.add(p);
      void p.finally(() => inflight.delete(p));
    },

    /** Credits settled redemptions without their entry, after the last one seen (starting a window back). */
    async catchUp(limit = 1000): Promise<number> {
      const rule = await activeRule();
      if (!rule) return 0;
      if (cursor === undefined) {
        const [r] = rowsOf<{ id: string | null }>(await db.execute(sql`SELECT max(id)::text AS id FROM redemptions`));
        cursor = Math.max(0, Number(r?.id ?? 0) - 100_000);
      }
      const settled = new Date(clock.now().getTime() - SETTLE_MS);
      const rows = rowsOf<{ id: string; openid: string; redeemed_at: Date | string }>(await db.execute(sql`
        SELECT r.id::text, r.openid, r.redeemed_at FROM redemptions r
        WHERE r.id > ${cursor} ORDER BY r.id LIMIT ${limit}`));
      let credited = 0;
      for (const r of rows) {
        const at = new Date(r.redeemed_at);
        if (at > settled) break; // the rest are younger still
        const [has] = rowsOf<{ one: number }>(await db.execute(sql`SELECT 1 AS one FROM points_ledger WHERE idempotency_key = ${`earn:redemption:${r.id}`}`));
        // An erased account's rows are keyed `deleted:<memberId>`: nothing to credit there.
        if (!has && at > rule.updatedAt && !r.openid.startsWith('deleted:')) {
          const out = await earn.earn(r.openid, 'redemption', r.id, { detail: { redemptionId: r.id } });
          if (out.credited && !out.duplicate) credited++;
        }
        cursor = Number(r.id);
      }
      return credited;
    },

    async drain() {
      while (inflight.size > 0) await Promise.allSettled([...inflight]);
    },
  };
}
export type RedemptionEarn = ReturnType<typeof createRedemptionEarn>;
