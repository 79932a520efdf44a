/**
 * Points + cash mall orders paid with WeChat Pay JSAPI against the pay sandbox: prepay and the wx.requestPayment
 * object (paySign over the mini program's appId), the user paying, the signed and encrypted TRANSACTION.SUCCESS
 * handled once (replays and tampering change nothing), query before any retry, close on cancel and at expiry.
 */
import t from 'tap';
import { constants, randomUUID, verify } from 'node:crypto';
import { manualClock } from '../src/platform/clock.ts';
import { sandboxPayKeys } from '../src/wechat/sandbox/pay-keys.ts';
import { encryptNotificationResource, signRsaSha256 } from '../src/wechat/pay/crypto.ts';
import { count, fixtureJson, holdLocks, onPostgres } from './helpers.ts';
import { ADDRESS, commerceApp } from './commerce-helpers.ts';

type H = Awaited<ReturnType<typeof commerceApp>>;

async function sandboxPost(h: H, path: string, body: unknown = {}) {
  const res = await fetch(`${h.paySandbox.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, json: (await res.json()) as any };
}

async function cashItem(h: H, extra: Record<string, unknown> = {}) {
  return h.createItem({ kind: 'points_cash', title: '积分+9.9元 购奶酪礼盒', points: 200, cashFen: 990, stock: 10, ...extra });
}

const orderState = async (h: H, id: number) => (await h.inject({ method: 'GET', url: `/api/ops/mall/orders/${id}`, headers: h.ops })).json();

t.test('a points + cash order: prepay, paySign over the mini program appId, the user pays, the notify settles it', async (t) => {
  const h = await commerceApp(t);
  const item = await cashItem(h, { coupon: { title: '奶酪礼盒兑换券', valueFen: 3000, validDays: 30 } });
  const m = await h.member(500);
  const res = await h.order(m, { itemId: item.id });
  t.equal(res.statusCode, 200, res.body);
  const { order, payment } = res.json();
  t.equal(order.state, 'awaiting_payment');
  t.equal(order.cashFen, 990);
  t.equal(await m.balance(), 300, 'the points part is held at once');
  // The wx.requestPayment object has exactly the official shape…
  t.same(Object.keys(payment).sort(), Object.keys(fixtureJson('pay-requestPayment-miniprogram.json')).sort());
  t.equal(payment.signType, 'RSA');
  t.match(payment.package, /^prepay_id=wx/);
  t.match(payment.timeStamp, /^\d{10}$/);
  // …and paySign is RSA-SHA256 over appId\ntimeStamp\nnonceStr\npackage\n with the mini program's appId.
  const message = `${h.config.miniprogram.appId}\n${payment.timeStamp}\n${payment.nonceStr}\n${payment.package}\n`;
  t.ok(verify('sha256', Buffer.from(message), { key: sandboxPayKeys().merchantPublicKeyPem, padding: constants.RSA_PKCS1_PADDING }, Buffer.from(payment.paySign, 'base64')));
  const txn = h.paySandbox.state.transactions.get(`MALL${String(order.id).padStart(10, '0')}`)!;
  t.equal(txn.payer_openid, m.mpOpenid, 'payer.openid is the mini-program openid');
  t.equal(txn.appid, h.config.miniprogram.appId);
  t.equal(txn.total, 990);

  const paid = await sandboxPost(h, '/__sandbox/pay/request-payment', { ...payment, openid: m.mpOpenid });
  t.equal(paid.status, 200, JSON.stringify(paid.json));
  t.equal(paid.json.notification.status, 200, 'our notify endpoint acknowledged');
  const after = await orderState(h, order.id);
  t.equal(after.state, 'fulfilled', 'paid, and the coupon issued');
  t.equal(after.transactionId, paid.json.transaction.transaction_id);
  t.ok(after.couponId);
  t.same(after.events.map((e: any) => e.toState), ['awaiting_payment', 'paid', 'fulfilled']);
  t.equal(await m.balance(), 300);
  const again = await h.inject({ method: 'POST', url: `/api/mp/mall/orders/${order.id}/pay`, headers: m.headers });
  t.equal(again.statusCode, 409, 'nothing left to pay');
});

t.test('a replayed notification still acks and changes nothing', async (t) => {
  const h = await commerceApp(t);
  const item = await cashItem(h, { coupon: { title: '券', valueFen: 100, validDays: 7 } });
  const m = await h.member(500);
  const { order, payment } = (await h.order(m, { itemId: item.id })).json();
  const paid = await sandboxPost(h, '/__sandbox/pay/request-payment', payment);
  const seq = paid.json.notification.seq;
  const before = await orderState(h, order.id);
  for (let i = 0; i < 3; i++) {
    const replay = await sandboxPost(h, `/__sandbox/pay/notifications/${seq}/resend`);
    t.equal(replay.json.notification.status, 200);
  }
  const after = await orderState(h, order.id);
  t.same(after.events, before.events);
  t.equal(await count(h.database, 'user_coupons'), 1, 'one coupon');
  t.equal(await count(h.database, 'points_ledger', `openid = '${m.who.openid}'`), 2, 'the grant and the one debit');
});

t.test('tampered, forged and stale notifications are refused and change nothing', async (t) => {
  const h = await commerceApp(t);
  const item = await cashItem(h, { coupon: { title: '券', valueFen: 100, validDays: 7 } });
  const m = await h.member(500);
  const { order } = (await h.order(m, { itemId: item.id })).json();
  const outTradeNo = `MALL${String(order.id).padStart(10, '0')}`;
  const resource = { appid: h.config.miniprogram.appId, mchid: h.config.wechatPay.mchid, out_trade_no: outTradeNo, transaction_id: '4200000000000000000000000001', trade_type: 'JSAPI', trade_state: 'SUCCESS', success_time: '2026-12-01T10:00:00+08:00', payer: { openid: m.mpOpenid }, amount: { total: 990, payer_total: 990, currency: 'CNY', payer_currency: 'CNY' } };
  const envelope = (enc: object) => JSON.stringify({ ...fixtureJson('pay-notify-transaction-envelope.json'), resource: { original_type: 'transaction', ...enc } });
  const good = envelope(encryptNotificationResource(JSON.stringify(resource), h.paySandbox.state.opts.apiV3Key, { associatedData: 'transaction' }));
  const post = (body: string, headers: Record<string, string>) => h.inject({ method: 'POST', url: '/pay/notify/jsapi', headers: { 'content-type': 'application/json', ...headers }, payload: body });

  // 1. the body changed after WeChat Pay signed it
  const signed = h.paySandbox.state.signHeaders(good);
  const r1 = await post(good.replace('"支付成功"', '"支付成功 "'), signed);
  t.equal(r1.statusCode, 401);
  t.same(r1.json(), { code: 'FAIL', message: 'verification failed: bad_signature' });
  // 2. validly signed, but the ciphertext was altered: the GCM tag check fails
  const enc = encryptNotificationResource(JSON.stringify(resource), h.paySandbox.state.opts.apiV3Key, { associatedData: 'transaction' });
  const flipped = Buffer.from(enc.ciphertext, 'base64');
  flipped[3] = flipped[3]! ^ 0x01;
  const tampered = envelope({ ...enc, ciphertext: flipped.toString('base64') });
  const r2 = await post(tampered, h.paySandbox.state.signHeaders(tampered));
  t.equal(r2.statusCode, 401);
  t.match(r2.json().message, /auth_failed/);
  // 3. encrypted with another key (a forger who does not hold our APIv3 key)
  const forgedBody = envelope(encryptNotificationResource(JSON.stringify(resource), 'x'.repeat(32), { associatedData: 'transaction' }));
  t.equal((await post(forgedBody, h.paySandbox.state.signHeaders(forgedBody))).statusCode, 401);
  // 4. signed 10 minutes ago (a replay from the past)
  const ts = String(Math.floor(Date.now() / 1000) - 600);
  const nonce = 'N'.repeat(32);
  const stale = { 'Wechatpay-Timestamp': ts, 'Wechatpay-Nonce': nonce, 'Wechatpay-Serial': h.paySandbox.state.opts.platformPublicKeyId, 'Wechatpay-Signature': signRsaSha256(`${ts}\n${nonce}\n${good}\n`, sandboxPayKeys().platformPrivateKeyPem) };
  const r4 = await post(good, stale);
  t.equal(r4.statusCode, 401);
  t.match(r4.json().message, /stale_timestamp/);
  // 5. no signature headers at all
  t.equal((await post(good, {})).statusCode, 401);
  t.equal((await orderState(h, order.id)).state, 'awaiting_payment', 'none of them paid the order');
  // The genuine one does.
  const ok = await post(good, h.paySandbox.state.signHeaders(good));
  t.equal(ok.statusCode, 200);
  t.same(ok.json(), fixtureJson('pay-notify-ack-success.json'));
  t.equal((await orderState(h, order.id)).state, 'fulfilled');
});

t.test('a notification whose amount does not match the order is never taken as payment', async (t) => {
  const h = await commerceApp(t);
  const item = await cashItem(h, { coupon: { title: '券', valueFen: 100, validDays: 7 } });
  const m = await h.member(500);
  const { order } = (await h.order(m, { itemId: item.id })).json();
  const resource = { appid: h.config.miniprogram.appId, mchid: h.config.wechatPay.mchid, out_trade_no: `MALL${String(order.id).padStart(10, '0')}`, transaction_id: '42000001', trade_state: 'SUCCESS', amount: { total: 1 } };
  const body = JSON.stringify({ ...fixtureJson('pay-notify-transaction-envelope.json'), resource: { original_type: 'transaction', ...encryptNotificationResource(JSON.stringify(resource), h.paySandbox.state.opts.apiV3Key, { associatedData: 'transaction' }) } });
  const res = await h.inject({ method: 'POST', url: '/pay/notify/jsapi', headers: { 'content-type': 'application/json', ...h.paySandbox.state.signHeaders(body) }, payload: body });
  t.equal(res.statusCode, 200, 'acknowledged (a retry would not change it)');
  t.equal((await orderState(h, order.id)).state, 'awaiting_payment');
});

t.test('a lost prepay answer: the retry queries first and reuses the out_trade_no', async (t) => {
  const h = await commerceApp(t);
  const item = await cashItem(h, { coupon: { title: '券', valueFen: 100, validDays: 7 } });
  const m = await h.member(500);
  await sandboxPost(h, '/__sandbox/pay/fail-next', { count: 1, status: 500 });
  const clientKey = randomUUID();
  const first = await h.order(m, { itemId: item.id, clientKey });
  t.equal(first.statusCode, 502);
  t.equal(await m.balance(), 300, 'the order exists, its points held');
  h.paySandbox.state.calls.length = 0;
  const second = await h.order(m, { itemId: item.id, clientKey });
  t.equal(second.statusCode, 200, second.body);
  t.equal(second.json().duplicate, true);
  t.match(second.json().payment.package, /^prepay_id=/);
  const outTradeNo = `MALL${String(second.json().order.id).padStart(10, '0')}`;
  t.same(h.paySandbox.state.calls, [`GET /v3/pay/transactions/out-trade-no/${outTradeNo}?mchid=${h.config.wechatPay.mchid}`, 'POST /v3/pay/transactions/jsapi'], 'query, then prepay');
  t.equal(h.paySandbox.state.transactions.size, 1);
  t.equal(await count(h.database, 'mall_orders'), 1);
  t.equal(await m.balance(), 300);
});

t.test('a payment whose notification never arrives is found by the query when the member comes back', async (t) => {
  const h = await commerceApp(t, { env: { WECHATPAY_JSAPI_NOTIFY_URL: 'http://127.0.0.1:9/pay/notify/jsapi' } });
  const item = await cashItem(h, { coupon: { title: '券', valueFen: 100, validDays: 7 } });
  const m = await h.member(500);
  const { order, payment } = (await h.order(m, { itemId: item.id })).json();
  const paid = await sandboxPost(h, '/__sandbox/pay/request-payment', payment);
  t.equal(paid.json.notification.status, null, 'the notification was not delivered');
  t.equal((await orderState(h, order.id)).state, 'awaiting_payment');
  const res = await h.inject({ method: 'POST', url: `/api/mp/mall/orders/${order.id}/paid`, headers: m.headers });
  t.equal(res.statusCode, 200);
  t.equal(res.json().state, 'fulfilled');
});

t.test('a forged paySign is refused by the WeChat side; the order stays unpaid', async (t) => {
  const h = await commerceApp(t);
  const item = await cashItem(h, { address: undefined });
  const m = await h.member(500);
  const res = await h.order(m, { itemId: item.id, address: ADDRESS });
  const { payment } = res.json();
  const bad = await sandboxPost(h, '/__sandbox/pay/request-payment', { ...payment, paySign: Buffer.alloc(256, 1).toString('base64') });
  t.equal(bad.status, 400);
  t.equal(res.json().order.state, 'awaiting_payment');
  t.equal((await orderState(h, res.json().order.id)).state, 'awaiting_payment');
});

t.test('cancelling an unpaid order closes it at WeChat Pay and gives the points back', async (t) => {
  const h = await commerceApp(t);
  const item = await cashItem(h, { coupon: { title: '券', valueFen: 100, validDays: 7 } });
  const m = await h.member(500);
  const { order, payment } = (await h.order(m, { itemId: item.id })).json();
  const res = await h.inject({ method: 'POST', url: `/api/mp/mall/orders/${order.id}/cancel`, headers: m.headers });
  t.equal(res.statusCode, 200, res.body);
  t.equal(res.json().state, 'cancelled');
  t.equal(await m.balance(), 500);
  const txn = h.paySandbox.state.transactions.get(`MALL${String(order.id).padStart(10, '0')}`)!;
  t.equal(txn.trade_state, 'CLOSED');
  const late = await sandboxPost(h, '/__sandbox/pay/request-payment', payment);
  t.equal(late.status, 409, 'a closed order cannot be paid');
  t.equal((await h.services.mall.getItem(item.id))!.stock, 10);
});

t.test('cancelling an order the member has in fact paid settles it instead', async (t) => {
  const h = await commerceApp(t, { env: { WECHATPAY_JSAPI_NOTIFY_URL: 'http://127.0.0.1:9/pay/notify/jsapi' } });
  const item = await cashItem(h, { coupon: { title: '券', valueFen: 100, validDays: 7 } });
  const m = await h.member(500);
  const { order, payment } = (await h.order(m, { itemId: item.id })).json();
  await sandboxPost(h, '/__sandbox/pay/request-payment', payment);
  const res = await h.inject({ method: 'POST', url: `/api/mp/mall/orders/${order.id}/cancel`, headers: m.headers });
  t.equal(res.statusCode, 409);
  t.equal(res.json().details.reason, 'paid');
  t.equal((await orderState(h, order.id)).state, 'fulfilled');
  t.equal(await m.balance(), 300);
});

t.test('a payment that lands while a cancel waits for the order is not cancelled away (the cash is never kept without a refund)', { skip: !onPostgres && 'needs a second connection (PostgreSQL)' }, async (t) => {
  const h = await commerceApp(t);
  const item = await cashItem(h);
  const m = await h.member(500);
  const placed = await h.order(m, { itemId: item.id, address: ADDRESS });
  t.equal(placed.statusCode, 200, placed.body);
  const { order } = placed.json();
  // The payment's settlement (another request) holds the order and marks it paid; the cancel, decided on the unpaid
  // order, waits for it.
  const lock = await holdLocks(t, (h.database as { url?: string }).url!, `UPDATE mall_orders SET state = 'paid' WHERE id = $1`, [order.id]);
  const cancel = h.inject({ method: 'POST', url: `/api/mp/mall/orders/${order.id}/cancel`, headers: m.headers });
  t.ok((await lock.releaseWhen(1)) >= 1, 'the cancel waited for the order');
  const res = await cancel;
  t.equal(res.statusCode, 409, 'refused: the order is paid now');
  t.equal((await orderState(h, order.id)).state, 'paid', 'not cancelled');
  t.equal(await m.balance(), 300, 'the points stay spent, as the order stands');
  t.equal((await h.services.mall.getItem(item.id))!.stock, 9, 'and its stock taken');
});

t.test('an unpaid order past its deadline is closed and cancelled by the job', async (t) => {
  const clock = manualClock(new Date());
  const h = await commerceApp(t, { clock, env: { MALL_PAY_TTL_MIN: '15' } });
  const item = await cashItem(h, { coupon: { title: '券', valueFen: 100, validDays: 7 } });
  const m = await h.member(500);
  const { order } = (await h.order(m, { itemId: item.id })).json();
  t.equal(await h.services.mall.expireUnpaid(), 0, 'not yet');
  clock.advance(17 * 60_000);
  t.equal(await h.services.mall.expireUnpaid(), 1);
  t.equal((await orderState(h, order.id)).state, 'cancelled');
  t.equal(h.paySandbox.state.transactions.get(`MALL${String(order.id).padStart(10, '0')}`)!.trade_state, 'CLOSED');
  t.equal(await m.balance(), 500);
});

t.test('asking to pay again returns the same prepay_id while it lives; unpaid orders list as awaiting payment', async (t) => {
  const h = await commerceApp(t);
  const item = await cashItem(h, { coupon: { title: '券', valueFen: 100, validDays: 7 } });
  const m = await h.member(500);
  const { order, payment } = (await h.order(m, { itemId: item.id })).json();
  h.paySandbox.state.calls.length = 0;
  const again = await h.inject({ method: 'POST', url: `/api/mp/mall/orders/${order.id}/pay`, headers: m.headers });
  t.equal(again.statusCode, 200);
  t.equal(again.json().payment.package, payment.package);
  t.same(h.paySandbox.state.calls, [], 'no new prepay while the prepay_id is fresh');
  const list = (await h.inject({ method: 'GET', url: '/api/ops/mall/orders?state=awaiting_payment', headers: h.ops })).json();
  t.same(list.map((o: any) => o.id), [order.id]);
  t.equal(list[0].outTradeNo, `MALL${String(order.id).padStart(10, '0')}`);
  const other = await h.member(500);
  t.equal((await h.inject({ method: 'POST', url: `/api/mp/mall/orders/${order.id}/pay`, headers: other.headers })).statusCode, 404, "not someone else's order");
});
