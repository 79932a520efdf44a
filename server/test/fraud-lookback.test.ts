/**
 * Look-back holds through the public interfaces (signed webhook, ops API, the fraud service and the points ledger):
 * evidence that arrives after a user's first prizes were issued (a farm's name cluster is known from its third
 * account) holds the earlier prizes still within reach — points taken back into a held job, jobs not started moved
 * to held — each exactly once, with a customer-service notice; approval credits the points again, rejection keeps
 * them taken back.
 * Points already spent, jobs already paid, prizes older than the window and look-back turned off
 * (thresholds.lookbackH = 0) are left alone.
 */
import t from 'tap';
import { sql } from 'drizzle-orm';
import { manualClock } from '../src/platform/clock.ts';
import { adminHeaders, buildTestApp, count, noonShanghai, simulatorOn } from './helpers.ts';
import { seedCampaign } from './campaign-fixtures.ts';
import { newcomerOf } from './fraud-helpers.ts';
import type { PrizeBody } from '../../shared/campaigns.ts';

const MIN = 60_000;

async function setup(t: { teardown(fn: () => unknown): void }, prizes: PrizeBody[] = [{ name: '10积分', kind: 'points', value: 10, weight: 1 }]) {
  const clock = manualClock(noonShanghai());
  const ctx = await buildTestApp(t, { clock, env: { FRAUD_ENABLED: 'true', FRAUD_CACHE_TTL_MS: '0' } });
  const seeded = await seedCampaign(ctx.database, ctx.config.codeKey, {
    prizes, codes: 40, unlockMin: 2,
    startsAt: new Date(clock.now().getTime() - 3 * 24 * 60 * MIN), endsAt: new Date(clock.now().getTime() + 30 * 24 * 60 * MIN),
  });
  const sim = simulatorOn(ctx, () => clock.now().getTime());
  let next = 0;
  const code = () => seeded.codes[next++]!;
  const admin = await adminHeaders(ctx.app);
  const api = (method: 'GET' | 'POST', url: string, payload?: unknown) =>
    ctx.app.inject({ method, url, headers: admin, ...(payload === undefined ? {} : { payload: payload as object }) });
  const newcomer = newcomerOf(sim, clock, code);
  const settle = async () => {
    await ctx.services.fraud.drain();
    await ctx.services.fulfilment.idle();
    await ctx.services.bot.drain();
  };
  const balance = (openid: string) => ctx.services.ledger.balance(openid);
  const csTexts = async (openid: string): Promise<string[]> => {
    const calls = (await (await fetch(`${ctx.sandbox.url}/__sandbox/calls?path=/cgi-bin/message/custom/send&touser=${openid}`)).json()) as Array<{ errcode: number; body: any }>;
    return calls.filter((c) => c.errcode === 0).map((c) => c.body.text?.content ?? '');
  };
  const q = <T = Record<string, unknown>>(text: string) => ctx.database.query<T>(sql.raw(text));
  /** Three accounts typing one name, seven minutes apart: the third is held, the first two paid before the evidence. */
  const farm = async (names = ['oFarmA', 'oFarmB', 'oFarmC']) => {
    const r = [];
    for (const [i, openid] of names.entries()) {
      if (i > 0) clock.advance(7 * MIN);
      r.push(await newcomer(openid, '张三丰'));
    }
    await settle();
    return r;
  };
  return { ...ctx, clock, sim, code, api, newcomer, settle, balance, csTexts, q, farm };
}

t.test('a name cluster found at its third account holds the points its first two accounts were credited, exactly once', async (t) => {
  const s = await setup(t);
  t.equal(await s.newcomer('oHonest', '李逍遥'), 'paid');
  t.same(await s.farm(), ['paid', 'paid', 'held'], 'the first two are paid before the cluster is known');
  t.equal(await s.balance('oFarmA'), 0, 'the 10 points the first account was credited are taken back');
  t.equal(await s.balance('oFarmB'), 0);
  t.equal(await s.balance('oFarmC'), 0, 'the third one\'s prize was held at its draw');
  t.equal(await s.balance('oHonest'), 10, 'another name is nobody else\'s business');

  const reviews = ((await s.api('GET', '/api/ops/fraud/reviews?status=pending')).json() as any[]).sort((a, b) => a.id - b.id);
  t.same(reviews.map((r) => [r.openid, r.amount, r.fulfilmentState]).sort(), [['oFarmA', 10, 'held'], ['oFarmB', 10, 'held'], ['oFarmC', 10, 'held']]);
  const lookback = await s.q<{ openid: string; reasons: Array<{ feature: string }> }>(`SELECT openid, reasons FROM fraud_decisions WHERE stage = 'lookback' ORDER BY openid`);
  t.same(lookback.map((d) => d.openid), ['oFarmA', 'oFarmB'], 'one look-back decision per earlier prize');
  t.equal(lookback[0]!.reasons[0]!.feature, 'sharedName', 'with the evidence that made it');
  const ledger = await s.q<{ openid: string; delta: number; reason: string; idempotency_key: string }>(
    `SELECT openid, delta, reason, idempotency_key FROM points_ledger WHERE openid = 'oFarmA' ORDER BY id`);
  t.same(ledger.map((l) => [l.delta, l.reason, l.idempotency_key.replace(/\d+$/, 'N')]), [[10, 'lottery_prize', 'draw:N'], [-10, 'fraud_hold', 'hold:draw:N']]);
  const texts = await s.csTexts('oFarmA');
  t.equal(texts.filter((x) => /您近期获得的 10 积分奖励正在审核中/.test(x)).length, 1, 'the user is told once, kindly');
  t.equal((await s.csTexts('oHonest')).filter((x) => /审核/.test(x)).length, 0);

  // The same evidence again (another account of the cluster, a direct call in parallel): nothing is held twice.
  s.clock.advance(MIN);
  t.equal(await s.newcomer('oFarmD', '张三丰'), 'held');
  const again = await Promise.all(Array.from({ length: 5 }, () => s.services.fraud.lookBack(['oFarmA', 'oFarmB', 'oFarmC', 'oFarmD'], s.clock.now())));
  t.same(again, [0, 0, 0, 0, 0], 'every prize within reach is held already');
  await s.settle();
  t.equal(await count(s.database, 'fraud_reviews'), 4);
  t.equal(await count(s.database, 'points_ledger', `reason = 'fraud_hold'`), 2, 'each prize taken back once');
  t.equal(await s.balance('oFarmA'), 0);
  t.equal((await s.csTexts('oFarmA')).filter((x) => /审核中/.test(x)).length, 1, 'and told once');
});

t.test('parallel look-backs of one prize: one hold, one debit, one review', async (t) => {
  const s = await setup(t);
  t.equal(await s.newcomer('oRaceA', '赵灵儿'), 'paid');
  t.equal(await s.balance('oRaceA'), 10);
  // Evidence that makes the user's next prize wait (a phone shared by four accounts), then several look-backs at once.
  s.clock.advance(MIN);
  await s.q(`INSERT INTO fraud_user_state (openid, shared_phone, flagged, updated_at) VALUES ('oRaceA', 4, true, now()) ON CONFLICT (openid) DO UPDATE SET shared_phone = 4, flagged = true`);
  const held = await Promise.all(Array.from({ length: 8 }, () => s.services.fraud.lookBack(['oRaceA'], s.clock.now())));
  t.equal(held.reduce((a, b) => a + b, 0), 1, 'exactly one of eight parallel look-backs held the prize');
  await s.settle();
  t.equal(await count(s.database, 'fraud_reviews', `openid = 'oRaceA'`), 1);
  t.equal(await count(s.database, 'points_ledger', `openid = 'oRaceA' AND reason = 'fraud_hold'`), 1);
  t.equal(await count(s.database, 'fulfilments', `openid = 'oRaceA' AND source_key LIKE 'release:%'`), 1);
  t.equal(await s.balance('oRaceA'), 0);
});

t.test('the window: a prize older than thresholds.lookbackH (72 h by default) stands', async (t) => {
  const s = await setup(t);
  t.equal(await s.newcomer('oOld', '赵灵儿'), 'paid');
  s.clock.advance(72 * 60 * MIN + MIN);
  t.equal(await s.newcomer('oNew', '林月如'), 'paid');
  await s.q(`INSERT INTO fraud_user_state (openid, shared_phone, flagged, updated_at) VALUES ('oOld', 4, true, now()), ('oNew', 4, true, now())
    ON CONFLICT (openid) DO UPDATE SET shared_phone = 4, flagged = true`);
  t.equal(await s.services.fraud.lookBack(['oOld', 'oNew'], s.clock.now()), 1, 'only the prize within the window is held');
  await s.settle();
  t.equal(await s.balance('oOld'), 10, 'three days and a minute old: out of the window');
  t.equal(await s.balance('oNew'), 0);
});

t.test('a user blacklisted after a prize: the next code is refused and the earlier prize held, once however often they retry', async (t) => {
  const s = await setup(t);
  t.equal(await s.newcomer('oLater', '赵灵儿'), 'paid');
  t.equal(await s.balance('oLater'), 10);
  t.equal((await s.api('POST', '/api/ops/fraud/blacklist', { kind: 'openid', value: 'oLater', note: 'chargeback' })).statusCode, 201);
  for (let i = 0; i < 5; i++) {
    s.clock.advance(10_000);
    t.match((await s.sim.text('oLater', s.code())).content, /暂时无法参与兑奖/);
  }
  await s.settle();
  t.equal(await s.balance('oLater'), 0, 'the points paid before the blacklisting are taken back');
  t.equal(await count(s.database, 'fraud_reviews', `openid = 'oLater'`), 1, 'one review, however many attempts');
  t.equal(await count(s.database, 'points_ledger', `openid = 'oLater' AND reason = 'fraud_hold'`), 1);
  t.equal(await count(s.database, 'fraud_decisions', `openid = 'oLater' AND stage = 'code'`), 1, 'one block decision a minute');
});

t.test('approve credits the points again (once, under double clicks); reject keeps them taken back', async (t) => {
  const s = await setup(t);
  await s.farm();
  const reviews = ((await s.api('GET', '/api/ops/fraud/reviews?status=pending')).json() as any[]);
  const a = reviews.find((r) => r.openid === 'oFarmA')!;
  const b = reviews.find((r) => r.openid === 'oFarmB')!;
  const approvals = await Promise.all(Array.from({ length: 5 }, () => s.api('POST', `/api/ops/fraud/reviews/${a.id}/approve`, { note: 'a real person' })));
  t.same(approvals.map((x) => x.statusCode).sort(), [200, 409, 409, 409, 409]);
  await s.settle();
  t.equal(await s.balance('oFarmA'), 10, 'credited again on approval');
  const entries = (await s.q<{ delta: number; reason: string }>(`SELECT delta, reason FROM points_ledger WHERE openid = 'oFarmA' ORDER BY id`)).map((e) => [e.delta, e.reason]);
  t.same(entries, [[10, 'lottery_prize'], [-10, 'fraud_hold'], [10, 'lottery_prize']], 'prize, taken back, credited again: one entry each');
  t.equal((await s.q<{ state: string }>(`SELECT state FROM fulfilments WHERE id = ${a.fulfilmentId}`))[0]!.state, 'succeeded');

  const rejections = await Promise.all(Array.from({ length: 5 }, () => s.api('POST', `/api/ops/fraud/reviews/${b.id}/reject`, { note: 'farm' })));
  t.same(rejections.map((x) => x.statusCode).sort(), [200, 409, 409, 409, 409]);
  await s.settle();
  t.equal(await s.balance('oFarmB'), 0, 'rejected: the points stay taken back');
  t.equal((await s.q<{ state: string }>(`SELECT state FROM fulfilments WHERE id = ${b.fulfilmentId}`))[0]!.state, 'cancelled');
  t.equal(await count(s.database, 'points_ledger', `openid = 'oFarmB'`), 2, 'nothing credited after the rejection');
});

t.test('out of reach is left alone: points already spent, a prize already paid; and lookbackH = 0 turns it off', async (t) => {
  const s = await setup(t);
  t.equal(await s.newcomer('oFarmA', '张三丰'), 'paid');
  // The first account spends its points before the evidence arrives (a debit like the points mall's).
  await s.services.ledger.debit('oFarmA', 10, 'mall:test:1', 'mall_order');
  await s.farm(['oFarmX', 'oFarmY']);
  t.equal(await s.balance('oFarmA'), 0);
  t.equal(await count(s.database, 'fraud_reviews', `openid = 'oFarmA'`), 0, 'spent points cannot be taken back: no review that could never be settled');
  t.equal(await count(s.database, 'points_ledger', `openid = 'oFarmA' AND reason = 'fraud_hold'`), 0);
  t.equal(await count(s.database, 'fraud_reviews', `openid = 'oFarmX'`), 1, 'the second account\'s points were still there');

  const off = await setup(t);
  const res = await off.api('POST', '/api/ops/fraud/models', { thresholds: { lookbackH: 0 }, note: 'no look-back' });
  t.equal(res.statusCode, 201);
  t.equal((await off.api('POST', '/api/ops/fraud/models', { thresholds: { lookbackH: 500 } })).statusCode, 400, 'at most a week');
  t.equal((await off.api('POST', '/api/ops/fraud/models', { thresholds: { lookbackH: 2.5 } })).statusCode, 400, 'whole hours');
  for (const bad of [0, 1.5, 'high']) {
    const r = await off.api('POST', '/api/ops/fraud/models', { thresholds: { lookback: bad } });
    t.equal(r.statusCode, 400, `lookback ${JSON.stringify(bad)} refused`);
    t.match(r.json(), { message: /lookback/ }, 'naming the field');
  }
  t.equal((await off.api('GET', '/api/ops/fraud/model')).json().version, 2, 'nothing saved by the refused edits');
  t.same(await off.farm(), ['paid', 'paid', 'held']);
  t.equal(await off.balance('oFarmA'), 10, 'turned off: the earlier prizes stand');
  t.equal(await count(off.database, 'fraud_decisions', `stage = 'lookback'`), 0);
});

t.test('a job not started yet (a top-up waiting for a phone) moves to held; one already paid stays paid', async (t) => {
  const s = await setup(t, [{ name: '10元话费', kind: 'topup', value: 1000, weight: 1, totalStock: 20 }]);
  t.equal(await s.newcomer('oFarmA', '张三丰'), 'paid');
  await s.settle();
  s.clock.advance(30_000);
  t.match((await s.sim.text('oFarmA', '13912345678')).content, /话费正在充值中/);
  await s.settle(); // the first account's top-up is paid
  s.clock.advance(7 * MIN);
  t.equal(await s.newcomer('oFarmB', '张三丰'), 'paid', 'the second account is asked for its phone and has not answered yet');
  await s.settle();
  s.clock.advance(7 * MIN);
  t.equal(await s.newcomer('oFarmC', '张三丰'), 'held');
  await s.settle();
  const jobs = await s.q<{ openid: string; state: string }>(`SELECT openid, state FROM fulfilments ORDER BY openid`);
  t.same(jobs.map((j) => [j.openid, j.state]), [['oFarmA', 'succeeded'], ['oFarmB', 'held'], ['oFarmC', 'held']]);
  t.equal(await count(s.database, 'fraud_reviews', `openid = 'oFarmA'`), 0, 'a top-up already paid is out of reach');
  t.equal((await s.csTexts('oFarmB')).filter((x) => /您近期获得的奖品正在审核中/.test(x)).length, 1);
  const stock = Number((await s.q<{ n: number }>(`SELECT sum(remaining)::int AS n FROM prize_stock_shards`))[0]!.n);
  const review = ((await s.api('GET', '/api/ops/fraud/reviews?status=pending')).json() as any[]).find((r) => r.openid === 'oFarmB')!;
  t.equal((await s.api('POST', `/api/ops/fraud/reviews/${review.id}/reject`, { note: 'farm' })).statusCode, 200);
  t.equal(Number((await s.q<{ n: number }>(`SELECT sum(remaining)::int AS n FROM prize_stock_shards`))[0]!.n), stock + 1, 'rejected: its top-up goes back to stock');
});
