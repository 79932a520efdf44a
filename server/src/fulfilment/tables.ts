import { bigint, bigserial, index, integer, jsonb, pgTable, text, timestamp, uniqueIndex } from 'drizzle-orm/pg-core';

/**
 * One delivery of a won prize (or consolation points), a durable job with a state machine:
 *
 *   pending ──claim──▶ running ──▶ succeeded
 *      ▲                 │  ├──▶ waiting_phone (top-up: no bound phone; resumes when the user gives one)
 *      └── retry (backoff)┤  ├──▶ waiting_user (cash: bill WAIT_USER_CONFIRM; the user confirms in the mini program)
 *                         │  └──▶ unknown (provider outcome unknown: query before any retry, never re-key)
 *                         └──▶ failed (attempts exhausted / permanent) | cancelled | held (fraud review)
 *
 * `outNo` is our id sent to providers (out_bill_no, top-up order no): at most one payout per job, ever.
 * `leaseUntil` is the crash guard: a running job whose lease ran out is claimed again and resumes by querying.
 */
export const fulfilments = pgTable('fulfilments', {
  id: bigserial('id', { mode: 'number' }).primaryKey(),
  /** Business key, e.g. `draw:123` or `consolation:123`. */
  sourceKey: text('source_key').notNull(),
  drawId: bigint('draw_id', { mode: 'number' }),
  campaignId: integer('campaign_id'),
  openid: text('openid').notNull(),
  prizeId: integer('prize_id'),
  kind: text('kind', { enum: ['points', 'coupon', 'topup', 'cash', 'physical'] }).notNull(),
  /** points, or fen. */
  amount: integer('amount').notNull(),
  state: text('state', { enum: ['pending', 'running', 'waiting_phone', 'waiting_user', 'unknown', 'succeeded', 'failed', 'cancelled', 'held'] }).notNull().default('pending'),
  attempts: integer('attempts').notNull().default(0),
  nextAttemptAt: timestamp('next_attempt_at', { withTimezone: true }).notNull(),
  leaseUntil: timestamp('lease_until', { withTimezone: true }),
  outNo: text('out_no').notNull(),
  providerRef: text('provider_ref'),
  /** Cash: WeChat Pay package_info for wx.requestMerchantTransfer. */
  packageInfo: text('package_info'),
  /** Cash: when an unconfirmed bill is cancelled. */
  expiresAt: timestamp('expires_at', { withTimezone: true }),
  lastError: text('last_error'),
  detail: jsonb('detail'),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull(),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull(),
}, (t) => [
  uniqueIndex('fulfilments_source_key_uq').on(t.sourceKey),
  uniqueIndex('fulfilments_out_no_uq').on(t.outNo),
  index('fulfilments_due_idx').on(t.state, t.nextAttemptAt),
  index('fulfilments_openid_idx').on(t.openid, t.state),
  // Campaign ops: counters by prize and state (index-only), and the redemptions export's draw → fulfilment lookup.
  index('fulfilments_campaign_idx').on(t.campaignId, t.prizeId, t.state),
  index('fulfilments_draw_idx').on(t.drawId),
]);

/** Every state change of a fulfilment, for ops. */
export const fulfilmentEvents = pgTable('fulfilment_events', {
  id: bigserial('id', { mode: 'number' }).primaryKey(),
  fulfilmentId: bigint('fulfilment_id', { mode: 'number' }).notNull(),
  fromState: text('from_state'),
  toState: text('to_state').notNull(),
  note: text('note'),
  at: timestamp('at', { withTimezone: true }).notNull(),
}, (t) => [index('fulfilment_events_job_idx').on(t.fulfilmentId, t.at)]);

export type Fulfilment = typeof fulfilments.$inferSelect;
