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
