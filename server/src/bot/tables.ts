import { jsonb, pgTable, text, timestamp } from 'drizzle-orm/pg-core';

/**
 * Dedup of WeChat's retries (it retries 3 times, 5 s apart): one row per inbound key.
 * The unique key makes the side effects happen once across any number of instances;
 * the stored reply is what a retry gets back. Rows are pruned after a day.
 */
export const webhookDedup = pgTable('webhook_dedup', {
  key: text('key').primaryKey(),
  /** processing → replied (reply stored) | deferred (answered `success`, reply goes by customer-service API) */
  status: text('status', { enum: ['processing', 'replied', 'deferred'] }).notNull().default('processing'),
  /** Plaintext reply XML, re-encrypted per request when the retry came in safe mode. */
  reply: text('reply'),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
});

/**
 * Multi-turn dialogs (waiting for a code, a golden-question answer, a phone number): one active dialog per user,
 * read together with the dedup claim so routing costs no extra round trip. Survives restarts; ends at `expiresAt`.
 */
export const dialogs = pgTable('dialogs', {
  openid: text('openid').primaryKey(),
  /** The capability flow that owns the dialog, e.g. `campaign.code`, `campaign.question`, `fulfilment.phone`. */
  flow: text('flow').notNull(),
  state: jsonb('state').notNull(),
  expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull(),
});
