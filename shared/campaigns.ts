/** DTOs of on-pack campaigns: golden questions, prize table, texts, ops bodies. TypeBox → JSON Schema (ajv). */
import { Type, type Static, type TSchema } from 'typebox';

/** A range choice, e.g. spending per head: {label:'50–100元', min:50, max:100}; min inclusive, max exclusive. */
export const RangeOptionSchema = Type.Object({
  label: Type.String({ minLength: 1, maxLength: 32 }),
  min: Type.Optional(Type.Number()),
  max: Type.Optional(Type.Number()),
}, { additionalProperties: false });

/**
 * A golden question. Kinds:
 * - text: free text validated by length and an optional pattern (e.g. a name);
 * - choice: one of `options` (answer by number or text);
 * - region: province → city cascade over the shipped mainland list (two turns);
 * - number: a number within [min, max] (e.g. spending per head in 元);
 * - range: one of `ranges` by number or label, or a number that falls into one of them.
 */
export const GoldenQuestionSchema = Type.Object({
  /** Profile field: name, occupation, region, business_type, spending, or any [a-z_]. */
  key: Type.String({ pattern: '^[a-z][a-z0-9_]{0,31}$' }),
  kind: Type.Union([Type.Literal('text'), Type.Literal('choice'), Type.Literal('region'), Type.Literal('number'), Type.Literal('range')]),
  prompt: Type.String({ minLength: 1, maxLength: 200 }),
  required: Type.Optional(Type.Boolean()),
  options: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 32 }), { minItems: 2, maxItems: 20 })),
  ranges: Type.Optional(Type.Array(RangeOptionSchema, { minItems: 2, maxItems: 20 })),
  minLength: Type.Optional(Type.Integer({ minimum: 1, maximum: 100 })),
  maxLength: Type.Optional(Type.Integer({ minimum: 1, maximum: 100 })),
  /** JavaScript regular expression the trimmed answer must match (text). */
  pattern: Type.Optional(Type.String({ maxLength: 200 })),
  /** What to tell the user when the pattern does not match. */
  patternHint: Type.Optional(Type.String({ maxLength: 100 })),
  min: Type.Optional(Type.Number()),
  max: Type.Optional(Type.Number()),
  /** Ask even when the profile already has an answer for this key. */
  reask: Type.Optional(Type.Boolean()),
}, { additionalProperties: false });
export type GoldenQuestion = Static<typeof GoldenQuestionSchema>;

export const RecommendationSchema = Type.Object({
  title: Type.String({ minLength: 1, maxLength: 64 }),
  description: Type.Optional(Type.String({ maxLength: 200 })),
  url: Type.Optional(Type.String({ maxLength: 512 })),
  picUrl: Type.Optional(Type.String({ maxLength: 512 })),
}, { additionalProperties: false });
export type Recommendation = Static<typeof RecommendationSchema>;

/** Consumer-facing texts a campaign may override (keys of the defaults in server/src/campaigns/texts.ts). */
export const CampaignTextsSchema = Type.Record(Type.String({ pattern: '^[a-zA-Z]{1,32}$' }), Type.String({ minLength: 1, maxLength: 600 }));
export type CampaignTexts = Record<string, string>;

export const PrizeKindSchema = Type.Union([
  Type.Literal('points'), Type.Literal('coupon'), Type.Literal('topup'), Type.Literal('cash'), Type.Literal('physical'), Type.Literal('thanks'),
]);
export type PrizeKind = Static<typeof PrizeKindSchema>;

export const PrizeBodySchema = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 64 }),
  kind: PrizeKindSchema,
  /** points: number of points; coupon / topup / cash / physical: value in fen (market value for goods). */
  value: Type.Optional(Type.Integer({ minimum: 0 })),
  coupon: Type.Optional(Type.Object({
    title: Type.String({ minLength: 1, maxLength: 64 }),
    validDays: Type.Integer({ minimum: 1, maximum: 3650 }),
    storeIds: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { maxItems: 1000 })),
  }, { additionalProperties: false })),
  weight: Type.Integer({ minimum: 0, maximum: 1_000_000_000 }),
  totalStock: Type.Optional(Type.Union([Type.Integer({ minimum: 0 }), Type.Null()])),
  dailyStock: Type.Optional(Type.Union([Type.Integer({ minimum: 1 }), Type.Null()])),
}, { additionalProperties: false });
export type PrizeBody = Static<typeof PrizeBodySchema>;

export const CampaignBodySchema = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 64 }),
  startsAt: Type.String({ format: 'date-time' }),
  endsAt: Type.String({ format: 'date-time' }),
  skus: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { maxItems: 500 })),
  texts: Type.Optional(CampaignTextsSchema),
  questions: Type.Optional(Type.Array(GoldenQuestionSchema, { maxItems: 20 })),
  unlockMin: Type.Optional(Type.Integer({ minimum: 0, maximum: 20 })),
  reaskAnswered: Type.Optional(Type.Boolean()),
  redemptionsPerDay: Type.Optional(Type.Union([Type.Integer({ minimum: 1 }), Type.Null()])),
  drawsPerCampaign: Type.Optional(Type.Union([Type.Integer({ minimum: 1 }), Type.Null()])),
  prizeMode: Type.Optional(Type.Union([Type.Literal('dynamic'), Type.Literal('deck')])),
  lossPoints: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000 })),
  recommendation: Type.Optional(Type.Union([RecommendationSchema, Type.Null()])),
  dialogIdleMinutes: Type.Optional(Type.Integer({ minimum: 1, maximum: 7 * 24 * 60 })),
  cashConfirmHours: Type.Optional(Type.Integer({ minimum: 1, maximum: 24 * 30 })),
  unclaimedCash: Type.Optional(Type.Union([Type.Literal('reclaim'), Type.Literal('forfeit')])),
  codeLength: Type.Optional(Type.Integer({ minimum: 8, maximum: 20 })),
  prizes: Type.Optional(Type.Array(PrizeBodySchema, { maxItems: 50 })),
}, { additionalProperties: false });
export type CampaignBody = Static<typeof CampaignBodySchema>;
export const CampaignPatchSchema = Type.Partial(CampaignBodySchema, { additionalProperties: false, minProperties: 1 });
export type CampaignPatch = Static<typeof CampaignPatchSchema>;

// ---- Ops responses (campaign admin) ----

const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);

export const CampaignStatusSchema = Type.Union([Type.Literal('draft'), Type.Literal('live'), Type.Literal('paused'), Type.Literal('ended')]);
export type CampaignStatus = Static<typeof CampaignStatusSchema>;

export const PrizeSchema = Type.Object({
  id: Type.Integer(),
  name: Type.String(),
  kind: PrizeKindSchema,
  value: Type.Integer(),
  coupon: Nullable(Type.Object({ title: Type.String(), validDays: Type.Integer(), storeIds: Type.Optional(Type.Array(Type.String())) })),
  weight: Type.Integer(),
  totalStock: Nullable(Type.Integer()),
  dailyStock: Nullable(Type.Integer()),
  position: Type.Integer(),
});
export type PrizeDto = Static<typeof PrizeSchema>;

/** A campaign as ops see it. `deckSeed` is null until the campaign has ended (commit–reveal); the hash is public. */
export const CampaignSchema = Type.Object({
  id: Type.Integer(),
  name: Type.String(),
  status: CampaignStatusSchema,
  startsAt: Type.String(),
  endsAt: Type.String(),
  skus: Type.Array(Type.String()),
  texts: CampaignTextsSchema,
  questions: Type.Array(GoldenQuestionSchema),
  unlockMin: Type.Integer(),
  reaskAnswered: Type.Boolean(),
  redemptionsPerDay: Nullable(Type.Integer()),
  drawsPerCampaign: Nullable(Type.Integer()),
  prizeMode: Type.Union([Type.Literal('dynamic'), Type.Literal('deck')]),
  lossPoints: Type.Integer(),
  recommendation: Nullable(RecommendationSchema),
  dialogIdleMinutes: Type.Integer(),
  cashConfirmHours: Type.Integer(),
  unclaimedCash: Type.Union([Type.Literal('reclaim'), Type.Literal('forfeit')]),
  codeLength: Type.Integer(),
  deckSeedHash: Nullable(Type.String()),
  deckSeed: Nullable(Type.String()),
  deckSeedRevealedAt: Nullable(Type.String()),
  rulesText: Nullable(Type.String()),
  publishedAt: Nullable(Type.String()),
  createdAt: Type.String(),
  updatedAt: Type.String(),
  prizes: Type.Array(PrizeSchema),
});
export type CampaignDto = Static<typeof CampaignSchema>;

const StateCounts = Type.Record(Type.String(), Type.Integer());

/**
 * Live counters. `questionsCompleted` = draws: a draw is only possible once the golden questions unlocked it, so every
 * draw is a completed question round (redemptions still waiting are `pendingDraws` = redeemed − draws).
 */
export const CampaignCountersSchema = Type.Object({
  campaignId: Type.Integer(),
  status: CampaignStatusSchema,
  asOf: Type.String(),
  codes: Type.Object({ printed: Type.Integer(), voided: Type.Integer(), activeBatches: Type.Integer(), voidedBatches: Type.Integer() }),
  redeemed: Type.Integer(),
  questionsCompleted: Type.Integer(),
  pendingDraws: Type.Integer(),
  draws: Type.Integer(),
  wins: Type.Integer(),
  losses: Type.Integer(),
  prizes: Type.Array(Type.Object({
    prizeId: Type.Integer(),
    name: Type.String(),
    kind: PrizeKindSchema,
    won: Type.Integer(),
    /** null = unlimited. Dynamic: Σ shard remaining; deck: totalStock − won (still inside undrawn codes). */
    stockRemaining: Nullable(Type.Integer()),
    dailyCap: Nullable(Type.Integer()),
    issuedToday: Type.Integer(),
    fulfilment: StateCounts,
  })),
  byKind: Type.Array(Type.Object({ kind: PrizeKindSchema, won: Type.Integer(), fulfilment: StateCounts })),
  /** Consolation points of losing draws, by fulfilment state. */
  consolation: StateCounts,
});
export type CampaignCounters = Static<typeof CampaignCountersSchema>;

export const CampaignRulesSchema = Type.Object({
  campaignId: Type.Integer(),
  name: Type.String(),
  status: CampaignStatusSchema,
  /** True when the campaign is a draft: the text is generated now and not yet what users see. */
  preview: Type.Boolean(),
  rulesText: Type.String(),
  publishedAt: Nullable(Type.String()),
  deckSeedHash: Nullable(Type.String()),
  deckSeed: Nullable(Type.String()),
});
export type CampaignRules = Static<typeof CampaignRulesSchema>;
