import { pgTable, text, timestamp } from 'drizzle-orm/pg-core';

/**
 * The shared access_token. One instance at a time refreshes it (a lease taken by conditional update),
 * so instances never overwrite each other's token (§8 trap 1).
 */
export const wechatAccessTokens = pgTable('wechat_access_tokens', {
  appid: text('appid').primaryKey(),
  accessToken: text('access_token'),
  expiresAt: timestamp('expires_at', { withTimezone: true }),
  leaseOwner: text('lease_owner'),
  leaseUntil: timestamp('lease_until', { withTimezone: true }),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
});
