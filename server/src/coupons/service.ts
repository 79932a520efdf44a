/**
 * Store-bound coupons (the brand's wholesale-store promotion). Coupons are issued into user_coupons by campaign
 * prizes (fulfilment) and by mall coupon items; `store_ids` binds one to stores. Here:
 * - stores and their staff tokens (issued by ops, only the SHA-256 kept), checked on every /api/store request;
 * - the member's coupons and a signed, short-lived QR payload to show at the till;
 * - staff check and redeem: one statement takes the coupon (`status = 'issued'`, not expired, this store allowed)
 *   and writes the redemption row; a partial unique index backs "used once" up. Refusals are recorded too, so ops
 *   see usage and abuse per store.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { and, desc, eq, isNull, sql } from 'drizzle-orm';
import type { Database } from '../db/client.ts';
import { rowsOf } from '../db/retry.ts';
import { AppError } from '../platform/errors.ts';
import type { Clock } from '../platform/clock.ts';
import { userCoupons, type UserCoupon } from '../members/tables.ts';
import { couponRedemptions, storeStaff, stores, type Store, type StoreStaff } from './tables.ts';

export interface StaffIdentity {
  staffId: number;
  storeId: string;
  name: string;
}

type Refusal = 'already_used' | 'expired' | 'wrong_store' | 'revoked' | 'not_found' | 'bad_qr';

const REFUSAL_TEXT: Record<Refusal, string> = {
  already_used: '该券已使用',
  expired: '该券已过期',
  wrong_store: '该券不能在本店使用',
  revoked: '该券已作废',
  not_found: '没有找到这张券',
  bad_qr: '二维码无效或已过期，请让顾客刷新后再扫',
};

const QR_PREFIX = 'CPN1';
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

export function createCouponService(deps: { database: Database; clock: Clock; piiKey: Buffer; qrTtlS: number }) {
  const { database, clock } = deps;
  const { db } = database;
  // A key of its own for QR signatures, derived so that it never equals the PII key itself.
  const qrKey = createHmac('sha256', deps.piiKey).update('coupon-qr/v1').digest();
  const sign = (payload: string) => createHmac('sha256', qrKey).update(payload).digest().subarray(0, 16).toString('base64url');

  function parseQr(qr: string): number | undefined {
    const parts = qr.trim().split('.');
    if (parts.length !== 4 || parts[0] !== QR_PREFIX || !/^\d{1,15}$/.test(parts[1]!) || !/^\d{1,12}$/.test(parts[2]!)) return undefined;
    const expected = Buffer.from(sign(parts.slice(0, 3).join('.')));
    const given = Buffer.from(parts[3]!);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
    if (Number(parts[2]) * 1000 <= clock.now().getTime()) return undefined;
    return Number(parts[1]);
  }

  async function find(input: { qr: string } | { code: string }): Promise<UserCoupon | Refusal> {
    if ('qr' in input) {
      const id = parseQr(input.qr);
      if (id === undefined) return 'bad_qr';
      const [c] = await db.select().from(userCoupons).where(eq(userCoupons.id, id));
      return c ?? 'not_found';
    }
    const [c] = await db.select().from(userCoupons).where(eq(userCoupons.couponCode, input.code.trim().toUpperCase()));
    return c ?? 'not_found';
  }

  function refusalOf(c: UserCoupon, storeId: string): Refusal | null {
    if (c.status === 'used') return 'already_used';
    if (c.status === 'revoked') return 'revoked';
    if (c.status === 'expired' || c.expiresAt.getTime() <= clock.now().getTime()) return 'expired';
    if (c.storeIds && c.storeIds.length > 0 && !c.storeIds.includes(storeId)) return 'wrong_store';
    return null;
  }

  async function recordRefusal(staff: StaffIdentity, couponId: number | null, outcome: Refusal) {
    await db.insert(couponRedemptions).values({ couponId, storeId: staff.storeId, staffId: staff.staffId, outcome, at: clock.now() });
  }

  const couponStatus = (c: UserCoupon) => (c.status === 'issued' && c.expiresAt.getTime() <= clock.now().getTime() ? 'expired' : c.status);

  return {
    // ---- stores and staff (ops) ----
    async createStore(input: { id: string; name: string; city?: string | null | undefined; address?: string | null | undefined; active?: boolean | undefined }): Promise<Store> {
      const now = clock.now();
      const [row] = await db.insert(stores).values({ id: input.id, name: input.name, city: input.city ?? null, address: input.address ?? null, active: input.active ?? true, createdAt: now, updatedAt: now })
        .onConflictDoNothing().returning();
      if (!row) throw new AppError('CONFLICT', `Store ${input.id} exists`);
      return row;
    },

    async updateStore(id: string, patch: { name?: string | undefined; city?: string | null | undefined; address?: string | null | undefined; active?: boolean | undefined }): Promise<Store> {
      const set = Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined));
      const [row] = await db.update(stores).set({ ...set, updatedAt: clock.now() }).where(eq(stores.id, id)).returning();
      if (!row) throw new AppError('NOT_FOUND', `No store ${id}`);
      return row;
    },

    listStores: (): Promise<Store[]> => db.select().from(stores).orderBy(stores.id),

    /** A new staff token for a store: returned once, stored only as its SHA-256. */
    async issueStaff(storeId: string, name: string): Promise<StoreStaff & { token: string }> {
      const [store] = await db.select().from(stores).where(eq(stores.id, storeId));
      if (!store) throw new AppError('NOT_FOUND', `No store ${storeId}`);
      const token = `st_${randomBytes(24).toString('base64url')}`;
      const [row] = await db.insert(storeStaff).values({ storeId, name, tokenHash: sha256(token), createdAt: clock.now() }).returning();
      return { ...row!, token };
    },

    listStaff: (storeId: string): Promise<StoreStaff[]> => db.select().from(storeStaff).where(eq(storeStaff.storeId, storeId)).orderBy(storeStaff.id),

    async revokeStaff(staffId: number): Promise<StoreStaff> {
      const [row] = await db.update(storeStaff).set({ revokedAt: clock.now() }).where(and(eq(storeStaff.id, staffId), isNull(storeStaff.revokedAt))).returning();
      if (!row) throw new AppError('NOT_FOUND', `No active staff token ${staffId}`);
      return row;
    },

    /** The staff member behind a token, or null (unknown, revoked, or the store closed). */
    async authenticateStaff(token: string): Promise<StaffIdentity | null> {
      if (!/^st_[A-Za-z0-9_-]{20,64}$/.test(token)) return null;
      const rows = rowsOf<{ id: number; store_id: string; name: string }>(await db.execute(sql`
        UPDATE store_staff s SET last_used_at = ${clock.now()} FROM stores st
        WHERE s.token_hash = ${sha256(token)} AND s.revoked_at IS NULL AND st.id = s.store_id AND st.active
        RETURNING s.id, s.store_id, s.name`));
      const r = rows[0];
      return r ? { staffId: r.id, storeId: r.store_id, name: r.name } : null;
    },

    // ---- the member ----
    async myCoupons(openid: string) {
      const list = await db.select().from(userCoupons).where(eq(userCoupons.openid, openid)).orderBy(desc(userCoupons.id)).limit(200);
      const all = await db.select().from(stores);
      return list.map((c) => ({
        coupon: c,
        status: couponStatus(c),
        stores: (c.storeIds ?? []).map((id) => all.find((s) => s.id === id) ?? { id, name: id, city: null, address: null }),
      }));
    },

    /** A QR payload for one of my usable coupons: `CPN1.<id>.<expires unix>.<HMAC>`; expires after COUPON_QR_TTL_S. */
    async qr(openid: string, couponId: number): Promise<{ couponId: number; qr: string; expiresAt: Date }> {
      const [c] = await db.select().from(userCoupons).where(and(eq(userCoupons.id, couponId), eq(userCoupons.openid, openid)));
      if (!c) throw new AppError('NOT_FOUND', '没有找到这张券');
      const status = couponStatus(c);
      if (status !== 'issued') throw new AppError('CONFLICT', status === 'used' ? '该券已使用' : status === 'expired' ? '该券已过期' : '该券已作废', { status });
      const exp = Math.min(Math.floor(clock.now().getTime() / 1000) + deps.qrTtlS, Math.floor(c.expiresAt.getTime() / 1000));
      const payload = `${QR_PREFIX}.${c.id}.${exp}`;
      return { couponId: c.id, qr: `${payload}.${sign(payload)}`, expiresAt: new Date(exp * 1000) };
    },

    // ---- store staff ----
    /** What the till sees after scanning, without using the coupon. */
    async check(staff: StaffIdentity, input: { qr: string } | { code: string }) {
      const c = await find(input);
      if (typeof c === 'string') throw new AppError(c === 'bad_qr' ? 'VALIDATION' : 'NOT_FOUND', REFUSAL_TEXT[c], { reason: c });
      const refusal = refusalOf(c, staff.storeId);
      return { coupon: c, status: couponStatus(c), redeemable: refusal === null, reason: refusal ? REFUSAL_TEXT[refusal] : null };
    },

    /** Use the coupon at this store: exactly once, whoever scans it how often. */
    async redeem(staff: StaffIdentity, input: { qr: string } | { code: string }) {
      const c = await find(input);
      if (typeof c === 'string') {
        await recordRefusal(staff, null, c);
        throw new AppError(c === 'bad_qr' ? 'VALIDATION' : 'NOT_FOUND', REFUSAL_TEXT[c], { reason: c });
      }
      const now = clock.now();
      const taken = rowsOf<{ coupon_id: number }>(await db.execute(sql`
        WITH c AS (
          UPDATE user_coupons SET status = 'used', used_at = ${now}
          WHERE id = ${c.id} AND status = 'issued' AND expires_at > ${now}
            AND (store_ids IS NULL OR jsonb_array_length(store_ids) = 0 OR store_ids @> jsonb_build_array(${staff.storeId}::text))
          RETURNING id)
        INSERT INTO coupon_redemptions (coupon_id, store_id, staff_id, outcome, at)
        SELECT id, ${staff.storeId}, ${staff.staffId}, 'redeemed', ${now} FROM c RETURNING coupon_id`));
      if (taken.length === 0) {
        const [current] = await db.select().from(userCoupons).where(eq(userCoupons.id, c.id));
        const refusal = (current && refusalOf(current, staff.storeId)) ?? 'already_used';
        await recordRefusal(staff, c.id, refusal);
        throw new AppError(refusal === 'wrong_store' ? 'FORBIDDEN' : 'CONFLICT', REFUSAL_TEXT[refusal], { reason: refusal });
      }
      const [used] = await db.select().from(userCoupons).where(eq(userCoupons.id, c.id));
      return { coupon: used!, status: 'used' as const, redeemable: false, reason: null };
    },

    // ---- ops ----
    /** Per store: coupons bound to it, redeemed there, refused there (optionally for one campaign's prizes). */
    async usageByStore(opts: { campaignId?: number | undefined } = {}) {
      const campaign = opts.campaignId;
      const rows = await database.query<{ store_id: string; name: string; city: string | null; issued: number; redeemed: number; refused: number }>(sql`
        SELECT s.id AS store_id, s.name, s.city,
          (SELECT count(*)::int FROM user_coupons uc
             WHERE uc.store_ids @> jsonb_build_array(s.id)
               AND (${campaign ?? null}::int IS NULL OR EXISTS (SELECT 1 FROM fulfilments f WHERE f.source_key = uc.source_key AND f.campaign_id = ${campaign ?? null}::int))) AS issued,
          (SELECT count(*)::int FROM coupon_redemptions r JOIN user_coupons uc ON uc.id = r.coupon_id
             WHERE r.store_id = s.id AND r.outcome = 'redeemed'
               AND (${campaign ?? null}::int IS NULL OR EXISTS (SELECT 1 FROM fulfilments f WHERE f.source_key = uc.source_key AND f.campaign_id = ${campaign ?? null}::int))) AS redeemed,
          (SELECT count(*)::int FROM coupon_redemptions r WHERE r.store_id = s.id AND r.outcome <> 'redeemed') AS refused
        FROM stores s ORDER BY s.id`);
      return rows.map((r) => ({ storeId: r.store_id, name: r.name, city: r.city, issued: Number(r.issued), redeemed: Number(r.redeemed), refused: Number(r.refused) }));
    },
  };
}
export type CouponService = ReturnType<typeof createCouponService>;
