/** DTOs of the members API (/api/mp: login, session, phone, member centre, points, profile, invites), shared by server and mini program. */
import { Type, type Static } from 'typebox';

export const MpLoginBodySchema = Type.Object({
  /** The code from wx.login (single-use, 5 minutes). */
  code: Type.String({ minLength: 1, maxLength: 128 }),
  /** An invite code when the mini program was opened from an invite (scene of the mini-program code). */
  inviteCode: Type.Optional(Type.String({ minLength: 4, maxLength: 16, pattern: '^[A-Za-z0-9]+$' })),
}, { additionalProperties: false });

export const MpRefreshBodySchema = Type.Object({ refreshToken: Type.String({ minLength: 1, maxLength: 128 }) }, { additionalProperties: false });

export const TierNameSchema = Type.Union([Type.Literal('normal'), Type.Literal('silver'), Type.Literal('gold'), Type.Literal('diamond')]);

/** Who I am: the member as the mini program shows them (phone masked, never in the clear). */
export const MemberMeSchema = Type.Object({
  memberId: Type.Integer(),
  /** Followed the official account and bound a phone. */
  isMember: Type.Boolean(),
  memberSince: Type.Union([Type.String(), Type.Null()]),
  following: Type.Boolean(),
  phoneMasked: Type.Union([Type.String(), Type.Null()]),
  tier: TierNameSchema,
  points: Type.Integer(),
  inviteCode: Type.Union([Type.String(), Type.Null()]),
  consent: Type.Union([Type.Object({ version: Type.String(), at: Type.String() }), Type.Null()]),
});

export const MpSessionSchema = Type.Object({
  /** For `Authorization: Bearer …`. */
  token: Type.String(),
  expiresAt: Type.String(),
  /** Single-use: POST /api/mp/session/refresh swaps it for a new pair. */
  refreshToken: Type.String(),
  refreshExpiresAt: Type.String(),
});

export const MpLoginResponseSchema = Type.Object({ ...MpSessionSchema.properties, member: MemberMeSchema });

export const BindPhoneBodySchema = Type.Object({
  /** e.detail.code of the phone-number button (open-type="getPhoneNumber"); single-use, 5 minutes. */
  code: Type.String({ minLength: 1, maxLength: 128 }),
}, { additionalProperties: false });

export const BindPhoneResponseSchema = Type.Object({
  phoneMasked: Type.String(),
  /** This binding made the user a member (they also follow the official account). */
  becameMember: Type.Boolean(),
  member: MemberMeSchema,
});

export type MpLoginBody = Static<typeof MpLoginBodySchema>;
export type MpRefreshBody = Static<typeof MpRefreshBodySchema>;
export type TierName = Static<typeof TierNameSchema>;
export type MemberMe = Static<typeof MemberMeSchema>;
export type MpSession = Static<typeof MpSessionSchema>;
export type MpLoginResponse = Static<typeof MpLoginResponseSchema>;
export type BindPhoneBody = Static<typeof BindPhoneBodySchema>;
export type BindPhoneResponse = Static<typeof BindPhoneResponseSchema>;

// ---- member centre, points ----

export const TierSchema = Type.Object({
  key: TierNameSchema,
  name: Type.String(),
  minPoints: Type.Integer(),
  /** ×1.5 is 150. */
  multiplierPct: Type.Integer(),
  monthlyCoupon: Type.Union([Type.Object({ title: Type.String(), valueFen: Type.Integer(), validDays: Type.Integer() }), Type.Null()]),
  reservedItems: Type.Boolean(),
});

export const MemberCentreSchema = Type.Object({
  member: MemberMeSchema,
  tier: TierSchema,
  next: Type.Union([TierSchema, Type.Null()]),
  /** Points earned within the tier window (what tiers are decided on). */
  rollingPoints: Type.Integer(),
  /** Still to earn for the next tier; 0 at the top. */
  toNext: Type.Integer(),
  /** Points that expire next, and when (China date), within 30 days. */
  expiring: Type.Object({ points: Type.Integer(), on: Type.Union([Type.String(), Type.Null()]) }),
  checkedInToday: Type.Boolean(),
});

export const PointsEntrySchema = Type.Object({
  id: Type.Integer(),
  delta: Type.Integer(),
  balanceAfter: Type.Integer(),
  /** e.g. earn:daily_checkin, draw, expire, mall:order */
  reason: Type.String(),
  /** What the member sees, in Chinese. */
  title: Type.String(),
  createdAt: Type.String(),
});

export const PointsHistoryQuerySchema = Type.Object({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20 })),
  /** Entries older than this id (paging). */
  before: Type.Optional(Type.Integer({ minimum: 1 })),
}, { additionalProperties: false });

export const PointsHistorySchema = Type.Object({
  balance: Type.Integer(),
  entries: Type.Array(PointsEntrySchema),
  /** Pass as `before` for the next page; null at the end. */
  nextBefore: Type.Union([Type.Integer(), Type.Null()]),
});

export const CheckInResponseSchema = Type.Object({
  day: Type.String(),
  /** false when already checked in today (nothing changed). */
  firstToday: Type.Boolean(),
  points: Type.Integer(),
  balance: Type.Integer(),
});

export type Tier = Static<typeof TierSchema>;
export type MemberCentre = Static<typeof MemberCentreSchema>;
export type PointsEntry = Static<typeof PointsEntrySchema>;
export type PointsHistoryQuery = Static<typeof PointsHistoryQuerySchema>;
export type PointsHistory = Static<typeof PointsHistorySchema>;
export type CheckInResponse = Static<typeof CheckInResponseSchema>;

// ---- profile, consent, privacy ----

export const ProfileAnswerSchema = Type.Object({
  key: Type.String(),
  value: Type.Unknown(),
  display: Type.String(),
  /** chat | mini_program */
  source: Type.String(),
  answeredAt: Type.String(),
});

export const ProfileViewSchema = Type.Object({
  /** The golden questions (shared/campaigns.ts GoldenQuestion), for the form. */
  questions: Type.Array(Type.Unknown()),
  answers: Type.Array(ProfileAnswerSchema),
  /** Every profile question has an answer. */
  complete: Type.Boolean(),
});

/** Answers as the member typed or picked them: an option's text (or number), a number, "广东深圳". */
export const ProfileUpdateBodySchema = Type.Object({
  answers: Type.Record(Type.String({ pattern: '^[a-z][a-z0-9_]{0,31}$' }), Type.String({ minLength: 1, maxLength: 100 })),
}, { additionalProperties: false });

export const ConsentBodySchema = Type.Object({
  /** The privacy policy version the member agreed to, e.g. 2026-11. */
  version: Type.String({ minLength: 1, maxLength: 32, pattern: '^[A-Za-z0-9._-]+$' }),
}, { additionalProperties: false });

export const ConsentSchema = Type.Object({ version: Type.String(), at: Type.String() });

export const DeleteAccountBodySchema = Type.Object({
  /** Must be true: deleting cannot be undone. */
  confirm: Type.Literal(true),
}, { additionalProperties: false });

// ---- invites ----

export const InviteViewSchema = Type.Object({
  code: Type.String(),
  /** The mini-program page the code opens, and its scene (read with decodeURIComponent(query.scene)). */
  page: Type.String(),
  scene: Type.String(),
  /** GET this (with the session) for the mini-program code image (PNG). */
  imagePath: Type.String(),
  invited: Type.Integer(),
  rewarded: Type.Integer(),
});

export const AcceptInviteBodySchema = Type.Object({ inviteCode: Type.String({ minLength: 4, maxLength: 16, pattern: '^[A-Za-z0-9]+$' }) }, { additionalProperties: false });

export type ProfileView = Static<typeof ProfileViewSchema>;
export type ProfileUpdateBody = Static<typeof ProfileUpdateBodySchema>;
export type ConsentBody = Static<typeof ConsentBodySchema>;
export type InviteView = Static<typeof InviteViewSchema>;
