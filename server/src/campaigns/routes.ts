/**
 * Ops API of campaigns (under /api/ops) and the public rules page (under /api/public).
 * Roles: admin and operator write; analyst and reviewer read; the redemptions export (openids) is for analysts
 * (and admins) only. Every write, and every export, is audited.
 */
import { PassThrough } from 'node:stream';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { CampaignBodySchema, CampaignCountersSchema, CampaignPatchSchema, CampaignRulesSchema, CampaignSchema } from '../../../shared/campaigns.ts';
import { ErrorResponseSchema } from '../../../shared/ops.ts';
import { requireLogin, requireRole } from '../ops/auth.ts';
import type { CampaignAdmin } from './admin.ts';

const security = [{ bearerAuth: [] }];
const errors = { 400: ErrorResponseSchema, 401: ErrorResponseSchema, 403: ErrorResponseSchema, 404: ErrorResponseSchema, 409: ErrorResponseSchema, 422: ErrorResponseSchema };
const IdParams = Type.Object({ id: Type.Integer({ minimum: 1, maximum: 2_147_483_647 }) });
const write = requireRole('operator');
const tags = ['campaigns'];

export const campaignRoutes: FastifyPluginAsyncTypebox<{ campaignAdmin: CampaignAdmin }> = async (app, { campaignAdmin: admin }) => {
  app.get('/campaigns', { schema: { tags, security, response: { 200: Type.Array(CampaignSchema), ...errors } }, preHandler: requireLogin },
    async () => admin.list());

  app.post('/campaigns', {
    schema: { tags, security, summary: 'Create a draft campaign with its prize table (questions default to the golden questions when omitted)', body: CampaignBodySchema, response: { 201: CampaignSchema, ...errors } },
    preHandler: write, config: { audit: { action: 'campaign.create', targetType: 'campaign' } },
  }, async (req, reply) => reply.status(201).send(await admin.create(req.body, req.actor)));

  app.get('/campaigns/:id', { schema: { tags, security, params: IdParams, response: { 200: CampaignSchema, ...errors } }, preHandler: requireLogin },
    async (req) => admin.get(req.params.id));

  app.patch('/campaigns/:id', {
    schema: { tags, security, summary: 'Edit a campaign: anything while draft; once published only texts, recommendation, relaxed limits, a later end and a few others', params: IdParams, body: CampaignPatchSchema, response: { 200: CampaignSchema, ...errors } },
    preHandler: write, config: { audit: { action: 'campaign.update', targetType: 'campaign' } },
  }, async (req) => admin.update(req.params.id, req.body, req.actor));

  const transitions = {
    publish: 'Publish a draft: legal checks (422 with details.problems), rules text, stock shards',
    pause: 'Pause a live campaign (codes are refused with a distinct reply)',
    resume: 'Resume a paused campaign',
    end: 'End a live or paused campaign for good (reveals the deck seed)',
  } as const;
  for (const [action, summary] of Object.entries(transitions) as Array<[keyof typeof transitions, string]>) {
    app.post(`/campaigns/:id/${action}`, {
      schema: { tags, security, summary, params: IdParams, response: { 200: CampaignSchema, ...errors } },
      preHandler: write, config: { audit: { action: `campaign.${action}`, targetType: 'campaign' } },
    }, async (req) => admin[action](req.params.id, req.actor));
  }

  app.get('/campaigns/:id/counters', { schema: { tags, security, params: IdParams, response: { 200: CampaignCountersSchema, ...errors } }, preHandler: requireLogin },
    async (req) => admin.counters(req.params.id));

  app.get('/campaigns/:id/rules', {
    schema: { tags, security, summary: 'The consumer-facing rules text (a preview for drafts)', params: IdParams, response: { 200: CampaignRulesSchema, ...errors } },
    preHandler: requireLogin,
  }, async (req) => admin.rules(req.params.id));

  app.get('/campaigns/:id/redemptions.csv', {
    schema: { tags, security, summary: 'Stream the redemptions as CSV (UTF-8 with BOM)', params: IdParams, produces: ['text/csv'], response: { 200: Type.Unknown({ description: 'text/csv stream' }), ...errors } },
    preHandler: requireRole('analyst'), config: { audit: { action: 'campaign.export_redemptions', targetType: 'campaign' } },
  }, async (req, reply) => {
    const { id } = req.params;
    await admin.get(id); // 404 before any byte is sent
    const out = new PassThrough();
    admin.redemptionsCsv(id, out).catch((err: unknown) => {
      req.log.warn({ err, campaignId: id }, 'redemptions export aborted');
      out.destroy(err as Error);
    });
    return reply
      .type('text/csv; charset=utf-8')
      .header('content-disposition', `attachment; filename="campaign-${id}-redemptions.csv"`)
      .header('cache-control', 'no-store')
      .send(out);
  });
};

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);

/** The rules page the chat links to: no login, published campaigns only. HTML for browsers, plain text otherwise. */
export const campaignPublicRoutes: FastifyPluginAsyncTypebox<{ campaignAdmin: CampaignAdmin }> = async (app, { campaignAdmin: admin }) => {
  app.get('/campaigns/:id/rules', {
    schema: { tags, summary: 'Public rules page of a published campaign (text/html for browsers, text/plain otherwise)', params: IdParams, produces: ['text/html', 'text/plain'], response: { 200: Type.String(), 404: ErrorResponseSchema } },
  }, async (req, reply) => {
    const rules = await admin.publicRules(req.params.id);
    reply.header('cache-control', 'public, max-age=60');
    if (/text\/html/.test(req.headers.accept ?? '')) {
      const title = escapeHtml(`${rules.name} · 活动规则`);
      return reply.type('text/html; charset=utf-8').send(
        `<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>${title}</title></head>`
        + `<body style="margin:16px;font:15px/1.7 -apple-system,'PingFang SC','Microsoft YaHei',sans-serif;color:#222">`
        + `<div style="white-space:pre-wrap;word-break:break-all">${escapeHtml(rules.rulesText)}</div></body></html>`,
      );
    }
    return reply.type('text/plain; charset=utf-8').send(rules.rulesText);
  });
};
