/**
 * Anti-fraud through the signed webhook, one attack pattern per test (guessing, reselling in bursts, a phone farm,
 * bots with identical instant answers, a blacklisted account), honest users left alone, and the review queue's
 * approve / reject being exactly-once under double clicks (parallel requests; truly parallel on PostgreSQL).
 * Time is a manual clock shared by the app and the simulator, so cool-downs and rates are real without waiting.
 */
import t from 'tap';
import { sql } from 'drizzle-orm';
import { parse } from 'csv-parse/sync';
import { manualClock } from '../src/platform/clock.ts';
import { generateCodes } from '../src/campaigns/codes.ts';
import { adminHeaders, buildTestApp, count, noonShanghai, simulatorOn } from './helpers.ts';
import { seedCampaign } from './campaign-fixtures.ts';
import type { PrizeBody } from '../../shared/campaigns.ts';

const HOUR = 3_600_000;

async function setup(t: { teardown(fn: () => unknown): void }, prizes: PrizeBody[], opts: { codes?: number; unlockMin?: number } = {}) {
  const clock = manualClock(noonShanghai());
  const ctx = await buildTestApp(t, { clock, env: { FRAUD_ENABLED: 'true', FRAUD_CACHE_TTL_MS: '0' } });
  const seeded = await seedCampaign(ctx.database, ctx.config.codeKey, {
    prizes, codes: opts.codes ?? 20, unlockMin: opts.unlockMin ?? 2, startsAt: new Date(clock.now().getTime() - 3 * 24 * HOUR), endsAt: new Date(clock.now().getTime() + 30 * 24 * HOUR),
  });
  const sim = simulatorOn(ctx, () => clock.now().getTime());
  const admin = await adminHeaders(ctx.app);
  const api = (method: 'GET' | 'POST' | 'DELETE', url: string, payload?: unknown) =>
    ctx.app.inject({ method, url, headers: admin, ...(payload === undefined ? {} : { payload: payload as object }) });
  const settle = async () => {
    await ctx.services.bot.drain();
    await ctx.services.fulfilment.idle();
    await ctx.services.bot.drain();
  };
  /** A person answering the default questions (name, occupation) at a human pace. */
  const answerSlowly = async (openid: string, name: string, occupation: string) => {
    clock.advance(6_000);
    await sim.text(openid, name);
    clock.advance(5_000);
    return sim.text(openid, occupation);
  };
  const q = async <T = Record<string, unknown>>(text: string) => ctx.database.query<T>(sql.raw(text));
  return { ...ctx, ...seeded, clock, sim, api, settle, answerSlowly, q };
}

t.test('honest users — a typo, human pace, diverse answers — are never held or blocked and nothing is recorded about them', async (t) => {
  const s = await setup(t, [{ name: '10积分', kind: 'points', value: 10, weight: 1 }, { name: '现金红包 1元', kind: 'cash', value: 100, weight: 1, totalStock: 50 }]);
  const names = ['王芳', '李娜', '刘洋'];
  for (const [i, openid] of ['oHonest1', 'oHonest2', 'oHonest3'].entries()) {
    const code = s.codes[i]!;
    const typo = code.slice(0, 5) + (code[5] === 'A' ? 'B' : 'A') + code.slice(6);
    let r = await s.sim.text(openid, typo);
    t.match(r.content, /似乎有字符输错了/);
    s.clock.advance(20_000);
    r = await s.sim.text(openid, code);
    t.match(r.content, /兑奖码验证成功/);
    r = await s.answerSlowly(openid, names[i]!, String(i + 1));
    t.match(r.content, /恭喜您抽中|很遗憾/);
    t.notMatch(r.content, /审核/);
  }
  t.equal(await count(s.database, 'fraud_decisions'), 0, 'no decision rows for honest users');
  t.equal(await count(s.database, 'fraud_reviews'), 0);
  t.equal(await count(s.database, 'fulfilments', `state = 'held'`), 0);
});

t.test('guessing script: wrong codes start growing cool-downs; while cooling down a valid code is refused unseen and stays unused; then it is blocked', async (t) => {
  const s = await setup(t, [{ name: '10积分', kind: 'points', value: 10, weight: 1 }]);
  const guesses = generateCodes(20); // well-formed (check character right), not printed for this campaign
  for (let i = 0; i < 3; i++) {
    const r = await s.sim.text('oGuess', guesses[i]!);
    t.match(r.content, /未找到兑奖码/);
    t.notMatch(r.content, /后再试/, `wrong code ${i + 1} is free`);
    s.clock.advance(2_000);
  }
  let r = await s.sim.text('oGuess', guesses[3]!);
  t.match(r.content, /未找到兑奖码.*\n.*请于 .* 后再试/s, 'the fourth wrong code starts a cool-down');
  const coolingValid = await s.sim.text('oGuess', s.codes[0]!);
  const coolingWrong = await s.sim.text('oGuess', guesses[4]!);
  t.match(coolingValid.content, /错误兑奖码的次数较多.*后再试/);
  t.equal(coolingValid.content, coolingWrong.content, 'a valid and an unknown code get the same answer: nothing is learnt');
  t.equal(await count(s.database, 'codes', 'redeemed_at IS NOT NULL'), 0, 'the valid code was not consumed');

  s.clock.advance(61_000);
  r = await s.sim.text('oGuess', guesses[5]!);
  t.match(r.content, /未找到兑奖码/);
  const until = /请于 (\d{4}-\d\d-\d\d \d\d:\d\d) 后再试/.exec(r.content!)?.[1];
  // The minute shown is rounded up: a retry at that minute is never refused again.
  const end = s.clock.now().getTime() + 300_000;
  t.not(end % 60_000, 0, 'the cool-down ends within a minute, not on it');
  const expected = new Date(Math.ceil(end / 60_000) * 60_000 + 8 * HOUR).toISOString().slice(0, 16).replace('T', ' ');
  t.equal(until, expected, 'the next cool-down is longer (5 minutes), its end shown rounded up to the minute');

  // Keep guessing past the cool-downs: the score crosses the block threshold; a valid code is refused unseen.
  for (let i = 6; i < 12; i++) {
    s.clock.advance(2 * HOUR + 1_000);
    await s.sim.text('oGuess', guesses[i]!);
  }
  s.clock.advance(25 * 60_000);
  r = await s.sim.text('oGuess', s.codes[1]!);
  t.match(r.content, /暂时无法参与兑奖|后再试/);
  t.equal(await count(s.database, 'codes', 'redeemed_at IS NOT NULL'), 0, 'still nothing consumed');
  const [block] = await s.q<{ decision: string; model_version: number; reasons: Array<{ feature: string }> }>(`SELECT decision, model_version, reasons FROM fraud_decisions WHERE openid = 'oGuess' AND decision = 'block' ORDER BY id DESC LIMIT 1`);
  t.ok(block, 'the block is recorded');
  t.equal(block!.model_version, 1);
  t.equal(block!.reasons[0]!.feature, 'unknownCodes');
});

t.test('code reseller: a burst of valid codes from one account — later prizes are held (points not credited), then codes are refused unused', async (t) => {
  const s = await setup(t, [{ name: '10积分', kind: 'points', value: 10, weight: 1 }], { codes: 20 });
  let r = await s.sim.text('oReseller', s.codes[0]!);
  r = await s.answerSlowly('oReseller', '陈刚', '3');
  t.match(r.content, /恭喜您抽中【10积分】/);
  const outcome: string[] = [];
  for (let i = 1; i < 18; i++) {
    s.clock.advance(15_000);
    r = await s.sim.text('oReseller', s.codes[i]!);
    outcome.push(/暂时无法参与兑奖/.test(r.content!) ? 'blocked' : /恭喜您抽中【10积分】！\n您的奖品正在审核中/.test(r.content!) ? 'held' : /恭喜您抽中【10积分】/.test(r.content!) ? 'paid' : r.content!);
  }
  const paid = outcome.filter((o) => o === 'paid').length + 1;
  const held = outcome.filter((o) => o === 'held').length;
  const blocked = outcome.filter((o) => o === 'blocked').length;
  t.equal(paid + held + blocked, 18, outcome.join(','));
  t.ok(outcome.slice(0, 6).every((o) => o === 'paid'), 'the first codes of a burst pass (a six-pack is normal)');
  t.ok(held >= 2, `${held} held`);
  t.ok(blocked >= 3, `${blocked} blocked`);
  t.same([...new Set(outcome)], ['paid', 'held', 'blocked'], 'paid → held → blocked, in that order');
  t.equal(await count(s.database, 'codes', 'redeemed_at IS NOT NULL'), paid + held, 'blocked codes stay unused');
  // Once blocked, the prizes paid earlier in the burst are held too (look-back): their points are taken back.
  t.equal(await count(s.database, 'fraud_reviews', `openid = 'oReseller' AND status = 'pending'`), paid + held);
  t.equal(await count(s.database, 'fraud_decisions', `openid = 'oReseller' AND stage = 'lookback'`), paid, 'one look-back decision per prize paid before');
  t.equal(await count(s.database, 'fulfilments', `openid = 'oReseller' AND state = 'held' AND kind = 'points'`), paid + held);
  const [acct] = await s.q<{ balance: number }>(`SELECT balance FROM points_accounts WHERE openid = 'oReseller'`);
  t.equal(Number(acct!.balance), 0, 'held points are not credited, and those paid before the block are taken back');
  t.equal(await count(s.database, 'points_ledger', `openid = 'oReseller' AND reason = 'fraud_hold'`), paid);
  const list = (await s.api('GET', '/api/ops/fraud/reviews?status=pending')).json() as any[];
  t.equal(list.length, paid + held);
  t.match(list[0], { openid: 'oReseller', status: 'pending', prize: { kind: 'points' }, modelVersion: 1 });
  t.ok(list[0].reasons.some((x: any) => x.feature === 'redeemHour'), 'velocity is the reason');
  const detail = (await s.api('GET', `/api/ops/fraud/reviews/${list[0].id}`)).json();
  t.match(detail.history, { redemptions: paid + held, prizes_won: paid + held });
});

t.test('bought codes: codes from scattered packs within an hour are held from the fourth; a six-pack of print neighbours is paid', async (t) => {
  const s = await setup(t, [{ name: '10积分', kind: 'points', value: 10, weight: 1 }], { codes: 400 });
  const redeem = async (openid: string, code: string, first: boolean) => {
    const r = first ? (await s.sim.text(openid, code), await s.answerSlowly(openid, '陈刚', '3')) : await s.sim.text(openid, code);
    return /暂时无法参与兑奖/.test(r.content!) ? 'blocked' : /审核中/.test(r.content!) ? 'held' : /恭喜您抽中【10积分】/.test(r.content!) ? 'paid' : r.content!;
  };
  // A six-pack: six codes printed one after another (seq 350–355), redeemed a minute apart.
  const pack: string[] = [];
  for (let i = 0; i < 6; i++) {
    pack.push(await redeem('oSixPack', s.codes[350 + i]!, i === 0));
    s.clock.advance(60_000);
  }
  t.same(pack, ['paid', 'paid', 'paid', 'paid', 'paid', 'paid'], 'one multipack is one neighbourhood');
  // Six codes in six minutes: the hourly rate is shared with other instances, written beside the replies.
  await s.services.fraud.drain();
  const [st] = await s.q<{ redeem_rate: number; redeem_total: number }>(`SELECT redeem_rate, redeem_total FROM fraud_user_state WHERE openid = 'oSixPack'`);
  t.ok(st && Number(st.redeem_rate) > 4 && Number(st.redeem_total) === 6, `velocity row written: ${JSON.stringify(st)}`);
  // Bought codes: print positions 0, 100, 200, … (each from another pack), at the same pace.
  const bought: string[] = [];
  for (let i = 0; i < 5; i++) {
    bought.push(await redeem('oBuyer', s.codes[i * 70]!, i === 0));
    s.clock.advance(60_000);
  }
  t.same(bought.slice(0, 3), ['paid', 'paid', 'paid'], 'up to three packs bought on their own pass');
  t.not(bought[3], 'paid', 'the fourth scattered code is not paid');
  t.not(bought[4], 'paid');
  const [d] = await s.q<{ reasons: Array<{ feature: string }> }>(`SELECT reasons FROM fraud_decisions WHERE openid = 'oBuyer' ORDER BY id LIMIT 1`);
  t.equal(d!.reasons[0]!.feature, 'scatteredCodes', 'named as the reason');
  t.equal(bought[4], 'blocked', 'the fifth is refused unseen');
  // Back after the block ended (6 h): for a week every prize waits for a reviewer, even a print neighbour of an earlier code.
  s.clock.advance(7 * 3_600_000);
  t.equal(await redeem('oBuyer', s.codes[1]!, false), 'held', 'a returning blocked user is held');
  const [last] = await s.q<{ reasons: Array<{ feature: string }> }>(`SELECT reasons FROM fraud_decisions WHERE openid = 'oBuyer' ORDER BY id DESC LIMIT 1`);
  t.equal(last!.reasons[0]!.feature, 'recentBlock');
});

t.test('account farm: accounts sharing one phone — beyond a couple, their top-ups wait for review (told kindly), then their codes are refused', async (t) => {
  const s = await setup(t, [{ name: '10元话费', kind: 'topup', value: 1000, weight: 1, totalStock: 20 }]);
  const farm = ['oFarm1', 'oFarm2', 'oFarm3', 'oFarm4'];
  const replies: string[] = [];
  for (const [i, openid] of farm.entries()) {
    await s.sim.text(openid, s.codes[i]!);
    const r = await s.answerSlowly(openid, ['周杰', '吴磊', '郑爽', '孙俪'][i]!, String(i + 1));
    t.match(r.content, /恭喜您抽中【10元话费】/);
    await s.settle();
    s.clock.advance(30_000);
    replies.push((await s.sim.text(openid, '13912345678')).content!);
    await s.settle();
  }
  t.match(replies[0], /话费正在充值中/);
  t.match(replies[1], /话费正在充值中/, 'two accounts on one phone: a couple, allowed');
  t.match(replies[2], /审核中/, 'the third account sharing the phone is held, and told kindly');
  t.match(replies[3], /审核中/);
  const jobs = await s.q<{ openid: string; state: string }>(`SELECT openid, state FROM fulfilments ORDER BY id`);
  t.same(jobs.map((j) => j.state), ['succeeded', 'succeeded', 'held', 'held']);
  t.equal(await count(s.database, 'fraud_reviews', `openid IN ('oFarm3', 'oFarm4')`), 2);
  // Every account on that phone is now read before its next code: four on one phone is a farm — refused unseen.
  s.clock.advance(60_000);
  const r = await s.sim.text('oFarm1', s.codes[10]!);
  t.match(r.content, /暂时无法参与兑奖/);
  t.equal(await count(s.database, 'codes', 'redeemed_at IS NOT NULL'), 4, 'the refused code stays unused');
});

t.test('bots: golden answers typed instantly are held from the first account; answers at a human pace are not', async (t) => {
  const s = await setup(t, [{ name: '现金红包 2元', kind: 'cash', value: 200, weight: 1, totalStock: 20 }]);
  const results: boolean[] = [];
  for (let i = 0; i < 5; i++) {
    const openid = `oBot${i}`;
    await s.sim.text(openid, s.codes[i]!);
    await s.sim.text(openid, '张伟');
    const r = await s.sim.text(openid, '2');
    t.match(r.content, /恭喜您抽中【现金红包 2元】/);
    results.push(/审核/.test(r.content!));
    s.clock.advance(3_000);
  }
  t.same(results, [true, true, true, true, true], 'two answers, each within 2 s of its question: the cash waits for review');
  const [d] = await s.q<{ reasons: Array<{ feature: string }> }>(`SELECT reasons FROM fraud_decisions WHERE openid = 'oBot4'`);
  t.ok(d!.reasons.some((x) => x.feature === 'answerPrint') && d!.reasons.some((x) => x.feature === 'fastAnswers'), 'the repeated answer set is among the reasons');

  // Answers typed by a person (seconds per question) are nobody's business.
  const openid = 'oPerson';
  await s.sim.text(openid, s.codes[5]!);
  s.clock.advance(6_000);
  await s.sim.text(openid, '李娜');
  s.clock.advance(5_000);
  const r = await s.sim.text(openid, '3');
  t.match(r.content, /恭喜您抽中【现金红包 2元】/);
  t.notMatch(r.content, /审核/, 'paid at once');
});

t.test('blacklist: CRUD and import (all or nothing); a blacklisted openid is refused before the lookup and its code stays unused', async (t) => {
  const s = await setup(t, [{ name: '10积分', kind: 'points', value: 10, weight: 1 }]);
  let res = await s.api('POST', '/api/ops/fraud/blacklist', { kind: 'openid', value: 'oBanned', note: 'known farm' });
  t.equal(res.statusCode, 201);
  const entry = res.json();
  t.match(entry, { kind: 'openid', hint: 'oBa***ned', note: 'known farm', createdBy: 'admin' });
  t.equal((await s.api('POST', '/api/ops/fraud/blacklist', { kind: 'openid', value: 'oBanned' })).statusCode, 409, 'listed once');
  t.equal((await s.api('POST', '/api/ops/fraud/blacklist', { kind: 'phone', value: '123' })).statusCode, 422);

  res = await s.api('POST', '/api/ops/fraud/blacklist/import', { entries: [{ kind: 'phone', value: '13800138000' }, { kind: 'ip', value: 'not an ip!' }] });
  t.equal(res.statusCode, 422, 'one bad entry: nothing imported');
  t.match(res.json(), { code: 'VALIDATION', details: [{ index: 1 }] });
  t.equal(await count(s.database, 'fraud_blacklist'), 1);
  res = await s.api('POST', '/api/ops/fraud/blacklist/import', { entries: [{ kind: 'phone', value: '138 0013 8000' }, { kind: 'ip', value: '10.0.0.1' }, { kind: 'openid', value: 'oBanned' }] });
  t.same(res.json(), { received: 3, added: 2, alreadyListed: 1 });
  const listed = (await s.api('GET', '/api/ops/fraud/blacklist')).json() as any[];
  t.same(listed.map((e) => e.hint).sort(), ['10.***0.1', '138****8000', 'oBa***ned']);
  const stored = await s.q<{ value_hash: string }>(`SELECT value_hash FROM fraud_blacklist`);
  t.ok(stored.every((r) => !/13800138000|oBanned/.test(r.value_hash)), 'only keyed hashes are stored');

  const r = await s.sim.text('oBanned', s.codes[0]!);
  t.match(r.content, /暂时无法参与兑奖/);
  t.equal(await count(s.database, 'codes', 'redeemed_at IS NOT NULL'), 0);
  t.match((await s.sim.text('oSomeoneElse', s.codes[0]!)).content, /兑奖码验证成功|恭喜|很遗憾/, 'the code is still good for its owner');

  t.equal((await s.api('DELETE', `/api/ops/fraud/blacklist/${entry.id}`)).statusCode, 204);
  t.equal((await s.api('DELETE', `/api/ops/fraud/blacklist/${entry.id}`)).statusCode, 404);
  t.match((await s.sim.text('oBanned', s.codes[1]!)).content, /兑奖码验证成功/, 'removed from the list: redeems again');
  const audit = await s.q<{ action: string }>(`SELECT action FROM audit_log WHERE target_type = 'fraud_blacklist' ORDER BY id`);
  t.same(audit.map((a) => a.action), ['fraud_blacklist.add', 'fraud_blacklist.import', 'fraud_blacklist.remove']);
});

t.test('review queue: approve and reject are exactly-once under double clicks; approval pays, rejection returns the stock and blacklists; decisions carry the model version', async (t) => {
  const s = await setup(t, [{ name: '现金红包 5元', kind: 'cash', value: 500, weight: 1, totalStock: 4 }], { codes: 10 });
  // Ops make everything held from now on: a new model version.
  let res = await s.api('POST', '/api/ops/fraud/models', { thresholds: { hold: 0.01, holdByKind: { cash: 0.01 } }, note: 'hold all for the test' });
  t.equal(res.statusCode, 201);
  t.equal(res.json().version, 2);
  t.equal((await s.api('POST', '/api/ops/fraud/models', { thresholds: { hold: 0.9, block: 0.5 } })).statusCode, 422, 'hold above block is refused');
  t.match((await s.api('POST', '/api/ops/fraud/models', { weights: { sharedPhon: 3 } })).json(), { code: 'VALIDATION', message: /weights.sharedPhon is not a feature/ });
  t.equal((await s.api('GET', '/api/ops/fraud/models')).json().length, 2, 'refused edits save no version');
  t.equal((await s.api('GET', '/api/ops/fraud/model')).json().version, 2);

  for (const openid of ['oWinA', 'oWinB']) {
    await s.sim.text(openid, s.codes[openid === 'oWinA' ? 0 : 1]!);
    const r = await s.answerSlowly(openid, openid === 'oWinA' ? '林峰' : '黄蕾', '2');
    t.match(r.content, /恭喜您抽中【现金红包 5元】！\n您的奖品正在审核中，审核通过后将自动发放/);
  }
  await s.settle();
  const stock = async () => Number((await s.q<{ n: number }>(`SELECT sum(remaining)::int AS n FROM prize_stock_shards`))[0]!.n);
  t.equal(await stock(), 2, 'held prizes keep their stock');
  t.equal(s.paySandbox.state.bills.size, 0, 'nothing paid while held');
  const reviews = ((await s.api('GET', '/api/ops/fraud/reviews?status=pending')).json() as any[]).sort((a, b) => a.id - b.id);
  t.equal(reviews.length, 2);
  t.ok(reviews.every((r) => r.modelVersion === 2), 'the decision names the version that made it');

  const [a, b] = reviews;
  const approvals = await Promise.all(Array.from({ length: 6 }, () => s.api('POST', `/api/ops/fraud/reviews/${a.id}/approve`, { note: 'looks fine' })));
  t.same(approvals.map((x) => x.statusCode).sort(), [200, 409, 409, 409, 409, 409], 'one approval wins');
  t.match(approvals.find((x) => x.statusCode === 409)!.json(), { code: 'CONFLICT', message: /already approved by admin/ });
  await s.settle();
  const jobA = (await s.q<{ state: string }>(`SELECT state FROM fulfilments WHERE id = ${a.fulfilmentId}`))[0]!;
  t.equal(jobA.state, 'waiting_user', 'approved: the transfer was created, waiting for the winner to confirm');
  t.equal(s.paySandbox.state.bills.size, 1);

  const rejections = await Promise.all(Array.from({ length: 6 }, () => s.api('POST', `/api/ops/fraud/reviews/${b.id}/reject`, { note: 'farm', blacklist: true })));
  t.same(rejections.map((x) => x.statusCode).sort(), [200, 409, 409, 409, 409, 409], 'one rejection wins');
  t.equal(await stock(), 3, 'the rejected prize went back to stock, once');
  t.equal((await s.q<{ state: string }>(`SELECT state FROM fulfilments WHERE id = ${b.fulfilmentId}`))[0]!.state, 'cancelled');
  t.equal((await s.api('POST', `/api/ops/fraud/reviews/${a.id}/reject`, {})).statusCode, 409, 'an approved review cannot be rejected');
  const audit = await s.q<{ action: string; actor_name: string; detail: any }>(`SELECT action, actor_name, detail FROM audit_log WHERE target_type = 'fraud_review' ORDER BY id`);
  t.same(audit.map((x) => x.action), ['fraud_review.approve', 'fraud_review.reject'], 'one audit entry per decision');
  t.ok(audit.every((x) => x.actor_name === 'admin'));
  t.match(audit[1]!.detail, { blacklisted: true, stockReturned: true, note: 'farm' });
  t.match((await s.sim.text('oWinB', s.codes[2]!)).content, /暂时无法参与兑奖/, 'the rejected user was blacklisted');
  t.equal((await s.api('POST', `/api/ops/fraud/reviews/999/approve`, {})).statusCode, 404);

  // The redemptions export carries the decision and the review's outcome.
  const csv = (await s.api('GET', `/api/ops/campaigns/${s.campaign.id}/redemptions.csv`)).body.replace(/^\uFEFF/, '');
  const rows = parse(csv, { columns: true }) as Array<{ openid: string; risk_decision: string }>;
  t.same(rows.filter((x) => x.openid !== 'oWinB' || x.risk_decision !== '').map((x) => [x.openid, x.risk_decision]), [['oWinA', 'hold:approved'], ['oWinB', 'hold:rejected']]);
});
