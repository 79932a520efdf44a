import { sql } from 'drizzle-orm';
import { bigint, bigserial, boolean, check, index, integer, jsonb, pgTable, primaryKey, text, timestamp, uniqueIndex } from 'drizzle-orm/pg-core';

/**
 * A person (one person, one member). `openid` is the key of their points ledger, coupons and chat redemptions: the
 * official-account openid when the mini-program login was linked to a follower by unionid, otherwise the
 * mini-program openid. `id` is the stable member id the mini program sees.
 */
export const members = pgTable('members', {
  openid: text('openid').primaryKey(),
  id: bigserial('id', { mode: 'number' }).notNull().unique('members_id_unique'),
  /** The mini-program openid, once this person logged in to the mini program. */
  mpOpenid: text('mp_openid').unique('members_mp_openid_unique'),
  unionid: text('unionid').unique('members_unionid_unique'),
  /** Became a member: followed the official account and bound a phone ("broad membership"). */
  isMember: boolean('is_member').notNull().default(false),
  memberSince: timestamp('member_since', { withTimezone: true }),
  consentVersion: text('consent_version'),
  consentAt: timestamp('consent_at', { withTimezone: true }),
  inviteCode: text('invite_code').unique('members_invite_code_unique'),
  invitedBy: bigint('invited_by', { mode: 'number' }),
  tier: text('tier').notNull().default('normal'),
  tierUpdatedAt: timestamp('tier_updated_at', { withTimezone: true }),
  /** Account deleted (PIPL): personal data erased, the row and its ledger kept anonymised. */
  deletedAt: timestamp('deleted_at', { withTimezone: true }),
  /** Mobile number (mainland, 11 digits), AES-256-GCM sealed with PII_KEY: base64(iv | tag | ciphertext). */
  phoneSealed: text('phone_sealed'),
  /** HMAC-SHA256(PII_KEY, phone), hex: finds shared phones without decrypting. */
  phoneHash: text('phone_hash'),
  phoneBoundAt: timestamp('phone_bound_at', { withTimezone: true }),
  /** The number came from WeChat (getuserphonenumber), not typed in chat: such a number belongs to one member only. */
  phoneVerified: boolean('phone_verified').notNull().default(false),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
}, (t) => [
  index('members_phone_hash_idx').on(t.phoneHash),
  // One verified phone, one member (the hash is erased on deletion, freeing the number).
  uniqueIndex('members_phone_verified_unique').on(t.phoneHash).where(sql`${t.phoneVerified}`),
]);

/** Points balance; changed only together with a ledger row, never below zero. */
export const pointsAccounts = pgTable('points_accounts', {
  openid: text('openid').primaryKey(),
  balance: bigint('balance', { mode: 'number' }).notNull().default(0),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
}, (t) => [check('points_accounts_balance', sql`${t.balance} >= 0`)]);

/** Append-only points ledger; one row per business event, made exactly-once by its idempotency key. */
export const pointsLedger = pgTable('points_ledger', {
  id: bigserial('id', { mode: 'number' }).primaryKey(),
  openid: text('openid').notNull(),
  delta: integer('delta').notNull(),
  balanceAfter: bigint('balance_after', { mode: 'number' }).notNull(),
  /** e.g. `draw:123`, `consolation:123`, `mall:order:9` */
  idempotencyKey: text('idempotency_key').notNull().unique(),
  reason: text('reason').notNull(),
  detail: jsonb('detail'),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull(),
}, (t) => [index('points_ledger_openid_idx').on(t.openid, t.createdAt)]);

/** Coupons issued to users (store-bound when storeIds is set). */
export const userCoupons = pgTable('user_coupons', {
  id: bigserial('id', { mode: 'number' }).primaryKey(),
  openid: text('openid').notNull(),
  /** Our idempotency key, e.g. `draw:123`. */
  sourceKey: text('source_key').notNull().unique(),
  /** What the user shows at the till. */
  couponCode: text('coupon_code').notNull().unique(),
  title: text('title').notNull(),
  valueFen: integer('value_fen').notNull(),
  storeIds: jsonb('store_ids').$type<string[] | null>(),
  status: text('status', { enum: ['issued', 'used', 'expired', 'revoked'] }).notNull().default('issued'),
  issuedAt: timestamp('issued_at', { withTimezone: true }).notNull(),
  expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
  usedAt: timestamp('used_at', { withTimezone: true }),
}, (t) => [index('user_coupons_openid_idx').on(t.openid, t.status)]);

/**
 * Mini-program sessions: random opaque tokens, stored only as SHA-256 hashes. A short-lived access token and a
 * longer-lived refresh token (rotated on every refresh).
 */
export const mpSessions = pgTable('mp_sessions', {
  id: bigserial('id', { mode: 'number' }).primaryKey(),
  memberId: bigint('member_id', { mode: 'number' }).notNull(),
  mpOpenid: text('mp_openid').notNull(),
  tokenHash: text('token_hash').notNull().unique(),
  refreshHash: text('refresh_hash').notNull().unique(),
  expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
  refreshExpiresAt: timestamp('refresh_expires_at', { withTimezone: true }).notNull(),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull(),
  revokedAt: timestamp('revoked_at', { withTimezone: true }),
}, (t) => [index('mp_sessions_member_idx').on(t.memberId)]);

/** What happened to a member (became member, phone bound, tier changed, consent, deleted …). */
export const memberEvents = pgTable('member_events', {
  id: bigserial('id', { mode: 'number' }).primaryKey(),
  memberId: bigint('member_id', { mode: 'number' }).notNull(),
  kind: text('kind').notNull(),
  detail: jsonb('detail'),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull(),
}, (t) => [index('member_events_member_idx').on(t.memberId, t.createdAt)]);

export type Member = typeof members.$inferSelect;
export type MpSession = typeof mpSessions.$inferSelect;
export type PointsLedgerEntry = typeof pointsLedger.$inferSelect;
export type UserCoupon = typeof userCoupons.$inferSelect;

// ---- points: earn rules, lots (expiry), reminders, purchase imports; tiers ----

/** Ops-editable earn rules, one per kind of event. */
export const earnRules = pgTable('earn_rules', {
  key: text('key', { enum: ['follow', 'bind_phone', 'complete_profile', 'redemption', 'daily_checkin', 'interaction', 'purchase', 'invite_reward'] }).primaryKey(),
  /** Points per event; for `purchase`, points per yuan spent. */
  points: integer('points').notNull(),
  enabled: boolean('enabled').notNull().default(true),
  /** At most this many earns per member per (China) day; null = unlimited. */
  dailyCap: integer('daily_cap'),
  /** The tier's points multiplier applies. */
  tierMultiplier: boolean('tier_multiplier').notNull().default(true),
  /** Points earned by this rule expire after this many days. */
  validityDays: integer('validity_days').notNull().default(365),
  description: text('description').notNull().default(''),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
}, (t) => [check('earn_rules_points', sql`${t.points} >= 0`), check('earn_rules_validity', sql`${t.validityDays} > 0`)]);

/**
 * FIFO lots: one per credit, consumed by debits earliest-expiry first. Maintained by a trigger on points_ledger
 * (migration 0003), so every writer — the ledger API, the draw statements, the mall — keeps them right.
 */
export const pointsLots = pgTable('points_lots', {
  id: bigserial('id', { mode: 'number' }).primaryKey(),
  openid: text('openid').notNull(),
  /** The credit entry; null for the opening lot of a balance that predates lots. */
  ledgerId: bigint('ledger_id', { mode: 'number' }),
  points: integer('points').notNull(),
  remaining: integer('remaining').notNull(),
  earnedAt: timestamp('earned_at', { withTimezone: true }).notNull(),
  expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
}, (t) => [
  index('points_lots_open_idx').on(t.openid, t.expiresAt).where(sql`${t.remaining} > 0`),
  index('points_lots_due_idx').on(t.expiresAt).where(sql`${t.remaining} > 0`),
  check('points_lots_remaining', sql`${t.remaining} >= 0 AND ${t.remaining} <= ${t.points}`),
]);

/** One expiry reminder per member and expiry day (7 days before). */
export const pointsExpiryReminders = pgTable('points_expiry_reminders', {
  openid: text('openid').notNull(),
  expiresOn: text('expires_on').notNull(),
  points: integer('points').notNull(),
  channel: text('channel').notNull(),
  status: text('status').notNull(),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull(),
}, (t) => [primaryKey({ columns: [t.openid, t.expiresOn] })]);

/** A purchase CSV from the brand's sales system: what was accepted and what was not. */
export const purchaseImports = pgTable('purchase_imports', {
  id: bigserial('id', { mode: 'number' }).primaryKey(),
  rows: integer('rows').notNull(),
  credited: integer('credited').notNull(),
  duplicates: integer('duplicates').notNull(),
  rejected: integer('rejected').notNull(),
  report: jsonb('report').notNull(),
  createdBy: text('created_by'),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull(),
});

/** Tiers (普通/银卡/金卡/钻石), ops-editable thresholds and benefits. */
export const memberTiers = pgTable('member_tiers', {
  key: text('key', { enum: ['normal', 'silver', 'gold', 'diamond'] }).primaryKey(),
  name: text('name').notNull(),
  position: integer('position').notNull(),
  /** Rolling points (earned over the last `windowDays`) needed to hold the tier. */
  minPoints: integer('min_points').notNull(),
  windowDays: integer('window_days').notNull().default(365),
  /** Points multiplier in percent (150 = ×1.5). */
  multiplierPct: integer('multiplier_pct').notNull().default(100),
  /** Issued on the first evaluation of each month: { title, valueFen, validDays }. */
  monthlyCoupon: jsonb('monthly_coupon').$type<{ title: string; valueFen: number; validDays: number } | null>(),
  /** May order mall items reserved for higher tiers. */
  reservedItems: boolean('reserved_items').notNull().default(false),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
}, (t) => [check('member_tiers_multiplier', sql`${t.multiplierPct} >= 100 AND ${t.multiplierPct} <= 1000`), check('member_tiers_min', sql`${t.minPoints} >= 0`)]);

export type EarnRule = typeof earnRules.$inferSelect;
export type EarnRuleKey = EarnRule['key'];
export type PointsLot = typeof pointsLots.$inferSelect;
export type MemberTier = typeof memberTiers.$inferSelect;
