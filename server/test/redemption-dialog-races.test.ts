/**
 * Races in the chat redemption flow, through the webhook: two quick answers to the golden questions (one instance,
 * and two instances on one database), a double send of one code landing on two instances, and finishing the
 * questions of the newest of six pending redemptions.
 */
import t, { type Test } from 'tap';
import { sql } from 'drizzle-orm';
import { buildApp } from '../src/app.ts';
import { WeChatSimulator, type PassiveReply } from '../src/wechat/sandbox/simulator.ts';
import { buildTestApp, count, holdLocks, injectTransport, onPostgres } from './helpers.ts';
import { seedCampaign } from './campaign-fixtures.ts';

type Services = Awaited<ReturnType<typeof buildApp>>['services'];
type Sent = { openid: string; msgId: string; r: PassiveReply };

/** `ids`: the simulator whose MsgIds to use (two simulators may hand out the same one in the same millisecond). */
function send(sim: WeChatSimulator, openid: string, content: string, ids: WeChatSimulator = sim): Promise<Sent> {
  const msgId = ids.newMsgId();
  return sim.text(openid, content, msgId).then((r) => ({ openid, msgId, r }));
}

/** What each message was answered (a reply that overran the budget went out as a customer-service message). */
async function answers(instances: Services[], sent: Sent[]): Promise<string[]> {
  for (const s of instances) await s.bot.drain();
  const outbox = new Map<string, string>();
  for (const openid of new Set(sent.filter(({ r }) => r.raw === 'success').map((s) => s.openid))) {
    for (const row of await instances[0]!.messaging.list(openid)) outbox.set(row.key, row.message.type === 'text' ? row.message.content : JSON.stringify(row.message));
  }
  return sent.map(({ openid, msgId, r }) => (r.raw === 'success' ? outbox.get(`reply:m:${openid}:${msgId}`) ?? '(no answer)' : r.content ?? '(no content)'));
}

async function profile(a: { database: { query: <R>(q: ReturnType<typeof sql>) => Promise<R[]> } }, openid: string) {
  const rows = await a.database.query<{ question_key: string; display: string }>(sql`SELECT question_key, display FROM profile_answers WHERE openid = ${openid} ORDER BY question_key`);
  return Object.fromEntries(rows.map((r) => [r.question_key, r.display]));
}

/** A second app instance on the same database, and a simulator posting to it. */
async function secondInstance(t: Test, a: Awaited<ReturnType<typeof buildTestApp>>) {
  const b = await buildApp(a.config, { database: a.database, logger: false });
  t.teardown(() => b.app.close());
  const simB = new WeChatSimulator({ ...a.sim.opts, sandboxUrl: undefined, transport: injectTransport(b.app) });
  return { b, simB };
}

t.test('two quick answers on one instance: each answers its own question', async (t) => {
  const a = await buildTestApp(t);
  const { codes } = await seedCampaign(a.database, a.config.codeKey, { unlockMin: 3 });
  const sim = new WeChatSimulator({ ...a.sim.opts, sandboxUrl: undefined });
  const [first] = await answers([a.services], [await send(sim, 'oQuick', codes[0]!)]);
  t.match(first, /第1题：请问怎么称呼您？/);

  // Sent without waiting for the first reply: both are claimed (and read the dialog) before either is handled.
  const replies = await answers([a.services], await Promise.all([send(sim, 'oQuick', '张三'), send(sim, 'oQuick', '其他')]));
  t.same(await profile(a, 'oQuick'), { name: '张三', occupation: '其他' }, 'the second message answered the second question');
  t.match(replies[0], /第2题：您的职业是？/);
  t.match(replies[1], /第3题：您在哪个城市？/, 'and its reply asks the third');
  const [dialog] = await a.database.query<{ state: { pos: number } }>(sql`SELECT state FROM dialogs WHERE openid = 'oQuick'`);
  t.equal(dialog?.state.pos, 2, 'the dialog waits for the third answer');
});

t.test('two quick answers on two instances: the second is never stored under the first question', { skip: !onPostgres && 'needs concurrent connections (PostgreSQL)' }, async (t) => {
  const a = await buildTestApp(t);
  const { codes } = await seedCampaign(a.database, a.config.codeKey, { unlockMin: 3 });
  const { b, simB } = await secondInstance(t, a);
  const simA = new WeChatSimulator({ ...a.sim.opts, sandboxUrl: undefined });
  const [first] = await answers([a.services], [await send(simA, 'oTwo', codes[0]!)]);
  t.match(first, /第1题/);

  // Another transaction holds the dialog row: both instances read the question-1 dialog, and neither can move it on
  // before the other has read it too.
  const lock = await holdLocks(t, (a.database as { url?: string }).url!, `SELECT * FROM dialogs WHERE openid = 'oTwo' FOR UPDATE`);
  const sending = Promise.all([send(simA, 'oTwo', '张三'), send(simB, 'oTwo', '其他', simA)]);
  t.ok((await lock.releaseWhen(2)) >= 2, 'both answers waited for the dialog row');
  const replies = await answers([a.services, b.services], await sending);
  const got = await profile(a, 'oTwo');
  // Either order is a fair reading of two messages sent at once — but as a sequence, one question at a time.
  if (got.name === '张三') {
    t.same(got, { name: '张三', occupation: '其他' });
    t.same(replies.map((r) => /第2题/.test(r) ? 2 : /第3题/.test(r) ? 3 : 0).sort(), [2, 3], 'one reply asks question 2, the other question 3');
  } else {
    t.same(got, { name: '其他' }, '“其他” came first: “张三” is not an occupation');
    t.ok(replies.some((r) => /请回复 1–6 之间的序号/.test(r)), '“张三” is refused as the answer to question 2');
  }
  t.notOk(replies.every((r) => /第2题/.test(r)), 'the two replies do not both ask question 2');
});

t.test('a double send of one code on two instances: the owner is not told someone else used it', { skip: !onPostgres && 'needs concurrent connections (PostgreSQL)' }, async (t) => {
  const a = await buildTestApp(t);
  const { codes } = await seedCampaign(a.database, a.config.codeKey, { unlockMin: 0, questions: [], codes: 2, prizes: [{ name: '5积分', kind: 'points', value: 5, weight: 1 }] });
  const { b, simB } = await secondInstance(t, a);
  const simA = new WeChatSimulator({ ...a.sim.opts, sandboxUrl: undefined });
  // Another transaction holds the code: both redemption statements start before either takes it (a lost race).
  const lock = await holdLocks(t, (a.database as { url?: string }).url!, `SELECT * FROM codes FOR UPDATE`);
  const sending = Promise.all([send(simA, 'oDouble', codes[0]!), send(simB, 'oDouble', codes[0]!, simA)]);
  t.ok((await lock.releaseWhen(2)) >= 2, 'both redemptions waited');
  const replies = await answers([a.services, b.services], await sending);
  t.equal(await count(a.database, 'redemptions'), 1, 'one redemption');
  t.equal(replies.filter((r) => /恭喜您抽中【5积分】/.test(r)).length, 1, 'one draw told');
  t.same(replies.filter((r) => /已被其他用户使用/.test(r)), [], 'nobody else used it');
  t.equal(replies.filter((r) => /您已经兑换过这个兑奖码啦/.test(r)).length, 1, 'the other message: already redeemed by you');
  const [{ total }] = (await a.database.query<{ total: number }>(sql`SELECT total FROM campaign_user_counters WHERE openid = 'oDouble'`)) as [{ total: number }];
  t.equal(total, 1, 'the lost race gave its count back');
});

t.test('six pending redemptions: finishing the questions of the newest draws it', async (t) => {
  const a = await buildTestApp(t);
  const { codes } = await seedCampaign(a.database, a.config.codeKey, { unlockMin: 2, codes: 6, prizes: [{ name: '8积分', kind: 'points', value: 8, weight: 1 }] });
  for (const code of codes) t.match((await a.sim.text('oSix', code)).content, /兑奖码验证成功.*第1题/s);
  t.equal(await count(a.database, 'redemptions', `openid = 'oSix' AND status = 'redeemed'`), 6);
  t.match((await a.sim.text('oSix', '张三')).content, /第2题/);
  const r = await a.sim.text('oSix', '2');
  t.match(r.content, /恭喜您抽中【8积分】/);
  const [newest] = await a.database.query<{ id: string; status: string }>(sql`SELECT id::text, status FROM redemptions WHERE openid = 'oSix' ORDER BY id DESC LIMIT 1`);
  t.equal(newest?.status, 'drawn', 'the newest redemption (the dialog\'s own) was drawn');
  t.equal(await count(a.database, 'draws', `openid = 'oSix'`), 1);
  // The older five are still waiting: "抽奖" resumes the oldest, straight to its draw (the profile unlocks it).
  t.match((await a.sim.text('oSix', '抽奖')).content, /恭喜您抽中【8积分】/);
  t.equal(await count(a.database, 'redemptions', `openid = 'oSix' AND status = 'redeemed'`), 4);
});

t.test('a draw that ends the "兑奖" dialog never ends a dialog another flow started meanwhile (a top-up asking for a phone)', { skip: !onPostgres && 'needs a second connection (PostgreSQL)' }, async (t) => {
  const a = await buildTestApp(t);
  const { codes } = await seedCampaign(a.database, a.config.codeKey, { unlockMin: 0, questions: [], prizes: [{ name: '10积分', kind: 'points', value: 10, weight: 1 }] });
  t.match((await a.sim.text('oFlows', '兑奖')).content, /请发送/, 'the code dialog is open');
  // Between this message's claim (which read the code dialog) and the end of its draw, another instance's fulfilment
  // worker opens the phone dialog of an earlier top-up: it holds the row while the draw's dialog cleanup waits.
  const lock = await holdLocks(t, (a.database as { url?: string }).url!,
    `UPDATE dialogs SET flow = 'fulfilment.phone', state = '{"fulfilmentId":"1"}'::jsonb, expires_at = now() + interval '1 hour' WHERE openid = $1`, ['oFlows']);
  const reply = a.sim.text('oFlows', codes[0]!);
  t.ok((await lock.releaseWhen(1)) >= 1, 'the cleanup waited for the row');
  t.match((await reply).content, /恭喜.*10积分/s, 'drawn at once');
  const [d] = await a.database.query<{ flow: string }>(sql`SELECT flow FROM dialogs WHERE openid = 'oFlows'`);
  t.equal(d?.flow, 'fulfilment.phone', 'the phone dialog stays');
});
