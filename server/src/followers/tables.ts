import { bigserial, boolean, index, integer, jsonb, pgTable, text, timestamp } from 'drizzle-orm/pg-core';

/** One row per openid that ever reached the account. Shardable by openid. */
export const followers = pgTable('followers', {
  openid: text('openid').primaryKey(),
  unionid: text('unionid'),
  subscribed: boolean('subscribed').notNull().default(false),
  /** Source of the latest subscribe: the QR scene key without the qrscene_ prefix, or null for search/other. */
  subscribeScene: text('subscribe_scene'),
  subscribedAt: timestamp('subscribed_at', { withTimezone: true }),
  unsubscribedAt: timestamp('unsubscribed_at', { withTimezone: true }),
  subscribeCount: integer('subscribe_count').notNull().default(0),
  firstSeenAt: timestamp('first_seen_at', { withTimezone: true }).notNull(),
  /**
   * Any inbound message or event. Up to a minute behind (bot/repo.ts FOLLOWER_SLACK_S: a message within a minute of
   * the stored time does not rewrite the row); nothing decides on it in real time.
   */
  lastInteractionAt: timestamp('last_interaction_at', { withTimezone: true }).notNull(),
  /**
   * Last user-sent message, up to a minute behind like lastInteractionAt. For ops and analytics: what may be sent is
   * decided by cs_grants (messaging/tables.ts), not by this column.
   */
  lastMessageAt: timestamp('last_message_at', { withTimezone: true }),
}, (t) => [index('followers_unionid_idx').on(t.unionid)]);

/** Append-only log of every inbound message and event (feeds tags, fraud and dashboards). */
export const interactions = pgTable('interactions', {
  id: bigserial('id', { mode: 'number' }).primaryKey(),
  openid: text('openid').notNull(),
  msgType: text('msg_type').notNull(),
  event: text('event'),
  /** Menu key, QR scene or other event key. */
  eventKey: text('event_key'),
  /** Kept as text: WeChat's MsgId exceeds 2^53. */
  msgId: text('msg_id'),
  sentAt: timestamp('sent_at', { withTimezone: true }).notNull(),
  receivedAt: timestamp('received_at', { withTimezone: true }).notNull().defaultNow(),
  payload: jsonb('payload').notNull(),
}, (t) => [
  index('interactions_openid_idx').on(t.openid, t.receivedAt),
  // Time-window scans (dashboards by kind and day); BRIN costs next to nothing per appended row (migration 0004).
  index('interactions_received_brin').using('brin', t.receivedAt),
]);

export type Follower = typeof followers.$inferSelect;
export type Interaction = typeof interactions.$inferSelect;
