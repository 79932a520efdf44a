/**
 * A message whose first delivery was claimed but never answered (the process died between the dedup claim and the
 * handler, or before the reply was stored): WeChat's later retry takes the key over and handles the message, once
 * the first delivery's budget is surely over, and only if the user's dialog has not moved since that delivery.
 */
import t from 'tap';
import { sql } from 'drizzle-orm';
import { buildTestApp, count } from './helpers.ts';
import { QUESTIONS, seedCampaign } from './campaign-fixtures.ts';

/** The state a crash right after the claim leaves: the key taken, 'processing', no reply, nothing else done. */
async function claimedAndCrashed(database: Awaited<ReturnType<typeof buildTestApp>>['database'], openid: string, msgId: string, agoS: number) {
  await database.db.execute(sql`INSERT INTO webhook_dedup (key, status, created_at)
    VALUES (${`m:${openid}:${msgId}`}, 'processing', now() - make_interval(secs => ${agoS}))`);
}

t.test('a retry after the budget takes over a key left processing: the code is redeemed and answered, once', async (t) => {
  const { sim, database, config } = await buildTestApp(t);
  const { codes } = await seedCampaign(database, config.codeKey, { unlockMin: 0, questions: [], prizes: [{ name: '10积分', kind: 'points', value: 10, weight: 1 }] });
  const msgId = sim.newMsgId();
  await claimedAndCrashed(database, 'oCrash', msgId, 10);
  const retry = await sim.text('oCrash', codes[0]!, msgId);
  t.match(retry.content, /恭喜您抽中【10积分】/, 'the retry handled the message');
  t.equal(await count(database, 'redemptions', `openid = 'oCrash'`), 1);
  // The next retry gets the reply the takeover stored, and changes nothing.
  const again = await sim.text('oCrash', codes[0]!, msgId);
  t.equal(again.content, retry.content);
  t.equal(await count(database, 'redemptions'), 1);
  t.equal(await count(database, 'draws'), 1);
  t.equal(await count(database, 'points_ledger', `openid = 'oCrash'`), 1);
});

t.test('a key left processing within the budget (the first delivery may still run elsewhere) is not taken over', async (t) => {
  const { sim, database, config } = await buildTestApp(t);
  const { codes } = await seedCampaign(database, config.codeKey, { unlockMin: 0, questions: [] });
  const msgId = sim.newMsgId();
  await claimedAndCrashed(database, 'oBusy', msgId, 2);
  const retry = await sim.text('oBusy', codes[0]!, msgId);
  t.equal(retry.status, 200);
  t.notOk(retry.content, 'answered success: the first delivery owns the message');
  t.equal(await count(database, 'redemptions'), 0);
});

t.test('WeChat\'s first retry (5 s after the push) of a key left processing waits until it can take it over: the message is not lost', async (t) => {
  const { sim, database, config, services } = await buildTestApp(t);
  const { codes } = await seedCampaign(database, config.codeKey, { unlockMin: 0, questions: [], prizes: [{ name: '10积分', kind: 'points', value: 10, weight: 1 }] });
  const msgId = sim.newMsgId();
  await claimedAndCrashed(database, 'oFirstRetry', msgId, 5);
  const started = Date.now();
  const retry = await sim.text('oFirstRetry', codes[0]!, msgId);
  const waited = Date.now() - started;
  t.ok(waited >= 2_000 && waited < config.webhook.replyBudgetMs + 1_000, `answered within its own budget, after the key went stale (${waited} ms)`);
  t.equal(await count(database, 'redemptions', `openid = 'oFirstRetry'`), 1, 'the code was redeemed');
  await services.bot.drain();
  // Answered in the passive reply, or (the handler ran out of the retry's budget) by customer-service message.
  const cs = await services.messaging.list('oFirstRetry');
  const answer = retry.content ?? cs.map((r) => (r.message.type === 'text' ? r.message.content : '')).join('');
  t.match(answer, /恭喜您抽中【10积分】/, 'and answered');
});

t.test('a retry of a key another delivery holds gets that delivery\'s reply once it is stored', async (t) => {
  const { sim, database, config } = await buildTestApp(t);
  const { codes } = await seedCampaign(database, config.codeKey, { unlockMin: 0, questions: [] });
  const msgId = sim.newMsgId();
  await claimedAndCrashed(database, 'oSlow', msgId, 3);
  const retry = sim.text('oSlow', codes[0]!, msgId);
  // The first delivery (another instance) stores its reply a moment later.
  await new Promise((r) => setTimeout(r, 600));
  const xml = '<xml><ToUserName><![CDATA[oSlow]]></ToUserName><FromUserName><![CDATA[gh_sandbox]]></FromUserName><CreateTime>1</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[第一次投递的回复]]></Content></xml>';
  await database.db.execute(sql`UPDATE webhook_dedup SET status = 'replied', reply = ${xml} WHERE key = ${`m:oSlow:${msgId}`}`);
  t.equal((await retry).content, '第一次投递的回复', 'the stored reply, not success');
  t.equal(await count(database, 'redemptions'), 0, 'the retry did nothing itself');
});

t.test('several retries at once: one takes over', async (t) => {
  const { sim, database, config } = await buildTestApp(t);
  const { codes } = await seedCampaign(database, config.codeKey, { unlockMin: 0, questions: [], prizes: [{ name: '10积分', kind: 'points', value: 10, weight: 1 }] });
  const msgId = sim.newMsgId();
  await claimedAndCrashed(database, 'oMany', msgId, 10);
  const rs = await Promise.all([1, 2, 3].map(() => sim.text('oMany', codes[0]!, msgId)));
  // The one that took over answers; the others wait for its answer in this process (or get success elsewhere).
  t.ok(rs.some((r) => /恭喜/.test(r.content ?? '')));
  t.ok(rs.every((r) => !r.content || r.content === rs.find((x) => x.content)!.content), 'one answer, never two different ones');
  t.equal(await count(database, 'redemptions'), 1);
  t.equal(await count(database, 'points_ledger', `openid = 'oMany'`), 1);
});

t.test('an answer is taken over only while the dialog has not moved since the first delivery', async (t) => {
  const { sim, database, config } = await buildTestApp(t);
  const { codes } = await seedCampaign(database, config.codeKey, { unlockMin: 1, questions: [QUESTIONS[0]!], prizes: [{ name: '10积分', kind: 'points', value: 10, weight: 1 }] });
  let r = await sim.text('oDlg', codes[0]!);
  t.match(r.content, /第1题：请问怎么称呼您？/);

  // The dialog changed after the first delivery arrived: that delivery (or a later message) may have used it.
  const moved = sim.newMsgId();
  await claimedAndCrashed(database, 'oDlg', moved, 10);
  await database.db.execute(sql`UPDATE dialogs SET updated_at = now() - interval '5 seconds' WHERE openid = 'oDlg'`);
  r = await sim.text('oDlg', '钱七', moved);
  t.notOk(r.content, 'not taken over');
  t.equal(await count(database, 'profile_answers', `openid = 'oDlg'`), 0, 'the answer is not applied');

  // The dialog is as it was before the first delivery: the retry answers the question.
  const still = sim.newMsgId();
  await claimedAndCrashed(database, 'oDlg', still, 10);
  await database.db.execute(sql`UPDATE dialogs SET updated_at = now() - interval '60 seconds' WHERE openid = 'oDlg'`);
  r = await sim.text('oDlg', '钱七', still);
  t.match(r.content, /恭喜您抽中【10积分】/);
  t.equal(await count(database, 'profile_answers', `openid = 'oDlg'`), 1);
});
