/**
 * DTOs of the mini program's on-pack redemption (/api/mp/redemptions…): a code typed or scanned, the golden questions
 * as a form, the draw. The same redemption, questions and draw as the chat flow, as structured JSON.
 */
import { Type, type Static, type TSchema } from 'typebox';

const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);

export const MpRedeemBodySchema = Type.Object({
  /** What the member typed or what wx.scanCode returned (the code itself or a URL carrying it). */
  code: Type.String({ minLength: 1, maxLength: 512 }),
  /** How the code was entered (kept for analysis only). */
  via: Type.Optional(Type.Union([Type.Literal('scan'), Type.Literal('typed')])),
}, { additionalProperties: false });
export type MpRedeemBody = Static<typeof MpRedeemBodySchema>;

export const MpRegionCitySchema = Type.Object({ code: Type.String(), name: Type.String() });
export const MpRegionProvinceSchema = Type.Object({ code: Type.String(), name: Type.String(), cities: Type.Array(MpRegionCitySchema) });
export type MpRegionProvince = Static<typeof MpRegionProvinceSchema>;

/** A golden question as a form field. `provinces` (region only) is the province → city cascade the answer must come from. */
export const MpQuestionSchema = Type.Object({
  key: Type.String(),
  kind: Type.Union([Type.Literal('text'), Type.Literal('choice'), Type.Literal('region'), Type.Literal('number'), Type.Literal('range')]),
  prompt: Type.String(),
  required: Type.Boolean(),
  /** choice: the options; range: the range labels. */
  options: Type.Optional(Type.Array(Type.String())),
  minLength: Type.Optional(Type.Integer()),
  maxLength: Type.Optional(Type.Integer()),
  pattern: Type.Optional(Type.String()),
  patternHint: Type.Optional(Type.String()),
  min: Type.Optional(Type.Number()),
  max: Type.Optional(Type.Number()),
  provinces: Type.Optional(Type.Array(MpRegionProvinceSchema)),
  /** The member's current answer (display text) when the question is asked again. */
  answered: Type.Optional(Type.String()),
});
export type MpQuestion = Static<typeof MpQuestionSchema>;

export const MpPrizeKindSchema = Type.Union([
  Type.Literal('points'), Type.Literal('coupon'), Type.Literal('topup'), Type.Literal('cash'), Type.Literal('physical'), Type.Literal('thanks'),
]);

/**
 * What happens after the draw: points credited now; a coupon in "my coupons"; a top-up to the bound phone; cash to be
 * confirmed in the mini program (a reminder follows); a physical prize shipped after contact; held for the anti-fraud
 * review (issued when approved); nothing.
 */
export const MpNextStepSchema = Type.Union([
  Type.Literal('points_credited'), Type.Literal('coupon_issued'), Type.Literal('topup_pending'), Type.Literal('cash_confirm'),
  Type.Literal('physical_contact'), Type.Literal('under_review'), Type.Literal('none'),
]);
export type MpNextStep = Static<typeof MpNextStepSchema>;

export const MpDrawResultSchema = Type.Object({
  drawId: Type.String(),
  outcome: Type.Union([Type.Literal('won'), Type.Literal('lost'), Type.Literal('out_of_stock')]),
  prize: Nullable(Type.Object({ id: Type.Integer(), name: Type.String(), kind: MpPrizeKindSchema, value: Type.Integer() })),
  /** Points credited by this draw (prize or consolation); 0 when none (or when read back later). */
  points: Type.Integer(),
  /** Points balance after the draw. */
  balance: Type.Integer(),
  next: MpNextStepSchema,
  /** The anti-fraud review of a held draw; null when it was not held. */
  review: Nullable(Type.Union([Type.Literal('pending'), Type.Literal('approved'), Type.Literal('rejected')])),
  /** What the member reads (Simplified Chinese, the campaign's own texts). */
  message: Type.String(),
  recommendation: Nullable(Type.Object({ title: Type.String(), description: Type.Optional(Type.String()), url: Type.Optional(Type.String()) })),
  drawnAt: Type.String(),
});
export type MpDrawResult = Static<typeof MpDrawResultSchema>;

export const MpRedemptionSchema = Type.Object({
  id: Type.String(),
  campaign: Type.Object({ id: Type.Integer(), name: Type.String() }),
  status: Type.Union([Type.Literal('redeemed'), Type.Literal('drawn')]),
  redeemedAt: Type.String(),
  /** The questions still to show, in order (empty once the draw is unlocked or done). */
  questions: Type.Array(MpQuestionSchema),
  /** Questions of this campaign the member has answered, and how many unlock the draw. */
  answeredCount: Type.Integer(),
  unlockMin: Type.Integer(),
  /** How many more answers the draw needs (0 = unlocked; required questions count too). */
  needed: Type.Integer(),
  unlocked: Type.Boolean(),
  /** The draw's result once drawn. */
  draw: Nullable(MpDrawResultSchema),
  /** What the member reads now (Simplified Chinese). */
  message: Type.String(),
});
export type MpRedemption = Static<typeof MpRedemptionSchema>;

/**
 * Form answers by question key. text: the text; choice: the option; range: the label (or an amount in 元); number: the
 * number; region: {provinceCode, cityCode} from the question's cascade. An empty string skips an optional question.
 */
export const MpAnswerValueSchema = Type.Union([
  Type.String({ maxLength: 200 }),
  Type.Number(),
  Type.Object({ provinceCode: Type.String({ pattern: '^\\d{6}$' }), cityCode: Type.String({ pattern: '^\\d{6}$' }) }, { additionalProperties: false }),
]);
export type MpAnswerValue = Static<typeof MpAnswerValueSchema>;

export const MpAnswersBodySchema = Type.Object({
  answers: Type.Record(Type.String({ pattern: '^[a-z][a-z0-9_]{0,31}$' }), MpAnswerValueSchema),
}, { additionalProperties: false });
export type MpAnswersBody = Static<typeof MpAnswersBodySchema>;

/** 422 details of a form with wrong answers: the reason per question key (nothing was saved). */
export interface MpAnswerErrors {
  reason: 'invalid_answers';
  fields: Record<string, string>;
}

/** Reasons in `details.reason` of a refused code or draw (the message says it in Chinese). */
export type MpRedeemRefusal =
  | 'not_code' | 'typo' | 'unknown' | 'voided' | 'taken' | 'not_started' | 'paused' | 'ended' | 'daily_limit' | 'campaign_limit'
  | 'locked' | 'invalid_answers' | 'already_drawn' | 'refused' | 'blocked';

export const MpRedemptionListSchema = Type.Array(Type.Object({
  id: Type.String(),
  campaign: Type.Object({ id: Type.Integer(), name: Type.String() }),
  status: Type.Union([Type.Literal('redeemed'), Type.Literal('drawn')]),
  redeemedAt: Type.String(),
  outcome: Nullable(Type.Union([Type.Literal('won'), Type.Literal('lost'), Type.Literal('out_of_stock')])),
  prizeName: Nullable(Type.String()),
}));
export type MpRedemptionList = Static<typeof MpRedemptionListSchema>;

/** Live campaigns for the home page's banner. */
export const MpLiveCampaignsSchema = Type.Array(Type.Object({
  id: Type.Integer(),
  name: Type.String(),
  endsAt: Type.String(),
  /** Prizes as the banner lists them (no odds, no stock). */
  prizes: Type.Array(Type.String()),
}));
export type MpLiveCampaigns = Static<typeof MpLiveCampaignsSchema>;
