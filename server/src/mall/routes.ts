/**
 * HTTP doors of the points mall:
 * - the member (register inside the /api/mp scope, after mpAuthPlugin): items, orders, pay, cancel;
 * - ops (inside /api/ops): items CRUD, orders, ship / complete / cancel / refunded — writes audited;
 * - WeChat Pay's payment notification (POST /pay/notify/jsapi, raw body: the signature covers the exact bytes).
 */
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { ErrorResponseSchema } from '../../../shared/ops.ts';
import {
  MallItemBodySchema, MallItemPatchSchema, MpMallItemSchema, MpOrderSchema, OpsMallItemSchema, OpsOrderSchema, OrderStateSchema,
  PlaceOrderBodySchema, PlaceOrderResponseSchema, RequestPaymentSchema, ShipBodySchema,
} from '../../../shared/mall.ts';
import { requireLogin, requireRole } from '../ops/auth.ts';
import { needsAddress, type MallService } from './service.ts';
import type { MallItem, MallOrder } from './tables.ts';

const errors = { 400: ErrorResponseSchema, 401: ErrorResponseSchema, 403: ErrorResponseSchema, 404: ErrorResponseSchema, 409: ErrorResponseSchema, 422: ErrorResponseSchema, 502: ErrorResponseSchema };
const security = [{ bearerAuth: [] }];
const IdParams = Type.Object({ id: Type.Integer({ minimum: 1 }) });
const iso = (d: Date | null) => (d ? d.toISOString() : null);

export function mpOrderView(o: MallOrder) {
  return {
    id: o.id, itemId: o.itemId, kind: o.kind, title: o.title, quantity: o.quantity, points: o.points, cashFen: o.cashFen, state: o.state,
    payExpiresAt: iso(o.payExpiresAt), paidAt: iso(o.paidAt), couponId: o.couponId, shipping: o.shipping ?? null, createdAt: o.createdAt.toISOString(),
  };
}

function opsItemView(i: MallItem) {
  return { ...i, coupon: i.coupon ?? null, createdAt: i.createdAt.toISOString(), updatedAt: i.updatedAt.toISOString() };
}

const memberOf = (req: FastifyRequest) => ({ memberId: req.member.memberId, openid: req.member.openid, mpOpenid: req.member.mpOpenid });

export const mallMpRoutes: FastifyPluginAsyncTypebox<{ mall: MallService }> = async (app, { mall }) => {
  const tags = ['mini program: mall'];

  app.get('/mall/items', {
    schema: { tags, security, summary: 'Mall items on sale, with what I may still order', response: { 200: Type.Array(MpMallItemSchema), 401: ErrorResponseSchema } },
  }, async (req) => (await mall.catalogue(memberOf(req))).map(({ item, remainingForMe, tierOk }) => ({
    id: item.id, kind: item.kind, title: item.title, description: item.description, imageUrl: item.imageUrl, points: item.points, cashFen: item.cashFen,
    stock: item.stock, perMemberLimit: item.perMemberLimit, remainingForMe, minTier: item.minTier, tierOk, needsAddress: needsAddress(item),
  })));

  app.post('/mall/orders', {
    schema: { tags, security, summary: 'Place an order (idempotent by clientKey); points + cash orders return wx.requestPayment parameters', body: PlaceOrderBodySchema, response: { 200: PlaceOrderResponseSchema, ...errors } },
  }, async (req) => {
    const r = await mall.placeOrder(memberOf(req), req.body);
    return { order: mpOrderView(r.order), payment: r.payment, duplicate: r.duplicate };
  });

  app.get('/mall/orders', {
    schema: { tags, security, summary: 'My orders, newest first', querystring: Type.Object({ limit: Type.Integer({ minimum: 1, maximum: 200, default: 50 }) }), response: { 200: Type.Array(MpOrderSchema), 401: ErrorResponseSchema } },
  }, async (req) => (await mall.myOrders(req.member.openid, req.query.limit)).map(mpOrderView));

  app.get('/mall/orders/:id', {
    schema: { tags, security, params: IdParams, response: { 200: MpOrderSchema, 401: ErrorResponseSchema, 404: ErrorResponseSchema } },
  }, async (req) => mpOrderView(await mall.getOwned(req.member.openid, req.params.id)));

  app.post('/mall/orders/:id/pay', {
    schema: { tags, security, summary: 'wx.requestPayment parameters again (queries WeChat Pay first when an earlier answer was lost)', params: IdParams,
      response: { 200: Type.Object({ order: MpOrderSchema, payment: Type.Union([RequestPaymentSchema, Type.Null()]) }), ...errors } },
  }, async (req) => {
    const r = await mall.pay(memberOf(req), req.params.id);
    return { order: mpOrderView(r.order), payment: r.payment };
  });

  app.post('/mall/orders/:id/paid', {
    schema: { tags, security, summary: 'wx.requestPayment succeeded: ask WeChat Pay now (the client result is never trusted)', params: IdParams, response: { 200: MpOrderSchema, ...errors } },
  }, async (req) => mpOrderView(await mall.paid(memberOf(req), req.params.id)));

  app.post('/mall/orders/:id/cancel', {
    schema: { tags, security, summary: 'Cancel an unpaid or unshipped order: points back, stock back', params: IdParams, response: { 200: MpOrderSchema, ...errors } },
  }, async (req) => mpOrderView(await mall.cancelMine(memberOf(req), req.params.id)));
};

export const mallOpsRoutes: FastifyPluginAsyncTypebox<{ mall: MallService }> = async (app, { mall }) => {
  const tags = ['mall'];
  const write = requireRole('operator');
  const opsOrder = (o: MallOrder) => ({ ...mpOrderView(o), openid: o.openid, memberId: o.memberId, outTradeNo: o.outTradeNo, transactionId: o.transactionId, address: mall.address(o), note: o.note, updatedAt: o.updatedAt.toISOString() });
  const NoteBody = Type.Optional(Type.Object({ note: Type.Optional(Type.String({ maxLength: 500 })) }, { additionalProperties: false }));

  app.get('/mall/items', {
    schema: { tags, security, querystring: Type.Object({ status: Type.Optional(Type.Union([Type.Literal('draft'), Type.Literal('active'), Type.Literal('archived')])) }), response: { 200: Type.Array(OpsMallItemSchema), ...errors } },
    preHandler: requireLogin,
  }, async (req) => (await mall.listItems(req.query)).map(opsItemView));

  app.get('/mall/items/:id', {
    schema: { tags, security, params: IdParams, response: { 200: OpsMallItemSchema, ...errors } }, preHandler: requireLogin,
  }, async (req, reply) => {
    const item = await mall.getItem(req.params.id);
    if (!item) return reply.status(404).send({ code: 'NOT_FOUND', message: `No mall item ${req.params.id}` });
    return opsItemView(item);
  });

  app.post('/mall/items', {
    schema: { tags, security, body: MallItemBodySchema, response: { 200: OpsMallItemSchema, ...errors } },
    preHandler: write, config: { audit: { action: 'mall.item.create', targetType: 'mall_item' } },
  }, async (req) => opsItemView(await mall.createItem(req.body)));

  app.patch('/mall/items/:id', {
    schema: { tags, security, params: IdParams, body: MallItemPatchSchema, response: { 200: OpsMallItemSchema, ...errors } },
    preHandler: write, config: { audit: { action: 'mall.item.update', targetType: 'mall_item' } },
  }, async (req) => opsItemView(await mall.updateItem(req.params.id, req.body)));

  app.get('/mall/orders', {
    schema: {
      tags, security,
      querystring: Type.Object({ state: Type.Optional(OrderStateSchema), itemId: Type.Optional(Type.Integer()), beforeId: Type.Optional(Type.Integer()), limit: Type.Integer({ minimum: 1, maximum: 500, default: 100 }) }),
      response: { 200: Type.Array(OpsOrderSchema), ...errors },
    },
    preHandler: requireLogin,
  }, async (req) => (await mall.listOrders(req.query)).map(opsOrder));

  app.get('/mall/orders/:id', {
    schema: { tags, security, params: IdParams, response: { 200: Type.Object({ ...OpsOrderSchema.properties, events: Type.Array(Type.Object({ fromState: Type.Union([Type.String(), Type.Null()]), toState: Type.String(), note: Type.Union([Type.String(), Type.Null()]), at: Type.String() })) }), ...errors } },
    preHandler: requireLogin,
  }, async (req, reply) => {
    const o = await mall.getOrder(req.params.id);
    if (!o) return reply.status(404).send({ code: 'NOT_FOUND', message: `No order ${req.params.id}` });
    return { ...opsOrder(o), events: (await mall.events(o.id)).map((e) => ({ fromState: e.fromState, toState: e.toState, note: e.note, at: e.at.toISOString() })) };
  });

  app.post('/mall/orders/:id/ship', {
    schema: { tags, security, params: IdParams, body: ShipBodySchema, response: { 200: OpsOrderSchema, ...errors } },
    preHandler: write, config: { audit: { action: 'mall.order.ship', targetType: 'mall_order' } },
  }, async (req) => opsOrder(await mall.ship(req.params.id, req.body)));

  app.post('/mall/orders/:id/complete', {
    schema: { tags, security, params: IdParams, body: NoteBody, response: { 200: OpsOrderSchema, ...errors } },
    preHandler: write, config: { audit: { action: 'mall.order.complete', targetType: 'mall_order' } },
  }, async (req) => opsOrder(await mall.complete(req.params.id, req.body?.note)));

  app.post('/mall/orders/:id/cancel', {
    schema: { tags, security, summary: 'Cancel: points back; an unpaid JSAPI order is closed first; a paid one goes to refund_pending', params: IdParams, body: NoteBody, response: { 200: OpsOrderSchema, ...errors } },
    preHandler: write, config: { audit: { action: 'mall.order.cancel', targetType: 'mall_order' } },
  }, async (req) => opsOrder(await mall.cancelByOps(req.params.id, req.body?.note)));

  app.post('/mall/orders/:id/refunded', {
    schema: { tags, security, summary: 'The cash of a refund_pending order was refunded', params: IdParams, body: NoteBody, response: { 200: OpsOrderSchema, ...errors } },
    preHandler: write, config: { audit: { action: 'mall.order.refunded', targetType: 'mall_order' } },
  }, async (req) => opsOrder(await mall.markRefunded(req.params.id, req.body?.note)));
};

/** POST /pay/notify/jsapi — register with prefix '/pay/notify'. Encapsulated: its raw-body parser stays here. */
export const mallPayNotifyRoutes: FastifyPluginAsync<{ mall: MallService }> = async (app, { mall }) => {
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => done(null, String(body)));

  app.post('/jsapi', { schema: { hide: true } }, async (req, reply) => {
    const raw = typeof req.body === 'string' ? req.body : '';
    const outcome = await mall.handlePayNotification(req.headers as Record<string, string | string[] | undefined>, raw);
    return reply.status(outcome.status).send({ code: outcome.code, message: outcome.message });
  });
};
