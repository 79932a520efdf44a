import { sql } from 'drizzle-orm';
import { bigint, bigserial, check, index, integer, jsonb, pgTable, primaryKey, serial, text, timestamp, uniqueIndex } from 'drizzle-orm/pg-core';

export const MALL_ITEM_KINDS = ['coupon', 'physical', 'sample', 'points_cash'] as const;
export type MallItemKind = (typeof MALL_ITEM_KINDS)[number];

export const ORDER_STATES = ['awaiting_payment', 'paid', 'shipped', 'fulfilled', 'cancelled', 'refund_pending', 'refunded'] as const;
export type OrderState = (typeof ORDER_STATES)[number];

/** What a mall item gives when it is a coupon (issued into user_coupons, store-bound when storeIds is set). */
export interface MallCouponSpec {
  title: string;
  valueFen: number;
  validDays: number;
  storeIds?: string[];
}

/** Items of the points mall. `stock` is what is left: taken only by a conditional decrement (never below zero). */
export const mallItems = pgTable('mall_items', {
  id: serial('id').primaryKey(),
  kind: text('kind', { enum: MALL_ITEM_KINDS }).notNull(),
  title: text('title').notNull(),
  description: text('description').notNull().default(''),
  imageUrl: text('image_url'),
  points: integer('points').notNull(),
  /** Cash part in fen (points + cash items only; paid with WeChat Pay JSAPI). */
  cashFen: integer('cash_fen').notNull().default(0),
  stock: integer('stock').notNull(),
  sold: integer('sold').notNull().default(0),
  /** Most units one member may hold in orders that are not cancelled; null = no limit. */
  perMemberLimit: integer('per_member_limit'),
  /** Lowest member tier that may order it (tier reserved items); null = everyone. */
  minTier: text('min_tier'),
  coupon: jsonb('coupon').$type<MallCouponSpec | null>(),
  status: text('status', { enum: ['draft', 'active', 'archived'] }).notNull().default('draft'),
  position: integer('position').notNull().default(0),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull(),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull(),
}, (t) => [
  check('mall_items_stock', sql`${t.stock} >= 0`),
  check('mall_items_price', sql`${t.points} >= 0 AND ${t.cashFen} >= 0`),
]);

/** Mall orders; a state machine moved only by conditional updates (see mall/service.ts). */
export const mallOrders = pgTable('mall_orders', {
  id: bigserial('id', { mode: 'number' }).primaryKey(),
  /** The ledger key of the member (MpMember.openid). */
  openid: text('openid').notNull(),
  memberId: bigint('member_id', { mode: 'number' }),
  /** The mini-program openid (JSAPI payer.openid). */
  mpOpenid: text('mp_openid'),
  /** Client-supplied idempotency key: a double-submitted order creates one order. */
  clientKey: text('client_key').notNull(),
  itemId: integer('item_id').notNull(),
  kind: text('kind', { enum: MALL_ITEM_KINDS }).notNull(),
  title: text('title').notNull(),
  quantity: integer('quantity').notNull(),
  points: integer('points').notNull(),
  cashFen: integer('cash_fen').notNull().default(0),
  state: text('state', { enum: ORDER_STATES }).notNull(),
  /** Shipping address, sealed with PII_KEY (physical gifts and samples). */
  addressSealed: text('address_sealed'),
  outTradeNo: text('out_trade_no').unique(),
  prepayId: text('prepay_id'),
  prepayAt: timestamp('prepay_at', { withTimezone: true }),
  transactionId: text('transaction_id'),
  payExpiresAt: timestamp('pay_expires_at', { withTimezone: true }),
  paidAt: timestamp('paid_at', { withTimezone: true }),
  couponId: bigint('coupon_id', { mode: 'number' }),
  shipping: jsonb('shipping').$type<{ carrier: string; trackingNo: string } | null>(),
  note: text('note'),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull(),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull(),
}, (t) => [
  uniqueIndex('mall_orders_client_key_uq').on(t.openid, t.clientKey),
  index('mall_orders_openid_idx').on(t.openid, t.id),
  index('mall_orders_state_idx').on(t.state, t.payExpiresAt),
]);

/** Every state change of an order (append-only). */
export const mallOrderEvents = pgTable('mall_order_events', {
  id: bigserial('id', { mode: 'number' }).primaryKey(),
  orderId: bigint('order_id', { mode: 'number' }).notNull(),
  fromState: text('from_state'),
  toState: text('to_state').notNull(),
  note: text('note'),
  at: timestamp('at', { withTimezone: true }).notNull(),
}, (t) => [index('mall_order_events_order_idx').on(t.orderId)]);

/** Units a member holds of an item, for per-member limits: raised by a conditional upsert, lowered on cancel. */
export const mallMemberCounts = pgTable('mall_member_counts', {
  openid: text('openid').notNull(),
  itemId: integer('item_id').notNull(),
  quantity: integer('quantity').notNull().default(0),
}, (t) => [primaryKey({ columns: [t.openid, t.itemId] }), check('mall_member_counts_quantity', sql`${t.quantity} >= 0`)]);

export type MallItem = typeof mallItems.$inferSelect;
export type MallOrder = typeof mallOrders.$inferSelect;
export type MallOrderEvent = typeof mallOrderEvents.$inferSelect;
