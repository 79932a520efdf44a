/**
 * The points mall through /api/mp and /api/ops: items and their audit trail, points orders (coupon issued at once,
 * goods shipped by ops), double submits, overspend, stock, per-member limits, tier-reserved items, cancellation
 * giving points and stock back, and the auth contract.
 */
import t from 'tap';
import { randomUUID } from 'node:crypto';
import { count } from './helpers.ts';
import { ADDRESS, commerceApp } from './commerce-helpers.ts';

t.test('ops create an item (audited) and members see it with what they may still order', async (t) => {
  const h = await commerceApp(t);
  const item = await h.createItem({ kind: 'coupon', title: '5元无门槛券', points: 100, stock: 10, perMemberLimit: 2, coupon: { title: '5元券', valueFen: 500, validDays: 30 } });
  t.equal(item.stock, 10);
  t.equal(await count(h.database, 'audit_log', `action = 'mall.item.create' AND target_id = '${item.id}'`), 1);
  const draft = await h.createItem({ kind: 'physical', title: '草稿', points: 1, stock: 1, status: 'draft' });
  const m = await h.member(0);
  const res = await h.inject({ method: 'GET', url: '/api/mp/mall/items', headers: m.headers });
  t.equal(res.statusCode, 200);
  const list = res.json();
  t.same(list.map((i: any) => i.id), [item.id], 'drafts are not on sale');
  t.equal(list[0].remainingForMe, 2);
  t.equal(list[0].needsAddress, false);
  t.not(draft.id, item.id);
});

t.test('bad item input is refused and changes nothing', async (t) => {
  const h = await commerceApp(t);
  const noCash = await h.inject({ method: 'POST', url: '/api/ops/mall/items', headers: h.ops, payload: { kind: 'points_cash', title: 'x', points: 10, stock: 1 } });
  t.equal(noCash.statusCode, 422);
  const noCoupon = await h.inject({ method: 'POST', url: '/api/ops/mall/items', headers: h.ops, payload: { kind: 'coupon', title: 'x', points: 10, stock: 1 } });
  t.equal(noCoupon.statusCode, 422);
  const badTier = await h.inject({ method: 'POST', url: '/api/ops/mall/items', headers: h.ops, payload: { kind: 'sample', title: 'x', points: 10, stock: 1, minTier: 'platinum' } });
  t.equal(badTier.statusCode, 422);
  const negative = await h.inject({ method: 'POST', url: '/api/ops/mall/items', headers: h.ops, payload: { kind: 'sample', title: 'x', points: 10, stock: -1 } });
  t.equal(negative.statusCode, 400);
  const anonymous = await h.inject({ method: 'POST', url: '/api/ops/mall/items', payload: { kind: 'sample', title: 'x', points: 10, stock: 1 } });
  t.equal(anonymous.statusCode, 401);
  t.equal(await count(h.database, 'mall_items'), 0);
});

t.test('a coupon item bought with points is issued at once: points debited once, coupon in my list', async (t) => {
  const h = await commerceApp(t);
  const item = await h.createItem({ kind: 'coupon', title: '5元券', points: 100, stock: 5, coupon: { title: '5元门店券', valueFen: 500, validDays: 30, storeIds: ['S001'] } });
  const m = await h.member(250);
  const res = await h.order(m, { itemId: item.id });
  t.equal(res.statusCode, 200, res.body);
  const body = res.json();
  t.equal(body.order.state, 'fulfilled');
  t.equal(body.order.points, 100);
  t.equal(body.payment, null);
  t.equal(body.duplicate, false);
  t.ok(body.order.couponId);
  t.equal(await m.balance(), 150);
  const coupons = (await h.inject({ method: 'GET', url: '/api/mp/coupons', headers: m.headers })).json();
  t.equal(coupons.length, 1);
  t.equal(coupons[0].id, body.order.couponId);
  t.equal(coupons[0].title, '5元门店券');
  t.same(coupons[0].stores.map((s: any) => s.id), ['S001']);
  const ledger = await h.services.ledger.byKey(`mall:order:${body.order.id}`);
  t.equal(ledger?.delta, -100);
  const item2 = (await h.inject({ method: 'GET', url: `/api/ops/mall/items/${item.id}`, headers: h.ops })).json();
  t.equal(item2.stock, 4);
  t.equal(item2.sold, 1);
});

t.test('a double-submitted order (same clientKey) is one order and one debit', async (t) => {
  const h = await commerceApp(t);
  const item = await h.createItem({ kind: 'sample', title: '试用装', points: 50, stock: 5 });
  const m = await h.member(500);
  const clientKey = randomUUID();
  const [a, b] = await Promise.all([h.order(m, { itemId: item.id, clientKey, address: ADDRESS }), h.order(m, { itemId: item.id, clientKey, address: ADDRESS })]);
  t.equal(a.statusCode, 200, a.body);
  t.equal(b.statusCode, 200, b.body);
  t.equal(a.json().order.id, b.json().order.id);
  t.same([a.json().duplicate, b.json().duplicate].sort(), [false, true]);
  const again = await h.order(m, { itemId: item.id, clientKey, address: ADDRESS });
  t.equal(again.json().order.id, a.json().order.id);
  t.equal(again.json().duplicate, true);
  t.equal(await count(h.database, 'mall_orders'), 1);
  t.equal(await m.balance(), 450);
  const reused = await h.order(m, { itemId: item.id, clientKey, quantity: 2, address: ADDRESS });
  t.equal(reused.statusCode, 409, 'a key reused for another order is refused');
  t.equal(reused.json().details.reason, 'client_key_reused');
});

t.test('overspend is refused with 积分不足 and changes nothing', async (t) => {
  const h = await commerceApp(t);
  const item = await h.createItem({ kind: 'coupon', title: '大额券', points: 1000, stock: 3, coupon: { title: '50元券', valueFen: 5000, validDays: 7 } });
  const m = await h.member(999);
  const res = await h.order(m, { itemId: item.id });
  t.equal(res.statusCode, 422);
  t.equal(res.json().message, '积分不足');
  t.equal(await m.balance(), 999);
  t.equal(await count(h.database, 'mall_orders'), 0);
  t.equal(await count(h.database, 'user_coupons'), 0);
  t.equal((await h.services.mall.getItem(item.id))!.stock, 3, 'stock untouched');
});

t.test('stock runs out and per-member limits hold', async (t) => {
  const h = await commerceApp(t);
  const item = await h.createItem({ kind: 'coupon', title: '限量券', points: 10, stock: 3, perMemberLimit: 2, coupon: { title: '券', valueFen: 100, validDays: 7 } });
  const a = await h.member(100);
  const b = await h.member(100);
  t.equal((await h.order(a, { itemId: item.id })).statusCode, 200);
  t.equal((await h.order(a, { itemId: item.id })).statusCode, 200);
  const third = await h.order(a, { itemId: item.id });
  t.equal(third.statusCode, 409);
  t.equal(third.json().details.reason, 'limit_reached');
  t.equal((await h.order(b, { itemId: item.id })).statusCode, 200);
  const soldOut = await h.order(b, { itemId: item.id });
  t.equal(soldOut.statusCode, 409);
  t.equal(soldOut.json().details.reason, 'sold_out');
  t.equal(await a.balance(), 80);
  t.equal(await b.balance(), 90);
  const over = await h.order(b, { itemId: item.id, quantity: 11 });
  t.equal(over.statusCode, 400, 'quantity is bounded by the schema');
});

t.test('goods need an address; ops ship and complete; the member cannot cancel a shipped order', async (t) => {
  const h = await commerceApp(t);
  const item = await h.createItem({ kind: 'physical', title: '保温杯', points: 300, stock: 2 });
  const m = await h.member(300);
  const noAddress = await h.order(m, { itemId: item.id });
  t.equal(noAddress.statusCode, 422);
  t.equal(noAddress.json().details.reason, 'address_required');
  const placed = await h.order(m, { itemId: item.id, address: ADDRESS });
  t.equal(placed.json().order.state, 'paid');
  const id = placed.json().order.id;
  const opsView = (await h.inject({ method: 'GET', url: `/api/ops/mall/orders/${id}`, headers: h.ops })).json();
  t.same(opsView.address, ADDRESS, 'ops read the address to ship');
  const sealed = await h.database.query<{ address_sealed: string }>((await import('drizzle-orm')).sql`SELECT address_sealed FROM mall_orders WHERE id = ${id}`);
  t.notOk(sealed[0]!.address_sealed.includes('13800138000'), 'the address is stored sealed');
  const shipped = await h.inject({ method: 'POST', url: `/api/ops/mall/orders/${id}/ship`, headers: h.ops, payload: { carrier: '顺丰', trackingNo: 'SF123' } });
  t.equal(shipped.statusCode, 200);
  t.equal(shipped.json().state, 'shipped');
  const twice = await h.inject({ method: 'POST', url: `/api/ops/mall/orders/${id}/ship`, headers: h.ops, payload: { carrier: '顺丰', trackingNo: 'SF123' } });
  t.equal(twice.statusCode, 409);
  const cancel = await h.inject({ method: 'POST', url: `/api/mp/mall/orders/${id}/cancel`, headers: m.headers });
  t.equal(cancel.statusCode, 409);
  const done = await h.inject({ method: 'POST', url: `/api/ops/mall/orders/${id}/complete`, headers: h.ops, payload: {} });
  t.equal(done.json().state, 'fulfilled');
  const mine = (await h.inject({ method: 'GET', url: `/api/mp/mall/orders/${id}`, headers: m.headers })).json();
  t.same(mine.shipping, { carrier: '顺丰', trackingNo: 'SF123' });
  const events = (await h.inject({ method: 'GET', url: `/api/ops/mall/orders/${id}`, headers: h.ops })).json().events.map((e: any) => e.toState);
  t.same(events, ['paid', 'shipped', 'fulfilled']);
  t.equal(await count(h.database, 'audit_log', `action = 'mall.order.ship'`), 1);
});

t.test('cancelling an unshipped order gives the points and the stock back, once', async (t) => {
  const h = await commerceApp(t);
  const item = await h.createItem({ kind: 'sample', title: '试用装', points: 80, stock: 1, perMemberLimit: 1 });
  const m = await h.member(100);
  const placed = (await h.order(m, { itemId: item.id, address: ADDRESS })).json();
  t.equal(await m.balance(), 20);
  const [c1, c2] = await Promise.all([
    h.inject({ method: 'POST', url: `/api/mp/mall/orders/${placed.order.id}/cancel`, headers: m.headers }),
    h.inject({ method: 'POST', url: `/api/mp/mall/orders/${placed.order.id}/cancel`, headers: m.headers }),
  ]);
  t.equal(c1.statusCode, 200, c1.body);
  t.equal(c2.statusCode, 200, c2.body);
  t.equal(c1.json().state, 'cancelled');
  t.equal(await m.balance(), 100, 'credited back exactly once');
  t.equal(await count(h.database, 'points_ledger', `idempotency_key = 'mall:order:${placed.order.id}:cancel'`), 1);
  t.equal((await h.services.mall.getItem(item.id))!.stock, 1);
  const again = await h.order(m, { itemId: item.id, address: ADDRESS });
  t.equal(again.statusCode, 200, 'the per-member limit was released too');
});

t.test('a tier-reserved item is refused below its tier', async (t) => {
  const h = await commerceApp(t);
  const item = await h.createItem({ kind: 'coupon', title: '金卡专享', points: 10, stock: 5, minTier: 'gold', coupon: { title: '金卡券', valueFen: 1000, validDays: 7 } });
  const m = await h.member(100);
  const list = (await h.inject({ method: 'GET', url: '/api/mp/mall/items', headers: m.headers })).json();
  t.equal(list[0].tierOk, false);
  const res = await h.order(m, { itemId: item.id });
  t.equal(res.statusCode, 403);
  t.equal(res.json().details.reason, 'tier');
  t.equal(await m.balance(), 100);
  const { sql } = await import('drizzle-orm');
  await h.database.query(sql`UPDATE members SET tier = 'diamond' WHERE id = ${m.who.memberId}`);
  t.equal((await h.order(m, { itemId: item.id })).statusCode, 200, 'a higher tier may order it');
});

t.test('orders are private and the mall needs a session', async (t) => {
  const h = await commerceApp(t);
  const item = await h.createItem({ kind: 'sample', title: '试用装', points: 10, stock: 5 });
  const a = await h.member(100);
  const b = await h.member(100);
  const placed = (await h.order(a, { itemId: item.id, address: ADDRESS })).json();
  t.equal((await h.inject({ method: 'GET', url: `/api/mp/mall/orders/${placed.order.id}`, headers: b.headers })).statusCode, 404);
  t.equal((await h.inject({ method: 'POST', url: `/api/mp/mall/orders/${placed.order.id}/cancel`, headers: b.headers })).statusCode, 404);
  t.same((await h.inject({ method: 'GET', url: '/api/mp/mall/orders', headers: b.headers })).json(), []);
  t.equal((await h.inject({ method: 'GET', url: '/api/mp/mall/orders', headers: a.headers })).json().length, 1);
  const forged = await h.inject({ method: 'POST', url: '/api/mp/mall/orders', headers: { authorization: 'Bearer mps_forged' }, payload: { itemId: item.id, clientKey: randomUUID() } });
  t.equal(forged.statusCode, 401);
  t.equal(forged.json().code, 'UNAUTHENTICATED');
  t.equal((await h.inject({ method: 'GET', url: '/api/mp/mall/items' })).statusCode, 401);
  t.equal(await count(h.database, 'mall_orders'), 1);
});

t.test('ops change stock relatively and never below zero', async (t) => {
  const h = await commerceApp(t);
  const item = await h.createItem({ kind: 'sample', title: '试用装', points: 10, stock: 2 });
  const up = await h.inject({ method: 'PATCH', url: `/api/ops/mall/items/${item.id}`, headers: h.ops, payload: { stockDelta: 3, title: '新试用装' } });
  t.equal(up.json().stock, 5);
  t.equal(up.json().title, '新试用装');
  const down = await h.inject({ method: 'PATCH', url: `/api/ops/mall/items/${item.id}`, headers: h.ops, payload: { stockDelta: -6 } });
  t.equal(down.statusCode, 409);
  t.equal((await h.services.mall.getItem(item.id))!.stock, 5);
  const list = await h.inject({ method: 'GET', url: '/api/ops/mall/orders?state=paid', headers: h.ops });
  t.same(list.json(), []);
});

t.test('ops list items by status; order input is validated by the schema', async (t) => {
  const h = await commerceApp(t);
  const on = await h.createItem({ kind: 'sample', title: '在售', points: 10, stock: 1 });
  await h.createItem({ kind: 'sample', title: '草稿', points: 10, stock: 1, status: 'draft' });
  t.same((await h.inject({ method: 'GET', url: '/api/ops/mall/items?status=active', headers: h.ops })).json().map((i: any) => i.id), [on.id]);
  t.equal((await h.inject({ method: 'GET', url: '/api/ops/mall/items', headers: h.ops })).json().length, 2);
  const m = await h.member(100);
  t.equal((await h.order(m, { itemId: on.id, clientKey: 'short' })).statusCode, 400, 'clientKey too short');
  t.equal((await h.order(m, { itemId: on.id, address: { ...ADDRESS, phone: '12345' } })).statusCode, 400, 'a phone that is not a mainland mobile');
  t.equal((await h.order(m, { itemId: 99999, address: ADDRESS })).statusCode, 404);
  t.equal(await count(h.database, 'mall_orders'), 0);
  t.equal(await m.balance(), 100);
});
