import { sql } from 'drizzle-orm';
import { bigint, bigserial, boolean, doublePrecision, index, integer, jsonb, pgTable, primaryKey, serial, smallint, text, timestamp, uniqueIndex } from 'drizzle-orm/pg-core';

/**
 * Scoring model versions: weights and thresholds ops edit. The highest version is the one in force; rows are never
 * updated, so every decision's `model_version` names exactly the weights that made it.
 */
export const fraudModels = pgTable('fraud_models', {
  version: integer('version').primaryKey(),
  /** { weights, bias, thresholds, cooldown } — see fraud/scoring.ts FraudModel. */
  model: jsonb('model').notNull(),
  note: text('note'),
  createdBy: text('created_by').notNull(),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull(),
});

/**
 * Per-user signals that must be exact across instances. Only suspicious paths write here (a wrong code, golden
 * answers, a phone binding, a burst of redemptions); an honest redemption neither reads nor writes it unless the
 * user is `flagged` (the in-process flagged set says whether to read it).
 */
export const fraudUserState = pgTable('fraud_user_state', {
  openid: text('openid').primaryKey(),
  /** Well-formed codes that matched nothing, or someone else's code, in the window starting at `windowStart`. */
  unknownCodes: integer('unknown_codes').notNull().default(0),
  windowStart: timestamp('window_start', { withTimezone: true }),
  /** Wrong attempts per minute, exponentially decayed (time constant 60 s) at `lastWrongAt`. */
  wrongRate: doublePrecision('wrong_rate').notNull().default(0),
  lastWrongAt: timestamp('last_wrong_at', { withTimezone: true }),
  /** Progressive throttling: cool-downs served so far in the window, and until when code attempts are refused. */
  cooldownLevel: integer('cooldown_level').notNull().default(0),
  cooldownUntil: timestamp('cooldown_until', { withTimezone: true }),
  /** A block decision suspends code attempts until then (a script hammering while blocked learns nothing). */
  blockedUntil: timestamp('blocked_until', { withTimezone: true }),
  /** Redemptions per hour, exponentially decayed (time constant 1 h) at `lastRedeemAt`; written only above the allowance. */
  redeemRate: doublePrecision('redeem_rate').notNull().default(0),
  /** Redemptions in the campaign of the last one (its per-campaign counter). */
  redeemTotal: integer('redeem_total').notNull().default(0),
  /** The campaign redeem_total counts (a new campaign starts it again). */
  redeemCampaignId: integer('redeem_campaign_id'),
  lastRedeemAt: timestamp('last_redeem_at', { withTimezone: true }),
  /** Accounts (this one included) bound to this user's phone. */
  sharedPhone: integer('shared_phone').notNull().default(0),
  /** Accounts (this one included) sharing a unionid / device / IP seen by the mini program. */
  sharedDevice: integer('shared_device').notNull().default(0),
  /** Accounts (this one included) seen on the same client IP by the mini program. */
  sharedIp: integer('shared_ip').notNull().default(0),
  /**
   * Accounts (this one included) that typed this user's name within the shared-name window, and the name answers typed
   * in that window by every account: written only when the cluster was beyond chance (fraud/scoring.ts
   * sharedNameAllowance), on every account of it.
   */
  sharedName: integer('shared_name').notNull().default(0),
  sharedNameAnswers: integer('shared_name_answers').notNull().default(0),
  /** Golden answers so far (question key → normalised answer) and the fingerprint of the whole set. */
  answers: jsonb('answers'),
  answerPrint: text('answer_print'),
  /** Answers typed faster than a person reads the question. */
  fastAnswers: integer('fast_answers').notNull().default(0),
  /** A blacklisted phone / unionid / device / IP was seen for this user. */
  blacklistHit: text('blacklist_hit'),
  /** Read this row before this user's next code (kept in each instance's flagged set). */
  flagged: boolean('flagged').notNull().default(false),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull(),
}, (t) => [index('fraud_user_state_flagged_idx').on(t.updatedAt).where(sql`${t.flagged}`), index('fraud_user_state_print_idx').on(t.answerPrint)]);

/** How many accounts gave exactly the same set of golden answers (bots, templated farms). */
export const fraudAnswerPrints = pgTable('fraud_answer_prints', {
  print: text('print').primaryKey(),
  accounts: integer('accounts').notNull().default(0),
  firstAt: timestamp('first_at', { withTimezone: true }).notNull(),
});

/**
 * Identifiers the mini program sees (device, client IP, unionid) as keyed hashes, and how many accounts used each.
 * Written only on the mini-program path, once per (account, identifier) and instance: the link row makes the count
 * exact across instances (a second insert of the same link does nothing, the counter row serialises the increments).
 * Kind 'name' (a golden-question name, keyed hash, chat and mini program) has link rows only: what counts is the
 * accounts of the last window (partial indexes below), not a lifetime counter. `kind` has no CHECK constraint in the
 * database (the enum is TypeScript's only), so 'name' needs no migration of its own.
 */
export const fraudIdentifiers = pgTable('fraud_identifiers', {
  kind: text('kind', { enum: ['device', 'ip', 'unionid', 'name'] }).notNull(),
  valueHash: text('value_hash').notNull(),
  accounts: integer('accounts').notNull().default(0),
  firstAt: timestamp('first_at', { withTimezone: true }).notNull(),
}, (t) => [primaryKey({ columns: [t.kind, t.valueHash] })]);

export const fraudIdentifierAccounts = pgTable('fraud_identifier_accounts', {
  kind: text('kind', { enum: ['device', 'ip', 'unionid', 'name'] }).notNull(),
  valueHash: text('value_hash').notNull(),
  openid: text('openid').notNull(),
  firstAt: timestamp('first_at', { withTimezone: true }).notNull(),
}, (t) => [
  primaryKey({ columns: [t.kind, t.valueHash, t.openid] }),
  // Names: the accounts of one name in the window, and every name typed in the window (index ranges of the window only).
  index('fraud_identifier_accounts_name_idx').on(t.valueHash, t.firstAt).where(sql`${t.kind} = 'name'`),
  index('fraud_identifier_accounts_name_at_idx').on(t.firstAt).where(sql`${t.kind} = 'name'`),
]);

/** Held and blocked decisions, always in full (score, reasons, model version); allow decisions of flagged users too. */
export const fraudDecisions = pgTable('fraud_decisions', {
  id: bigserial('id', { mode: 'number' }).primaryKey(),
  openid: text('openid').notNull(),
  /** code (before a lookup), draw (before the prize is issued), lookback (a prize issued earlier, held on later evidence). */
  stage: text('stage', { enum: ['code', 'draw', 'lookback'] }).notNull(),
  decision: text('decision', { enum: ['allow', 'hold', 'block'] }).notNull(),
  score: doublePrecision('score').notNull(),
  reasons: jsonb('reasons').notNull(),
  features: jsonb('features').notNull(),
  modelVersion: integer('model_version').notNull(),
  campaignId: integer('campaign_id'),
  redemptionId: bigint('redemption_id', { mode: 'number' }),
  drawId: bigint('draw_id', { mode: 'number' }),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull(),
}, (t) => [index('fraud_decisions_openid_idx').on(t.openid, t.createdAt), index('fraud_decisions_draw_idx').on(t.drawId)]);

/** A held prize waiting for a reviewer. `status` moves pending → approved | rejected exactly once (conditional update). */
export const fraudReviews = pgTable('fraud_reviews', {
  id: bigserial('id', { mode: 'number' }).primaryKey(),
  decisionId: bigint('decision_id', { mode: 'number' }).notNull(),
  openid: text('openid').notNull(),
  campaignId: integer('campaign_id').notNull(),
  drawId: bigint('draw_id', { mode: 'number' }).notNull(),
  fulfilmentId: bigint('fulfilment_id', { mode: 'number' }).notNull(),
  prizeId: integer('prize_id'),
  /** The stock shard the prize was taken from (null: unlimited prize): a rejection gives the unit back there. */
  stockShard: smallint('stock_shard'),
  stockDay: text('stock_day'),
  status: text('status', { enum: ['pending', 'approved', 'rejected'] }).notNull().default('pending'),
  reviewerId: integer('reviewer_id'),
  reviewerName: text('reviewer_name'),
  note: text('note'),
  blacklisted: boolean('blacklisted').notNull().default(false),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull(),
  reviewedAt: timestamp('reviewed_at', { withTimezone: true }),
}, (t) => [uniqueIndex('fraud_reviews_draw_uq').on(t.drawId), index('fraud_reviews_status_idx').on(t.status, t.id)]);

/** Blacklisted identifiers as keyed hashes (HMAC with PII_KEY): never the phone number or openid in the clear. */
export const fraudBlacklist = pgTable('fraud_blacklist', {
  id: serial('id').primaryKey(),
  kind: text('kind', { enum: ['openid', 'unionid', 'phone', 'ip', 'device'] }).notNull(),
  valueHash: text('value_hash').notNull(),
  /** A masked hint for ops (e.g. 138****8000, oAb***xyz). */
  hint: text('hint').notNull(),
  note: text('note'),
  createdBy: text('created_by').notNull(),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull(),
}, (t) => [uniqueIndex('fraud_blacklist_kind_hash_uq').on(t.kind, t.valueHash)]);
