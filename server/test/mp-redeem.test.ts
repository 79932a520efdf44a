/**
 * Redemption in the mini program through /api/mp/redemptions: a code typed or scanned, the golden questions as a form,
 * the draw; every refusal with its reason; double submits, answers out of order, a draw before the unlock and a second
 * draw; the profile and the redemption history shared with the chat flow.
 */
import t from 'tap';
import { sql } from 'drizzle-orm';
import { buildTestApp, count, onPostgres } from './helpers.ts';
import { mpLogin, type MpLoggedIn } from './mp-helpers.ts';
import { seedCampaign, setCampaign } from './campaign-fixtures.ts';
import { generateCodes } from '../src/campaigns/codes.ts';

type H = Awaited<ReturnType<typeof buildTestApp>>;

function client(h: H, who: MpLoggedIn) {
  const call = async (method: 'GET' | 'POST', url: string, payload?: unknown) => {
    const res = await h.app.inject({ method, url, headers: who.headers, ...(method === 'POST' ? { payload: (payload ?? {}) as object } : {}) });
    return { status: res.statusCode, body: res.json() as any };
  };
  return {
    redeem: (code: string) => call('POST', '/api/mp/redemptions', { code }),
    get: (id: string) => call('GET', `/api/mp/redemptions/${id}`),
    list: () => call('GET', '/api/mp/redemptions'),
    answer: (id: string, answers: Record<string, unknown>) => call('POST', `/api/mp/redemptions/${id}/answers`, { answers }),
    draw: (id: string) => call('POST', `/api/mp/redemptions/${id}/draw`),
  };
}

const GUANGDONG = '440000';
const SHENZHEN = '440300';

t.test('a typed code, the questions as a form, the draw and its points', async (t) => {
  const h = await buildTestApp(t);
  const { codes, campaign } = await seedCampaign(h.database, h.config.codeKey, { unlockMin: 2, prizes: [{ name: '50积分', kind: 'points', value: 50, weight: 1 }] });
  const alice = await mpLogin(h);
  const mp = client(h, alice);
  const printed = `${codes[0]!.slice(0, 4)}-${codes[0]!.slice(4, 8)}-${codes[0]!.slice(8)}`.toLowerCase();

  const r = await mp.redeem(printed);
  t.equal(r.status, 200);
  t.equal(r.body.status, 'redeemed');
  t.same(r.body.campaign, { id: campaign.id, name: '夏日开盖有礼' });
  t.equal(r.body.unlocked, false);
  t.equal(r.body.needed, 2);
  t.match(r.body.message, /兑奖码验证成功.*至少回答 2 题/);
  t.same(r.body.questions.map((q: any) => [q.key, q.kind, q.required]), [
    ['name', 'text', true], ['occupation', 'choice', false], ['region', 'region', false], ['business_type', 'choice', false], ['spending', 'range', false],
  ]);
  const region = r.body.questions.find((q: any) => q.kind === 'region');
  t.equal(region.provinces.length, 31, 'the province → city cascade comes with the question');
  t.ok(region.provinces.find((p: any) => p.code === GUANGDONG).cities.some((c: any) => c.code === SHENZHEN && c.name === '深圳市'));
  t.same(r.body.questions.find((q: any) => q.key === 'spending').options, ['30元以下', '30–60元', '60–100元', '100元以上']);
  const id = r.body.id as string;

  const early = await mp.draw(id);
  t.equal(early.status, 409, 'no draw before the questions unlock it');
  t.equal(early.body.details.reason, 'locked');
  t.equal(early.body.details.needed, 2);
  t.equal(await count(h.database, 'draws'), 0);

  // One wrong answer in the form saves nothing.
  const bad = await mp.answer(id, { name: 'A', occupation: '学生' });
  t.equal(bad.status, 422);
  t.equal(bad.body.details.reason, 'invalid_answers');
  t.match(bad.body.details.fields.name, /请输入 2–20 个字/);
  t.notOk(bad.body.details.fields.occupation);
  t.equal(await count(h.database, 'profile_answers'), 0);

  // The required question alone is not enough; the form comes back without it.
  let a = await mp.answer(id, { name: '张三', occupation: '' });
  t.equal(a.status, 200);
  t.equal(a.body.unlocked, false);
  t.equal(a.body.needed, 1);
  t.notOk(a.body.questions.some((q: any) => q.key === 'name'));
  a = await mp.answer(id, { region: { provinceCode: GUANGDONG, cityCode: SHENZHEN } });
  t.equal(a.body.unlocked, true);
  t.same(a.body.questions, []);
  const answers = await h.database.query<{ question_key: string; display: string; source: string }>(sql`SELECT question_key, display, source FROM profile_answers ORDER BY question_key`);
  t.same(answers.map((x) => [x.question_key, x.display, x.source]), [['name', '张三', 'mp'], ['region', '广东省 深圳市', 'mp']], 'stored as the chat stores them');

  const d = await mp.draw(id);
  t.equal(d.status, 200);
  t.equal(d.body.status, 'drawn');
  t.equal(d.body.draw.outcome, 'won');
  t.same(d.body.draw.prize, { id: d.body.draw.prize.id, name: '50积分', kind: 'points', value: 50 });
  t.equal(d.body.draw.points, 50);
  t.equal(d.body.draw.balance, 50);
  t.equal(d.body.draw.next, 'points_credited');
  t.match(d.body.draw.message, /恭喜您抽中【50积分】[\s\S]*本次获得 50 积分，当前积分 50/);

  // Drawing again (a double tap, a retry) is the same draw.
  const again = await mp.draw(id);
  t.equal(again.status, 200);
  t.equal(again.body.draw.drawId, d.body.draw.drawId);
  t.same({ ...again.body.draw, balance: 0 }, { ...d.body.draw, balance: 0 });
  t.equal(await count(h.database, 'draws'), 1);
  t.equal(await count(h.database, 'points_ledger', 'delta = 50'), 1, 'credited once');

  // Answering after the draw is out of order.
  const late = await mp.answer(id, { occupation: '学生' });
  t.equal(late.status, 409);
  t.equal(late.body.details.reason, 'already_drawn');

  const got = await mp.get(id);
  t.equal(got.body.draw.drawId, d.body.draw.drawId);
  const list = await mp.list();
  t.same(list.body.map((x: any) => [x.id, x.status, x.outcome, x.prizeName]), [[id, 'drawn', 'won', '50积分']]);

  // A second code: the profile already unlocks the draw — straight to "ready", the member taps to draw.
  const second = await mp.redeem(codes[1]!);
  t.equal(second.body.unlocked, true);
  t.equal(second.body.draw, null);
  t.equal((await mp.draw(second.body.id)).body.draw.balance, 100);
});

t.test('every refusal of a code has its reason and changes nothing', async (t) => {
  const h = await buildTestApp(t);
  const { codes, campaign, batch } = await seedCampaign(h.database, h.config.codeKey, { unlockMin: 0, questions: [], codes: 8, redemptionsPerDay: 2 });
  const alice = client(h, await mpLogin(h));
  const bob = client(h, await mpLogin(h));
  const c0 = codes[0]!;

  const typo = await alice.redeem(c0.slice(0, 3) + (c0[3] === 'A' ? 'B' : 'A') + c0.slice(4));
  t.equal(typo.status, 422);
  t.equal(typo.body.details.reason, 'typo');
  t.match(typo.body.message, /似乎有字符输错了/);
  const notCode = await alice.redeem('你好');
  t.equal(notCode.status, 422);
  t.equal(notCode.body.details.reason, 'not_code');
  t.match(notCode.body.message, /这不像是兑奖码/);
  t.notMatch(notCode.body.message, /取消/, 'no chat instructions in the mini program');
  const unknown = await alice.redeem(generateCodes(1)[0]!);
  t.equal(unknown.status, 404);
  t.equal(unknown.body.details.reason, 'unknown');

  // A scanned QR code carrying the code in a URL.
  const scanned = await alice.redeem(`https://brand.example/r?c=${c0}`);
  t.equal(scanned.status, 200);
  t.equal(scanned.body.unlocked, true, 'a campaign without questions is ready to draw');

  // Submitting one's own code again (a double tap) is the same redemption; someone else's is refused.
  const twice = await alice.redeem(c0);
  t.equal(twice.status, 200);
  t.equal(twice.body.id, scanned.body.id);
  const other = await bob.redeem(c0);
  t.equal(other.status, 409);
  t.equal(other.body.details.reason, 'taken');
  t.match(other.body.message, /已被其他用户使用/);
  t.equal(await count(h.database, 'redemptions'), 1);

  // And someone else's redemption is not found.
  t.equal((await bob.get(scanned.body.id)).status, 404);
  t.equal((await bob.draw(scanned.body.id)).status, 404);
  t.equal((await bob.answer(scanned.body.id, { name: '李四' })).status, 404);
  t.equal(await count(h.database, 'draws'), 0);

  // Daily limit (2): the third code today is refused and stays unused.
  t.equal((await alice.redeem(codes[1]!)).status, 200);
  const limited = await alice.redeem(codes[2]!);
  t.equal(limited.status, 409);
  t.equal(limited.body.details.reason, 'daily_limit');
  t.match(limited.body.message, /达到每日上限/);
  t.equal(await count(h.database, 'codes', 'redeemed_at IS NOT NULL'), 2);

  await setCampaign(h.database, campaign.id, { status: 'paused' });
  const paused = await bob.redeem(codes[3]!);
  t.equal(paused.status, 409);
  t.equal(paused.body.details.reason, 'paused');
  await setCampaign(h.database, campaign.id, { status: 'live' });

  const { codeBatches } = await import('../src/campaigns/tables.ts');
  const { eq } = await import('drizzle-orm');
  await h.database.db.update(codeBatches).set({ status: 'voided' }).where(eq(codeBatches.id, batch.id));
  const voided = await bob.redeem(codes[4]!);
  t.equal(voided.status, 409);
  t.equal(voided.body.details.reason, 'voided');
  t.equal(await count(h.database, 'redemptions'), 2);
});

t.test('the draw waits while the campaign is paused and closes a day after its end', async (t) => {
  const h = await buildTestApp(t);
  const { codes, campaign } = await seedCampaign(h.database, h.config.codeKey, { unlockMin: 1, prizes: [{ name: '10积分', kind: 'points', value: 10, weight: 1 }] });
  const mp = client(h, await mpLogin(h));
  const a = await mp.redeem(codes[0]!);
  const b = await mp.redeem(codes[1]!);
  t.equal((await mp.answer(a.body.id, { name: '郑十一' })).status, 200);
  await setCampaign(h.database, campaign.id, { status: 'paused' });
  const paused = await mp.draw(a.body.id);
  t.equal(paused.status, 409);
  t.equal(paused.body.details.reason, 'paused');
  t.match(paused.body.message, /抽奖暂不可用/);
  t.equal(await count(h.database, 'draws'), 0);
  await setCampaign(h.database, campaign.id, { status: 'live', endsAt: new Date(Date.now() - 3_600_000) });
  const late = await mp.draw(a.body.id);
  t.equal(late.status, 200, 'an hour after the end: within the grace');
  t.equal(late.body.status, 'drawn');
  await setCampaign(h.database, campaign.id, { startsAt: new Date(Date.now() - 72 * 3_600_000), endsAt: new Date(Date.now() - 25 * 3_600_000) });
  const closed = await mp.draw(b.body.id);
  t.equal(closed.status, 409);
  t.equal(closed.body.details.reason, 'ended');
  t.match(closed.body.message, /抽奖已截止/);
  t.equal(await count(h.database, 'draws'), 1);
});

t.test('a question the campaign re-asks is in the form again, and an answer from before the code does not unlock the draw', async (t) => {
  const h = await buildTestApp(t);
  const { QUESTIONS } = await import('./campaign-fixtures.ts');
  const won = [{ name: '10积分', kind: 'points' as const, value: 10, weight: 1 }];
  const first = await seedCampaign(h.database, h.config.codeKey, { unlockMin: 2, questions: QUESTIONS.slice(0, 2), prizes: won });
  const mp = client(h, await mpLogin(h));
  const a = await mp.redeem(first.codes[0]!);
  t.equal((await mp.answer(a.body.id, { name: '卫十三', occupation: '学生' })).status, 200);
  t.equal((await mp.draw(a.body.id)).status, 200);

  const again = await seedCampaign(h.database, h.config.codeKey, { unlockMin: 2, questions: [QUESTIONS[0]!, { ...QUESTIONS[1]!, reask: true }], prizes: won });
  const b = await mp.redeem(again.codes[0]!);
  t.equal(b.body.unlocked, false);
  t.same(b.body.questions.map((q: any) => q.key), ['occupation'], 'only the re-asked question');
  t.equal((await mp.draw(b.body.id)).status, 409, 'the earlier answer does not unlock it');
  t.equal((await mp.answer(b.body.id, { occupation: '上班族' })).status, 200);
  t.equal((await mp.draw(b.body.id)).body.status, 'drawn');
});

t.test('bad input: no token, a forged token, malformed ids and bodies', async (t) => {
  const h = await buildTestApp(t);
  await seedCampaign(h.database, h.config.codeKey);
  const noToken = await h.app.inject({ method: 'POST', url: '/api/mp/redemptions', payload: { code: 'X' } });
  t.equal(noToken.statusCode, 401);
  t.equal(noToken.json().code, 'UNAUTHENTICATED');
  const forged = await h.app.inject({ method: 'GET', url: '/api/mp/redemptions', headers: { authorization: 'Bearer mps_forged0000000000000000000000' } });
  t.equal(forged.statusCode, 401);

  const who = await mpLogin(h);
  const mp = client(h, who);
  t.equal((await mp.get('abc')).status, 400);
  t.equal((await mp.get('999999')).status, 404);
  const extra = await h.app.inject({ method: 'POST', url: '/api/mp/redemptions', headers: who.headers, payload: { code: 'X', extra: 1 } });
  t.equal(extra.statusCode, 400);
  const badAnswer = await h.app.inject({ method: 'POST', url: '/api/mp/redemptions/1/answers', headers: who.headers, payload: { answers: { region: { provinceCode: 'x' } } } });
  t.equal(badAnswer.statusCode, 400);
});

t.test('answers out of order or off the list are refused field by field', async (t) => {
  const h = await buildTestApp(t);
  const { codes } = await seedCampaign(h.database, h.config.codeKey, { unlockMin: 2 });
  const mp = client(h, await mpLogin(h));
  const { body: r } = await mp.redeem(codes[0]!);
  const res = await mp.answer(r.id, {
    name: '', // required: cannot be skipped
    occupation: '宇航员', // not an option
    region: { provinceCode: GUANGDONG, cityCode: '110101' }, // Beijing's district under Guangdong
    spending: 2, // not read as "option 2": an amount of 2 元
    favourite_colour: '红',
  });
  t.equal(res.status, 422);
  t.same(Object.keys(res.body.details.fields).sort(), ['favourite_colour', 'name', 'occupation', 'region']);
  t.match(res.body.details.fields.name, /必答题/);
  t.match(res.body.details.fields.favourite_colour, /没有这道题/);
  t.equal(await count(h.database, 'profile_answers'), 0, 'nothing saved');

  const ok = await mp.answer(r.id, { name: 'Mary Ann', spending: 75, business_type: '便利店' });
  t.equal(ok.status, 200);
  t.equal(ok.body.unlocked, true);
  const rows = await h.database.query<{ question_key: string; value: any }>(sql`SELECT question_key, value FROM profile_answers WHERE question_key = 'spending'`);
  t.same(rows[0]!.value, { label: '60–100元', min: 60, max: 100, amount: 75 });
});

t.test('parallel double submits: one redemption, one draw, the same result for every tap', async (t) => {
  const h = await buildTestApp(t);
  const { codes } = await seedCampaign(h.database, h.config.codeKey, { unlockMin: 0, questions: [], prizes: [{ name: '20积分', kind: 'points', value: 20, weight: 1 }] });
  const mp = client(h, await mpLogin(h));
  const redeemed = await Promise.all(Array.from({ length: 6 }, () => mp.redeem(codes[0]!)));
  t.same(redeemed.map((r) => r.status), [200, 200, 200, 200, 200, 200]);
  t.equal(new Set(redeemed.map((r) => r.body.id)).size, 1);
  t.equal(await count(h.database, 'redemptions'), 1);
  const counters = await h.database.query<{ total: number }>(sql`SELECT total FROM campaign_user_counters`);
  t.equal(Number(counters[0]!.total), 1, 'the lost races gave their count back');

  const drawn = await Promise.all(Array.from({ length: 6 }, () => mp.draw(redeemed[0]!.body.id)));
  t.same(drawn.map((r) => r.status), [200, 200, 200, 200, 200, 200]);
  t.equal(new Set(drawn.map((r) => r.body.draw.drawId)).size, 1);
  t.ok(drawn.every((r) => r.body.draw.points === 20));
  t.equal(await count(h.database, 'draws'), 1);
  t.equal(await count(h.database, 'points_ledger'), 1);
});

t.test('one person in chat and in the mini program: the profile and the redemptions are shared', async (t) => {
  const h = await buildTestApp(t);
  const { codes } = await seedCampaign(h.database, h.config.codeKey, { unlockMin: 2, prizes: [{ name: '10积分', kind: 'points', value: 10, weight: 1 }] });
  await h.sim.subscribe('oChatUser0001');
  await h.database.db.execute(sql`UPDATE followers SET unionid = 'uShared0001' WHERE openid = 'oChatUser0001'`);
  const who = await mpLogin(h, { unionid: 'uShared0001' });
  const mp = client(h, who);

  // Redeemed in chat, questions left unanswered ("取消"): the mini program resumes it.
  let reply = await h.sim.text('oChatUser0001', codes[0]!);
  t.match(reply.content, /兑奖码验证成功/);
  reply = await h.sim.text('oChatUser0001', '取消');
  const [pending] = (await mp.list()).body;
  t.equal(pending.status, 'redeemed');
  const form = await mp.get(pending.id);
  t.equal(form.body.questions.length, 5);
  const answered = await mp.answer(pending.id, { name: '王五', occupation: '上班族' });
  t.equal(answered.body.unlocked, true);
  // What the earn rules gave for following comes first.
  const base = await h.services.ledger.balance('oChatUser0001');
  t.equal((await mp.draw(pending.id)).body.draw.balance, base + 10, 'the points land on the follower\'s account');

  // The answers given in the mini program unlock the next chat code at once.
  reply = await h.sim.text('oChatUser0001', codes[1]!);
  t.match(reply.content, new RegExp(`恭喜您抽中【10积分】[\\s\\S]*当前积分 ${base + 20}`));
  t.equal((await mp.list()).body.length, 2);
});

t.test('the live campaigns for the home banner: live and inside their window only, prizes without odds', async (t) => {
  const h = await buildTestApp(t);
  const live = await seedCampaign(h.database, h.config.codeKey, { prizes: [{ name: '100积分', kind: 'points', value: 100, weight: 1 }, { name: '谢谢参与', kind: 'thanks', weight: 9 }] });
  await seedCampaign(h.database, h.config.codeKey, { status: 'paused' });
  await seedCampaign(h.database, h.config.codeKey, { startsAt: new Date(Date.now() + 86_400_000) });
  const res = await h.app.inject({ method: 'GET', url: '/api/mp/campaigns', headers: (await mpLogin(h)).headers });
  t.equal(res.statusCode, 200);
  t.same(res.json().map((c: any) => [c.id, c.name, c.prizes]), [[live.campaign.id, '夏日开盖有礼', ['100积分']]]);
  t.equal((await h.app.inject({ method: 'GET', url: '/api/mp/campaigns' })).statusCode, 401);
});

t.test('anti-fraud applies in the mini program too: guessing starts a cool-down that refuses a valid code unseen', async (t) => {
  const { manualClock } = await import('../src/platform/clock.ts');
  const clock = manualClock(new Date());
  const h = await buildTestApp(t, { clock, env: { FRAUD_ENABLED: 'true', FRAUD_CACHE_TTL_MS: '0' } });
  const { codes } = await seedCampaign(h.database, h.config.codeKey, { unlockMin: 0, questions: [] });
  const mp = client(h, await mpLogin(h));
  const guesses = generateCodes(6);
  for (let i = 0; i < 3; i++) {
    const r = await mp.redeem(guesses[i]!);
    t.equal(r.body.details.reason, 'unknown');
    t.notMatch(r.body.message, /后再试/, `wrong code ${i + 1} is free`);
    clock.advance(2_000);
  }
  const fourth = await mp.redeem(guesses[3]!);
  t.equal(fourth.status, 404);
  t.match(fourth.body.message, /未找到兑奖码.*\n.*请于 .* 后再试/s, 'the fourth wrong code starts a cool-down');
  const valid = await mp.redeem(codes[0]!);
  t.equal(valid.status, 403);
  t.equal(valid.body.details.reason, 'refused');
  t.match(valid.body.message, /错误兑奖码的次数较多/);
  t.equal(await count(h.database, 'codes', 'redeemed_at IS NOT NULL'), 0, 'the valid code was not consumed');
});

t.test('anti-fraud at the draw: a burst of codes from one member is held for review (points wait), then refused', async (t) => {
  const { manualClock } = await import('../src/platform/clock.ts');
  const clock = manualClock(new Date());
  const h = await buildTestApp(t, { clock, env: { FRAUD_ENABLED: 'true', FRAUD_CACHE_TTL_MS: '0' } });
  const { codes } = await seedCampaign(h.database, h.config.codeKey, { unlockMin: 0, questions: [], codes: 20, prizes: [{ name: '10积分', kind: 'points', value: 10, weight: 1 }] });
  const who = await mpLogin(h);
  const mp = client(h, who);
  const outcome: string[] = [];
  let heldId: string | undefined;
  let paidId: string | undefined;
  for (let i = 0; i < 18; i++) {
    clock.advance(15_000);
    const r = await mp.redeem(codes[i]!);
    if (r.status !== 200) {
      outcome.push(r.body.details.reason);
      continue;
    }
    const d = await mp.draw(r.body.id);
    if (d.status !== 200) {
      outcome.push(d.body.details.reason);
      continue;
    }
    if (d.body.draw.review === 'pending') heldId ??= r.body.id;
    else paidId ??= r.body.id;
    outcome.push(d.body.draw.review === 'pending' ? 'held' : 'paid');
  }
  t.ok(outcome.slice(0, 6).every((o) => o === 'paid'), `the first codes pass: ${outcome.join(',')}`);
  t.ok(outcome.includes('held'), 'later prizes are held');
  t.ok(outcome.some((o) => o === 'blocked' || o === 'refused'), 'then refused');
  const held = await mp.get(heldId!);
  t.equal(held.body.draw.next, 'under_review');
  t.equal(held.body.draw.points, 0, 'held points are not credited');
  t.match(held.body.draw.message, /恭喜您抽中【10积分】[\s\S]*审核中/);
  const paid = outcome.filter((o) => o === 'paid').length;
  const openid = (await h.services.sessions.authenticate(who.token))!.openid;
  const [acct] = await h.database.query<{ balance: number }>(sql`SELECT balance FROM points_accounts WHERE openid = ${openid}`);
  // Refused (blocked): the prizes paid before it are held too (look-back), their points taken back.
  t.equal(Number(acct!.balance), 0, `the ${paid} prizes paid before the block are taken back`);
  t.equal(await count(h.database, 'points_ledger', `openid = '${openid}' AND reason = 'fraud_hold'`), paid);
  t.equal(await count(h.database, 'fraud_reviews', `status = 'pending'`), paid + outcome.filter((o) => o === 'held').length);
  const first = (await mp.get(paidId!)).body.draw;
  t.match(first, { next: 'under_review', review: 'pending', points: 0 }, 'the first prize, paid then taken back, shows as under review with no points');
  t.match(first.message, /审核中/);
});

t.test('concurrency: members racing for one code — exactly one redemption, the others told it is taken, no counts kept', async (t) => {
  const h = await buildTestApp(t, { env: { FRAUD_ENABLED: 'false' } });
  const { codes } = await seedCampaign(h.database, h.config.codeKey, { unlockMin: 0, questions: [], codes: 2 });
  const n = onPostgres ? 50 : 10;
  const members = await Promise.all(Array.from({ length: n }, () => mpLogin(h)));
  const results = await Promise.all(members.map((m) => client(h, m).redeem(codes[0]!)));
  t.equal(results.filter((r) => r.status === 200).length, 1);
  t.ok(results.filter((r) => r.status !== 200).every((r) => r.status === 409 && r.body.details.reason === 'taken'));
  t.equal(await count(h.database, 'redemptions'), 1);
  t.equal(await count(h.database, 'codes', 'redeemed_at IS NOT NULL'), 1);
  const totals = await h.database.query<{ n: number }>(sql`SELECT coalesce(sum(total), 0)::int AS n FROM campaign_user_counters`);
  t.equal(Number(totals[0]!.n), 1, 'the losers\' counts were given back');
});

t.test('anti-fraud: a code someone else took moments ago is a race, not a guess; long taken codes count as wrong', async (t) => {
  const { manualClock } = await import('../src/platform/clock.ts');
  const clock = manualClock(new Date());
  const h = await buildTestApp(t, { clock, env: { FRAUD_ENABLED: 'true', FRAUD_CACHE_TTL_MS: '0' } });
  const { codes } = await seedCampaign(h.database, h.config.codeKey, { unlockMin: 0, questions: [], codes: 4 });
  const alice = client(h, await mpLogin(h));
  const bob = client(h, await mpLogin(h));
  for (const c of codes) t.equal((await alice.redeem(c)).status, 200);
  for (const c of codes) {
    const r = await bob.redeem(c);
    t.equal(r.body.details.reason, 'taken');
    t.notMatch(r.body.message, /后再试/, 'a race is not held against Bob');
    clock.advance(2_000);
  }
  clock.advance(61_000);
  const later: string[] = [];
  for (const c of codes) {
    later.push((await bob.redeem(c)).body.message);
    clock.advance(2_000);
  }
  t.match(later[3], /已被其他用户使用.*\n.*请于 .* 后再试/s, 'codes taken long ago are what bought-code lists produce');
});
