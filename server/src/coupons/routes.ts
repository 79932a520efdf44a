/**
 * HTTP doors of store-bound coupons:
 * - the member (inside /api/mp): my coupons, a QR payload for one;
 * - ops (inside /api/ops): stores, staff tokens, usage per store — writes audited;
 * - store staff (/api/store, its own bearer check with the staff token): check and redeem what the till scanned.
 */
import type { FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { ErrorResponseSchema } from '../../../shared/ops.ts';
import {
  CouponQrSchema, MpCouponSchema, StaffBodySchema, StaffIssuedSchema, StaffSchema, StoreBodySchema, StoreCouponBodySchema, StoreCouponViewSchema,
  StorePatchSchema, StoreSchema, StoreUsageSchema,
} from '../../../shared/mall.ts';
import { AppError } from '../platform/errors.ts';
import { requireLogin, requireRole } from '../ops/auth.ts';
import type { UserCoupon } from '../members/tables.ts';
import type { CouponService, StaffIdentity } from './service.ts';
import type { Store, StoreStaff } from './tables.ts';

declare module 'fastify' {
  interface FastifyRequest {
    staff: StaffIdentity | null;
  }
}

const errors = { 400: ErrorResponseSchema, 401: ErrorResponseSchema, 403: ErrorResponseSchema, 404: ErrorResponseSchema, 409: ErrorResponseSchema, 422: ErrorResponseSchema };
const security = [{ bearerAuth: [] }];
const iso = (d: Date | null) => (d ? d.toISOString() : null);
const storeView = (s: Store) => ({ id: s.id, name: s.name, city: s.city, address: s.address, active: s.active, createdAt: s.createdAt.toISOString() });
const staffView = (s: StoreStaff) => ({ id: s.id, storeId: s.storeId, name: s.name, createdAt: s.createdAt.toISOString(), revokedAt: iso(s.revokedAt), lastUsedAt: iso(s.lastUsedAt) });

export const couponMpRoutes: FastifyPluginAsyncTypebox<{ coupons: CouponService }> = async (app, { coupons }) => {
  const tags = ['mini program: coupons'];
  app.get('/coupons', {
    schema: { tags, security, summary: 'My coupons and the stores they can be used in', response: { 200: Type.Array(MpCouponSchema), 401: ErrorResponseSchema } },
  }, async (req) => (await coupons.myCoupons(req.member.openid)).map(({ coupon: c, status, stores }) => ({
    id: c.id, title: c.title, valueFen: c.valueFen, couponCode: c.couponCode, status, issuedAt: c.issuedAt.toISOString(), expiresAt: c.expiresAt.toISOString(),
    usedAt: iso(c.usedAt), stores: stores.map((s) => ({ id: s.id, name: s.name, city: s.city, address: s.address })),
  })));

  app.get('/coupons/:id/qr', {
    schema: { tags, security, summary: 'A signed, short-lived QR payload to show at the till', params: Type.Object({ id: Type.Integer({ minimum: 1 }) }), response: { 200: CouponQrSchema, ...errors } },
  }, async (req) => {
    const r = await coupons.qr(req.member.openid, req.params.id);
    return { couponId: r.couponId, qr: r.qr, expiresAt: r.expiresAt.toISOString() };
  });
};

export const couponOpsRoutes: FastifyPluginAsyncTypebox<{ coupons: CouponService }> = async (app, { coupons }) => {
  const tags = ['stores'];
  const write = requireRole('operator');
  const StoreParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) });

  app.get('/stores', { schema: { tags, security, response: { 200: Type.Array(StoreSchema), ...errors } }, preHandler: requireLogin }, async () => (await coupons.listStores()).map(storeView));

  app.post('/stores', {
    schema: { tags, security, body: StoreBodySchema, response: { 200: StoreSchema, ...errors } }, preHandler: write, config: { audit: { action: 'store.create', targetType: 'store' } },
  }, async (req) => storeView(await coupons.createStore(req.body)));

  app.patch('/stores/:id', {
    schema: { tags, security, params: StoreParams, body: StorePatchSchema, response: { 200: StoreSchema, ...errors } }, preHandler: write, config: { audit: { action: 'store.update', targetType: 'store' } },
  }, async (req) => storeView(await coupons.updateStore(req.params.id, req.body)));

  app.get('/stores/:id/staff', {
    schema: { tags, security, params: StoreParams, response: { 200: Type.Array(StaffSchema), ...errors } }, preHandler: requireLogin,
  }, async (req) => (await coupons.listStaff(req.params.id)).map(staffView));

  app.post('/stores/:id/staff', {
    schema: { tags, security, summary: 'Issue a staff token (shown once)', params: StoreParams, body: StaffBodySchema, response: { 200: StaffIssuedSchema, ...errors } },
    preHandler: write, config: { audit: { action: 'store.staff.issue', targetType: 'store' } },
  }, async (req) => {
    const s = await coupons.issueStaff(req.params.id, req.body.name);
    return { ...staffView(s), token: s.token };
  });

  app.post('/staff/:id/revoke', {
    schema: { tags, security, params: Type.Object({ id: Type.Integer({ minimum: 1 }) }), response: { 200: StaffSchema, ...errors } },
    preHandler: write, config: { audit: { action: 'store.staff.revoke', targetType: 'store_staff' } },
  }, async (req) => staffView(await coupons.revokeStaff(req.params.id)));

  app.get('/coupons/usage', {
    schema: { tags, security, summary: 'Coupons bound to, redeemed at and refused at each store', querystring: Type.Object({ campaignId: Type.Optional(Type.Integer({ minimum: 1 })) }), response: { 200: Type.Array(StoreUsageSchema), ...errors } },
    preHandler: requireLogin,
  }, async (req) => coupons.usageByStore(req.query));
};

const couponView = (r: { coupon: UserCoupon; status: UserCoupon['status']; redeemable: boolean; reason: string | null }) => ({
  couponId: r.coupon.id, title: r.coupon.title, valueFen: r.coupon.valueFen, status: r.status, expiresAt: r.coupon.expiresAt.toISOString(), usedAt: iso(r.coupon.usedAt),
  redeemable: r.redeemable, reason: r.reason,
});

/** /api/store — register with prefix '/api/store'. Every route needs `Authorization: Bearer st_…`. */
export const storeStaffRoutes: FastifyPluginAsyncTypebox<{ coupons: CouponService }> = async (app, { coupons }) => {
  const tags = ['store staff'];
  app.decorateRequest('staff', null);
  app.addHook('onRequest', async (req: FastifyRequest) => {
    if (!req.routeOptions.url) return;
    const header = req.headers.authorization;
    if (!header?.startsWith('Bearer ')) throw new AppError('UNAUTHENTICATED', '请使用门店员工令牌登录');
    req.staff = await coupons.authenticateStaff(header.slice(7).trim());
    if (!req.staff) throw new AppError('UNAUTHENTICATED', '员工令牌无效或已停用');
  });
  const staffOf = (req: FastifyRequest) => req.staff!;

  app.get('/me', {
    schema: { tags, security, response: { 200: Type.Object({ staffId: Type.Integer(), storeId: Type.String(), name: Type.String() }), 401: ErrorResponseSchema } },
  }, async (req) => staffOf(req));

  app.post('/coupons/check', {
    schema: { tags, security, summary: 'Look a scanned QR or typed code up without using it', body: StoreCouponBodySchema, response: { 200: StoreCouponViewSchema, ...errors } },
  }, async (req) => couponView(await coupons.check(staffOf(req), req.body)));

  app.post('/coupons/redeem', {
    schema: { tags, security, summary: 'Use the coupon at this store (once)', body: StoreCouponBodySchema, response: { 200: StoreCouponViewSchema, ...errors } },
  }, async (req) => couponView(await coupons.redeem(staffOf(req), req.body)));
};
