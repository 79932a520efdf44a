/**
 * The mini program's redemption (register inside the /api/mp scope, after mpAuthPlugin): HTTP only, the rules are in
 * mp-redeem.ts. The member is `request.member.openid` — the key of their chat redemptions and points too.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { MpAnswersBodySchema, MpLiveCampaignsSchema, MpRedeemBodySchema, MpRedemptionListSchema, MpRedemptionSchema } from '../../../shared/mp-redeem.ts';
import { ErrorResponseSchema } from '../../../shared/ops.ts';
import type { MpRedeemService } from './mp-redeem.ts';

const security = [{ bearerAuth: [] }];
const tags = ['mini program'];
const errors = { 400: ErrorResponseSchema, 401: ErrorResponseSchema, 403: ErrorResponseSchema, 404: ErrorResponseSchema, 409: ErrorResponseSchema, 422: ErrorResponseSchema };
const IdParams = Type.Object({ id: Type.String({ pattern: '^[1-9][0-9]{0,17}$' }) });

export const mpRedeemRoutes: FastifyPluginAsyncTypebox<{ mpRedeem: MpRedeemService }> = async (app, { mpRedeem }) => {
  app.get('/campaigns', {
    schema: { tags, security, summary: 'Campaigns live now (the home page banner)', response: { 200: MpLiveCampaignsSchema, ...errors } },
  }, async () => mpRedeem.live());

  app.post('/redemptions', {
    schema: {
      tags, security, summary: 'Redeem an on-pack code (typed or scanned): the golden questions still to answer, as a form',
      description: 'Refusals carry details.reason: not_code, typo (422), unknown (404), voided, taken, not_started, paused, ended, daily_limit, campaign_limit (409). Submitting one\'s own code again returns that redemption.',
      body: MpRedeemBodySchema, response: { 200: MpRedemptionSchema, ...errors },
    },
  }, async (req) => {
    // What the mini program's api.ts sends about the phone (fraud: accounts sharing a device on one IP).
    const device = typeof req.headers['x-mp-device'] === 'string' ? req.headers['x-mp-device'].slice(0, 128) : undefined;
    return mpRedeem.redeem(req.member.openid, req.body.code, { ip: req.ip, unionid: req.member.unionid, ...(device ? { device } : {}) });
  });

  app.get('/redemptions', {
    schema: { tags, security, summary: 'My redemptions, newest first', querystring: Type.Object({ limit: Type.Integer({ minimum: 1, maximum: 100, default: 50 }) }), response: { 200: MpRedemptionListSchema, ...errors } },
  }, async (req) => mpRedeem.list(req.member.openid, req.query.limit));

  app.get('/redemptions/:id', {
    schema: { tags, security, summary: 'One of my redemptions: questions left, or the draw\'s result', params: IdParams, response: { 200: MpRedemptionSchema, ...errors } },
  }, async (req) => mpRedeem.get(req.member.openid, req.params.id));

  app.post('/redemptions/:id/answers', {
    schema: {
      tags, security, summary: 'Answer golden questions (the form); one wrong answer saves nothing (422, details.fields)',
      params: IdParams, body: MpAnswersBodySchema, response: { 200: MpRedemptionSchema, ...errors },
    },
  }, async (req) => mpRedeem.answer(req.member.openid, req.params.id, req.body.answers));

  app.post('/redemptions/:id/draw', {
    schema: {
      tags, security, summary: 'Draw once the questions unlock it (409 locked before); drawing again returns the same result',
      params: IdParams, response: { 200: MpRedemptionSchema, ...errors },
    },
  }, async (req) => mpRedeem.draw(req.member.openid, req.params.id));
};
