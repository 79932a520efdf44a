import { sql } from 'drizzle-orm';
import { bigint, bigserial, check, index, integer, jsonb, pgTable, text, timestamp } from 'drizzle-orm/pg-core';

/** A member (consumer) keyed by openid; the members issue adds login, tiers and more. */
export const members = pgTable('members', {
  openid: text('openid').primaryKey(),
  /** Mobile number (mainland, 11 digits), AES-256-GCM sealed with PII_KEY: base64(iv | tag | ciphertext). */
  phoneSealed: text('phone_sealed'),
  /** HMAC-SHA256(PII_KEY, phone), hex: finds shared phones without decrypting. */
  phoneHash: text('phone_hash'),
  phoneBoundAt: timestamp('phone_bound_at', { withTimezone: true }),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
}, (t) => [index('members_phone_hash_idx').on(t.phoneHash)]);

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

export type Member = typeof members.$inferSelect;
export type PointsLedgerEntry = typeof pointsLedger.$inferSelect;
export type UserCoupon = typeof userCoupons.$inferSelect;
