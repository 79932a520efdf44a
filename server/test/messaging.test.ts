/**
 * Customer-service messages under WeChat's per-user budget, and the 5-second reply budget.
 */
import t from 'tap';
import { sql } from 'drizzle-orm';
import { buildXml } from '../src/wechat/xml.ts';
import { buildTestApp, count } from './helpers.ts';

const csCalls = async (sandboxUrl: string, openid: string) =>
  (await (await fetch(`${sandboxUrl}/__sandbox/calls?path=/cgi-bin/message/custom/send&touser=${openid}`)).json()) as Array<{ errcode: number; body: any }>;

t.test('budget › after a user message: 5 messages go out, the 6th waits, WeChat never sees a 45047', async (t) => {
  const { sim, services, sandbox } = await buildTestApp(t);
  await sim.text('oBudget', '你好');
  const outcomes = [];
  for (let i = 1; i <= 6; i++) outcomes.push(await services.messaging.send('oBudget', { type: 'text', content: `消息${i}` }, `k${i}`));
  t.same(outcomes, ['sent', 'sent', 'sent', 'sent', 'sent', 'waiting']);
  const calls = await csCalls(sandbox.url, 'oBudget');
  t.equal(calls.length, 5, 'the sixth was never sent');
  t.ok(calls.every((c) => c.errcode === 0), 'no 45015/45047 from the platform');
  const rows = await services.messaging.list('oBudget');
  t.equal(rows.find((r) => r.key === 'k6')?.reason, 'quota_exhausted');

  t.equal(await services.messaging.send('oBudget', { type: 'text', content: '消息1' }, 'k1'), 'duplicate', 'same key → sent at most once');

  // The user writes again: a new window; the waiting message goes out.
  await sim.text('oBudget', '在吗');
  await services.bot.drain();
  const after = await csCalls(sandbox.url, 'oBudget');
  t.equal(after.length, 6);
  t.equal(after[5]!.body.text.content, '消息6');
});

t.test('budget › a menu click grants 3 messages within a minute; nothing at all without an interaction', async (t) => {
  const { sim, services, sandbox } = await buildTestApp(t);
  t.equal(await services.messaging.send('oCold', { type: 'text', content: 'hi' }, 'cold'), 'waiting');
  t.equal((await csCalls(sandbox.url, 'oCold')).length, 0, 'no call without a window');
  t.equal((await services.messaging.list('oCold'))[0]!.reason, 'no_window');

  await sim.click('oMenu', 'MEMBER_CENTER');
  const outcomes = [];
  for (let i = 0; i < 4; i++) outcomes.push(await services.messaging.send('oMenu', { type: 'text', content: `m${i}` }, `m${i}`));
  t.same(outcomes, ['sent', 'sent', 'sent', 'waiting']);
  t.equal((await csCalls(sandbox.url, 'oMenu')).length, 3);
});

t.test('budget › concurrent senders never overspend the quota', async (t) => {
  const { sim, services, sandbox } = await buildTestApp(t);
  await sim.text('oRace', 'hi');
  const outcomes = await Promise.all(Array.from({ length: 20 }, (_, i) => services.messaging.send('oRace', { type: 'text', content: `r${i}` }, `r${i}`)));
  t.equal(outcomes.filter((o) => o === 'sent').length, 5);
  t.equal(outcomes.filter((o) => o === 'waiting').length, 15);
  t.equal((await csCalls(sandbox.url, 'oRace')).length, 5);
});

t.test('budget › a platform refusal (window closed on WeChat\'s side) parks the message instead of retrying', async (t) => {
  const { sim, services, sandbox } = await buildTestApp(t);
  await sim.text('oGone', 'hi');
  // The user unfollowed, and we have not seen the event yet.
  await sim.reportAction('oGone', 'unsubscribe');
  t.equal(await services.messaging.send('oGone', { type: 'text', content: 'x' }, 'g1'), 'waiting');
  const rows = await services.messaging.list('oGone');
  t.equal(rows[0]!.reason, 'wechat_45015');
  await services.messaging.runDue();
  t.equal((await csCalls(sandbox.url, 'oGone')).length, 1, 'not retried into 45015');
});

t.test('budget › a message WeChat rejects is dropped at once and gives its unit back; a news list goes out as its first article', async (t) => {
  const { sim, services, sandbox } = await buildTestApp(t);
  await sim.text('oReject', 'hi');
  // An empty text: WeChat answers 40008 however often it is sent.
  t.equal(await services.messaging.send('oReject', { type: 'text', content: '' }, 'bad'), 'dropped');
  t.equal((await services.messaging.list('oReject')).find((r) => r.key === 'bad')?.reason, 'rejected:wechat_40008');
  await services.messaging.runDue();
  t.equal((await csCalls(sandbox.url, 'oReject')).length, 1, 'not retried');

  const articles = [1, 2, 3].map((i) => ({ title: `第${i}篇`, url: `https://brand.example/a/${i}` }));
  t.equal(await services.messaging.send('oReject', { type: 'news', articles }, 'news'), 'sent', 'a customer-service news message carries one article');
  const calls = await csCalls(sandbox.url, 'oReject');
  t.same(calls.at(-1)!.body.news.articles.map((a: { title: string }) => a.title), ['第1篇']);

  // The user's five: the refused message gave its unit back, the news took one, four more go out.
  const outcomes = [];
  for (let i = 0; i < 5; i++) outcomes.push(await services.messaging.send('oReject', { type: 'text', content: `m${i}` }, `m${i}`));
  t.same(outcomes, ['sent', 'sent', 'sent', 'sent', 'waiting']);
});

t.test('reply budget › a handler that overruns gets success now and its answer by customer-service message', async (t) => {
  let runs = 0;
  const { sim, services, sandbox, database, app } = await buildTestApp(t, {
    env: { WEBHOOK_REPLY_BUDGET_MS: '100' },
    configureBot: (ext) => {
      ext.flows.set('slow', async () => {
        runs++;
        await new Promise((r) => setTimeout(r, 400));
        return { type: 'text', content: '慢慢来的回复' };
      });
    },
  });
  const headers = { authorization: `Bearer ${(await app.inject({ method: 'POST', url: '/api/ops/login', payload: { username: 'admin', password: 'sandbox-admin' } })).json().token}` };
  t.equal((await app.inject({ method: 'PUT', url: '/api/ops/menu-keys/SLOW', headers, payload: { action: { type: 'flow', flow: 'slow' } } })).statusCode, 200);

  const click = buildXml({ ToUserName: 'gh', FromUserName: 'oSlow', CreateTime: Math.floor(Date.now() / 1000), MsgType: 'event', Event: 'CLICK', EventKey: 'SLOW' });
  const started = Date.now();
  const first = await sim.push(click, 'oSlow', 'menu');
  t.ok(Date.now() - started < 380, 'answered within the budget, before the handler finished');
  t.equal(first.raw, 'success');
  const retry = await sim.push(click);
  t.equal(retry.raw, 'success', 'a retry while it runs gets success');
  await services.bot.drain();
  const calls = await csCalls(sandbox.url, 'oSlow');
  t.equal(calls.length, 1);
  t.equal(calls[0]!.body.text.content, '慢慢来的回复');
  const late = await sim.push(click);
  t.equal(late.raw, 'success', 'a retry after the deferred answer gets success, not a second copy');
  await services.bot.drain();
  t.equal((await csCalls(sandbox.url, 'oSlow')).length, 1);
  t.equal(runs, 1, 'the handler ran once');
  const [d] = await database.query<{ status: string }>(sql`SELECT status FROM webhook_dedup`);
  t.equal(d!.status, 'deferred');
  t.equal(await count(database, 'cs_outbox', `status = 'sent'`), 1);
});

t.test('budget › after a payment: unlimited messages for 48 hours, waiting ones flushed', async (t) => {
  const { services, sandbox } = await buildTestApp(t);
  t.equal(await services.messaging.send('oPay', { type: 'text', content: 'w' }, 'w'), 'waiting');
  await sandbox.state.userAction('oPay', 'payment');
  t.equal(await services.messaging.paymentSucceeded('oPay'), 1, 'the waiting message went out');
  const outcomes = [];
  for (let i = 0; i < 8; i++) outcomes.push(await services.messaging.send('oPay', { type: 'text', content: `p${i}` }, `p${i}`));
  t.ok(outcomes.every((o) => o === 'sent'));
  t.equal((await csCalls(sandbox.url, 'oPay')).length, 9);
});
