/**
 * Tiers (普通/银卡/金卡/钻石) from rolling points: the points a member earned within a tier's window (credits, minus
 * mall refunds, which only give back what was spent, and minus prizes held for fraud review). Earning can only raise
 * a tier (evaluated right after each earn); the scheduled job also lowers it when the rolling points fell below the threshold, and issues each tier's
 * monthly coupon once per member and month.
 */
import { randomInt } from 'node:crypto';
import { and, asc, eq, gt, isNull, sql } from 'drizzle-orm';
import type { Db, Tx } from '../db/client.ts';
import { AppError } from '../platform/errors.ts';
import type { Clock } from '../platform/clock.ts';
import { memberEvents, members, memberTiers, userCoupons, type Member, type MemberTier } from './tables.ts';
import type { TierName } from '../../../shared/members.ts';

const DAY = 86_400_000;
const COUPON_ALPHABET = 'ABCDEFGHJKLMNPQRSTUVWXYZ23456789';
/** China month (UTC+8), e.g. 2026-12. */
export const chinaMonth = (d: Date) => new Date(d.getTime() + 8 * 3_600_000).toISOString().slice(0, 7);

export interface LockedMember { id: number; openid: string; tier: string; isMember: boolean }

export interface TierProgress {
  tier: MemberTier;
  next: MemberTier | null;
  rollingPoints: number;
  /** Points still to earn for the next tier (0 at the top). */
  toNext: number;
}

export function createTiers(deps: { db: Db; clock: Clock; cacheTtlMs?: number }) {
  const { db, clock } = deps;
  const ttl = deps.cacheTtlMs ?? 0;
  let cached: { at: number; tiers: MemberTier[] } | undefined;

  // Every earn reads the tiers (multiplier, upgrade check): cached for a few seconds like the other rules caches.
  async function list(tx: Tx = db): Promise<MemberTier[]> {
    const now = Date.now();
    if (cached && ttl > 0 && now - cached.at < ttl) return cached.tiers;
    const tiers = await tx.select().from(memberTiers).orderBy(asc(memberTiers.position));
    cached = { at: now, tiers };
    return tiers;
  }

  /**
   * Points earned within `days`: credits (a mall refund is not earning), minus prizes taken back for fraud review
   * (`hold:draw:<id>` debits). A held prize that is released is credited again (`release:draw:<id>`): it counts
   * once; one that is rejected, not at all.
   */
  async function rolling(openid: string, days: number, tx: Tx = db): Promise<number> {
    const since = new Date(clock.now().getTime() - days * DAY);
    const rows = (await tx.execute(sql`
      SELECT GREATEST(COALESCE(SUM(delta), 0), 0)::bigint AS n FROM points_ledger
      WHERE openid = ${openid} AND created_at > ${since}
        AND ((delta > 0 AND idempotency_key NOT LIKE 'mall:%') OR (delta < 0 AND idempotency_key LIKE 'hold:draw:%'))`)) as unknown as { rows: Array<{ n: string | number }> };
    return Number(rows.rows[0]?.n ?? 0);
  }

  /** The highest tier whose threshold the member's rolling points reach. */
  async function qualify(openid: string, tiers: MemberTier[], tx: Tx = db): Promise<{ tier: MemberTier; points: Map<number, number> }> {
    const points = new Map<number, number>();
    let best = tiers[0]!;
    for (const t of tiers) {
      if (!points.has(t.windowDays)) points.set(t.windowDays, await rolling(openid, t.windowDays, tx));
      if (points.get(t.windowDays)! >= t.minPoints && t.position >= best.position) best = t;
    }
    return { tier: best, points };
  }

  async function issueMonthlyCoupon(m: Pick<Member, 'id' | 'openid' | 'isMember'>, tier: MemberTier, tx: Tx): Promise<boolean> {
    if (!tier.monthlyCoupon || !m.isMember) return false;
    const now = clock.now();
    const sourceKey = `tier:${m.id}:${chinaMonth(now)}`;
    for (let i = 0; i < 5; i++) {
      const code = Array.from({ length: 12 }, () => COUPON_ALPHABET[randomInt(COUPON_ALPHABET.length)]).join('');
      const res = await tx.insert(userCoupons).values({
        openid: m.openid, sourceKey, couponCode: code, title: tier.monthlyCoupon.title, valueFen: tier.monthlyCoupon.valueFen,
        storeIds: null, status: 'issued', issuedAt: now, expiresAt: new Date(now.getTime() + tier.monthlyCoupon.validDays * DAY),
      }).onConflictDoNothing().returning({ id: userCoupons.id });
      if (res.length > 0) return true;
      const [exists] = await tx.select({ id: userCoupons.id }).from(userCoupons).where(eq(userCoupons.sourceKey, sourceKey));
      if (exists) return false; // this month's coupon was issued already
    }
    throw new Error('could not issue a unique coupon code');
  }

  /**
   * Re-evaluate one member's tier. `downgrade`: the scheduled job may lower it; earning only raises it.
   * `monthlyCoupon`: issue the (new) tier's coupon for this month if not yet issued.
   */
  /** The member row, locked (tier changes and coupons one at a time per member). */
  async function lockMember(openid: string, tx: Tx): Promise<LockedMember | null> {
    const [m] = (await tx.execute(sql`SELECT id, openid, tier, is_member FROM members WHERE openid = ${openid} AND deleted_at IS NULL FOR UPDATE`) as unknown as {
      rows: Array<{ id: string | number; openid: string; tier: string; is_member: boolean }>;
    }).rows.map((r) => ({ id: Number(r.id), openid: r.openid, tier: r.tier, isMember: r.is_member }));
    return m ?? null;
  }

  async function evaluate(openid: string, opts: { downgrade?: boolean; monthlyCoupon?: boolean } = {}, outer?: Tx, locked?: LockedMember | null): Promise<{ from: TierName; to: TierName; changed: boolean } | null> {
    const run = async (tx: Tx) => {
      const member = locked !== undefined ? locked : await lockMember(openid, tx);
      if (!member) return null;
      const tiers = await list(tx);
      if (tiers.length === 0) return null;
      const { tier } = await qualify(openid, tiers, tx);
      const current = tiers.find((t) => t.key === member!.tier) ?? tiers[0]!;
      const up = tier.position > current.position;
      const down = tier.position < current.position && opts.downgrade === true;
      let result = current;
      if (up || down) {
        await tx.update(members).set({ tier: tier.key, tierUpdatedAt: clock.now() }).where(eq(members.id, member!.id));
        await tx.insert(memberEvents).values({ memberId: member!.id, kind: 'tier_changed', detail: { from: current.key, to: tier.key }, createdAt: clock.now() });
        result = tier;
      }
      // An upgrade brings this month's coupon of the new tier at once; otherwise the monthly job issues it.
      if (up || opts.monthlyCoupon) await issueMonthlyCoupon(member!, result, tx);
      return { from: current.key as TierName, to: result.key as TierName, changed: up || down };
    };
    return outer ? run(outer) : db.transaction(run);
  }

  return {
    list,
    rolling,
    evaluate,

    lockMember,

    /** The multiplier (percent) of a tier key, from the cached tiers. */
    async multiplierOf(tierKey: string | undefined, tx: Tx = db): Promise<number> {
      if (!tierKey) return 100;
      return (await list(tx)).find((t) => t.key === tierKey)?.multiplierPct ?? 100;
    },

    async multiplierPct(openid: string, tx: Tx = db): Promise<number> {
      const [row] = await tx.select({ pct: memberTiers.multiplierPct }).from(members).innerJoin(memberTiers, eq(memberTiers.key, members.tier)).where(eq(members.openid, openid));
      return row?.pct ?? 100;
    },

    async progress(m: Member): Promise<TierProgress> {
      const tiers = await list();
      const tier = tiers.find((t) => t.key === m.tier) ?? tiers[0]!;
      const next = tiers.find((t) => t.position > tier.position) ?? null;
      const rollingPoints = await rolling(m.openid, (next ?? tier).windowDays);
      return { tier, next, rollingPoints, toNext: next ? Math.max(0, next.minPoints - rollingPoints) : 0 };
    },

    /** Scheduled: every live member, downgrades included, and the monthly coupons. Returns how many changed. */
    async runScheduled(batch = 500): Promise<{ evaluated: number; changed: number }> {
      let after = 0;
      let evaluated = 0;
      let changed = 0;
      for (;;) {
        const rows = await db.select({ id: members.id, openid: members.openid }).from(members)
          .where(and(gt(members.id, after), isNull(members.deletedAt), sql`(${members.isMember} OR ${members.tier} <> 'normal')`))
          .orderBy(asc(members.id)).limit(batch);
        if (rows.length === 0) break;
        for (const r of rows) {
          const res = await evaluate(r.openid, { downgrade: true, monthlyCoupon: true });
          evaluated++;
          if (res?.changed) changed++;
        }
        after = rows[rows.length - 1]!.id;
      }
      return { evaluated, changed };
    },

    /** The highest tier's key: earning cannot raise a member already there. */
    async top(): Promise<string | undefined> {
      const tiers = await list();
      return tiers[tiers.length - 1]?.key;
    },

    async update(key: string, patch: Partial<Pick<MemberTier, 'name' | 'minPoints' | 'windowDays' | 'multiplierPct' | 'monthlyCoupon' | 'reservedItems'>>): Promise<MemberTier> {
      const tiers = await list();
      const t = tiers.find((x) => x.key === key);
      if (!t) throw new AppError('NOT_FOUND', `No tier ${key}`);
      const merged = { ...t, ...patch };
      // Thresholds must rise with the tier, and the base tier is where everyone starts.
      if (t.position === 0 && merged.minPoints !== 0) throw new AppError('VALIDATION', 'The base tier needs 0 points', { reason: 'base_tier_threshold' });
      const prev = tiers.find((x) => x.position === t.position - 1);
      const next = tiers.find((x) => x.position === t.position + 1);
      if ((prev && merged.minPoints <= prev.minPoints) || (next && merged.minPoints >= next.minPoints)) {
        throw new AppError('VALIDATION', 'Tier thresholds must increase with the tier', { reason: 'threshold_order' });
      }
      const [row] = await db.update(memberTiers).set({ ...patch, updatedAt: clock.now() }).where(eq(memberTiers.key, t.key)).returning();
      cached = undefined;
      return row!;
    },
  };
}
export type Tiers = ReturnType<typeof createTiers>;
