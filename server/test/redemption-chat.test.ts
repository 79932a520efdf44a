/**
 * Redemption in chat, end to end through the signed webhook: a code, the golden questions, the draw, the result;
 * every distinct error reply; the dialog surviving a restart and expiring; "抽奖" resuming.
 */
import t from 'tap';
import { sql } from 'drizzle-orm';
import { buildApp } from '../src/app.ts';
import { manualClock } from '../src/platform/clock.ts';
import { codeBatches } from '../src/campaigns/tables.ts';
import { buildTestApp, count, injectTransport, simulatorOn } from './helpers.ts';
import { QUESTIONS, seedCampaign, setCampaign } from './campaign-fixtures.ts';

t.test('a code, three questions (one skipped, one by number, a province → city cascade), the draw and its points', async (t) => {
  const { sim, database, config } = await buildTestApp(t);
  const { codes } = await seedCampaign(database, config.codeKey, { unlockMin: 3, prizes: [{ name: '50积分', kind: 'points', value: 50, weight: 1 }] });
  const printed = `${codes[0]!.slice(0, 4)}-${codes[0]!.slice(4, 8)}-${codes[0]!.slice(8)}`.toLowerCase();

  let r = await sim.text('oAlice', printed);
  t.match(r.content, /兑奖码验证成功.*至少回答 3 题/s);
  t.match(r.content, /第1题：请问怎么称呼您？/);
  t.notMatch(r.content, /跳过/, 'the name is required: no skip hint');

  r = await sim.text('oAlice', '跳过');
  t.match(r.content, /必答题，不能跳过/);
  r = await sim.text('oAlice', 'A');
  t.match(r.content, /请输入 2–20 个字/, 'invalid answers are re-asked with the reason');
  r = await sim.text('oAlice', '张三');
  t.match(r.content, /第2题：您的职业是？\n1\. 学生\n2\. 上班族/);
  t.match(r.content, /可回复“跳过”/);
  r = await sim.text('oAlice', '9');
  t.match(r.content, /请回复 1–6 之间的序号/);
  r = await sim.text('oAlice', '跳过');
  t.match(r.content, /第3题：您在哪个城市？/);
  r = await sim.text('oAlice', '广东');
  t.match(r.content, /广东省的哪个城市？/);
  r = await sim.text('oAlice', '深圳');
  t.match(r.content, /第4题：您经营的业态是？/, 'two answered; still one short');
  r = await sim.text('oAlice', '2');
  t.match(r.content, /恭喜您抽中【50积分】/);
  t.match(r.content, /本次获得 50 积分，当前积分 50/);

  const answers = await database.query<{ question_key: string; display: string; campaign_id: number }>(sql`SELECT question_key, display, campaign_id FROM profile_answers WHERE openid = 'oAlice' ORDER BY question_key`);
  t.same(answers.map((a) => [a.question_key, a.display]), [['business_type', '便利店'], ['name', '张三'], ['region', '广东省 深圳市']]);
  t.equal(await count(database, 'draws', `openid = 'oAlice' AND outcome = 'won'`), 1);
  t.equal(await count(database, 'points_ledger', `openid = 'oAlice' AND delta = 50`), 1);
  t.equal(await count(database, 'dialogs'), 0, 'the dialog ended with the draw');

  // A second code: the profile already unlocks the draw — straight to the result.
  r = await sim.text('oAlice', codes[1]!);
  t.match(r.content, /恭喜您抽中【50积分】/);
  t.match(r.content, /当前积分 100/);
});

t.test('every error reply is distinct', async (t) => {
  const { sim, database, config } = await buildTestApp(t);
  const { campaign, codes, batch } = await seedCampaign(database, config.codeKey, { unlockMin: 0, questions: [], codes: 12, redemptionsPerDay: 2, drawsPerCampaign: 3 });
  const replies = new Map<string, string>();
  const say = async (openid: string, text: string) => (await sim.text(openid, text)).content ?? '';

  // not a code: only in the code dialog (elsewhere it is ordinary chat)
  await sim.click('oErr', 'REDEEM');
  replies.set('notCode', await say('oErr', 'hello'));
  t.match(replies.get('notCode'), /这不像是兑奖码/);
  // typo: one character changed → the check character catches it, no lookup
  const c0 = codes[0]!;
  const typo = c0.slice(0, 3) + (c0[3] === 'A' ? 'B' : 'A') + c0.slice(4);
  replies.set('typo', await say('oErr', typo));
  t.match(replies.get('typo'), /似乎有字符输错了/);
  // unknown: a valid code that was never printed
  const { generateCodes } = await import('../src/campaigns/codes.ts');
  replies.set('unknown', await say('oErr', generateCodes(1)[0]!));
  t.match(replies.get('unknown'), /未找到兑奖码/);

  t.match(await say('oErr', c0), /谢谢参与|恭喜/);
  replies.set('self', await say('oErr', c0));
  t.match(replies.get('self'), /您已经兑换过这个兑奖码/);
  replies.set('other', await say('oOther', c0));
  t.match(replies.get('other'), /已被其他用户使用/);

  // daily limit (2 per day): the third code of the day is refused and stays unused
  t.match(await say('oErr', codes[1]!), /恭喜/);
  replies.set('daily', await say('oErr', codes[2]!));
  t.match(replies.get('daily'), /达到每日上限/);
  t.equal(await count(database, 'codes', 'redeemed_at IS NOT NULL'), 2);

  // draws per campaign (3): a new day, the fourth is refused
  await database.db.execute(sql`UPDATE campaign_user_counters SET day = day - 1 WHERE openid = 'oErr'`);
  t.match(await say('oErr', codes[2]!), /恭喜/);
  await database.db.execute(sql`UPDATE campaign_user_counters SET day = day - 1 WHERE openid = 'oErr'`);
  replies.set('drawLimit', await say('oErr', codes[3]!));
  t.match(replies.get('drawLimit'), /抽奖次数已达上限（3 次）/);

  await setCampaign(database, campaign.id, { status: 'paused' });
  replies.set('paused', await say('oP', codes[4]!));
  t.match(replies.get('paused'), /暂停中/);
  await setCampaign(database, campaign.id, { status: 'live', startsAt: new Date(Date.now() + 86_400_000), endsAt: new Date(Date.now() + 2 * 86_400_000) });
  replies.set('notStarted', await say('oP', codes[4]!));
  t.match(replies.get('notStarted'), /将于 .* 开始/);
  await setCampaign(database, campaign.id, { status: 'ended', startsAt: new Date(Date.now() - 2 * 86_400_000), endsAt: new Date(Date.now() - 86_400_000) });
  replies.set('ended', await say('oP', codes[4]!));
  t.match(replies.get('ended'), /已于 .* 结束/);
  await setCampaign(database, campaign.id, { status: 'live', endsAt: new Date(Date.now() + 86_400_000) });
  await database.db.update(codeBatches).set({ status: 'voided' });
  replies.set('voided', await say('oP', codes[5]!));
  t.match(replies.get('voided'), /批次已停用/);
  t.equal(batch.campaignId, campaign.id);

  t.equal(new Set(replies.values()).size, replies.size, 'all replies differ');
  t.equal(await count(database, 'redemptions'), 3, 'no refused code was consumed');
});

t.test('a retried message is answered the same and redeems once; a double tap of the same code too', async (t) => {
  const { sim, database, config } = await buildTestApp(t);
  const { codes } = await seedCampaign(database, config.codeKey, { unlockMin: 0, questions: [] });
  const msgId = sim.newMsgId();
  const first = await sim.text('oRetry', codes[0]!, msgId);
  const again = await sim.text('oRetry', codes[0]!, msgId);
  t.equal(again.content, first.content);
  const [a, b] = await Promise.all([sim.text('oTap', codes[1]!), sim.text('oTap', codes[1]!)]);
  t.ok([a.content, b.content].some((c) => /恭喜/.test(c ?? '')));
  t.ok([a.content, b.content].some((c) => /您已经兑换过/.test(c ?? '')));
  t.equal(await count(database, 'redemptions'), 2);
  t.equal(await count(database, 'draws'), 2);
});

t.test('the question dialog survives a restart, expires when idle, and "抽奖" resumes it', async (t) => {
  const clock = manualClock(new Date());
  const first = await buildTestApp(t, { clock });
  const { codes } = await seedCampaign(first.database, first.config.codeKey, { unlockMin: 2, dialogIdleMinutes: 10, prizes: [{ name: '谢谢参与', kind: 'thanks', weight: 1 }], lossPoints: 5, recommendation: { title: '新品柠檬茶', description: '清爽上市', url: 'https://example.com/lemon' } });
  let r = await first.sim.text('oResume', codes[0]!);
  t.match(r.content, /第1题/);
  r = await first.sim.text('oResume', '李四');
  t.match(r.content, /第2题/);

  // Restart: a new process on the same database continues the dialog.
  await first.app.close();
  const second = await buildApp(first.config, { database: first.database, clock, logger: false });
  t.teardown(() => second.app.close());
  const sim2 = first.simulator();
  Object.assign(sim2.opts, { now: () => clock.now().getTime(), transport: injectTransport(second.app) });
  r = await sim2.text('oResume', '1');
  t.match(r.content, /很遗憾，这次没有中奖/);
  t.match(r.content, /本次获得 5 积分，当前积分 5/, 'consolation points');
  t.match(r.content, /为您推荐：<a href="https:\/\/example.com\/lemon">新品柠檬茶<\/a>——清爽上市/);

  // Expiry: the next code's dialog times out; the code stays redeemed; "抽奖" picks it up again.
  await first.database.db.execute(sql`DELETE FROM profile_answers WHERE openid = 'oResume'`);
  r = await sim2.text('oResume', codes[1]!);
  t.match(r.content, /第1题/);
  clock.advance(11 * 60_000);
  r = await sim2.text('oResume', '王五');
  t.notMatch(r.content ?? '', /第2题/, 'after the idle time the answer is ordinary chat');
  r = await sim2.text('oResume', '抽奖');
  t.match(r.content, /第1题/, 'resumed at the first unanswered question');
  r = await sim2.text('oResume', '王五');
  r = await sim2.text('oResume', '学生');
  t.match(r.content, /很遗憾/);
  r = await sim2.text('oResume', '抽奖');
  t.match(r.content, /没有待抽奖的兑奖码/);
});

t.test('a question the campaign re-asks is asked again for each code; answers given before the code do not unlock the draw', async (t) => {
  const { sim, database, config } = await buildTestApp(t);
  const won = [{ name: '10积分', kind: 'points' as const, value: 10, weight: 1 }];
  const name = QUESTIONS[0]!;
  const occupation = QUESTIONS[1]!;
  const first = await seedCampaign(database, config.codeKey, { unlockMin: 2, questions: [name, occupation], prizes: won });
  let r = await sim.text('oReask', first.codes[0]!);
  r = await sim.text('oReask', '赵六');
  r = await sim.text('oReask', '1');
  t.match(r.content, /恭喜您抽中【10积分】/);

  // Per question: the occupation is re-asked (the name is not), for this code and again for the next one.
  const again = await seedCampaign(database, config.codeKey, { unlockMin: 2, questions: [name, { ...occupation, reask: true }], prizes: won });
  for (const code of again.codes.slice(0, 2)) {
    r = await sim.text('oReask', code);
    t.match(r.content, /第1题：您的职业是？/, 'the re-asked question, and only it');
    t.notMatch(r.content, /恭喜/, 'no draw on the answer given before this code');
    r = await sim.text('oReask', '2');
    t.match(r.content, /恭喜您抽中【10积分】/);
  }
  t.equal(await count(database, 'draws', `openid = 'oReask'`), 3);

  // Whole campaign (reaskAnswered), resumed with "抽奖" after the dialog expired: still asked, not drawn.
  const all = await seedCampaign(database, config.codeKey, { unlockMin: 2, questions: [name, occupation], prizes: won, reaskAnswered: true, dialogIdleMinutes: 10 });
  r = await sim.text('oReask', all.codes[0]!);
  t.match(r.content, /第1题：请问怎么称呼您？/);
  await database.db.execute(sql`UPDATE dialogs SET expires_at = now() - interval '1 minute' WHERE openid = 'oReask'`);
  r = await sim.text('oReask', '抽奖');
  t.match(r.content, /第1题：请问怎么称呼您？/, 'resumed: the questions again, the old answers do not count');
  r = await sim.text('oReask', '赵六');
  t.match(r.content, /第2题：您的职业是？/);
  r = await sim.text('oReask', '3');
  t.match(r.content, /恭喜您抽中【10积分】/);
  t.equal(await count(database, 'draws', `openid = 'oReask'`), 4);
});

t.test('no draw while the campaign is paused (the redemption waits for "抽奖"), nor past the grace after its end', async (t) => {
  const { sim, database, config } = await buildTestApp(t);
  const { campaign, codes } = await seedCampaign(database, config.codeKey, { unlockMin: 1, questions: [QUESTIONS[0]!], prizes: [{ name: '10积分', kind: 'points', value: 10, weight: 1 }] });
  let r = await sim.text('oPause', codes[0]!);
  t.match(r.content, /第1题/);
  await setCampaign(database, campaign.id, { status: 'paused' });
  r = await sim.text('oPause', '孙八');
  t.match(r.content, /活动暂停中，抽奖暂不可用.*活动恢复后发送“抽奖”即可继续/s);
  t.equal(await count(database, 'draws'), 0);
  r = await sim.text('oPause', '抽奖');
  t.match(r.content, /抽奖暂不可用/, '"抽奖" while paused: still no draw');
  t.equal(await count(database, 'draws'), 0);
  await setCampaign(database, campaign.id, { status: 'live' });
  r = await sim.text('oPause', '抽奖');
  t.match(r.content, /恭喜您抽中【10积分】/, 'resumed after the pause');

  // Ended an hour ago: a code redeemed in time is still drawn (the grace); a day and more after the end it is not.
  r = await sim.text('oLate', codes[1]!);
  t.match(r.content, /第1题/);
  r = await sim.text('oLater', codes[2]!);
  t.match(r.content, /第1题/);
  await setCampaign(database, campaign.id, { endsAt: new Date(Date.now() - 3_600_000) });
  r = await sim.text('oLate', '周九');
  t.match(r.content, /恭喜您抽中【10积分】/);
  await setCampaign(database, campaign.id, { startsAt: new Date(Date.now() - 72 * 3_600_000), endsAt: new Date(Date.now() - 25 * 3_600_000) });
  r = await sim.text('oLater', '吴十');
  t.match(r.content, /活动已于 .* 结束，抽奖已截止/);
  t.equal(await count(database, 'draws', `openid = 'oLater'`), 0);
  // Ended by ops: no draw even within the grace.
  await setCampaign(database, campaign.id, { status: 'ended', endsAt: new Date(Date.now() - 3_600_000) });
  r = await sim.text('oLater', '抽奖');
  t.match(r.content, /抽奖已截止/);
  t.equal(await count(database, 'draws', `openid = 'oLater'`), 0);
});

t.test('"抽奖" resumes a redemption that can be drawn before an older one waiting in a paused campaign', async (t) => {
  const { sim, database, config } = await buildTestApp(t);
  const one = { unlockMin: 1, questions: [QUESTIONS[0]!] };
  const a = await seedCampaign(database, config.codeKey, { ...one, prizes: [{ name: '10积分', kind: 'points', value: 10, weight: 1 }] });
  const b = await seedCampaign(database, config.codeKey, { ...one, prizes: [{ name: '20积分', kind: 'points', value: 20, weight: 1 }] });
  t.match((await sim.text('oTwoPending', a.codes[0]!)).content, /第1题/);
  t.match((await sim.text('oTwoPending', '取消')).content, /已退出/);
  await setCampaign(database, a.campaign.id, { status: 'paused' });
  t.match((await sim.text('oTwoPending', a.codes[0]!)).content, /已经兑换过.*（.*）。$/s, 'the paused one is not offered to "抽奖"');
  t.match((await sim.text('oTwoPending', b.codes[0]!)).content, /第1题/);
  t.match((await sim.text('oTwoPending', '取消')).content, /已退出/);
  t.match((await sim.text('oTwoPending', b.codes[0]!)).content, /已经兑换过.*发送“抽奖”继续抽奖/s);
  // The older redemption waits in the paused campaign; the newer one, in the live campaign, is the one resumed.
  t.match((await sim.text('oTwoPending', '抽奖')).content, /第1题/);
  t.match((await sim.text('oTwoPending', '孙八')).content, /恭喜您抽中【20积分】/);
  t.equal(await count(database, 'draws', `campaign_id = ${b.campaign.id}`), 1);
  // Only the paused one is left: "抽奖" says so, and draws nothing.
  t.match((await sim.text('oTwoPending', '抽奖')).content, /抽奖暂不可用/);
  t.equal(await count(database, 'draws', `campaign_id = ${a.campaign.id}`), 0);
  await setCampaign(database, a.campaign.id, { status: 'live' });
  t.match((await sim.text('oTwoPending', '抽奖')).content, /恭喜您抽中【10积分】/, 'and once it resumes, it is drawn');
});

t.test('typing speed counts from when the question was asked, whatever the idle time is changed to meanwhile', async (t) => {
  const clock = manualClock(new Date());
  const ctx = await buildTestApp(t, { clock, env: { FRAUD_ENABLED: 'true', FRAUD_CACHE_TTL_MS: '0' } });
  const sim = simulatorOn(ctx, () => clock.now().getTime());
  const { campaign, codes } = await seedCampaign(ctx.database, ctx.config.codeKey, { unlockMin: 2, questions: QUESTIONS.slice(0, 2), dialogIdleMinutes: 30 });
  let r = await sim.text('oPace', codes[0]!);
  t.match(r.content, /第1题/);
  await setCampaign(ctx.database, campaign.id, { dialogIdleMinutes: 10 });
  clock.advance(8_000);
  r = await sim.text('oPace', '冯十二');
  t.match(r.content, /第2题/);
  clock.advance(1_000);
  r = await sim.text('oPace', '2');
  t.match(r.content, /恭喜/);
  const [st] = await ctx.database.query<{ fast_answers: number }>(sql`SELECT fast_answers FROM fraud_user_state WHERE openid = 'oPace'`);
  t.equal(st?.fast_answers, 1, 'the name, 8 s after its question, is typed by a person; the occupation, 1 s after, is fast');
});

t.test('a scanned QR code redeems like a typed one; the 兑奖 menu waits for a code and 取消 leaves', async (t) => {
  const { sim, database, config } = await buildTestApp(t);
  const { codes } = await seedCampaign(database, config.codeKey, { unlockMin: 0, questions: [] });
  let r = await sim.scancode('oScan', 'SCAN_REDEEM', `https://brand.example.com/c/${codes[0]}`);
  t.match(r.content, /恭喜/);
  r = await sim.click('oScan', 'REDEEM');
  t.match(r.content, /请发送包装内的兑奖码/);
  r = await sim.text('oScan', '取消');
  t.match(r.content, /已退出兑奖/);
  r = await sim.text('oScan', 'hello');
  t.notMatch(r.content ?? '', /兑奖码/, 'after leaving, text is ordinary chat again');
});
