/**
 * Prize fulfilment end to end, with jobs inserted as the draw inserts them: points, coupons, phone top-ups (the
 * top-up sandbox: success, failure → retry → failed, timeout → unknown → query, waiting for a phone), physical
 * prizes, crash recovery of a top-up, two instances at once, the ops API, the pay client and its config. Cash prizes:
 * fulfilment-cash.test.ts; ops cancels and slow batches: fulfilment-cash-ops.test.ts.
 */
import t from 'tap';
import { sql } from 'drizzle-orm';
import { fulfilments } from '../src/fulfilment/tables.ts';
import { campaignPrizes } from '../src/campaigns/tables.ts';
import { sandboxApiV3Key, sandboxPayKeys, SANDBOX_PAY } from '../src/wechat/sandbox/pay-keys.ts';
import { adminHeaders, count, onPostgres } from './helpers.ts';
import { setup } from './fulfilment-helpers.ts';

t.test('points › credited once, even when the job runs again', async (t) => {
  const s = await setup(t);
  const j = await s.job('points', 30, 'oPoints');
  t.equal(await s.f.runDue(), 1);
  t.match(await s.get(j.id), { state: 'succeeded', detail: { ledgerKey: j.sourceKey } });
  t.equal(await s.services.ledger.balance('oPoints'), 30);
  t.equal(await s.f.runDue(), 0, 'nothing left to do');
  // Forced to run again (a crash between credit and record would look like this): no second credit.
  await s.db.update(fulfilments).set({ state: 'pending' }).where(sql`id = ${j.id}`);
  await s.f.runDue();
  t.equal(await s.services.ledger.balance('oPoints'), 30);
  t.equal(await count(s.database, 'points_ledger', "openid = 'oPoints'"), 1);
  t.match((await s.f.events(j.id)).map((e) => e.toState), ['running', 'succeeded', 'running', 'succeeded']);
  t.match((await s.f.events(j.id)).at(-1)?.note, /already credited/);
});

t.test('coupon › issued once with a code and the prize\'s validity; the user is told the code', async (t) => {
  const s = await setup(t);
  const c = await s.campaign();
  const [prize] = await s.db.insert(campaignPrizes).values({ campaignId: c.id, name: '满50减10券', kind: 'coupon', value: 1000, coupon: { title: '满50减10', validDays: 30, storeIds: ['S001'] }, weight: 1 }).returning();
  await s.sim.text('oCoupon', '你好');
  const j = await s.job('coupon', 1000, 'oCoupon', { campaignId: c.id, prizeId: prize!.id });
  await s.f.runDue();
  const done = await s.get(j.id);
  t.equal(done.state, 'succeeded');
  const coupons = await s.database.query<{ coupon_code: string; expires_at: Date; value_fen: number; store_ids: string[] }>(sql`SELECT * FROM user_coupons WHERE openid = 'oCoupon'`);
  t.equal(coupons.length, 1);
  t.match(coupons[0]!.coupon_code, /^[2-9A-HJ-NP-Z]{12}$/);
  t.equal(coupons[0]!.value_fen, 1000);
  t.same(coupons[0]!.store_ids, ['S001']);
  t.equal(Math.round((new Date(coupons[0]!.expires_at).getTime() - s.clock.now().getTime()) / 86_400_000), 30);
  t.equal(done.providerRef, coupons[0]!.coupon_code);
  t.match((await s.csTexts('oCoupon'))[0], new RegExp(`满50减10.*${coupons[0]!.coupon_code}`));

  await s.db.update(fulfilments).set({ state: 'pending' }).where(sql`id = ${j.id}`);
  await s.f.runDue();
  t.equal(await count(s.database, 'user_coupons', "openid = 'oCoupon'"), 1, 'still one coupon');
  t.equal((await s.get(j.id)).providerRef, coupons[0]!.coupon_code, 'the same code');
  t.equal((await s.csTexts('oCoupon')).length, 1, 'told once');
});

t.test('topup › success: recharged once with the bound phone; the user is told', async (t) => {
  const s = await setup(t);
  await s.sim.text('oTop', '你好');
  await s.services.phones.bind('oTop', '13800138000');
  const j = await s.job('topup', 2000, 'oTop');
  await s.f.runDue();
  t.match(await s.get(j.id), { state: 'succeeded', attempts: 1 });
  const order = s.topupSandbox.state.orders.get(j.outNo)!;
  t.match(order, { phone: '13800138000', amountFen: 2000, status: 'success', charges: 1, requests: 1 });
  t.equal((await s.get(j.id)).providerRef, order.providerRef);
  t.match((await s.csTexts('oTop'))[0], /话费充值成功.*138\*\*\*\*8000.*20 元/);
});

t.test('topup › provider failures retry with backoff, then `failed` for ops; an unsupported face value fails at once', async (t) => {
  const s = await setup(t);
  await s.services.phones.bind('oTopFail', '13800138001');
  await s.topupNext({ outcome: 'fail', count: 5, reason: 'CARRIER_BUSY' });
  const j = await s.job('topup', 5000, 'oTopFail');
  await s.f.runDue();
  let row = await s.get(j.id);
  t.match(row, { state: 'pending', attempts: 1, lastError: 'provider: CARRIER_BUSY' });
  t.ok(row.nextAttemptAt.getTime() > s.clock.now().getTime(), 'later, not now');
  t.equal(await s.f.runDue(), 0, 'not due yet');
  for (let i = 2; i <= 5; i++) {
    s.clock.advance(3_600_000);
    await s.f.runDue();
  }
  row = await s.get(j.id);
  t.match(row, { state: 'failed', attempts: 5 });
  t.match(row.lastError, /CARRIER_BUSY/);
  t.match(s.topupSandbox.state.orders.get(j.outNo), { status: 'failed', requests: 5, charges: 0 });
  const failed = await s.f.list({ state: 'failed' });
  t.ok(failed.some((x) => x.id === j.id), 'visible to ops');

  const odd = await s.job('topup', 1500, 'oTopFail');
  await s.f.runDue();
  t.match(await s.get(odd.id), { state: 'failed', attempts: 0, lastError: /unsupported top-up face value 1500/ });
  t.notOk(s.topupSandbox.state.orders.has(odd.outNo), 'never sent to the provider');
});

t.test('topup › a timeout is `unknown`; the next step is a query; the order is charged once', async (t) => {
  const s = await setup(t);
  await s.services.phones.bind('oTopSlow', '13800138002');
  await s.topupNext({ outcome: 'timeout', delayMs: 900, then: 'success' });
  const j = await s.job('topup', 1000, 'oTopSlow');
  await s.f.runDue();
  t.match(await s.get(j.id), { state: 'unknown', attempts: 1, lastError: /recharge: .*did not answer/ });
  t.equal(s.topupSandbox.state.orders.get(j.outNo)?.status, 'pending', 'the provider is still working on it');

  // Asked while the provider still works: still unknown, nothing re-sent.
  s.clock.advance(31_000);
  await s.f.runDue();
  t.match(await s.get(j.id), { state: 'unknown', attempts: 1, lastError: 'provider still processing' });

  await s.topupSandbox.state.idle(); // the hang ends: the provider really charged
  s.clock.advance(31_000);
  await s.f.runDue();
  t.match(await s.get(j.id), { state: 'succeeded', attempts: 1 });
  t.match(s.topupSandbox.state.orders.get(j.outNo), { status: 'success', requests: 1, charges: 1 });

  // The same with a timeout that ends in failure: the query sees it failed and a new attempt (same outNo) follows.
  await s.topupNext({ outcome: 'timeout', delayMs: 600, then: 'fail' });
  const k = await s.job('topup', 1000, 'oTopSlow');
  await s.f.runDue();
  await s.topupSandbox.state.idle();
  s.clock.advance(31_000);
  await s.f.runDue();
  t.match(await s.get(k.id), { state: 'succeeded', attempts: 2 });
  t.match(s.topupSandbox.state.orders.get(k.outNo), { status: 'success', requests: 2, charges: 1 });
});

t.test('topup › no phone: waiting_phone, asked in chat; the reply binds it and the top-up resumes', async (t) => {
  const s = await setup(t);
  await s.sim.text('oNoPhone', '你好');
  const j = await s.job('topup', 3000, 'oNoPhone');
  await s.f.runDue();
  t.equal((await s.get(j.id)).state, 'waiting_phone');
  t.match((await s.csTexts('oNoPhone'))[0], /30 元话费.*回复.*11位/);
  t.match(await s.services.dialogs.get('oNoPhone', s.clock.now()), { flow: 'fulfilment.phone' });
  t.equal(await s.f.runDue(), 0, 'waiting jobs are not retried');

  const bad = await s.sim.text('oNoPhone', '1380013');
  t.match(bad.content, /手机号格式不正确/);
  t.equal((await s.get(j.id)).state, 'waiting_phone');

  const ok = await s.sim.text('oNoPhone', '+86 139-1234-5678');
  t.match(ok.content, /已收到手机号 139\*\*\*\*5678/);
  await s.f.idle();
  t.match(await s.get(j.id), { state: 'succeeded' });
  t.match(s.topupSandbox.state.orders.get(j.outNo), { phone: '13912345678', amountFen: 3000, charges: 1 });
  t.equal(await s.services.phones.get('oNoPhone'), '13912345678');
  t.equal(await s.services.dialogs.get('oNoPhone', s.clock.now()), null, 'the dialog is over');
  t.same((await s.f.events(j.id)).map((e) => e.toState), ['running', 'waiting_phone', 'pending', 'running', 'succeeded']);

  // phoneProvided from elsewhere (the mini program, later) resumes too.
  const k = await s.job('topup', 1000, 'oNoPhone2');
  await s.f.runDue();
  t.equal((await s.get(k.id)).state, 'waiting_phone');
  t.equal(await s.f.phoneProvided('oNoPhone2', '13700000000'), 1);
  await s.f.idle();
  t.equal((await s.get(k.id)).state, 'succeeded');
});

t.test('crash › the top-up went through but the process died: reclaimed, queried, charged once', async (t) => {
  const s = await setup(t);
  await s.services.phones.bind('oCrashTop', '13800138009');
  const doomed = s.instance({ afterProviderCall: () => true });
  const j = await s.job('topup', 10000, 'oCrashTop');
  await doomed.runDue();
  t.match(await s.get(j.id), { state: 'running', attempts: 1 });
  t.equal(s.topupSandbox.state.orders.get(j.outNo)?.status, 'success');
  s.clock.advance(61_000);
  await s.instance().runDue();
  t.match(await s.get(j.id), { state: 'succeeded', attempts: 1 });
  t.match(s.topupSandbox.state.orders.get(j.outNo), { requests: 1, charges: 1 });
});

t.test('concurrency › two instances ticking at once do each job once', async (t) => {
  // A provider timeout long enough that a loaded machine does not turn a slow answer into `unknown` (and a query).
  const s = await setup(t, { TOPUP_TIMEOUT_MS: '10000' });
  const ids: number[] = [];
  for (let i = 0; i < 12; i++) {
    await s.services.phones.bind(`oPar${i}`, `1380000${String(1000 + i)}`);
    ids.push((await s.job('topup', 1000, `oPar${i}`)).id);
  }
  const a = s.instance();
  const b = s.instance();
  const [na, nb] = await Promise.all([a.runDue(5), b.runDue(5)]);
  await Promise.all([a.runDue(), b.runDue()]);
  t.ok(na + nb <= 10);
  for (const id of ids) t.equal((await s.get(id)).state, 'succeeded');
  t.ok([...s.topupSandbox.state.orders.values()].every((o) => o.requests === 1 && o.charges === 1), 'one request per order');
  if (!onPostgres) t.comment('PGlite serialises; the SKIP LOCKED path is exercised on PostgreSQL');
});

t.test('physical › held for ops, completed by hand', async (t) => {
  const s = await setup(t);
  const j = await s.job('physical', 9900, 'oPhys');
  await s.f.runDue();
  t.match(await s.get(j.id), { state: 'held', detail: { manual: true } });
  t.match(await s.f.complete(j.id), { state: 'succeeded' });
});

t.test('ops API › list, detail with events, retry, cancel; writes audited; roles enforced', async (t) => {
  const s = await setup(t);
  const headers = await adminHeaders(s.app);
  const c = await s.campaign();
  await s.topupNext({ outcome: 'fail', count: 1, reason: 'INVALID_NUMBER' });
  await s.services.phones.bind('oOps', '13800138088');
  const failed = await s.job('topup', 2000, 'oOps', { campaignId: c.id });
  await s.db.update(fulfilments).set({ detail: { attemptBase: -4 } }).where(sql`id = ${failed.id}`); // budget already used up
  const waiting = await s.job('topup', 2000, 'oOpsNoPhone', { campaignId: c.id });
  await s.f.runDue();
  t.equal((await s.get(failed.id)).state, 'failed');
  t.equal((await s.get(waiting.id)).state, 'waiting_phone');

  t.equal((await s.app.inject({ method: 'GET', url: '/api/ops/fulfilments' })).statusCode, 401);
  const list = await s.app.inject({ method: 'GET', url: `/api/ops/fulfilments?state=failed&campaignId=${c.id}`, headers });
  t.equal(list.statusCode, 200);
  t.same(list.json().map((x: any) => x.id), [failed.id]);
  t.notOk('packageInfo' in list.json()[0]);
  const detail = await s.app.inject({ method: 'GET', url: `/api/ops/fulfilments/${failed.id}`, headers });
  t.match(detail.json(), { id: failed.id, state: 'failed', kind: 'topup', events: [{ toState: 'running' }, { toState: 'failed' }] });
  t.equal((await s.app.inject({ method: 'GET', url: '/api/ops/fulfilments/999999', headers })).statusCode, 404);

  const retried = await s.app.inject({ method: 'POST', url: `/api/ops/fulfilments/${failed.id}/retry`, headers, payload: {} });
  t.equal(retried.statusCode, 200);
  t.equal(retried.json().state, 'pending');
  await s.f.idle();
  t.match(await s.get(failed.id), { state: 'succeeded', attempts: 2 });
  t.equal((await s.app.inject({ method: 'POST', url: `/api/ops/fulfilments/${failed.id}/retry`, headers, payload: {} })).statusCode, 409, 'succeeded jobs are final');

  const cancelled = await s.app.inject({ method: 'POST', url: `/api/ops/fulfilments/${waiting.id}/cancel`, headers, payload: { note: '用户放弃' } });
  t.equal(cancelled.statusCode, 200);
  t.equal(cancelled.json().state, 'cancelled');
  t.match((await s.f.events(waiting.id)).at(-1)?.note, /用户放弃/);
  t.equal(await count(s.database, 'audit_log', "action IN ('fulfilment.retry', 'fulfilment.cancel')"), 2);

  // An unconfirmed bill cancelled by ops: cancelled at WeChat Pay, final (not reclaimable).
  const cash = await s.job('cash', 1000, 'oOpsCash');
  await s.f.runDue();
  const cc = await s.app.inject({ method: 'POST', url: `/api/ops/fulfilments/${cash.id}/cancel`, headers, payload: {} });
  t.equal(cc.statusCode, 200);
  t.match(cc.json(), { state: 'cancelled', detail: { opsCancel: true, reclaimable: false } });
  t.equal(s.paySandbox.state.bills.get(cash.outNo)?.state, 'CANCELLED');
});

t.test('pay client › verified answers; a wrong platform key is an unknown outcome, never a refusal', async (t) => {
  const s = await setup(t);
  const { createPayClient, PayApiError, PayUnknownError } = await import('../src/wechat/pay/client.ts');
  const keys = sandboxPayKeys();
  const base = { baseUrl: s.paySandbox.url, mchid: SANDBOX_PAY.mchid, serialNo: SANDBOX_PAY.merchantSerial, privateKey: keys.merchantPrivateKeyPem, apiV3Key: sandboxApiV3Key(s.config.wechat.appId), appId: s.config.wechatPay.appId };
  const good = createPayClient({ ...base, publicKeys: { [SANDBOX_PAY.publicKeyId]: keys.platformPublicKeyPem } });
  const request = { out_bill_no: 'PCLIENT1', transfer_scene_id: '1000', openid: 'oClient', transfer_amount: 100, transfer_remark: '测试', transfer_scene_report_infos: [{ info_type: '活动名称', info_content: 'x' }, { info_type: '奖励说明', info_content: 'y' }] };
  t.equal(await good.queryTransferBillByOutNo('PCLIENT1'), null, '404 → null');
  t.match(await good.createTransferBill(request), { out_bill_no: 'PCLIENT1', state: 'WAIT_USER_CONFIRM', package_info: String });
  t.match(await good.queryTransferBillByOutNo('PCLIENT1'), { state: 'WAIT_USER_CONFIRM', transfer_amount: 100 });
  const refused = await good.createTransferBill({ ...request, transfer_amount: 200 }).catch((e: unknown) => e);
  t.ok(refused instanceof PayApiError);
  t.match(refused, { status: 400, code: 'INVALID_REQUEST' });
  t.match(await good.cancelTransferBill('PCLIENT1'), { state: 'CANCELLED' });

  // The answer is signed by a key we do not trust: the call may have worked, so it is "unknown".
  const wrong = createPayClient({ ...base, publicKeys: { [SANDBOX_PAY.publicKeyId]: keys.merchantPublicKeyPem } });
  const unknown = await wrong.createTransferBill({ ...request, out_bill_no: 'PCLIENT2' }).catch((e: unknown) => e);
  t.ok(unknown instanceof PayUnknownError);
  t.equal((unknown as InstanceType<typeof PayUnknownError>).reason, 'verify_failed');
  t.equal(s.paySandbox.state.bills.get('PCLIENT2')?.state, 'WAIT_USER_CONFIRM', '…and indeed the bill exists');
  // A 5xx and a timeout are unknown too.
  await s.payControl('/__sandbox/pay/fail-next', { count: 1, status: 500 });
  t.match(await good.queryTransferBillByOutNo('PCLIENT2').catch((e: unknown) => e), { name: 'PayUnknownError', reason: 'server_error' });
  const slow = createPayClient({ ...base, publicKeys: { [SANDBOX_PAY.publicKeyId]: keys.platformPublicKeyPem }, timeoutMs: 100, fetch: ((url: string, init: RequestInit) => new Promise((_r, reject) => init.signal?.addEventListener('abort', () => reject(Object.assign(new Error('t'), { name: 'TimeoutError' }))))) as typeof fetch });
  t.match(await slow.queryTransferBillByOutNo('X').catch((e: unknown) => e), { name: 'PayUnknownError', reason: 'timeout' });
});

t.test('config › WeChat Pay is optional outside the sandbox, complete when enabled', async (t) => {
  const { loadConfig, ConfigError } = await import('../src/config.ts');
  const { writeFileSync, mkdtempSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const path = await import('node:path');
  const prod = { WECHAT_APPID: 'wx1234567890abcdef', WECHAT_APPSECRET: '0123456789abcdef0123456789abcdef', WECHAT_TOKEN: 'prodtoken123', OPS_ADMIN_PASSWORD: 'a-strong-admin-password', PII_KEY: Buffer.alloc(32, 7).toString('base64'), CODE_KEY: Buffer.alloc(32, 8).toString('base64') };
  t.match(loadConfig(prod).wechatPay, { mode: 'off', mchid: undefined });
  t.equal(loadConfig(prod).topup.apiBase, undefined);
  t.match(loadConfig({}).wechatPay, { mode: 'sandbox', mchid: SANDBOX_PAY.mchid, publicKeyId: SANDBOX_PAY.publicKeyId, transfer: { sceneId: '1000', remark: '扫码抽奖现金奖励' } });

  const dir = mkdtempSync(path.join(tmpdir(), 'paycfg-'));
  const keys = sandboxPayKeys();
  writeFileSync(path.join(dir, 'key.pem'), keys.merchantPrivateKeyPem);
  writeFileSync(path.join(dir, 'pub.pem'), keys.platformPublicKeyPem);
  const live = { ...prod, WECHATPAY_MCHID: '1900000009', WECHATPAY_SERIAL: 'ABCDEF0123456789', WECHATPAY_PRIVATE_KEY_PATH: path.join(dir, 'key.pem'), WECHATPAY_PUBLIC_KEY_ID: 'PUB_KEY_ID_0123', WECHATPAY_PUBLIC_KEY_PATH: path.join(dir, 'pub.pem'), WECHATPAY_APIV3_KEY: 'a'.repeat(32), WECHATPAY_NOTIFY_URL: 'https://wx.example.com/pay/notify/transfer' };
  const c = loadConfig(live);
  t.match(c.wechatPay, { mode: 'live', mchid: '1900000009', apiBase: 'https://api.mch.weixin.qq.com', publicKeyId: 'PUB_KEY_ID_0123' });
  t.match(c.wechatPay.privateKeyPem, /BEGIN PRIVATE KEY/);
  const missing = (drop: string, over: Record<string, string> = {}) => {
    const env: Record<string, string> = { ...live, ...over };
    delete env[drop];
    try {
      loadConfig(env);
      return undefined;
    } catch (e) {
      return e instanceof ConfigError ? e.variable : String(e);
    }
  };
  for (const v of ['WECHATPAY_SERIAL', 'WECHATPAY_PRIVATE_KEY_PATH', 'WECHATPAY_APIV3_KEY', 'WECHATPAY_NOTIFY_URL', 'WECHATPAY_PUBLIC_KEY_PATH']) t.equal(missing(v), v, `${v} required`);
  t.equal(missing('', { WECHATPAY_NOTIFY_URL: 'http://wx.example.com/n' }), 'WECHATPAY_NOTIFY_URL', 'https only');
  t.equal(missing('', { WECHATPAY_PRIVATE_KEY_PATH: path.join(dir, 'nope.pem') }), 'WECHATPAY_PRIVATE_KEY_PATH', 'unreadable');
  t.equal(missing('', { WECHATPAY_PRIVATE_KEY_PATH: path.join(dir, 'pub.pem') }), 'WECHATPAY_PRIVATE_KEY_PATH', 'not a private key');
  t.equal(missing('', { WECHATPAY_APIV3_KEY: 'short' }), 'WECHATPAY_APIV3_KEY');
  t.equal(missing('', { TRANSFER_REMARK: '奖'.repeat(33) }), 'TRANSFER_REMARK', 'remark ≤ 32 characters');
});
