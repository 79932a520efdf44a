import { boolean, integer, jsonb, pgTable, serial, text, timestamp } from 'drizzle-orm/pg-core';
import type { ReplyMessage } from '../../../shared/replies.ts';
import type { MenuButton, MenuMatchRule } from '../../../shared/menus.ts';

/** Keyword rules: first enabled rule by priority (desc) whose pattern matches and whose window is open wins. */
export const keywordRules = pgTable('keyword_rules', {
  id: serial('id').primaryKey(),
  name: text('name').notNull(),
  matchType: text('match_type', { enum: ['exact', 'contains', 'regex'] }).notNull(),
  pattern: text('pattern').notNull(),
  priority: integer('priority').notNull().default(0),
  reply: jsonb('reply').$type<ReplyMessage>().notNull(),
  enabled: boolean('enabled').notNull().default(true),
  startsAt: timestamp('starts_at', { withTimezone: true }),
  endsAt: timestamp('ends_at', { withTimezone: true }),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
});

/** Fixed replies: `welcome` (on subscribe) and `default` (nothing else matched). */
export const replySettings = pgTable('reply_settings', {
  name: text('name', { enum: ['welcome', 'default'] }).primaryKey(),
  reply: jsonb('reply').$type<ReplyMessage>().notNull(),
  enabled: boolean('enabled').notNull().default(true),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
});

/** What a menu CLICK (or scancode_*) key does: reply, or start a named flow. */
export const menuKeyActions = pgTable('menu_key_actions', {
  key: text('key').primaryKey(),
  action: jsonb('action').$type<{ type: 'reply'; reply: ReplyMessage } | { type: 'flow'; flow: string }>().notNull(),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
});

/** Menus as ops define them; `default` is the base menu, `conditional` ones match a tag or platform. */
export const menus = pgTable('menus', {
  id: serial('id').primaryKey(),
  name: text('name').notNull(),
  kind: text('kind', { enum: ['default', 'conditional'] }).notNull(),
  buttons: jsonb('buttons').$type<MenuButton[]>().notNull(),
  matchRule: jsonb('match_rule').$type<MenuMatchRule>(),
  /** menuid returned by menu/addconditional, once published. */
  wechatMenuId: text('wechat_menu_id'),
  publishedAt: timestamp('published_at', { withTimezone: true }),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
});

export type KeywordRule = typeof keywordRules.$inferSelect;
export type Menu = typeof menus.$inferSelect;
