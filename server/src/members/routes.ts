/**
 * /api/mp members routes (register inside the /api/mp scope, after mpAuthPlugin): login and refresh are public,
 * everything else acts on request.member.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { ErrorResponseSchema } from '../../../shared/ops.ts';
import {
  BindPhoneBodySchema, BindPhoneResponseSchema, CheckInResponseSchema, MemberCentreSchema, MemberMeSchema, MpLoginBodySchema, MpLoginResponseSchema,
  MpRefreshBodySchema, MpSessionSchema, PointsHistoryQuerySchema, PointsHistorySchema,
  AcceptInviteBodySchema, ConsentBodySchema, ConsentSchema, DeleteAccountBodySchema, InviteViewSchema, ProfileUpdateBodySchema, ProfileViewSchema,
} from '../../../shared/members.ts';
import { Type } from 'typebox';
import type { Profile } from './profile.ts';
import type { Invites } from './invites.ts';
import type { MembersService } from './service.ts';
import type { MemberPoints } from './points.ts';
import type { IssuedSession } from './sessions.ts';

const sessionView = (s: IssuedSession) => ({
  token: s.token, expiresAt: s.expiresAt.toISOString(), refreshToken: s.refreshToken, refreshExpiresAt: s.refreshExpiresAt.toISOString(),
});

const errors = { 400: ErrorResponseSchema, 401: ErrorResponseSchema, 403: ErrorResponseSchema, 404: ErrorResponseSchema, 409: ErrorResponseSchema, 422: ErrorResponseSchema, 502: ErrorResponseSchema };

const security = [{ bearerAuth: [] }];

export const memberMpRoutes: FastifyPluginAsyncTypebox<{ members: MembersService; points: MemberPoints; profile: Profile; invites: Invites }> = async (app, { members, points, profile, invites }) => {
  const me = (memberId: number) => members.byId(memberId);

  app.post('/login', {
    config: { mpPublic: true },
    schema: { tags: ['mini program'], summary: 'wx.login code → session (one person, one member)', body: MpLoginBodySchema, response: { 200: MpLoginResponseSchema, ...errors } },
  }, async (req) => {
    const r = await members.login(req.body.code, { inviteCode: req.body.inviteCode });
    return { ...sessionView(r), member: r.member };
  });

  app.post('/session/refresh', {
    config: { mpPublic: true },
    schema: { tags: ['mini program'], summary: 'Swap a (single-use) refresh token for a new session', body: MpRefreshBodySchema, response: { 200: MpSessionSchema, ...errors } },
  }, async (req) => sessionView(await members.refresh(req.body.refreshToken)));

  app.get('/me', {
    schema: { tags: ['mini program'], summary: 'Who I am', security: [{ bearerAuth: [] }], response: { 200: MemberMeSchema, ...errors } },
  }, async (req) => members.me(req.member.memberId));

  app.post('/me/phone', {
    schema: { tags: ['mini program'], summary: 'Bind my phone from the phone-number button code (getuserphonenumber)', security: [{ bearerAuth: [] }], body: BindPhoneBodySchema, response: { 200: BindPhoneResponseSchema, ...errors } },
  }, async (req) => members.bindPhone(req.member.memberId, req.member.mpOpenid, req.body.code));

  app.get('/me/centre', {
    schema: { tags: ['mini program'], summary: 'Member centre: tier, progress to the next tier, benefits, points, what expires next', security, response: { 200: MemberCentreSchema, ...errors } },
  }, async (req) => points.centre(req.member.memberId));

  app.get('/me/points', {
    schema: { tags: ['mini program'], summary: 'My points history (newest first; page with `before`)', security, querystring: PointsHistoryQuerySchema, response: { 200: PointsHistorySchema, ...errors } },
  }, async (req) => points.history(req.member.openid, req.query));

  app.post('/me/checkin', {
    schema: { tags: ['mini program'], summary: 'Daily check-in (once per China day)', security, response: { 200: CheckInResponseSchema, ...errors } },
  }, async (req) => points.checkIn(req.member.openid, req.member.memberId));

  app.get('/me/profile', {
    schema: { tags: ['mini program'], summary: 'My golden-question profile (shared with the chat) and the questions for the form', security, response: { 200: ProfileViewSchema, ...errors } },
  }, async (req) => profile.view(await me(req.member.memberId)));

  app.put('/me/profile', {
    schema: { tags: ['mini program'], summary: 'Answer profile questions (read exactly as the chat reads answers); all or nothing', security, body: ProfileUpdateBodySchema, response: { 200: ProfileViewSchema, ...errors } },
  }, async (req) => profile.update(await me(req.member.memberId), req.body.answers));

  app.put('/me/consent', {
    schema: { tags: ['mini program'], summary: 'Record my privacy consent (policy version, now)', security, body: ConsentBodySchema, response: { 200: ConsentSchema, ...errors } },
  }, async (req) => profile.consent(await me(req.member.memberId), req.body.version));

  app.get('/me/export', {
    schema: { tags: ['mini program'], summary: 'Export all my data (JSON, PIPL)', security, response: { 200: Type.Object({}, { additionalProperties: true }), ...errors } },
  }, async (req, reply) => {
    reply.header('content-disposition', 'attachment; filename="my-data.json"');
    return profile.exportAll(await me(req.member.memberId));
  });

  app.post('/me/delete', {
    schema: { tags: ['mini program'], summary: 'Delete my account: personal data erased, ledger kept anonymised; the session ends', security, body: DeleteAccountBodySchema, response: { 200: Type.Object({ deleted: Type.Literal(true) }), ...errors } },
  }, async (req) => {
    await profile.deleteAccount(await me(req.member.memberId));
    return { deleted: true as const };
  });

  app.get('/me/invite', {
    schema: { tags: ['mini program'], summary: 'My invite code, its mini-program page/scene and how many I invited', security, response: { 200: InviteViewSchema, ...errors } },
  }, async (req) => invites.view(await me(req.member.memberId)));

  app.get('/me/invite/qrcode', {
    schema: { tags: ['mini program'], summary: 'My invite as a mini-program code image (wxacode.getUnlimited, PNG)', security, produces: ['image/png'], response: { 200: Type.Unsafe<Buffer>({ type: 'string', format: 'binary', description: 'image/png' }), ...errors } },
  }, async (req, reply) => {
    const img = await invites.image(await me(req.member.memberId));
    return reply.header('content-type', img.contentType || 'image/png').header('cache-control', 'private, max-age=3600').send(img.image);
  });

  app.post('/me/invited-by', {
    schema: { tags: ['mini program'], summary: 'Accept an invite (before becoming a member; once; not my own)', security, body: AcceptInviteBodySchema, response: { 200: Type.Object({ inviterId: Type.Integer() }), ...errors } },
  }, async (req) => invites.accept(await me(req.member.memberId), req.body.inviteCode));
};
