/**
 * The pay client's JSAPI and refund calls against the pay sandbox over real HTTP: the official prepay request
 * (fixture) is accepted and answered in the official shape, prepay is idempotent by out_trade_no and body,
 * query / close / refund behave like WeChat Pay's (ORDERPAID, ORDER_CLOSED, 404 → null, NOT_ENOUGH), and the
 * sandbox checks the wx.requestPayment object's paySign like the WeChat client.
 */
import t from 'tap';
import { generateKeyPairSync } from 'node:crypto';
import Fastify from 'fastify';
import { createPayClient, PayApiError } from '../src/wechat/pay/client.ts';
import { buildRequestPaymentParams } from '../src/wechat/pay/crypto.ts';
import { PaySandboxState, paySandboxPlugin } from '../src/wechat/sandbox/pay.ts';
import { fixtureJson } from './helpers.ts';

const pem = () => generateKeyPairSync('rsa', { modulusLength: 2048, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });
const merchant = pem();
const platform = pem();
const PUB_KEY_ID = 'PUB_KEY_ID_0119000000012025000000000000000001';
const API_V3_KEY = 'a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb';
const official = fixtureJson('pay-jsapi-prepay-request.json');
const MCHID = official.mchid as string;

const state = new PaySandboxState({ mchid: MCHID, merchantPublicKeyPem: merchant.publicKey, platformPrivateKeyPem: platform.privateKey, platformPublicKeyId: PUB_KEY_ID, apiV3Key: API_V3_KEY });
const server = Fastify();
await server.register(paySandboxPlugin(state), { prefix: '/pay' });
const url = await server.listen({ port: 0, host: '127.0.0.1' });
t.teardown(() => server.close());

const client = createPayClient({
  baseUrl: `${url}/pay`, mchid: MCHID, serialNo: '5157F09EFDC096DE15EBE81A47057A7232F1B8E1', privateKey: merchant.privateKey,
  publicKeys: { [PUB_KEY_ID]: platform.publicKey }, apiV3Key: API_V3_KEY, appId: official.appid,
});

const { mchid: _m, ...body } = official;
// The sandbox wants a future time_expire and an https notify_url like the real API.
const prepay = (over: Record<string, unknown> = {}) => client.jsapiPrepay({ ...body, time_expire: '2099-01-01T00:00:00+08:00', ...over });

t.test('the official prepay request is accepted; the answer has the official shape; a repeat is the same prepay_id', async (t) => {
  const a = await prepay();
  t.same(Object.keys(a), Object.keys(fixtureJson('pay-jsapi-prepay-response.json')));
  t.match(a.prepay_id, /^wx\d{14}/);
  const b = await prepay();
  t.equal(b.prepay_id, a.prepay_id);
  await t.rejects(prepay({ amount: { total: 200 } }), { name: 'PayApiError', status: 400, code: 'INVALID_REQUEST' }, 'same number, other body');
  const q = await client.queryTransactionByOutTradeNo(official.out_trade_no);
  t.match(q, { out_trade_no: official.out_trade_no, trade_state: 'NOTPAY', payer: { openid: official.payer.openid }, amount: { total: 100 } });
  t.equal(await client.queryTransactionByOutTradeNo('NOSUCHORDER01'), null);
});

t.test('bad prepay input is refused with PARAM_ERROR', async (t) => {
  await t.rejects(prepay({ out_trade_no: 'x' }), { code: 'PARAM_ERROR' });
  await t.rejects(prepay({ out_trade_no: 'ABCDEF123', amount: { total: 0 } }), { code: 'PARAM_ERROR' });
  await t.rejects(prepay({ out_trade_no: 'ABCDEF124', notify_url: 'http://insecure.example/notify' }), { code: 'PARAM_ERROR' });
  await t.rejects(prepay({ out_trade_no: 'ABCDEF125', payer: { openid: '' } }), { code: 'PARAM_ERROR' });
  t.notOk(state.transactions.has('ABCDEF123'));
});

t.test('close an unpaid order; a paid one cannot be closed; refunds up to the total', async (t) => {
  await prepay({ out_trade_no: 'CLOSE000001' });
  await client.closeTransaction('CLOSE000001');
  t.equal((await client.queryTransactionByOutTradeNo('CLOSE000001'))!.trade_state, 'CLOSED');
  await t.rejects(prepay({ out_trade_no: 'CLOSE000001' }), { code: 'ORDER_CLOSED' });

  const { prepay_id } = await prepay({ out_trade_no: 'PAID0000001' });
  const pay = buildRequestPaymentParams(official.appid, prepay_id, merchant.privateKey);
  const res = await fetch(`${url}/pay/__sandbox/pay/request-payment`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(pay) });
  t.equal(res.status, 200);
  t.equal((await client.queryTransactionByOutTradeNo('PAID0000001'))!.trade_state, 'SUCCESS');
  const err = await client.closeTransaction('PAID0000001').catch((e) => e);
  t.ok(err instanceof PayApiError && err.code === 'ORDERPAID');
  await t.rejects(prepay({ out_trade_no: 'PAID0000001' }), { code: 'ORDERPAID' });

  const r = await client.createRefund({ out_trade_no: 'PAID0000001', out_refund_no: 'R0000001', amount: { refund: 60, total: 100, currency: 'CNY' } });
  t.match(r, { out_refund_no: 'R0000001', status: 'PROCESSING', amount: { refund: 60, total: 100 } });
  t.equal((await client.createRefund({ out_trade_no: 'PAID0000001', out_refund_no: 'R0000001', amount: { refund: 60, total: 100, currency: 'CNY' } })).refund_id, r.refund_id, 'idempotent by out_refund_no');
  await t.rejects(client.createRefund({ out_trade_no: 'PAID0000001', out_refund_no: 'R0000002', amount: { refund: 41, total: 100, currency: 'CNY' } }), { code: 'NOT_ENOUGH' });
  await t.rejects(client.createRefund({ out_trade_no: 'CLOSE000001', out_refund_no: 'R0000003', amount: { refund: 1, total: 100, currency: 'CNY' } }), { code: 'INVALID_REQUEST' });
  t.equal((await client.queryRefund('R0000001'))!.status, 'PROCESSING');
  t.equal(await client.queryRefund('R9999999'), null);
});

// The official paySign vectors are checked in pay-crypto.test.ts; here the sandbox's side of wx.requestPayment.
t.test('the wx.requestPayment object has the official shape and the sandbox refuses one signed for another appId', async (t) => {
  const { prepay_id } = await prepay({ out_trade_no: 'SIGN0000001' });
  const good = client.requestPaymentParams(official.appid, prepay_id);
  t.same(Object.keys(good).sort(), Object.keys(fixtureJson('pay-requestPayment-miniprogram.json')).sort());
  const wrongApp = buildRequestPaymentParams('wx0000000000000000', prepay_id, merchant.privateKey);
  const res = await fetch(`${url}/pay/__sandbox/pay/request-payment`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(wrongApp) });
  t.equal(res.status, 400, 'signed over another appId');
  t.equal((await client.queryTransactionByOutTradeNo('SIGN0000001'))!.trade_state, 'NOTPAY');
});
