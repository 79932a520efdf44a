/**
 * /api/ops members routes (register inside the /api/ops scope, after opsAuthPlugin): earn rules, tiers, the purchase
 * CSV import and the members jobs. Reads need a login; writes need an operator; every write is audited.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { ErrorResponseSchema } from '../../../shared/ops.ts';
import { requireLogin, requireRole } from '../ops/auth.ts';
import type { Earn } from './earn.ts';
import type { Tiers } from './tiers.ts';
import type { EarnRule, MemberTier } from './tables.ts';
import type { MembersService } from './service.ts';
import type { MemberPoints } from './points.ts';
import { MemberMeSchema, PointsHistorySchema } from '../../../shared/members.ts';

const tags = ['ops: members'];
const security = [{ bearerAuth: [] }];
const errors = { 400: ErrorResponseSchema, 401: ErrorResponseSchema, 403: ErrorResponseSchema, 404: ErrorResponseSchema, 422: ErrorResponseSchema };
const write = requireRole('operator');

const RuleKey = Type.Union(['follow', 'bind_phone', 'complete_profile', 'redemption', 'daily_checkin', 'interaction', 'purchase', 'invite_reward'].map((k) => Type.Literal(k)));
const EarnRuleSchema = Type.Object({
  key: Type.String(), points: Type.Integer(), enabled: Type.Boolean(), dailyCap: Type.Union([Type.Integer(), Type.Null()]), tierMultiplier: Type.Boolean(),
  validityDays: Type.Integer(), description: Type.String(), updatedAt: Type.String(),
});
const EarnRulePatch = Type.Object({
  points: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000 })),
  enabled: Type.Optional(Type.Boolean()),
  dailyCap: Type.Optional(Type.Union([Type.Integer({ minimum: 1, maximum: 1000 }), Type.Null()])),
  tierMultiplier: Type.Optional(Type.Boolean()),
  validityDays: Type.Optional(Type.Integer({ minimum: 1, maximum: 3650 })),
  description: Type.Optional(Type.String({ maxLength: 200 })),
}, { additionalProperties: false, minProperties: 1 });
const Coupon = Type.Object({ title: Type.String({ minLength: 1, maxLength: 40 }), valueFen: Type.Integer({ minimum: 1, maximum: 1_000_000 }), validDays: Type.Integer({ minimum: 1, maximum: 366 }) }, { additionalProperties: false });
const TierRowSchema = Type.Object({
  key: Type.String(), name: Type.String(), position: Type.Integer(), minPoints: Type.Integer(), windowDays: Type.Integer(), multiplierPct: Type.Integer(),
  monthlyCoupon: Type.Union([Coupon, Type.Null()]), reservedItems: Type.Boolean(), updatedAt: Type.String(),
});
const TierPatch = Type.Object({
  name: Type.Optional(Type.String({ minLength: 1, maxLength: 20 })),
  minPoints: Type.Optional(Type.Integer({ minimum: 0, maximum: 100_000_000 })),
  windowDays: Type.Optional(Type.Integer({ minimum: 1, maximum: 3650 })),
  multiplierPct: Type.Optional(Type.Integer({ minimum: 100, maximum: 1000 })),
  monthlyCoupon: Type.Optional(Type.Union([Coupon, Type.Null()])),
  reservedItems: Type.Optional(Type.Boolean()),
}, { additionalProperties: false, minProperties: 1 });
const ImportResult = Type.Object({
  id: Type.Integer(), rows: Type.Integer(), credited: Type.Integer(), duplicates: Type.Integer(), rejected: Type.Integer(),
  report: Type.Array(Type.Object({ line: Type.Integer(), orderNo: Type.Union([Type.String(), Type.Null()]), status: Type.String(), points: Type.Optional(Type.Integer()) })),
});

const ruleView = (r: EarnRule) => ({ ...r, updatedAt: r.updatedAt.toISOString() });
const tierView = (t: MemberTier) => ({ ...t, monthlyCoupon: t.monthlyCoupon ?? null, updatedAt: t.updatedAt.toISOString() });

export const memberOpsRoutes: FastifyPluginAsyncTypebox<{ earn: Earn; tiers: Tiers; members: MembersService; points: MemberPoints }> = async (app, { earn, tiers, members, points }) => {
  app.addContentTypeParser('text/csv', { parseAs: 'string', bodyLimit: 4 * 1_048_576 }, (_req, body, done) => done(null, body));

  app.get('/members/earn-rules', {
    preHandler: requireLogin, schema: { tags, security, summary: 'Points earn rules', response: { 200: Type.Array(EarnRuleSchema), ...errors } },
  }, async () => (await earn.rules()).map(ruleView));

  app.patch('/members/earn-rules/:key', {
    preHandler: write, config: { audit: { action: 'members.earn_rule.update', targetType: 'earn_rule' } },
    schema: { tags, security, summary: 'Change an earn rule', params: Type.Object({ key: RuleKey }), body: EarnRulePatch, response: { 200: EarnRuleSchema, ...errors } },
  }, async (req) => ruleView(await earn.updateRule(req.params.key, req.body)));

  app.get('/members/tiers', {
    preHandler: requireLogin, schema: { tags, security, summary: 'Tiers with thresholds and benefits', response: { 200: Type.Array(TierRowSchema), ...errors } },
  }, async () => (await tiers.list()).map(tierView));

  app.patch('/members/tiers/:key', {
    preHandler: write, config: { audit: { action: 'members.tier.update', targetType: 'tier' } },
    schema: { tags, security, summary: 'Change a tier (thresholds must rise with the tier)', params: Type.Object({ key: Type.String({ maxLength: 20 }) }), body: TierPatch, response: { 200: TierRowSchema, ...errors } },
  }, async (req) => tierView(await tiers.update(req.params.key, req.body)));

  app.post('/members/purchases/import', {
    preHandler: write, config: { audit: { action: 'members.purchases.import', targetType: 'purchase_import' } },
    schema: {
      tags, security, summary: 'Import purchases (text/csv: order_no,phone,amount[,purchased_at]); each order earns once',
      consumes: ['text/csv'], body: Type.String({ minLength: 1 }), response: { 200: ImportResult, ...errors },
    },
  }, async (req) => earn.importPurchases(req.body, req.actor?.username ?? null));

  app.post('/members/jobs/:name/run', {
    preHandler: requireRole('admin'), config: { audit: { action: 'members.job.run', targetType: 'job' } },
    schema: { tags, security, summary: 'Run a members job now (expire, remind, tiers)', params: Type.Object({ name: Type.Union([Type.Literal('expire'), Type.Literal('remind'), Type.Literal('tiers')]) }), response: { 200: Type.Object({ result: Type.Unknown() }), ...errors } },
  }, async (req) => {
    const name = req.params.name;
    const result = name === 'expire' ? await earn.expireDue() : name === 'remind' ? await earn.remindExpiring() : await tiers.runScheduled();
    return { result };
  });

  // Looking a person up by phone is a read of personal data: audited like a write.
  app.get('/members/lookup', {
    preHandler: requireRole('operator', 'reviewer'), config: { audit: { action: 'members.lookup', targetType: 'member' } },
    schema: {
      tags, security, summary: 'Find members by phone (the keyed hash; the number is never stored in the clear)',
      querystring: Type.Object({ phone: Type.String({ minLength: 5, maxLength: 20 }) }, { additionalProperties: false }),
      response: { 200: Type.Object({ memberIds: Type.Array(Type.Integer()) }), ...errors },
    },
  }, async (req) => ({ memberIds: await members.idsByPhone(req.query.phone) }));

  app.get('/members/:id', {
    preHandler: requireLogin,
    schema: {
      tags, security, summary: 'A member as they see themselves (phone masked), their events and latest points entries',
      params: Type.Object({ id: Type.Integer({ minimum: 1 }) }),
      response: { 200: Type.Object({ member: MemberMeSchema, events: Type.Array(Type.Object({ kind: Type.String(), detail: Type.Unknown(), createdAt: Type.String() })), points: PointsHistorySchema }), ...errors },
    },
  }, async (req) => {
    const m = await members.byId(req.params.id);
    return { member: await members.view(m), events: await members.events(m.id), points: await points.history(m.openid, { limit: 50 }) };
  });
};
