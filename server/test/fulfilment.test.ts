/**
 * Prize fulfilment end to end, with jobs inserted as the draw inserts them: points, coupons, phone top-ups (the
 * top-up sandbox: success, failure → retry → failed, timeout → unknown → query, waiting for a phone), cash through
 * the WeChat Pay sandbox (WAIT_USER_CONFIRM → mini program → signed + encrypted notification → succeeded; forged,
 * tampered and replayed notifications; expiry → cancel → reclaim with a new out_bill_no), crash recovery (a provider
 * call that succeeded before the process "died"), the mini program endpoints and the ops API.
 */
import t from 'tap';
import { sql } from 'drizzle-orm';
import { manualClock } from '../src/platform/clock.ts';
import { fulfilments } from '../src/fulfilment/tables.ts';
import { campaignPrizes, campaigns } from '../src/campaigns/tables.ts';
import { createFulfilmentService, type FulfilmentFaults } from '../src/fulfilment/service.ts';
import { createPayFromConfig, createTopupFromConfig, fulfilmentConfigFrom } from '../src/fulfilment/wiring.ts';
import { createNonce, encryptNotificationResource, signRsaSha256, unixSeconds } from '../src/wechat/pay/crypto.ts';
import { SANDBOX_PAY, sandboxApiV3Key, sandboxPayKeys } from '../src/wechat/sandbox/pay-keys.ts';
import { adminHeaders, buildTestApp, count, onPostgres } from './helpers.ts';

type Kind = 'points' | 'coupon' | 'topup' | 'cash' | 'physical';
let drawSeq = 0;

async function setup(t: Parameters<typeof buildTestApp>[0], env: Record<string, string> = {}) {
  const clock = manualClock(new Date());
  const ctx = await buildTestApp(t, { clock, env: { TOPUP_TIMEOUT_MS: '300', ...env } });
  const f = ctx.services.fulfilment;
  const { db } = ctx.database;

  /** A job exactly as the draw inserts it. */
  async function job(kind: Kind, amount: number, openid: string, extra: { campaignId?: number; prizeId?: number } = {}) {
    const drawId = 1000 + ++drawSeq;
    const now = clock.now();
    const [row] = await db.insert(fulfilments).values({
      sourceKey: `draw:${drawId}`, drawId, campaignId: extra.campaignId ?? null, openid, prizeId: extra.prizeId ?? null, kind, amount,
      state: 'pending', nextAttemptAt: now, outNo: `D${drawId}`, createdAt: now, updatedAt: now,
    }).returning();
    return row!;
  }

  async function campaign(over: Partial<typeof campaigns.$inferInsert> = {}) {
    const now = clock.now();
    const [c] = await db.insert(campaigns).values({
      name: '开盖扫码赢红包', status: 'live', startsAt: new Date(now.getTime() - 86_400_000), endsAt: new Date(now.getTime() + 30 * 86_400_000), ...over,
    }).returning();
    return c!;
  }

  const get = async (id: number) => (await f.get(id))!;
  const csTexts = async (openid: string): Promise<string[]> => {
    const calls = (await (await fetch(`${ctx.sandbox.url}/__sandbox/calls?path=/cgi-bin/message/custom/send&touser=${openid}`)).json()) as Array<{ errcode: number; body: any }>;
    return calls.filter((c) => c.errcode === 0).map((c) => c.body.text?.content ?? '');
  };
  const payControl = async (path: string, body?: unknown) => {
    const res = await fetch(`${ctx.paySandbox.url}${path}`, body === undefined ? { method: 'POST' } : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return { status: res.status, json: (await res.json()) as any };
  };
  const topupNext = async (body: Record<string, unknown>) => {
    const res = await fetch(`${ctx.topupSandbox.url}/__sandbox/topup/next`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    if (res.status !== 200) throw new Error(await res.text());
  };
  /** A second service on the same database and providers (another instance, or this one after a restart). */
  const instance = (faults?: FulfilmentFaults) => createFulfilmentService({
    database: ctx.database, clock, log: ctx.app.log, ledger: ctx.services.ledger, phones: ctx.services.phones, messaging: ctx.services.messaging,
    dialogs: ctx.services.dialogs, pay: createPayFromConfig(ctx.config), topup: createTopupFromConfig(ctx.config), config: fulfilmentConfigFrom(ctx.config),
    ...(faults ? { faults } : {}),
  });
  return { ...ctx, clock, f, db, job, campaign, get, csTexts, payControl, topupNext, instance };
}

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

t.test('cash › WAIT_USER_CONFIRM → link in chat → mini program → confirm → notification → succeeded; replays change nothing', async (t) => {
  const s = await setup(t);
  const c = await s.campaign({ cashConfirmHours: 24 });
  await s.sim.text('oCash', '你好');
  const j = await s.job('cash', 888, 'oCash', { campaignId: c.id });
  await s.f.runDue();
  const waiting = await s.get(j.id);
  const bill = s.paySandbox.state.bills.get(j.outNo)!;
  t.match(bill, { state: 'WAIT_USER_CONFIRM', openid: 'oCash', transfer_amount: 888, transfer_scene_id: '1000', appid: s.config.wechatPay.appId });
  t.equal(bill.notify_url, s.config.wechatPay.notifyUrl);
  t.match(waiting, { state: 'waiting_user', attempts: 1, packageInfo: bill.package_info, providerRef: bill.transfer_bill_no });
  t.equal(Math.round((waiting.expiresAt!.getTime() - s.clock.now().getTime()) / 3_600_000), 24);
  const sent = JSON.parse(bill.requestKey);
  t.same(sent.transfer_scene_report_infos, [{ info_type: '活动名称', info_content: '开盖扫码赢红包' }, { info_type: '奖励说明', info_content: '现金红包8.88元' }]);
  t.notOk('user_name' in sent, 'no user_name below 2000 yuan');

  // The chat message links to the mini program page with the job id and its token.
  const token = s.f.linkToken(j.id, 'oCash');
  const [msg] = await s.csTexts('oCash');
  t.match(msg, /现金红包 8\.88 元/);
  t.match(msg, `data-miniprogram-appid="${s.config.miniprogram.appId}"`);
  t.match(msg, `data-miniprogram-path="pages/prize/confirm?f=${j.id}&t=${token}"`);

  // Mini program: the transfer parameters with the right token only.
  const good = await s.app.inject({ method: 'GET', url: `/api/mp/transfers/${j.id}?t=${token}` });
  t.equal(good.statusCode, 200);
  t.same(good.json(), {
    id: j.id, state: 'waiting_user', amountFen: 888, expiresAt: waiting.expiresAt!.toISOString(),
    mchId: SANDBOX_PAY.mchid, appId: s.config.wechatPay.appId, package: bill.package_info, openId: 'oCash',
  });
  const badToken = `${token.slice(0, -1)}${token.endsWith('A') ? 'B' : 'A'}`;
  for (const url of [`/api/mp/transfers/${j.id}?t=${badToken}`, `/api/mp/transfers/${j.id}?t=x`, `/api/mp/transfers/999999?t=${token}`]) {
    const r = await s.app.inject({ method: 'GET', url });
    t.equal(r.statusCode, 403, url);
    t.notMatch(r.body, /package|PUB_KEY/);
  }
  t.equal((await s.app.inject({ method: 'GET', url: `/api/mp/transfers/${j.id}` })).statusCode, 400, 'no token at all');
  t.equal((await s.app.inject({ method: 'POST', url: `/api/mp/transfers/${j.id}/confirmed?t=${badToken}` })).statusCode, 403);

  // The user confirms in WeChat: WeChat Pay notifies (signed, encrypted), through our /pay/notify/transfer.
  const confirmed = await s.payControl(`/__sandbox/pay/bills/${j.outNo}/confirm`);
  t.equal(confirmed.json.notification.status, 200, 'our endpoint accepted it');
  const done = await s.get(j.id);
  t.match(done, { state: 'succeeded', packageInfo: null, detail: { billState: 'SUCCESS' } });
  t.match((await s.csTexts('oCash'))[1], /8\.88 元已转入您的微信零钱/);
  const events = await s.f.events(j.id);
  t.match(events.at(-1), { fromState: 'waiting_user', toState: 'succeeded', note: 'notification: SUCCESS' });

  // Replayed (WeChat Pay resends with fresh signature headers): 200, nothing changes.
  const seq = confirmed.json.notification.seq;
  const again = await s.payControl(`/__sandbox/pay/notifications/${seq}/resend`);
  t.equal(again.json.notification.status, 200);
  t.equal((await s.f.events(j.id)).length, events.length, 'no new event');
  t.equal((await s.csTexts('oCash')).length, 2, 'no second message');
  const after = await s.app.inject({ method: 'GET', url: `/api/mp/transfers/${j.id}?t=${token}` });
  t.same(after.json(), { id: j.id, state: 'succeeded', amountFen: 888, expiresAt: waiting.expiresAt!.toISOString() }, 'no transfer parameters once done');
});

/** WeChat Pay's transfer notifications about `j`'s bill, built and signed as WeChat Pay does (or tampered with). */
function notifications(s: { app: { inject: (o: any) => Promise<any> }; config: { wechat: { appId: string } } }, j: { outNo: string; openid: string; amount: number },
  bill: { transfer_bill_no: string; create_time: string; update_time: string }) {
  const apiV3Key = sandboxApiV3Key(s.config.wechat.appId);
  const keys = sandboxPayKeys();
  const envelope = (state: string, over: Record<string, unknown> = {}) => {
    const resource = { out_bill_no: j.outNo, transfer_bill_no: bill.transfer_bill_no, state, mch_id: SANDBOX_PAY.mchid, transfer_amount: j.amount, openid: j.openid, create_time: bill.create_time, update_time: bill.update_time, ...over };
    return { id: 'EV-forge', create_time: bill.create_time, resource_type: 'encrypt-resource', event_type: 'MCHTRANSFER.BILL.FINISHED', summary: '商家转账单据终态通知',
      resource: { original_type: 'mch_payment', ...encryptNotificationResource(JSON.stringify(resource), apiV3Key, { associatedData: 'mch_payment' }) } };
  };
  const headers = (body: string, over: { key?: string; ts?: string; serial?: string } = {}) => {
    const ts = over.ts ?? unixSeconds();
    const nonce = createNonce();
    return {
      'content-type': 'application/json',
      'wechatpay-timestamp': ts,
      'wechatpay-nonce': nonce,
      'wechatpay-serial': over.serial ?? SANDBOX_PAY.publicKeyId,
      'wechatpay-signature': signRsaSha256(`${ts}\n${nonce}\n${body}\n`, over.key ?? keys.platformPrivateKeyPem),
    };
  };
  const post = (body: string, h: Record<string, string>) => s.app.inject({ method: 'POST', url: '/pay/notify/transfer', headers: h, payload: body });
  return { envelope, headers, post };
}

t.test('cash › forged, tampered and stale notifications are refused and change nothing', async (t) => {
  const s = await setup(t);
  const j = await s.job('cash', 500, 'oForge');
  await s.f.runDue();
  const bill = s.paySandbox.state.bills.get(j.outNo)!;
  const before = await s.get(j.id);
  t.equal(before.state, 'waiting_user');
  const apiV3Key = sandboxApiV3Key(s.config.wechat.appId);
  const keys = sandboxPayKeys();
  const { envelope, headers, post } = notifications(s, j, bill);

  // One byte of ciphertext flipped, then correctly signed: the signature passes, the GCM tag does not.
  const tampered = envelope('SUCCESS');
  const raw = Buffer.from(tampered.resource.ciphertext, 'base64');
  raw[3]! ^= 0x01;
  tampered.resource.ciphertext = raw.toString('base64');
  const tamperedBody = JSON.stringify(tampered);
  const r1 = await post(tamperedBody, headers(tamperedBody));
  t.equal(r1.statusCode, 400);
  t.same(r1.json(), { code: 'FAIL', message: '验签或解密失败' });

  // Signed with another key (ours, not WeChat Pay's).
  const forged = JSON.stringify(envelope('SUCCESS'));
  t.equal((await post(forged, headers(forged, { key: keys.merchantPrivateKeyPem }))).statusCode, 401, 'bad signature');
  // Body changed after signing.
  const signedFor = headers(forged);
  t.equal((await post(forged.replace('MCHTRANSFER', 'MCHTRANSFEr'), signedFor)).statusCode, 401, 'body changed after signing');
  // Stale timestamp, unknown serial, no headers.
  t.equal((await post(forged, headers(forged, { ts: String(Math.floor(Date.now() / 1000) - 600) }))).statusCode, 401, 'stale');
  t.equal((await post(forged, headers(forged, { serial: 'PUB_KEY_ID_0000OTHER' }))).statusCode, 401, 'unknown serial');
  t.equal((await post(forged, { 'content-type': 'application/json' })).statusCode, 401, 'unsigned');

  const still = await s.get(j.id);
  t.equal(still.state, 'waiting_user', 'unchanged');
  t.equal(still.updatedAt.getTime(), before.updatedAt.getTime());
  t.equal((await s.f.events(j.id)).length, 2);

  // An authentic notification about a bill we have no job for: acknowledged, ignored.
  const other = envelope('SUCCESS');
  other.resource = { original_type: 'mch_payment', ...encryptNotificationResource(JSON.stringify({ out_bill_no: 'DNOSUCH', state: 'SUCCESS', mch_id: SANDBOX_PAY.mchid, transfer_amount: 1, openid: 'x' }), apiV3Key, { associatedData: 'mch_payment' }) };
  const otherBody = JSON.stringify(other);
  t.equal((await post(otherBody, headers(otherBody))).statusCode, 200);
});

t.test('cash › a bill held for a mismatching notification: an ops cancel cancels it at WeChat Pay first', async (t) => {
  const s = await setup(t);
  const j = await s.job('cash', 500, 'oOdd');
  await s.f.runDue();
  const bill = s.paySandbox.state.bills.get(j.outNo)!;
  t.equal((await s.get(j.id)).state, 'waiting_user');
  // Authentic, but about another amount than the job's: the job is held for a look.
  const { envelope, headers, post } = notifications(s, j, bill);
  const body = JSON.stringify(envelope('SUCCESS', { transfer_amount: 50_000 }));
  t.equal((await post(body, headers(body))).statusCode, 200);
  t.equal((await s.get(j.id)).state, 'held');
  t.equal(bill.state, 'WAIT_USER_CONFIRM', 'the bill is still open at WeChat Pay: the user could still confirm it');

  const after = await s.f.cancel(j.id);
  t.equal(after.state, 'cancelled');
  t.equal(s.paySandbox.state.bills.get(j.outNo)!.state, 'CANCELLED', 'cancelled at WeChat Pay, not only here');
});

t.test('cash › a 5xx on create is `unknown`; the retry queries first and reuses the out_bill_no', async (t) => {
  const s = await setup(t);
  await s.payControl('/__sandbox/pay/fail-next', { count: 1, status: 500, code: 'SYSTEM_ERROR' });
  const j = await s.job('cash', 300, 'oCash5xx');
  await s.f.runDue();
  t.match(await s.get(j.id), { state: 'unknown', attempts: 1, lastError: /create: .*500 SYSTEM_ERROR/ });
  s.clock.advance(31_000);
  await s.f.runDue();
  t.match(await s.get(j.id), { state: 'waiting_user', attempts: 2, outNo: j.outNo });
  t.equal(s.paySandbox.state.bills.size, 1);
  t.ok((await s.f.events(j.id)).some((e) => e.toState === 'unknown'));
});

t.test('cash › the mini program "confirmed" call queries the bill now', async (t) => {
  const s = await setup(t);
  const j = await s.job('cash', 100, 'oCashMp');
  await s.f.runDue();
  const token = s.f.linkToken(j.id, 'oCashMp');
  const still = await s.app.inject({ method: 'POST', url: `/api/mp/transfers/${j.id}/confirmed?t=${token}` });
  t.equal(still.json().state, 'waiting_user', 'not confirmed yet: unchanged, params still there');
  t.type(still.json().package, 'string');
  // The bill succeeded but the notification is lost.
  s.paySandbox.state.bills.get(j.outNo)!.state = 'SUCCESS';
  const res = await s.app.inject({ method: 'POST', url: `/api/mp/transfers/${j.id}/confirmed?t=${token}` });
  t.equal(res.statusCode, 200);
  t.match(res.json(), { id: j.id, state: 'succeeded' });
  t.notOk('package' in res.json());
  t.match((await s.f.events(j.id)).at(-1), { toState: 'succeeded', note: 'mini program: SUCCESS' });
});

t.test('cash › unconfirmed past the deadline: cancelled at WeChat Pay; "领奖" re-issues under a NEW out_bill_no only after CANCELLED', async (t) => {
  const s = await setup(t);
  const c = await s.campaign({ cashConfirmHours: 2, unclaimedCash: 'reclaim' });
  await s.sim.text('oExpire', '你好');
  const j = await s.job('cash', 666, 'oExpire', { campaignId: c.id });
  await s.f.runDue();
  t.equal((await s.get(j.id)).state, 'waiting_user');
  t.equal(await s.f.expireUnconfirmed(), 0, 'not yet');

  s.clock.advance(2 * 3_600_000 + 1000);
  t.equal(await s.f.expireUnconfirmed(), 1);
  const cancelled = await s.get(j.id);
  t.match(cancelled, { state: 'cancelled', outNo: j.outNo, packageInfo: null, detail: { billState: 'CANCELLED', reclaimable: true } });
  t.equal(s.paySandbox.state.bills.get(j.outNo)?.state, 'CANCELLED', 'cancelled at WeChat Pay');
  t.match((await s.csTexts('oExpire')).at(-1), /已被撤回.*回复“领奖”/);
  await s.paySandbox.state.idle(); // the CANCELLED notification (answered 503 while we were busy, or 200 after)
  t.equal((await s.get(j.id)).state, 'cancelled');
  // WeChat Pay retries it later: acknowledged, nothing changes, no second message.
  const eventsBefore = (await s.f.events(j.id)).length;
  const messagesBefore = (await s.csTexts('oExpire')).length;
  const cancelNote = s.paySandbox.state.notifications.find((n) => n.out_bill_no === j.outNo && n.state === 'CANCELLED')!;
  t.equal((await s.payControl(`/__sandbox/pay/notifications/${cancelNote.seq}/resend`)).json.notification.status, 200);
  t.equal((await s.f.events(j.id)).length, eventsBefore);
  t.equal((await s.csTexts('oExpire')).length, messagesBefore);

  // "领奖" in chat (back at the wall clock so the simulator's signature is fresh).
  s.clock.set(new Date());
  const reply = await s.sim.text('oExpire', '领奖');
  t.match(reply.content, /正在为您重新发放现金红包 6\.66 元/);
  await s.f.idle();
  const reissued = await s.get(j.id);
  t.match(reissued, { state: 'waiting_user', outNo: `${j.outNo}R1`, detail: { previousOutNos: [j.outNo], rekeys: 1, baseOutNo: j.outNo } });
  t.equal(s.paySandbox.state.bills.size, 2);
  t.equal(s.paySandbox.state.bills.get(j.outNo)?.state, 'CANCELLED', 'the old bill stays cancelled');
  t.equal(s.paySandbox.state.bills.get(`${j.outNo}R1`)?.state, 'WAIT_USER_CONFIRM');
  t.ok(reissued.expiresAt!.getTime() > s.clock.now().getTime(), 'a new deadline');
  const notes = (await s.f.events(j.id)).map((e) => e.note ?? '');
  t.ok(notes.some((n) => n.includes(`new out_bill_no ${j.outNo}R1: ${j.outNo} is CANCELLED`)), 're-keyed after a query said CANCELLED');
  t.match((await s.csTexts('oExpire')).at(-1), /data-miniprogram-path="pages\/prize\/confirm\?f=/);

  // "领奖" while a bill waits: the link again, no new bill.
  const again = await s.sim.text('oExpire', '领奖');
  t.match(again.content, /待确认的现金红包 6\.66 元/);
  await s.f.idle();
  t.equal(s.paySandbox.state.bills.size, 2);

  // The old bill's notification once more: it names no current job any more.
  t.equal((await s.payControl(`/__sandbox/pay/notifications/${cancelNote.seq}/resend`)).json.notification.status, 200);
  t.match(await s.get(j.id), { state: 'waiting_user', outNo: `${j.outNo}R1` });

  // The new bill is confirmed: paid once, under the new number.
  await s.payControl(`/__sandbox/pay/bills/${j.outNo}R1/confirm`);
  t.equal((await s.get(j.id)).state, 'succeeded');
});

t.test('cash › no re-key while the old bill is not CANCELLED/FAIL; forfeit campaigns do not re-issue', async (t) => {
  const s = await setup(t);
  // A job asked to re-key (as after "领奖" / ops retry) whose bill is in fact still waiting for the user.
  const j = await s.job('cash', 200, 'oNoRekey');
  await s.f.runDue();
  await s.db.update(fulfilments).set({ state: 'pending', nextAttemptAt: s.clock.now(), detail: sql`coalesce(detail, '{}'::jsonb) || '{"rekey": true}'::jsonb` }).where(sql`id = ${j.id}`);
  await s.f.runDue();
  t.match(await s.get(j.id), { state: 'waiting_user', outNo: j.outNo });
  t.equal(s.paySandbox.state.bills.size, 1, 'no second bill');

  const c = await s.campaign({ cashConfirmHours: 1, unclaimedCash: 'forfeit' });
  await s.sim.text('oForfeit', '你好');
  const k = await s.job('cash', 300, 'oForfeit', { campaignId: c.id });
  await s.f.runDue();
  s.clock.advance(3_600_000 + 1000);
  await s.f.expireUnconfirmed();
  t.match(await s.get(k.id), { state: 'cancelled', detail: { reclaimable: false, forfeited: true } });
  t.match((await s.csTexts('oForfeit')).at(-1), /已按活动规则失效/);
  s.clock.set(new Date());
  const reply = await s.sim.text('oForfeit', '领奖');
  t.match(reply.content, /没有待领取的奖励/);
  await s.f.idle();
  t.equal((await s.get(k.id)).state, 'cancelled');
  t.notOk(s.paySandbox.state.bills.has(`${k.outNo}R1`));

  // WeChat Pay itself reports the bill FAIL: failed, and ops retry re-keys it.
  const f = await s.job('cash', 400, 'oBillFail');
  await s.f.runDue();
  await s.payControl(`/__sandbox/pay/bills/${f.outNo}/fail`, { fail_reason: 'PAYEE_ACCOUNT_ABNORMAL' });
  t.match(await s.get(f.id), { state: 'failed', lastError: /PAYEE_ACCOUNT_ABNORMAL/ });
  await s.f.retry(f.id);
  await s.f.idle();
  t.match(await s.get(f.id), { state: 'waiting_user', outNo: `${f.outNo}R1` });
});

t.test('crash › the bill was created but the process died before recording it: a new instance queries, one bill, one success', async (t) => {
  const s = await setup(t);
  const doomed = s.instance({ afterProviderCall: () => true });
  const j = await s.job('cash', 1288, 'oCrash');
  await doomed.runDue();
  let row = await s.get(j.id);
  t.match(row, { state: 'running', attempts: 1, packageInfo: null });
  t.equal(s.paySandbox.state.bills.get(j.outNo)?.state, 'WAIT_USER_CONFIRM', 'the bill exists at WeChat Pay');

  const fresh = s.instance();
  t.equal(await fresh.runDue(), 0, 'the lease still holds');
  s.clock.advance(61_000);
  t.equal(await fresh.runDue(), 1, 'reclaimed after the lease ran out');
  row = await s.get(j.id);
  t.match(row, { state: 'waiting_user', outNo: j.outNo, packageInfo: s.paySandbox.state.bills.get(j.outNo)!.package_info });
  t.equal(s.paySandbox.state.bills.size, 1, 'exactly one bill');
  t.ok((await s.f.events(j.id)).some((e) => e.note === 'lease expired: reclaimed'));
  await s.payControl(`/__sandbox/pay/bills/${j.outNo}/confirm`);
  t.equal((await s.get(j.id)).state, 'succeeded');
  t.equal((await s.f.events(j.id)).filter((e) => e.toState === 'succeeded').length, 1, 'one success');
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
  const s = await setup(t);
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
