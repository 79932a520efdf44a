import { bigserial, boolean, index, integer, jsonb, pgTable, primaryKey, serial, text, timestamp } from 'drizzle-orm/pg-core';

/** Products and events the mini program can recommend. */
export const recItems = pgTable('rec_items', {
  id: serial('id').primaryKey(),
  /** Stable key rules refer to, e.g. `growing-up-formula`. */
  key: text('key').notNull().unique(),
  kind: text('kind', { enum: ['product', 'event'] }).notNull(),
  title: text('title').notNull(),
  description: text('description').notNull().default(''),
  imageUrl: text('image_url'),
  /** Mini-program page or web link the card opens. */
  link: text('link'),
  /** Events: the city they take place in (matched against the member's region answer); null = everywhere. */
  city: text('city'),
  startsAt: timestamp('starts_at', { withTimezone: true }),
  endsAt: timestamp('ends_at', { withTimezone: true }),
  active: boolean('active').notNull().default(true),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull(),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull(),
});

export interface RecCondition {
  /** `profile.<questionKey>[.<field>]` (golden-question answers), `tag` (member tags) or `city` (the region answer's city). */
  field: string;
  op: 'eq' | 'in' | 'between' | 'gte' | 'lte' | 'has' | 'contains';
  value?: unknown;
}

/** Ops-editable rules: all conditions must hold; then the rule's items are recommended, with its reason. */
export const recRules = pgTable('rec_rules', {
  id: serial('id').primaryKey(),
  name: text('name').notNull().unique(),
  /** Higher first. */
  priority: integer('priority').notNull().default(0),
  conditions: jsonb('conditions').$type<RecCondition[]>().notNull(),
  itemKeys: jsonb('item_keys').$type<string[]>().notNull(),
  /** e.g. continued purchase / up-sell (what dashboards group by). */
  reason: text('reason').notNull(),
  active: boolean('active').notNull().default(true),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull(),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull(),
});

/** Tags on a member (ledger openid) from any source: ops, imports, and our own recommendation clicks. */
export const memberTags = pgTable('member_tags', {
  openid: text('openid').notNull(),
  tag: text('tag').notNull(),
  source: text('source').notNull(),
  weight: integer('weight').notNull().default(1),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull(),
}, (t) => [primaryKey({ columns: [t.openid, t.tag] })]);

/** Every impression and click of a recommendation. */
export const recEvents = pgTable('rec_events', {
  id: bigserial('id', { mode: 'number' }).primaryKey(),
  openid: text('openid').notNull(),
  itemId: integer('item_id').notNull(),
  ruleId: integer('rule_id'),
  kind: text('kind', { enum: ['impression', 'click'] }).notNull(),
  detail: jsonb('detail'),
  at: timestamp('at', { withTimezone: true }).notNull(),
}, (t) => [index('rec_events_item_idx').on(t.itemId, t.kind, t.at), index('rec_events_openid_idx').on(t.openid, t.at)]);

export type RecItem = typeof recItems.$inferSelect;
export type RecRule = typeof recRules.$inferSelect;
