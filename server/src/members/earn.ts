/**
 * Points earn rules (ops-editable), the tier multiplier, FIFO expiry and its reminders, purchase CSV import.
 *
 * Every earn is one ledger credit with the key `earn:<rule>:<subject>` (the subject names the business event: the
 * follower, the member, the day, the order number …), so repeating an event — a retried request, a replayed CSV,
 * ten parallel calls — credits once. Daily caps are counted under the account row lock the ledger takes.
 */
import { parse } from 'csv-parse/sync';
import { and, asc, eq, gt, gte, lte, sql } from 'drizzle-orm';
import type { Db, Tx } from '../db/client.ts';
import { AppError } from '../platform/errors.ts';
import type { Clock } from '../platform/clock.ts';
import type { LedgerResult, Ledger } from './ledger.ts';
import type { Tiers } from './tiers.ts';
import { phoneHash, normalisePhone } from './phones.ts';
import { earnRules, members, pointsExpiryReminders, pointsLedger, pointsLots, purchaseImports, type EarnRule, type EarnRuleKey } from './tables.ts';

const DAY = 86_400_000;
const CN_OFFSET = 8 * 3_600_000;
/** The day in China (UTC+8), e.g. 2026-12-01: check-ins and daily caps roll over at Beijing midnight. */
export const chinaDay = (d: Date) => new Date(d.getTime() + CN_OFFSET).toISOString().slice(0, 10);
const chinaDayStart = (d: Date) => new Date(Date.parse(`${chinaDay(d)}T00:00:00Z`) - CN_OFFSET);

export const EARN_RULE_KEYS: EarnRuleKey[] = ['follow', 'bind_phone', 'complete_profile', 'redemption', 'daily_checkin', 'interaction', 'purchase', 'invite_reward'];

export type EarnOutcome =
  | { credited: true; duplicate: boolean; points: number; entry: LedgerResult }
  | { credited: false; reason: 'disabled' | 'daily_cap' | 'zero_points' | 'unknown_rule' };

export interface ReminderSender {
  /** Tell the member their points expire; returns the channel used, or null when no channel could take it. */
  (target: { openid: string; mpOpenid: string | null; points: number; expiresOn: string; key: string }): Promise<string | null>;
}

export function createEarn(deps: { db: Db; clock: Clock; ledger: Ledger; tiers: Tiers; piiKey: Buffer; remind?: ReminderSender; cacheTtlMs?: number }) {
  const { db, clock, ledger, tiers } = deps;
  const ttl = deps.cacheTtlMs ?? 0;
  let cache: { at: number; rules: Map<string, EarnRule> } | undefined;

  async function rule(key: EarnRuleKey, tx: Tx = db): Promise<EarnRule | undefined> {
    const now = Date.now();
    if (!cache || ttl === 0 || now - cache.at >= ttl) {
      const rows = await tx.select().from(earnRules);
      cache = { at: now, rules: new Map(rows.map((r) => [r.key, r])) };
    }
    return cache.rules.get(key);
  }

  /**
   * Credit the points of one business event. `subject` identifies the event within the rule (idempotency);
   * `amountFen` is the purchase amount for the `purchase` rule (points per whole yuan).
   */
  async function earn(openid: string, key: EarnRuleKey, subject: string, opts: { amountFen?: number; detail?: Record<string, unknown> } = {}): Promise<EarnOutcome> {
    if (!EARN_RULE_KEYS.includes(key)) return { credited: false, reason: 'unknown_rule' };
    if (typeof subject !== 'string' || subject === '' || subject.length > 150) throw new AppError('VALIDATION', 'An earn subject (1–150 characters) is required');
    const idem = `earn:${key}:${subject}`;
    const out = await db.transaction(async (tx): Promise<EarnOutcome> => {
      const r = await rule(key, tx);
      if (!r) return { credited: false, reason: 'unknown_rule' };
      // Lock the account first: caps and the duplicate check then see every earlier earn of this user.
      await tx.execute(sql`INSERT INTO points_accounts (openid, balance, updated_at) VALUES (${openid}, 0, ${clock.now()}) ON CONFLICT (openid) DO NOTHING`);
      await tx.execute(sql`SELECT 1 FROM points_accounts WHERE openid = ${openid} FOR UPDATE`);
      const existing = await ledger.byKey(idem, tx);
      if (existing) return { credited: true, duplicate: true, points: existing.delta, entry: { ...existing, duplicate: true } };
      if (!r.enabled) return { credited: false, reason: 'disabled' };
      if (r.dailyCap !== null) {
        const [c] = await tx.select({ n: sql<number>`count(*)::int` }).from(pointsLedger)
          .where(and(eq(pointsLedger.openid, openid), eq(pointsLedger.reason, `earn:${key}`), gte(pointsLedger.createdAt, chinaDayStart(clock.now()))));
        if (Number(c?.n ?? 0) >= r.dailyCap) return { credited: false, reason: 'daily_cap' };
      }
      const base = key === 'purchase' ? Math.floor((opts.amountFen ?? 0) / 100) * r.points : r.points;
      // Account lock, then member lock: the order account deletion takes them in too.
      const member = await tiers.lockMember(openid, tx);
      const pct = r.tierMultiplier ? await tiers.multiplierOf(member?.tier, tx) : 100;
      const points = Math.floor((base * pct) / 100);
      if (points <= 0) return { credited: false, reason: 'zero_points' };
      const entry = await ledger.creditLocked(tx, openid, points, idem, `earn:${key}`, { ...opts.detail, rule: key, base, multiplierPct: pct, validityDays: r.validityDays });
      // Upgrades on earning, in the same transaction.
      if (member) await tiers.evaluate(openid, {}, tx, member);
      return { credited: true, duplicate: false, points, entry };
    });
    return out;
  }

  return {
    earn,
    rule,

    async rules(): Promise<EarnRule[]> {
      return db.select().from(earnRules).orderBy(asc(earnRules.key));
    },

    async updateRule(key: string, patch: Partial<Pick<EarnRule, 'points' | 'enabled' | 'dailyCap' | 'tierMultiplier' | 'validityDays' | 'description'>>): Promise<EarnRule> {
      const [row] = await db.update(earnRules).set({ ...patch, updatedAt: clock.now() }).where(eq(earnRules.key, key as EarnRuleKey)).returning();
      if (!row) throw new AppError('NOT_FOUND', `No earn rule ${key}`);
      cache = undefined;
      return row;
    },

    /** Daily check-in in China time; the second one the same day is a duplicate. */
    async checkIn(openid: string, memberId: number): Promise<EarnOutcome & { day: string }> {
      const day = chinaDay(clock.now());
      return { ...(await earn(openid, 'daily_checkin', `${memberId}:${day}`)), day };
    },

    /** Points still open in lots, and the next expiry within `days`. */
    async expiring(openid: string, days = 30): Promise<{ points: number; on: string | null }> {
      const now = clock.now();
      const rows = await db.select({ remaining: pointsLots.remaining, expiresAt: pointsLots.expiresAt }).from(pointsLots)
        .where(and(eq(pointsLots.openid, openid), gt(pointsLots.remaining, 0), lte(pointsLots.expiresAt, new Date(now.getTime() + days * DAY))))
        .orderBy(asc(pointsLots.expiresAt));
      if (rows.length === 0) return { points: 0, on: null };
      const first = chinaDay(rows[0]!.expiresAt);
      return { points: rows.filter((r) => chinaDay(r.expiresAt) === first).reduce((a, r) => a + r.remaining, 0), on: first };
    },

    /** Nightly: expire what is due, earliest first, one ledger debit per lot (key `expire:lot:<id>`). */
    async expireDue(limit = 1000): Promise<number> {
      const now = clock.now();
      const due = await db.select({ id: pointsLots.id, openid: pointsLots.openid }).from(pointsLots)
        .where(and(gt(pointsLots.remaining, 0), lte(pointsLots.expiresAt, now))).orderBy(asc(pointsLots.expiresAt), asc(pointsLots.id)).limit(limit);
      let expired = 0;
      for (const d of due) {
        await db.transaction(async (tx) => {
          await tx.execute(sql`SELECT 1 FROM points_accounts WHERE openid = ${d.openid} FOR UPDATE`);
          // Re-read under the lock: a spend may have used the lot since.
          const [lot] = await tx.select().from(pointsLots).where(eq(pointsLots.id, d.id));
          if (!lot || lot.remaining <= 0) return;
          const balance = await ledger.balance(d.openid, tx);
          const points = Math.min(lot.remaining, balance);
          if (points <= 0) return;
          // The debit consumes open lots earliest-expiry first (trigger), which is this lot.
          await ledger.debit(d.openid, points, `expire:lot:${lot.id}`, 'expire', { lotId: lot.id, expiredAt: lot.expiresAt.toISOString() }, tx);
          expired += points;
        });
      }
      return expired;
    },

    /** Daily: one reminder per member and expiry day, 7 days ahead. */
    async remindExpiring(aheadDays = 7): Promise<number> {
      const now = clock.now();
      const horizon = new Date(now.getTime() + aheadDays * DAY);
      const rows = await db.select({ openid: pointsLots.openid, remaining: pointsLots.remaining, expiresAt: pointsLots.expiresAt }).from(pointsLots)
        .where(and(gt(pointsLots.remaining, 0), gt(pointsLots.expiresAt, now), lte(pointsLots.expiresAt, horizon)))
        .orderBy(asc(pointsLots.expiresAt));
      const byUser = new Map<string, { points: number; on: string }>();
      for (const r of rows) {
        const on = chinaDay(r.expiresAt);
        const cur = byUser.get(r.openid);
        if (!cur) byUser.set(r.openid, { points: r.remaining, on });
        else if (cur.on === on) cur.points += r.remaining;
      }
      let sent = 0;
      for (const [openid, { points, on }] of byUser) {
        const claimed = await db.insert(pointsExpiryReminders).values({ openid, expiresOn: on, points, channel: 'pending', status: 'pending', createdAt: now })
          .onConflictDoNothing().returning();
        if (claimed.length === 0) continue;
        const [m] = await db.select({ mpOpenid: members.mpOpenid, deletedAt: members.deletedAt }).from(members).where(eq(members.openid, openid));
        if (m?.deletedAt) continue;
        const channel = deps.remind ? await deps.remind({ openid, mpOpenid: m?.mpOpenid ?? null, points, expiresOn: on, key: `points-expiry:${openid}:${on}` }) : null;
        await db.update(pointsExpiryReminders).set({ channel: channel ?? 'none', status: channel ? 'sent' : 'no_channel' })
          .where(and(eq(pointsExpiryReminders.openid, openid), eq(pointsExpiryReminders.expiresOn, on)));
        if (channel) sent++;
      }
      return sent;
    },

    /**
     * The brand's sales CSV: `order_no,phone,amount` (yuan, up to 2 decimals) and optional `purchased_at`. Rows are
     * matched to members by phone (hash); each order number earns once, so re-importing a file changes nothing.
     */
    async importPurchases(csv: string, createdBy: string | null): Promise<{ id: number; rows: number; credited: number; duplicates: number; rejected: number; report: Array<{ line: number; orderNo: string | null; status: string; points?: number }> }> {
      let records: Record<string, string>[];
      try {
        records = parse(csv, { columns: (h: string[]) => h.map((x) => x.trim().toLowerCase()), skip_empty_lines: true, trim: true, bom: true });
      } catch (err) {
        throw new AppError('VALIDATION', `The CSV cannot be read: ${(err as Error).message}`, { reason: 'bad_csv' });
      }
      if (records.length === 0) throw new AppError('VALIDATION', 'The CSV has no rows', { reason: 'empty_csv' });
      const cols = Object.keys(records[0]!);
      for (const c of ['order_no', 'phone', 'amount']) if (!cols.includes(c)) throw new AppError('VALIDATION', `The CSV needs a column ${c}`, { reason: 'missing_column', column: c });
      if (records.length > 20_000) throw new AppError('VALIDATION', 'At most 20000 rows per import', { reason: 'too_many_rows' });
      const report: Array<{ line: number; orderNo: string | null; status: string; points?: number }> = [];
      let credited = 0;
      let duplicates = 0;
      let rejected = 0;
      const seen = new Set<string>();
      for (const [i, r] of records.entries()) {
        const line = i + 2;
        const orderNo = r.order_no?.trim() || null;
        const reject = (status: string) => { rejected++; report.push({ line, orderNo, status }); };
        if (!orderNo || !/^[A-Za-z0-9_-]{1,64}$/.test(orderNo)) { reject('bad_order_no'); continue; }
        if (seen.has(orderNo)) { reject('repeated_in_file'); continue; }
        seen.add(orderNo);
        const amount = /^\d{1,9}(\.\d{1,2})?$/.test(r.amount ?? '') ? Math.round(Number(r.amount) * 100) : NaN;
        if (!Number.isFinite(amount) || amount <= 0) { reject('bad_amount'); continue; }
        const phone = normalisePhone(r.phone ?? '');
        if (!phone) { reject('bad_phone'); continue; }
        const [m] = await db.select({ openid: members.openid }).from(members)
          .where(and(eq(members.phoneHash, phoneHash(phone, deps.piiKey)), sql`${members.deletedAt} IS NULL`))
          .orderBy(sql`${members.phoneVerified} DESC`, asc(members.id)).limit(1);
        if (!m) { reject('no_member'); continue; }
        const out = await earn(m.openid, 'purchase', orderNo, { amountFen: amount, detail: { orderNo, amountFen: amount, purchasedAt: r.purchased_at || null } });
        if (!out.credited) { reject(out.reason); continue; }
        if (out.duplicate) { duplicates++; report.push({ line, orderNo, status: 'duplicate', points: out.points }); continue; }
        credited++;
        report.push({ line, orderNo, status: 'credited', points: out.points });
      }
      const [row] = await db.insert(purchaseImports).values({ rows: records.length, credited, duplicates, rejected, report, createdBy, createdAt: clock.now() }).returning({ id: purchaseImports.id });
      return { id: row!.id, rows: records.length, credited, duplicates, rejected, report };
    },
  };
}
export type Earn = ReturnType<typeof createEarn>;
