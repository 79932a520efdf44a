import { sql } from 'drizzle-orm';
import { bigint, bigserial, boolean, index, integer, pgTable, serial, text, timestamp, uniqueIndex } from 'drizzle-orm/pg-core';

/** The brand's (wholesale) stores; `id` is the store code coupons name in user_coupons.store_ids. */
export const stores = pgTable('stores', {
  id: text('id').primaryKey(),
  name: text('name').notNull(),
  city: text('city'),
  address: text('address'),
  active: boolean('active').notNull().default(true),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull(),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull(),
});

/** Store staff tokens issued by ops: only the SHA-256 of the token is stored. */
export const storeStaff = pgTable('store_staff', {
  id: serial('id').primaryKey(),
  storeId: text('store_id').notNull(),
  name: text('name').notNull(),
  tokenHash: text('token_hash').notNull().unique(),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull(),
  revokedAt: timestamp('revoked_at', { withTimezone: true }),
  lastUsedAt: timestamp('last_used_at', { withTimezone: true }),
}, (t) => [index('store_staff_store_idx').on(t.storeId)]);

/** Every coupon a store's staff redeemed or tried to (refusals too: ops see abuse per store). */
export const couponRedemptions = pgTable('coupon_redemptions', {
  id: bigserial('id', { mode: 'number' }).primaryKey(),
  couponId: bigint('coupon_id', { mode: 'number' }),
  storeId: text('store_id').notNull(),
  staffId: integer('staff_id').notNull(),
  outcome: text('outcome', { enum: ['redeemed', 'already_used', 'expired', 'wrong_store', 'revoked', 'not_found', 'bad_qr'] }).notNull(),
  at: timestamp('at', { withTimezone: true }).notNull(),
}, (t) => [
  index('coupon_redemptions_store_idx').on(t.storeId, t.at),
  // A coupon is used once: a second 'redeemed' row cannot exist.
  uniqueIndex('coupon_redemptions_once_uq').on(t.couponId).where(sql`${t.outcome} = 'redeemed'`),
]);

export type Store = typeof stores.$inferSelect;
export type StoreStaff = typeof storeStaff.$inferSelect;
