import { sql } from 'drizzle-orm';
import { bigint, bigserial, boolean, check, customType, date, index, integer, jsonb, pgTable, primaryKey, serial, smallint, text, timestamp, uniqueIndex } from 'drizzle-orm/pg-core';
import type { CampaignTexts, GoldenQuestion, Recommendation } from '../../../shared/campaigns.ts';

const bytea = customType<{ data: Buffer; driverData: Buffer }>({ dataType: () => 'bytea' });

/**
 * A promotion. Ops edit it while `draft`; `live` accepts codes inside [startsAt, endsAt); `paused` refuses them
 * with a distinct reply; `ended` is final (the deck seed is revealed then).
 */
export const campaigns = pgTable('campaigns', {
  id: serial('id').primaryKey(),
  name: text('name').notNull(),
  status: text('status', { enum: ['draft', 'live', 'paused', 'ended'] }).notNull().default('draft'),
  startsAt: timestamp('starts_at', { withTimezone: true }).notNull(),
  endsAt: timestamp('ends_at', { withTimezone: true }).notNull(),
  /** Products / SKUs the codes are printed in. */
  skus: jsonb('skus').$type<string[]>().notNull().default([]),
  /** Overrides of the consumer-facing reply texts (Simplified Chinese), by key. */
  texts: jsonb('texts').$type<CampaignTexts>().notNull().default({}),
  /** Ordered golden questions. */
  questions: jsonb('questions').$type<GoldenQuestion[]>().notNull().default([]),
  /** Answer at least this many golden questions (any campaign's answers count) to unlock the draw. */
  unlockMin: integer('unlock_min').notNull().default(2),
  /** Ask questions again even when the profile already has an answer. */
  reaskAnswered: boolean('reask_answered').notNull().default(false),
  /** Per-user limits; null = no limit. */
  redemptionsPerDay: integer('redemptions_per_day'),
  drawsPerCampaign: integer('draws_per_campaign'),
  /** dynamic: prize drawn at redemption from weights and stock; deck: prizes pre-assigned to codes at generation. */
  prizeMode: text('prize_mode', { enum: ['dynamic', 'deck'] }).notNull().default('dynamic'),
  /** Consolation points for a losing draw (0 = none). */
  lossPoints: integer('loss_points').notNull().default(0),
  /** Product recommended after a losing draw. */
  recommendation: jsonb('recommendation').$type<Recommendation | null>(),
  /** Minutes of silence after which a question dialog ends (the code stays redeemed; "抽奖" resumes). */
  dialogIdleMinutes: integer('dialog_idle_minutes').notNull().default(30),
  /** Hours a cash winner has to confirm the WeChat Pay transfer before the bill is cancelled. */
  cashConfirmHours: integer('cash_confirm_hours').notNull().default(24),
  /** What happens to a cash prize whose transfer expired unconfirmed: the user may claim again, or it is forfeited. */
  unclaimedCash: text('unclaimed_cash', { enum: ['reclaim', 'forfeit'] }).notNull().default('reclaim'),
  codeLength: integer('code_length').notNull().default(12),
  /** Deck mode commit–reveal: sha256(seed) published at go-live, the seed revealed at end. */
  deckSeedHash: text('deck_seed_hash'),
  deckSeed: text('deck_seed'),
  deckSeedRevealedAt: timestamp('deck_seed_revealed_at', { withTimezone: true }),
  /** The rules text users can read (prizes, quantities, odds), generated at publish. */
  rulesText: text('rules_text'),
  publishedAt: timestamp('published_at', { withTimezone: true }),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
}, (t) => [check('campaigns_window', sql`${t.endsAt} > ${t.startsAt}`), check('campaigns_unlock_min', sql`${t.unlockMin} >= 0`)]);

/** The prize table. Probability of a prize = weight / Σ weights of the campaign; out of stock → "thanks". */
export const campaignPrizes = pgTable('campaign_prizes', {
  id: serial('id').primaryKey(),
  campaignId: integer('campaign_id').notNull().references(() => campaigns.id),
  name: text('name').notNull(),
  kind: text('kind', { enum: ['points', 'coupon', 'topup', 'cash', 'physical', 'thanks'] }).notNull(),
  /** points: points; coupon/topup/cash/physical: value in fen (market value for goods). */
  value: integer('value').notNull().default(0),
  /** Coupon details: { title, validDays, storeIds? }. */
  coupon: jsonb('coupon').$type<{ title: string; validDays: number; storeIds?: string[] } | null>(),
  weight: integer('weight').notNull().default(0),
  /** null = unlimited. In deck mode this is the number of codes that carry the prize. */
  totalStock: integer('total_stock'),
  dailyStock: integer('daily_stock'),
  position: integer('position').notNull().default(0),
}, (t) => [index('campaign_prizes_campaign_idx').on(t.campaignId), check('campaign_prizes_weight', sql`${t.weight} >= 0`)]);

/**
 * Stock of a limited prize, split into shards so concurrent draws do not queue on one hot row. A draw takes one unit
 * from one shard by conditional update; the daily cap is split the same way and kept in the same row, so total and
 * daily stock are taken atomically together.
 */
export const prizeStockShards = pgTable('prize_stock_shards', {
  prizeId: integer('prize_id').notNull(),
  shard: smallint('shard').notNull(),
  remaining: integer('remaining').notNull(),
  /** This shard's share of the daily cap (null = no daily cap). */
  dailyShare: integer('daily_share'),
  /** The day `issuedToday` counts (campaign-local date, Asia/Shanghai). */
  day: date('day', { mode: 'string' }),
  issuedToday: integer('issued_today').notNull().default(0),
}, (t) => [primaryKey({ columns: [t.prizeId, t.shard] }), check('prize_stock_shards_remaining', sql`${t.remaining} >= 0`)]);

/** A print run of codes. Generated batches can be re-exported (codes are re-derived from the batch nonce). */
export const codeBatches = pgTable('code_batches', {
  id: serial('id').primaryKey(),
  campaignId: integer('campaign_id').notNull().references(() => campaigns.id),
  name: text('name').notNull(),
  source: text('source', { enum: ['generated', 'imported'] }).notNull(),
  sku: text('sku'),
  count: integer('count').notNull().default(0),
  status: text('status', { enum: ['loading', 'active', 'voided'] }).notNull().default('loading'),
  /** Generated batches: random nonce from which, with the server's CODE_KEY, the codes are re-derived for export. */
  nonce: bytea('nonce'),
  codeLength: integer('code_length').notNull(),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  voidedAt: timestamp('voided_at', { withTimezone: true }),
  createdBy: text('created_by'),
});

/**
 * One row per printed code, keyed by HMAC(CODE_KEY, code) truncated to 16 bytes: the table holds no usable code.
 * Narrow on purpose (bulk-loaded by the ten million); no foreign keys.
 */
export const codes = pgTable('codes', {
  key: bytea('key').primaryKey(),
  batchId: integer('batch_id').notNull(),
  /** Position in the batch (print order); the deck is laid out by it. */
  seq: integer('seq').notNull(),
  /** Deck mode: the prize this code carries (null = thanks). */
  prizeId: integer('prize_id'),
  redeemedBy: text('redeemed_by'),
  redeemedAt: timestamp('redeemed_at', { withTimezone: true }),
});

/** A redeemed code: the consumer's entitlement to one draw once the golden questions unlock it. */
export const redemptions = pgTable('redemptions', {
  id: bigserial('id', { mode: 'number' }).primaryKey(),
  campaignId: integer('campaign_id').notNull(),
  batchId: integer('batch_id').notNull(),
  codeKey: bytea('code_key').notNull(),
  openid: text('openid').notNull(),
  /** redeemed (questions pending / draw claimable) → drawn */
  status: text('status', { enum: ['redeemed', 'drawn'] }).notNull().default('redeemed'),
  /** Deck mode: the prize the code carries, revealed at the draw. */
  deckPrizeId: integer('deck_prize_id'),
  redeemedAt: timestamp('redeemed_at', { withTimezone: true }).notNull(),
  drawnAt: timestamp('drawn_at', { withTimezone: true }),
  /** Fraud decision (issue 4). */
  risk: jsonb('risk').$type<{ decision: string; score: number; reasons: string[] } | null>(),
}, (t) => [
  uniqueIndex('redemptions_code_key_uq').on(t.codeKey),
  index('redemptions_campaign_idx').on(t.campaignId, t.redeemedAt),
  index('redemptions_openid_idx').on(t.openid),
]);

/** Every draw, for audit: what was eligible, what the RNG picked, what was issued. Keyed by the redemption. */
export const draws = pgTable('draws', {
  id: bigserial('id', { mode: 'number' }).primaryKey(),
  redemptionId: bigint('redemption_id', { mode: 'number' }).notNull(),
  campaignId: integer('campaign_id').notNull(),
  openid: text('openid').notNull(),
  mode: text('mode', { enum: ['dynamic', 'deck'] }).notNull(),
  /** [[prizeId, weight], …] at draw time. */
  eligible: jsonb('eligible').$type<Array<[number, number]>>().notNull(),
  /** The uniform random number in [0, Σweights) (dynamic mode). */
  roll: bigint('roll', { mode: 'number' }),
  /** What the draw picked (null = thanks). */
  drawnPrizeId: integer('drawn_prize_id'),
  /** What was issued (null = thanks: a loss, or the picked prize was out of stock). */
  prizeId: integer('prize_id'),
  outcome: text('outcome', { enum: ['won', 'lost', 'out_of_stock'] }).notNull(),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull(),
}, (t) => [
  uniqueIndex('draws_redemption_uq').on(t.redemptionId),
  index('draws_campaign_idx').on(t.campaignId, t.prizeId),
]);

/** Per-user counters that enforce the campaign's per-user limits atomically. */
export const campaignUserCounters = pgTable('campaign_user_counters', {
  campaignId: integer('campaign_id').notNull(),
  openid: text('openid').notNull(),
  /** Campaign-local date (Asia/Shanghai) `dayCount` counts. */
  day: date('day', { mode: 'string' }).notNull(),
  dayCount: integer('day_count').notNull().default(0),
  total: integer('total').notNull().default(0),
  /** The campaign's limits when last counted (carried in the row so one upsert can check them). */
  dayLimit: integer('day_limit'),
  totalLimit: integer('total_limit'),
}, (t) => [primaryKey({ columns: [t.campaignId, t.openid] })]);

/** Golden-question answers on the user's profile, with source and time. One per question key per user. */
export const profileAnswers = pgTable('profile_answers', {
  openid: text('openid').notNull(),
  questionKey: text('question_key').notNull(),
  value: jsonb('value').notNull(),
  /** Human-readable answer (what ops see and exports print). */
  display: text('display').notNull(),
  campaignId: integer('campaign_id'),
  source: text('source').notNull().default('chat'),
  answeredAt: timestamp('answered_at', { withTimezone: true }).notNull(),
}, (t) => [primaryKey({ columns: [t.openid, t.questionKey] })]);

export type Campaign = typeof campaigns.$inferSelect;
export type CampaignPrize = typeof campaignPrizes.$inferSelect;
export type CodeBatch = typeof codeBatches.$inferSelect;
export type Redemption = typeof redemptions.$inferSelect;
export type Draw = typeof draws.$inferSelect;
