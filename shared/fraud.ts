/** DTOs of the anti-fraud ops API (review queue, blacklist, model versions). */
import { Type, type Static } from 'typebox';

export const FraudReasonSchema = Type.Object({ feature: Type.String(), value: Type.Number(), contribution: Type.Number() });

export const FraudReviewSchema = Type.Object({
  id: Type.Integer(),
  openid: Type.String(),
  campaignId: Type.Integer(),
  drawId: Type.String(),
  fulfilmentId: Type.Integer(),
  prize: Type.Union([Type.Object({ id: Type.Integer(), name: Type.String(), kind: Type.String() }), Type.Null()]),
  amount: Type.Union([Type.Integer(), Type.Null()]),
  fulfilmentState: Type.Union([Type.String(), Type.Null()]),
  status: Type.Union([Type.Literal('pending'), Type.Literal('approved'), Type.Literal('rejected')]),
  score: Type.Number(),
  reasons: Type.Array(FraudReasonSchema),
  features: Type.Record(Type.String(), Type.Unknown()),
  modelVersion: Type.Integer(),
  reviewer: Type.Union([Type.String(), Type.Null()]),
  note: Type.Union([Type.String(), Type.Null()]),
  blacklisted: Type.Boolean(),
  createdAt: Type.String(),
  reviewedAt: Type.Union([Type.String(), Type.Null()]),
});

export const FraudReviewDetailSchema = Type.Intersect([FraudReviewSchema, Type.Object({ history: Type.Record(Type.String(), Type.Unknown()) })]);

export const ReviewListQuerySchema = Type.Object({
  status: Type.Optional(Type.Union([Type.Literal('pending'), Type.Literal('approved'), Type.Literal('rejected')])),
  beforeId: Type.Optional(Type.Integer({ minimum: 1 })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 200 })),
});

export const ApproveBodySchema = Type.Object({ note: Type.Optional(Type.String({ maxLength: 500 })) }, { additionalProperties: false });
export const RejectBodySchema = Type.Object({
  note: Type.Optional(Type.String({ maxLength: 500 })),
  /** Also blacklist the user's openid (and bound phone). */
  blacklist: Type.Optional(Type.Boolean()),
}, { additionalProperties: false });

export const BlacklistKindSchema = Type.Union([Type.Literal('openid'), Type.Literal('unionid'), Type.Literal('phone'), Type.Literal('ip'), Type.Literal('device')]);

export const BlacklistEntrySchema = Type.Object({
  id: Type.Integer(), kind: Type.String(), hint: Type.String(), note: Type.Union([Type.String(), Type.Null()]), createdBy: Type.String(), createdAt: Type.String(),
});

export const BlacklistAddBodySchema = Type.Object({
  kind: BlacklistKindSchema,
  value: Type.String({ minLength: 1, maxLength: 128 }),
  note: Type.Optional(Type.String({ maxLength: 200 })),
}, { additionalProperties: false });

export const BlacklistImportBodySchema = Type.Object({
  entries: Type.Array(BlacklistAddBodySchema, { minItems: 1, maxItems: 10000 }),
}, { additionalProperties: false });

export const BlacklistImportResultSchema = Type.Object({ received: Type.Integer(), added: Type.Integer(), alreadyListed: Type.Integer() });

export const BlacklistQuerySchema = Type.Object({
  kind: Type.Optional(BlacklistKindSchema),
  beforeId: Type.Optional(Type.Integer({ minimum: 1 })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500 })),
});

const Num = Type.Number();
/**
 * A partial edit of the model in force; the result is saved as the next version. Keys and ranges beyond this schema
 * are checked by the route (validateModelPatch in server/src/fraud/scoring.ts, the single source of the limits: a 400
 * naming the field): bias in [-50, 50], each weight in [-100, 100] and a known feature, each allowance a known one
 * within its own range (ALLOWANCE_LIMITS: counts that include the user's own action start at 1, printSpan ≥ 1, night
 * hours 0–23), hold thresholds only for prize kinds.
 */
export const FraudModelPatchSchema = Type.Object({
  bias: Type.Optional(Type.Number({ description: 'In [-50, 50]' })),
  cap: Type.Optional(Type.Number({ minimum: 1, maximum: 100 })),
  weights: Type.Optional(Type.Record(Type.String({ pattern: '^[a-zA-Z]+$' }), Num, { description: 'Feature → weight in [-100, 100]' })),
  allowances: Type.Optional(Type.Record(Type.String({ pattern: '^[a-zA-Z]+$' }), Type.Number({ minimum: 0 }), {
    description: 'Allowance → value within its range (ALLOWANCE_LIMITS in server/src/fraud/scoring.ts; docs/FRAUD.md)',
  })),
  thresholds: Type.Optional(Type.Object({
    hold: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 1 })),
    block: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 1 })),
    holdByKind: Type.Optional(Type.Record(Type.String({ pattern: '^(points|coupon|topup|cash|physical)$' }), Type.Number({ exclusiveMinimum: 0, maximum: 1 }))),
    lookback: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 1, description: 'Score at or above which earlier prizes are held (look-back)' })),
    lookbackH: Type.Optional(Type.Integer({ minimum: 0, maximum: 168, description: 'Hours of earlier prizes held when a user reaches a hold; 0 = off' })),
  }, { additionalProperties: false })),
  cooldown: Type.Optional(Type.Object({
    free: Type.Optional(Type.Integer({ minimum: 0, maximum: 100 })),
    stepsS: Type.Optional(Type.Array(Type.Integer({ minimum: 1, maximum: 604800 }), { minItems: 1, maxItems: 20 })),
    windowH: Type.Optional(Type.Integer({ minimum: 1, maximum: 720 })),
    blockS: Type.Optional(Type.Integer({ minimum: 0, maximum: 2592000 })),
  }, { additionalProperties: false })),
  note: Type.Optional(Type.String({ maxLength: 500 })),
}, { additionalProperties: false, minProperties: 1 });

export const FraudModelVersionSchema = Type.Object({
  version: Type.Integer(), model: Type.Unknown(), note: Type.Union([Type.String(), Type.Null()]), createdBy: Type.String(), createdAt: Type.Union([Type.String(), Type.Null()]),
});

export type FraudReview = Static<typeof FraudReviewSchema>;
export type BlacklistEntry = Static<typeof BlacklistEntrySchema>;
export type FraudModelPatch = Static<typeof FraudModelPatchSchema>;
