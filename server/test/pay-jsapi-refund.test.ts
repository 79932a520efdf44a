/**
 * Cancelling a paid points + cash order: points back at once, the cash through the WeChat Pay refund API (same
 * out_refund_no, queried before any second request), settled by REFUND.SUCCESS (once, however often it arrives) or
 * by the refund job's query; a payment that lands after the order was cancelled is refunded the same way.
 */
import t from 'tap';
import { ADDRESS, commerceApp } from './commerce-helpers.ts';

type H = Awaited<ReturnType<typeof commerceApp>>;

async function sandboxPost(h: H, path: string, body: unknown = {}) {
  const res = await fetch(`${h.paySandbox.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, json: (await res.json()) as any };
}
const orderState = async (h: H, id: number) => (await h.inject({ method: 'GET', url: `/api/ops/mall/orders/${id}`, headers: h.ops })).json();
const refundNo = (id: number) => `MALLR${String(id).padStart(10, '0')}`;

async function paidGoods(h: H) {
  const item = await h.createItem({ kind: 'points_cash', title: '积分+19.9元 保温杯', points: 100, cashFen: 1990, stock: 5 });
  const m = await h.member(300);
  const { order, payment } = (await h.order(m, { itemId: item.id, address: ADDRESS })).json();
  await sandboxPost(h, '/__sandbox/pay/request-payment', payment);
  return { m, order, item };
}

t.test('a paid, unshipped goods order cancelled by the member: points back, cash refunded on REFUND.SUCCESS', async (t) => {
  const h = await commerceApp(t);
  const { m, order } = await paidGoods(h);
  t.equal((await orderState(h, order.id)).state, 'paid');
  t.equal(await m.balance(), 200);
  const res = await h.inject({ method: 'POST', url: `/api/mp/mall/orders/${order.id}/cancel`, headers: m.headers });
  t.equal(res.statusCode, 200, res.body);
  t.equal(res.json().state, 'refund_pending');
  t.equal(await m.balance(), 300, 'points back at once');
  const refund = h.paySandbox.state.refunds.get(refundNo(order.id))!;
  t.equal(refund.refund, 1990);
  t.equal(refund.status, 'PROCESSING');
  const done = await sandboxPost(h, `/__sandbox/pay/refunds/${refundNo(order.id)}/succeed`);
  t.equal(done.json.notification.status, 200);
  const after = await orderState(h, order.id);
  t.equal(after.state, 'refunded');
  const replay = await sandboxPost(h, `/__sandbox/pay/notifications/${done.json.notification.seq}/resend`);
  t.equal(replay.json.notification.status, 200, 'a replayed refund notification still acks');
  t.same((await orderState(h, order.id)).events, after.events, 'and changes nothing');
  t.equal(await m.balance(), 300);
  t.equal(h.paySandbox.state.refunds.size, 1);
});

t.test('the refund job queries before it asks again, and settles a refund whose notification was lost', async (t) => {
  const h = await commerceApp(t, { env: { WECHATPAY_JSAPI_NOTIFY_URL: 'http://127.0.0.1:9/pay/notify/jsapi' } });
  const { m, order } = await paidGoods(h);
  // The notify URL is dead, so settle the payment by the member's "paid" query.
  t.equal((await h.inject({ method: 'POST', url: `/api/mp/mall/orders/${order.id}/paid`, headers: m.headers })).json().state, 'paid');
  await sandboxPost(h, '/__sandbox/pay/fail-next', { count: 1, status: 500 });
  const res = await h.inject({ method: 'POST', url: `/api/ops/mall/orders/${order.id}/cancel`, headers: h.ops, payload: { note: '缺货' } });
  t.equal(res.statusCode, 200);
  t.equal(res.json().state, 'refund_pending', 'WeChat Pay did not answer: the refund is still owed');
  t.equal(h.paySandbox.state.refunds.size, 0);
  h.paySandbox.state.calls.length = 0;
  t.equal(await h.services.mall.runRefunds(), 0, 'asked now, still processing');
  t.same(h.paySandbox.state.calls, [`GET /v3/refund/domestic/refunds/${refundNo(order.id)}`, 'POST /v3/refund/domestic/refunds']);
  await sandboxPost(h, `/__sandbox/pay/refunds/${refundNo(order.id)}/succeed`);
  h.paySandbox.state.calls.length = 0;
  t.equal(await h.services.mall.runRefunds(), 1);
  t.same(h.paySandbox.state.calls, [`GET /v3/refund/domestic/refunds/${refundNo(order.id)}`], 'found by the query, not asked twice');
  t.equal((await orderState(h, order.id)).state, 'refunded');
  t.equal(h.paySandbox.state.refunds.size, 1);
});

t.test('shipped or coupon orders are not cancelled; a refund the bank rejects waits for ops', async (t) => {
  const h = await commerceApp(t);
  const { m, order } = await paidGoods(h);
  await h.inject({ method: 'POST', url: `/api/ops/mall/orders/${order.id}/ship`, headers: h.ops, payload: { carrier: '顺丰', trackingNo: 'SF1' } });
  t.equal((await h.inject({ method: 'POST', url: `/api/mp/mall/orders/${order.id}/cancel`, headers: m.headers })).statusCode, 409);
  const second = await paidGoods(h);
  await h.inject({ method: 'POST', url: `/api/ops/mall/orders/${second.order.id}/cancel`, headers: h.ops, payload: {} });
  await sandboxPost(h, `/__sandbox/pay/refunds/${refundNo(second.order.id)}/abnormal`);
  const view = await orderState(h, second.order.id);
  t.equal(view.state, 'refund_pending');
  t.match(view.note, /ABNORMAL/);
  const manual = await h.inject({ method: 'POST', url: `/api/ops/mall/orders/${second.order.id}/refunded`, headers: h.ops, payload: { note: '已线下退款' } });
  t.equal(manual.json().state, 'refunded');
});
