import { bigserial, index, integer, jsonb, pgTable, primaryKey, text, timestamp } from 'drizzle-orm/pg-core';
import type { CustomerMessage } from '../../../shared/replies.ts';

/**
 * Customer-service message budget per user and scene, mirroring WeChat's rules (§5.8):
 * message → 5 within 48 h; menu click / follow / QR scan → 3 within 1 min; payment → unlimited for 48 h.
 * A new trigger of the same scene replaces its grant. `quota` null means unlimited. A message within a minute of the
 * last one does not rewrite an unused 48-hour grant (bot/repo.ts grantSlackS): the stored window may end up to a minute
 * before WeChat's, never after, and a grant with messages used is always renewed.
 */
export const csGrants = pgTable('cs_grants', {
  openid: text('openid').notNull(),
  scene: text('scene', { enum: ['message', 'menu', 'follow', 'scan', 'payment'] }).notNull(),
  grantedAt: timestamp('granted_at', { withTimezone: true }).notNull(),
  expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
  quota: integer('quota'),
  used: integer('used').notNull().default(0),
}, (t) => [primaryKey({ columns: [t.openid, t.scene] })]);

/** Every customer-service message we mean to send; the unique key makes each send happen at most once. */
export const csOutbox = pgTable('cs_outbox', {
  id: bigserial('id', { mode: 'number' }).primaryKey(),
  key: text('key').notNull().unique(),
  openid: text('openid').notNull(),
  message: jsonb('message').$type<CustomerMessage>().notNull(),
  /** pending → sending → sent | waiting (no budget; sent when the user opens a window) | failed | dropped */
  status: text('status', { enum: ['pending', 'sending', 'sent', 'waiting', 'failed', 'dropped'] }).notNull().default('pending'),
  reason: text('reason'),
  attempts: integer('attempts').notNull().default(0),
  nextAttemptAt: timestamp('next_attempt_at', { withTimezone: true }).notNull().defaultNow(),
  /** After this the message is stale and is dropped rather than sent. */
  notAfter: timestamp('not_after', { withTimezone: true }).notNull(),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  sentAt: timestamp('sent_at', { withTimezone: true }),
}, (t) => [index('cs_outbox_due_idx').on(t.status, t.nextAttemptAt), index('cs_outbox_openid_idx').on(t.openid, t.status)]);
