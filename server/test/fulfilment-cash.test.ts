/**
 * Cash prizes through the WeChat Pay sandbox's merchant transfer (transfer-bills): WAIT_USER_CONFIRM → mini program →
 * signed + encrypted notification → succeeded; forged, tampered and replayed notifications; a 5xx on create; the
 * mini program's "confirmed" call; expiry → cancel → reclaim under a new out_bill_no; a crash after the bill was
 * created.
 */
import t from 'tap';
import { sql } from 'drizzle-orm';
import { fulfilments } from '../src/fulfilment/tables.ts';
import { campaigns } from '../src/campaigns/tables.ts';
import { sandboxApiV3Key, sandboxPayKeys, SANDBOX_PAY } from '../src/wechat/sandbox/pay-keys.ts';
import { encryptNotificationResource } from '../src/wechat/pay/crypto.ts';
import { count } from './helpers.ts';
import { notifications, setup } from './fulfilment-helpers.ts';

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

