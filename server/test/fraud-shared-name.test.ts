/**
 * The shared-name signal through the public interfaces (signed webhook, mini-program API): accounts typing the same
 * name within the window beyond what chance explains at the campaign's volume of names are held, every account of the
 * cluster is flagged (its next prize waits for a reviewer too); generic forms (王先生, 小王) and names typed outside
 * the window do not count; the threshold rises with the number of names typed. Only keyed hashes are stored.
 */
import t from 'tap';
import { sql } from 'drizzle-orm';
import { manualClock } from '../src/platform/clock.ts';
import { adminHeaders, buildTestApp, count, noonShanghai, simulatorOn } from './helpers.ts';
import { mpLogin } from './mp-helpers.ts';
import { seedCampaign } from './campaign-fixtures.ts';
import { chatOutcome, newcomerOf } from './fraud-helpers.ts';

const MIN = 60_000;

async function setup(t: { teardown(fn: () => unknown): void }, codes = 40) {
  const clock = manualClock(noonShanghai());
  const ctx = await buildTestApp(t, { clock, env: { FRAUD_ENABLED: 'true', FRAUD_CACHE_TTL_MS: '0' } });
  const seeded = await seedCampaign(ctx.database, ctx.config.codeKey, {
    prizes: [{ name: '10积分', kind: 'points', value: 10, weight: 1 }], codes, unlockMin: 2,
    startsAt: new Date(clock.now().getTime() - 3 * 24 * 60 * MIN), endsAt: new Date(clock.now().getTime() + 30 * 24 * 60 * MIN),
  });
  const sim = simulatorOn(ctx, () => clock.now().getTime());
  let next = 0;
  const code = () => seeded.codes[next++]!;
  const newcomer = newcomerOf(sim, clock, code);
  /** A returning account's next code (its profile unlocks the draw at once). */
  const again = async (openid: string) => chatOutcome((await sim.text(openid, code())).content);
  const q = <T = Record<string, unknown>>(text: string) => ctx.database.query<T>(sql.raw(text));
  return { ...ctx, clock, sim, newcomer, again, q, code };
}

t.test('three new accounts typing one name within the window: the third is held, the first two are flagged and held at their next code', async (t) => {
  const s = await setup(t);
  const first = [];
  for (const openid of ['oSameA', 'oSameB', 'oSameC']) {
    if (first.length > 0) s.clock.advance(7 * MIN);
    first.push(await s.newcomer(openid, ' 张三丰 '));
  }
  t.same(first, ['paid', 'paid', 'held'], 'two namesakes are chance; a third within half an hour, at this volume, is not');
  s.clock.advance(2 * MIN);
  t.equal(await s.newcomer('oSameD', '张三丰'), 'held', 'two minutes after the cluster\'s latest account: the burst goes on');
  s.clock.advance(5 * MIN);
  t.equal(await s.newcomer('oOther', '李逍遥'), 'paid', 'another name is nobody else\'s business');

  const [d] = await s.q<{ openid: string; reasons: Array<{ feature: string }>; features: Record<string, number> }>(
    `SELECT openid, reasons, features FROM fraud_decisions WHERE decision = 'hold' AND stage = 'draw' ORDER BY id LIMIT 1`);
  t.equal(d!.openid, 'oSameC');
  t.equal(d!.reasons[0]!.feature, 'sharedName', 'named as the reason');
  t.match(d!.features, { sharedName: 3, nameAnswers: 3 }, 'the cluster and the window\'s volume are shown to the reviewer');
  const states = await s.q<{ openid: string; shared_name: number; flagged: boolean }>(`SELECT openid, shared_name, flagged FROM fraud_user_state WHERE shared_name > 0 ORDER BY openid`);
  t.same(states.map((r) => [r.openid, r.shared_name, r.flagged]), [['oSameA', 3, true], ['oSameB', 3, true], ['oSameC', 3, true], ['oSameD', 4, true]], 'every account of the cluster is flagged');

  // The prizes the first two were paid before the cluster was known are held too (look-back: fraud-lookback.test.ts).
  t.equal(await count(s.database, 'fraud_decisions', `stage = 'lookback' AND openid IN ('oSameA', 'oSameB')`), 2);
  s.clock.advance(30 * MIN);
  t.equal(await s.again('oSameA'), 'held', 'the first account is caught at its next code');
  t.equal(await s.again('oSameB'), 'held');
  t.equal(await s.again('oOther'), 'paid');
  t.equal(await count(s.database, 'fraud_decisions', `decision = 'block'`), 0, 'a shared name alone never blocks');

  // A namesake typing the name well after the cluster was caught is judged on its own: matching a known name is chance.
  s.clock.advance(20 * MIN);
  t.equal(await s.newcomer('oNamesakeLater', '张三丰'), 'paid', 'not swept into the cluster caught before it');
  t.equal(await count(s.database, 'fraud_user_state', `openid = 'oNamesakeLater' AND shared_name > 0`), 0);

  const links = await s.q<{ value_hash: string }>(`SELECT value_hash FROM fraud_identifier_accounts WHERE kind = 'name'`);
  t.equal(links.length, 6, 'one link per account and name');
  t.ok(links.every((l) => /^[0-9a-f]{40}$/.test(l.value_hash)), 'keyed hashes only, never the name');
  t.equal(new Set(links.map((l) => l.value_hash)).size, 2);
});

t.test('generic forms (王先生, 小王, 李总) and names typed outside the window do not count; a real name typed by three does', async (t) => {
  const s = await setup(t);
  const generic = [];
  for (const [i, name] of ['王先生', '王先生', '王先生', '小王', '小王', '小王', '李总', '李总', '李总'].entries()) {
    generic.push(await s.newcomer(`oGeneric${i}`, name));
    s.clock.advance(3 * MIN);
  }
  t.same(generic, Array(9).fill('paid'), 'titles and nicknames are typed by many honest people');
  t.equal(await count(s.database, 'fraud_identifier_accounts', `kind = 'name'`), 0, 'not even linked');

  // Two namesakes, then a third more than two hours later: not one cluster.
  t.equal(await s.newcomer('oEarly1', '林月如'), 'paid');
  s.clock.advance(10 * MIN);
  t.equal(await s.newcomer('oEarly2', '林月如'), 'paid');
  s.clock.advance(2 * 60 * MIN + MIN);
  t.equal(await s.newcomer('oLate1', '林 月如'), 'paid', 'the first one fell out of the window: two in it');
  s.clock.advance(10 * MIN);
  t.equal(await s.newcomer('oLate2', '林月如'), 'paid', 'the second one fell out too: still two');
  s.clock.advance(10 * MIN);
  t.equal(await s.newcomer('oLate3', '林月如'), 'held', 'three within the window count (normalised: 林 月如 is 林月如)');
  const flaggedNow = await s.q<{ openid: string }>(`SELECT openid FROM fraud_user_state WHERE shared_name > 0 ORDER BY openid`);
  t.same(flaggedNow.map((r) => r.openid), ['oLate1', 'oLate2', 'oLate3'], 'the accounts outside the window are left alone');
});

t.test('the threshold rises with the names typed campaign-wide: among twenty other names, three namesakes are chance and a fourth counts', async (t) => {
  const s = await setup(t, 60);
  const surnames = '赵钱孙李周吴郑王冯陈褚卫蒋沈韩杨朱秦尤许';
  // 24 accounts in about six minutes (14 s each): all inside the shortest window scanned (7.5 min).
  for (let i = 0; i < 20; i++) t.equal(await s.newcomer(`oCrowd${i}`, `${surnames[i]}建${'国华明军'[i % 4]}`), 'paid');
  const same = [];
  for (let i = 0; i < 4; i++) same.push(await s.newcomer(`oNamesake${i}`, '赵灵儿'));
  // 23 names: λ = 23 × 0.001, P(two or more others | λ) ≈ 2.6e-4 — chance; P(three or more) ≈ 2e-6 — not.
  t.same(same, ['paid', 'paid', 'paid', 'held'], 'three namesakes among 23 names are chance; a fourth is not');
  const [d] = await s.q<{ features: Record<string, number> }>(`SELECT features FROM fraud_decisions WHERE decision = 'hold' ORDER BY id LIMIT 1`);
  t.match(d!.features, { sharedName: 4, nameAnswers: 24 });
  t.equal(await count(s.database, 'fraud_user_state', 'shared_name = 4 AND flagged'), 4, 'the four accounts of the cluster are flagged');

  // Ops can say names are more concentrated than that (a regional campaign): the allowance rises at once.
  const admin = await adminHeaders(s.app);
  const res = await s.app.inject({ method: 'POST', url: '/api/ops/fraud/models', headers: admin, payload: { allowances: { sharedNameShare: 0.01 }, note: 'regional' } });
  t.equal(res.statusCode, 201);
  t.equal(await s.again('oNamesake0'), 'paid', 'four namesakes among 24 names at a 1 % share are chance: the stored cluster no longer counts');
  t.equal((await s.app.inject({ method: 'POST', url: '/api/ops/fraud/models', headers: admin, payload: { allowances: { sharedNameShare: 0 } } })).statusCode, 400, 'a zero share is refused');
});

t.test('tempo: three namesakes within minutes count even when the long window is busy; the same three spread over two hours do not', async (t) => {
  const s = await setup(t, 60);
  const surnames = '赵钱孙李周吴郑王冯陈褚卫蒋沈韩杨朱秦尤许';
  const spread = [];
  for (let i = 0; i < 20; i++) {
    t.equal(await s.newcomer(`oCrowd${i}`, `${surnames[i]}建${'国华明军'[i % 4]}`), 'paid');
    // Three namesakes among them, about 40 minutes apart: each window holds at most two of them (or many names).
    if (i % 7 === 3) spread.push(await s.newcomer(`oSpread${i}`, '林月如'));
    s.clock.advance(5 * MIN);
  }
  t.same(spread, ['paid', 'paid', 'paid'], 'three namesakes over two hours among 23 names: chance');
  const burst = [];
  for (let i = 0; i < 3; i++) {
    burst.push(await s.newcomer(`oBurst${i}`, '赵灵儿'));
    s.clock.advance(MIN);
  }
  t.same(burst, ['paid', 'paid', 'held'], 'three within minutes: few names in the short window, beyond chance');
  const [d] = await s.q<{ features: Record<string, number> }>(`SELECT features FROM fraud_decisions WHERE decision = 'hold' ORDER BY id LIMIT 1`);
  t.match(d!.features, { sharedName: 3 });
  t.ok(d!.features.nameAnswers! <= 8, `counted against the short window's names (${d!.features.nameAnswers})`);
});

t.test('mini program: the same name typed in the form by three accounts holds the third draw', async (t) => {
  const s = await setup(t);
  const results: string[] = [];
  for (let i = 0; i < 3; i++) {
    const who = await mpLogin(s);
    const headers = { ...who.headers, 'x-forwarded-for': `117.136.${i}.9`, 'x-mp-device': `iPhone|M${i}|iOS_17.5|ios|390x844@3|8.0.49` };
    const call = async (url: string, payload: unknown = {}) => (await s.app.inject({ method: 'POST', url, headers, payload: payload as object })).json() as any;
    const r = await call('/api/mp/redemptions', { code: s.code() });
    s.clock.advance(15_000);
    await call(`/api/mp/redemptions/${r.id}/answers`, { answers: { name: '段 誉', occupation: '学生' } });
    s.clock.advance(2_000);
    const d = await call(`/api/mp/redemptions/${r.id}/draw`);
    results.push(d.draw?.review === 'pending' ? 'held' : d.draw ? 'paid' : JSON.stringify(d));
    s.clock.advance(5 * MIN);
  }
  t.same(results, ['paid', 'paid', 'held']);
});
