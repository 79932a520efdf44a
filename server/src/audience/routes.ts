/**
 * HTTP doors of recommendations: the member's cards and clicks (inside /api/mp), ops items, rules, tags and
 * impression/click stats (inside /api/ops, writes audited).
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { ErrorResponseSchema } from '../../../shared/ops.ts';
import {
  MpRecommendationSchema, RecClickBodySchema, RecItemBodySchema, RecItemPatchSchema, RecItemSchema, RecRuleBodySchema, RecRulePatchSchema, RecRuleSchema, RecStatsSchema,
} from '../../../shared/mall.ts';
import { requireLogin, requireRole } from '../ops/auth.ts';
import type { AudienceService } from './service.ts';
import type { RecItem, RecRule } from './tables.ts';

const errors = { 400: ErrorResponseSchema, 401: ErrorResponseSchema, 403: ErrorResponseSchema, 404: ErrorResponseSchema, 409: ErrorResponseSchema, 422: ErrorResponseSchema };
const security = [{ bearerAuth: [] }];
const iso = (d: Date | null) => (d ? d.toISOString() : null);
const IdParams = Type.Object({ id: Type.Integer({ minimum: 1 }) });

const itemView = (i: RecItem) => ({
  id: i.id, key: i.key, kind: i.kind, title: i.title, description: i.description, imageUrl: i.imageUrl, link: i.link, city: i.city,
  startsAt: iso(i.startsAt), endsAt: iso(i.endsAt), active: i.active,
});
const ruleView = (r: RecRule) => ({ id: r.id, name: r.name, priority: r.priority, conditions: r.conditions, itemKeys: r.itemKeys, reason: r.reason, active: r.active, updatedAt: r.updatedAt.toISOString() });
const dates = <T extends { startsAt?: string | null | undefined; endsAt?: string | null | undefined }>(b: T) => ({
  ...b,
  ...(b.startsAt !== undefined ? { startsAt: b.startsAt === null ? null : new Date(b.startsAt) } : {}),
  ...(b.endsAt !== undefined ? { endsAt: b.endsAt === null ? null : new Date(b.endsAt) } : {}),
});

export const audienceMpRoutes: FastifyPluginAsyncTypebox<{ audience: AudienceService }> = async (app, { audience }) => {
  const tags = ['mini program: recommendations'];
  app.get('/recommendations', {
    schema: { tags, security, summary: 'Products and events for me (each one shown is recorded as an impression)', querystring: Type.Object({ limit: Type.Integer({ minimum: 1, maximum: 20, default: 6 }) }),
      response: { 200: Type.Array(MpRecommendationSchema), 401: ErrorResponseSchema } },
  }, async (req) => (await audience.recommend({ openid: req.member.openid, memberId: req.member.memberId }, req.query.limit)).map((r) => ({
    itemId: r.item.id, key: r.item.key, kind: r.item.kind, title: r.item.title, description: r.item.description, imageUrl: r.item.imageUrl, link: r.item.link, city: r.item.city,
    ruleId: r.ruleId, reason: r.reason,
  })));

  app.post('/recommendations/click', {
    schema: { tags, security, body: RecClickBodySchema, response: { 200: Type.Object({ ok: Type.Boolean() }), ...errors } },
  }, async (req) => {
    await audience.click({ openid: req.member.openid, memberId: req.member.memberId }, req.body.itemId, req.body.ruleId ?? null);
    return { ok: true };
  });
};

export const audienceOpsRoutes: FastifyPluginAsyncTypebox<{ audience: AudienceService }> = async (app, { audience }) => {
  const tags = ['recommendations'];
  const write = requireRole('operator');

  app.get('/recommendations/items', { schema: { tags, security, response: { 200: Type.Array(RecItemSchema), ...errors } }, preHandler: requireLogin }, async () => (await audience.listItems()).map(itemView));
  app.post('/recommendations/items', {
    schema: { tags, security, body: RecItemBodySchema, response: { 200: RecItemSchema, ...errors } }, preHandler: write, config: { audit: { action: 'rec.item.create', targetType: 'rec_item' } },
  }, async (req) => itemView(await audience.createItem(dates(req.body) as Parameters<AudienceService['createItem']>[0])));
  app.patch('/recommendations/items/:id', {
    schema: { tags, security, params: IdParams, body: RecItemPatchSchema, response: { 200: RecItemSchema, ...errors } }, preHandler: write, config: { audit: { action: 'rec.item.update', targetType: 'rec_item' } },
  }, async (req) => itemView(await audience.updateItem(req.params.id, dates(req.body) as Parameters<AudienceService['updateItem']>[1])));

  app.get('/recommendations/rules', { schema: { tags, security, response: { 200: Type.Array(RecRuleSchema), ...errors } }, preHandler: requireLogin }, async () => (await audience.listRules()).map(ruleView));
  app.post('/recommendations/rules', {
    schema: { tags, security, body: RecRuleBodySchema, response: { 200: RecRuleSchema, ...errors } }, preHandler: write, config: { audit: { action: 'rec.rule.create', targetType: 'rec_rule' } },
  }, async (req) => ruleView(await audience.createRule(req.body as Parameters<AudienceService['createRule']>[0])));
  app.patch('/recommendations/rules/:id', {
    schema: { tags, security, params: IdParams, body: RecRulePatchSchema, response: { 200: RecRuleSchema, ...errors } }, preHandler: write, config: { audit: { action: 'rec.rule.update', targetType: 'rec_rule' } },
  }, async (req) => ruleView(await audience.updateRule(req.params.id, req.body as Parameters<AudienceService['updateRule']>[1])));
  app.delete('/recommendations/rules/:id', {
    schema: { tags, security, params: IdParams, response: { 200: Type.Object({ ok: Type.Boolean() }), ...errors } }, preHandler: write, config: { audit: { action: 'rec.rule.delete', targetType: 'rec_rule' } },
  }, async (req) => {
    await audience.deleteRule(req.params.id);
    return { ok: true };
  });

  app.put('/members/:openid/tags/:tag', {
    schema: { tags, security, summary: 'Tag a member (ledger openid) for the rules', params: Type.Object({ openid: Type.String({ minLength: 1, maxLength: 128 }), tag: Type.String({ minLength: 1, maxLength: 64 }) }),
      response: { 200: Type.Object({ ok: Type.Boolean() }), ...errors } },
    preHandler: write, config: { audit: { action: 'member.tag', targetType: 'member' } },
  }, async (req) => {
    await audience.tag(req.params.openid, req.params.tag, 'ops');
    return { ok: true };
  });
  app.get('/members/:openid/tags', {
    schema: { tags, security, params: Type.Object({ openid: Type.String({ minLength: 1, maxLength: 128 }) }),
      response: { 200: Type.Array(Type.Object({ tag: Type.String(), source: Type.String(), weight: Type.Integer(), updatedAt: Type.String() })), ...errors } },
    preHandler: requireLogin,
  }, async (req) => (await audience.tagsOf(req.params.openid)).map((t) => ({ tag: t.tag, source: t.source, weight: t.weight, updatedAt: t.updatedAt.toISOString() })));

  app.get('/recommendations/stats', {
    schema: { tags, security, querystring: Type.Object({ since: Type.Optional(Type.String({ format: 'date-time' })) }), response: { 200: Type.Array(RecStatsSchema), ...errors } },
    preHandler: requireLogin,
  }, async (req) => audience.stats(req.query.since ? new Date(req.query.since) : undefined));
};
