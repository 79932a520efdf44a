import t from 'tap';
import { generateKeyPairSync } from 'node:crypto';
import Fastify from 'fastify';
import {
  createPayVerifier,
  decryptNotificationResource,
  readPayHeaders,
  signRequest,
} from '../src/wechat/pay/crypto.ts';
import { PaySandboxState, paySandboxPlugin } from '../src/wechat/sandbox/pay.ts';

const pem = () => generateKeyPairSync('rsa', {
  modulusLength: 2048,
  publicKeyEncoding: { type: 'spki', format: 'pem' },
  privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
});
const merchant = pem();
const platform = pem();
const intruder = pem();
const MCHID = '1900000001';
const PUB_KEY_ID = 'PUB_KEY_ID_0119000000012025000000000000000001';
const API_V3_KEY = 'a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb';
const PREFIX = '/pay';
const BILLS = '/v3/fund-app/mch-transfer/transfer-bills';

const verifier = createPayVerifier({ publicKeys: { [PUB_KEY_ID]: platform.publicKey } });

// A receiver for notifications: verifies like our webhook must, then decrypts.
const received: Array<{ envelope: any; resource: any }> = [];
let receiverStatus = 200;
const receiver = Fastify();
receiver.removeContentTypeParser('application/json');
receiver.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => done(null, String(body)));
receiver.post('/notify/transfer', async (req, reply) => {
  const raw = req.body as string;
  verifier.verify({ ...readPayHeaders(req.headers as Record<string, string>), body: raw });
  const envelope = JSON.parse(raw);
  const resource = JSON.parse(decryptNotificationResource(envelope.resource, API_V3_KEY));
  received.push({ envelope, resource });
  return reply.code(receiverStatus).send();
});
await receiver.listen({ port: 0, host: '127.0.0.1' });
t.teardown(() => receiver.close());
const addr = receiver.server.address();
const NOTIFY_URL = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}/notify/transfer`;

const state = new PaySandboxState({
  mchid: MCHID,
  merchantPublicKeyPem: merchant.publicKey,
  platformPrivateKeyPem: platform.privateKey,
  platformPublicKeyId: PUB_KEY_ID,
  apiV3Key: API_V3_KEY,
  allowHttpNotifyUrl: true,
});
const app = Fastify();
await app.register(paySandboxPlugin(state), { prefix: PREFIX });
await app.ready();
t.teardown(() => app.close());

/** A signed v3 call, signed over the production path (`/v3/…`, no prefix). */
async function call(method: 'GET' | 'POST', path: string, payload?: unknown, over: { privateKey?: string; mchid?: string; timestamp?: number } = {}) {
  const body = payload === undefined ? '' : JSON.stringify(payload);
  const { authorization } = signRequest({
    method,
    pathWithQuery: path,
    body,
    mchid: over.mchid ?? MCHID,
    serialNo: '3775B6A45ACD588826D15E583A95F5DD00000000',
    privateKey: over.privateKey ?? merchant.privateKey,
    ...(over.timestamp !== undefined ? { timestamp: over.timestamp } : {}),
  });
  const res = await app.inject({
    method,
    url: PREFIX + path,
    headers: { authorization, accept: 'application/json', ...(body ? { 'content-type': 'application/json' } : {}) },
    ...(body ? { payload: body } : {}),
  });
  return { status: res.statusCode, json: res.body ? JSON.parse(res.body) : undefined, res };
}

const verifies = (res: { headers: Record<string, unknown>; body: string }) =>
  verifier.verify({ ...readPayHeaders(res.headers as Record<string, string>), body: res.body });

let n = 0;
const transfer = (over: Record<string, unknown> = {}) => ({
  appid: 'wxd678efh567hg6787',
  out_bill_no: `PRIZE${Date.now()}${++n}`,
  transfer_scene_id: '1000',
  openid: 'o-MYE42l80oelYMDE34nYD456Xoy',
  transfer_amount: 888,
  transfer_remark: '扫码抽奖现金奖励',
  notify_url: NOTIFY_URL,
  transfer_scene_report_infos: [
    { info_type: '活动名称', info_content: '开盖扫码赢红包' },
    { info_type: '奖励说明', info_content: '现金红包8.88元' },
  ],
  ...over,
});

t.test('signed create → WAIT_USER_CONFIRM with package_info; the response is signed; idempotent by out_bill_no', async (t) => {
  const body = transfer();
  const a = await call('POST', BILLS, body);
  t.equal(a.status, 200);
  t.equal(a.json.state, 'WAIT_USER_CONFIRM');
  t.equal(a.json.out_bill_no, body.out_bill_no);
  t.match(a.json.transfer_bill_no, /^\d{20,}$/);
  t.match(a.json.create_time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+08:00$/);
  t.type(a.json.package_info, 'string');
  t.ok(a.json.package_info.length > 0);
  t.equal(a.res.headers['wechatpay-serial'], PUB_KEY_ID);
  t.ok(a.res.headers['request-id']);
  t.match(verifies(a.res), { serial: PUB_KEY_ID, mode: 'public_key' });

  // Same body with keys in another order: the same bill.
  const reordered = Object.fromEntries(Object.entries(body).reverse());
  const b = await call('POST', BILLS, reordered);
  t.equal(b.status, 200);
  t.equal(b.json.transfer_bill_no, a.json.transfer_bill_no);

  const c = await call('POST', BILLS, { ...body, transfer_amount: 999 });
  t.equal(c.status, 400);
  t.equal(c.json.code, 'INVALID_REQUEST');
  t.ok(verifies(c.res), 'error answers are signed too');
  const q = await call('GET', `${BILLS}/out-bill-no/${body.out_bill_no}`);
  t.equal(q.json.transfer_amount, 888, 'the original bill is unchanged');
});

t.test('unsigned, wrongly signed, wrong mchid or stale → 401 SIGN_ERROR', async (t) => {
  const body = JSON.stringify(transfer());
  const unsigned = await app.inject({ method: 'POST', url: PREFIX + BILLS, headers: { 'content-type': 'application/json' }, payload: body });
  t.equal(unsigned.statusCode, 401);
  t.equal(unsigned.json().code, 'SIGN_ERROR');
  t.same(signError(await call('POST', BILLS, transfer(), { privateKey: intruder.privateKey })), [401, 'SIGN_ERROR'], 'other key');
  t.same(signError(await call('POST', BILLS, transfer(), { mchid: '1900000002' })), [401, 'SIGN_ERROR'], 'other mchid');
  t.same(signError(await call('POST', BILLS, transfer(), { timestamp: Math.floor(Date.now() / 1000) - 301 })), [401, 'SIGN_ERROR'], 'stale timestamp');
  t.same(signError(await call('GET', `${BILLS}/out-bill-no/X1`, undefined, { privateKey: intruder.privateKey })), [401, 'SIGN_ERROR'], 'GET with other key');

  // Body changed after signing.
  const { authorization } = signRequest({ method: 'POST', pathWithQuery: BILLS, body, mchid: MCHID, serialNo: 'ABC', privateKey: merchant.privateKey });
  const tampered = await app.inject({
    method: 'POST',
    url: PREFIX + BILLS,
    headers: { authorization, 'content-type': 'application/json' },
    payload: body.replace('888', '88800'),
  });
  t.equal(tampered.statusCode, 401);
  t.equal(state.bills.size, 1, 'nothing was created by rejected requests');
});

const signError = (r: { status: number; json: any }) => [r.status, r.json?.code];

t.test('bad parameters → 400 PARAM_ERROR', async (t) => {
  const cases: Array<[string, Record<string, unknown>]> = [
    ['out_bill_no with a dash', { out_bill_no: 'PRIZE-1' }],
    ['out_bill_no too long', { out_bill_no: 'A'.repeat(33) }],
    ['no appid', { appid: undefined }],
    ['no openid', { openid: '' }],
    ['amount in yuan', { transfer_amount: 8.88 }],
    ['amount as string', { transfer_amount: '888' }],
    ['below 0.1 yuan', { transfer_amount: 9 }],
    ['remark too long', { transfer_remark: '奖'.repeat(33) }],
    ['no report infos', { transfer_scene_report_infos: [] }],
    ['report info without content', { transfer_scene_report_infos: [{ info_type: '活动名称' }] }],
    ['scene 1000 without 奖励说明', { transfer_scene_report_infos: [{ info_type: '活动名称', info_content: 'x' }] }],
    ['notify_url with query', { notify_url: `${NOTIFY_URL}?a=1` }],
    ['no scene id', { transfer_scene_id: undefined }],
  ];
  for (const [name, over] of cases) {
    const r = await call('POST', BILLS, JSON.parse(JSON.stringify(transfer(over))));
    t.equal(r.status, 400, name);
    t.equal(r.json.code, 'PARAM_ERROR', name);
  }
  const strict = new PaySandboxState({ ...state.opts, allowHttpNotifyUrl: false });
  const app2 = Fastify();
  await app2.register(paySandboxPlugin(strict));
  const body = JSON.stringify(transfer());
  const { authorization } = signRequest({ method: 'POST', pathWithQuery: BILLS, body, mchid: MCHID, serialNo: 'ABC', privateKey: merchant.privateKey });
  const r = await app2.inject({ method: 'POST', url: BILLS, headers: { authorization, 'content-type': 'application/json' }, payload: body });
  t.equal(r.statusCode, 400, 'http notify_url is refused by default');
  t.equal(r.json().code, 'PARAM_ERROR');
  await app2.close();
});

t.test('query and cancel', async (t) => {
  const missing = await call('GET', `${BILLS}/out-bill-no/NOSUCHBILL`);
  t.equal(missing.status, 404);
  t.equal(missing.json.code, 'RESOURCE_NOT_EXISTS');

  const body = transfer({ notify_url: undefined });
  delete (body as Record<string, unknown>).notify_url;
  const created = await call('POST', BILLS, body);
  const q = await call('GET', `${BILLS}/out-bill-no/${body.out_bill_no}`);
  t.equal(q.status, 200);
  t.match(q.json, { out_bill_no: body.out_bill_no, transfer_bill_no: created.json.transfer_bill_no, state: 'WAIT_USER_CONFIRM', transfer_amount: 888, openid: body.openid });
  t.ok(verifies(q.res));

  const c = await call('POST', `${BILLS}/out-bill-no/${body.out_bill_no}/cancel`);
  t.equal(c.status, 200);
  t.match(c.json, { out_bill_no: body.out_bill_no, transfer_bill_no: created.json.transfer_bill_no, state: 'CANCELLED' });
  t.match(c.json.update_time, /\+08:00$/);
  const again = await call('POST', `${BILLS}/out-bill-no/${body.out_bill_no}/cancel`);
  t.equal(again.status, 400);
  t.equal(again.json.code, 'INVALID_REQUEST');
  const notFound = await call('POST', `${BILLS}/out-bill-no/NOSUCHBILL/cancel`);
  t.equal(notFound.status, 404);
  t.equal((await call('GET', `${BILLS}/out-bill-no/${body.out_bill_no}`)).json.state, 'CANCELLED');
});

t.test('confirm → SUCCESS and a verified, decrypted MCHTRANSFER.BILL.FINISHED reaches the receiver', async (t) => {
  received.length = 0;
  const body = transfer();
  const created = await call('POST', BILLS, body);
  const r = await app.inject({ method: 'POST', url: `${PREFIX}/__sandbox/pay/bills/${body.out_bill_no}/confirm` });
  t.equal(r.statusCode, 200);
  t.equal(r.json().bill.state, 'SUCCESS');
  t.equal(r.json().notification.status, 200);
  t.equal(received.length, 1);
  const { envelope, resource } = received[0]!;
  t.match(envelope, {
    event_type: 'MCHTRANSFER.BILL.FINISHED',
    resource_type: 'encrypt-resource',
    summary: '商家转账单据终态通知',
    resource: { original_type: 'mch_payment', algorithm: 'AEAD_AES_256_GCM' },
  });
  t.match(resource, {
    out_bill_no: body.out_bill_no,
    transfer_bill_no: created.json.transfer_bill_no,
    state: 'SUCCESS',
    mch_id: MCHID,
    transfer_amount: 888,
    openid: body.openid,
    create_time: created.json.create_time,
  });
  t.notOk('fail_reason' in resource);
  t.equal((await call('GET', `${BILLS}/out-bill-no/${body.out_bill_no}`)).json.state, 'SUCCESS');

  // Terminal: no second confirm, no cancel.
  t.equal((await app.inject({ method: 'POST', url: `${PREFIX}/__sandbox/pay/bills/${body.out_bill_no}/confirm` })).statusCode, 409);
  t.equal((await call('POST', `${BILLS}/out-bill-no/${body.out_bill_no}/cancel`)).status, 400);

  // fail with a reason, a receiver answering 500 recorded as such, then resent.
  received.length = 0;
  receiverStatus = 500;
  const f = transfer();
  await call('POST', BILLS, f);
  const fr = await app.inject({ method: 'POST', url: `${PREFIX}/__sandbox/pay/bills/${f.out_bill_no}/fail`, headers: { 'content-type': 'application/json' }, payload: '{"fail_reason":"ACCOUNT_FROZEN"}' });
  t.equal(fr.json().bill.state, 'FAIL');
  t.equal(fr.json().notification.status, 500);
  t.match(received[0]?.resource, { state: 'FAIL', fail_reason: 'ACCOUNT_FROZEN' });
  receiverStatus = 200;
  const resent = await app.inject({ method: 'POST', url: `${PREFIX}/__sandbox/pay/notifications/${fr.json().notification.seq}/resend` });
  t.equal(resent.json().notification.status, 200);
  t.equal(received.length, 2);

  // expire → CANCELLED, notified; the API cancel notifies too (asynchronously).
  const e = transfer();
  await call('POST', BILLS, e);
  const er = await app.inject({ method: 'POST', url: `${PREFIX}/__sandbox/pay/bills/${e.out_bill_no}/expire` });
  t.equal(er.json().bill.state, 'CANCELLED');
  t.match(received.at(-1)?.resource, { out_bill_no: e.out_bill_no, state: 'CANCELLED' });
  const k = transfer();
  await call('POST', BILLS, k);
  await call('POST', `${BILLS}/out-bill-no/${k.out_bill_no}/cancel`);
  await state.idle();
  t.match(received.at(-1)?.resource, { out_bill_no: k.out_bill_no, state: 'CANCELLED' });

  const list = (await app.inject({ method: 'GET', url: `${PREFIX}/__sandbox/pay/notifications` })).json();
  t.ok(list.some((x: any) => x.out_bill_no === body.out_bill_no && x.status === 200));
  const bills = (await app.inject({ method: 'GET', url: `${PREFIX}/__sandbox/pay/bills` })).json();
  t.ok(bills.some((x: any) => x.out_bill_no === body.out_bill_no && x.state === 'SUCCESS'));
});

t.test('fail-next → 500 SYSTEM_ERROR once, then the same request succeeds', async (t) => {
  const inj = await app.inject({ method: 'POST', url: `${PREFIX}/__sandbox/pay/fail-next`, headers: { 'content-type': 'application/json' }, payload: '{"count":1,"status":500,"code":"SYSTEM_ERROR"}' });
  t.equal(inj.statusCode, 200);
  const body = transfer();
  const first = await call('POST', BILLS, body);
  t.equal(first.status, 500);
  t.equal(first.json.code, 'SYSTEM_ERROR');
  t.ok(verifies(first.res));
  const second = await call('POST', BILLS, body);
  t.equal(second.status, 200);
  t.equal(second.json.state, 'WAIT_USER_CONFIRM');

  await app.inject({ method: 'POST', url: `${PREFIX}/__sandbox/pay/fail-next`, headers: { 'content-type': 'application/json' }, payload: '{"count":1,"status":429,"code":"FREQUENCY_LIMITED"}' });
  const limited = await call('GET', `${BILLS}/out-bill-no/${body.out_bill_no}`);
  t.equal(limited.status, 429);
  t.equal(limited.json.code, 'FREQUENCY_LIMITED');
  t.equal((await call('GET', `${BILLS}/out-bill-no/${body.out_bill_no}`)).status, 200);
});
