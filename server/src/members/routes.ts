/**
 * /api/mp members routes (register inside the /api/mp scope, after mpAuthPlugin): login and refresh are public,
 * everything else acts on request.member.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { ErrorResponseSchema } from '../../../shared/ops.ts';
import {
  BindPhoneBodySchema, BindPhoneResponseSchema, CheckInResponseSchema, MemberCentreSchema, MemberMeSchema, MpLoginBodySchema, MpLoginResponseSchema,
  MpRefreshBodySchema, MpSessionSchema, PointsHistoryQuerySchema, PointsHistorySchema,
} from '../../../shared/members.ts';
import type { MembersService } from './service.ts';
import type { MemberPoints } from './points.ts';
import type { IssuedSession } from './sessions.ts';

const sessionView = (s: IssuedSession) => ({
  token: s.token, expiresAt: s.expiresAt.toISOString(), refreshToken: s.refreshToken, refreshExpiresAt: s.refreshExpiresAt.toISOString(),
});

const errors = { 400: ErrorResponseSchema, 401: ErrorResponseSchema, 403: ErrorResponseSchema, 404: ErrorResponseSchema, 409: ErrorResponseSchema, 422: ErrorResponseSchema, 502: ErrorResponseSchema };

const security = [{ bearerAuth: [] }];

export const memberMpRoutes: FastifyPluginAsyncTypebox<{ members: MembersService; points: MemberPoints }> = async (app, { members, points }) => {
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
};
