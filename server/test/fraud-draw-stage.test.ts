/**
 * The draw stage of anti-fraud through the mini program: codes redeemed fast and drawn later do not shed the
 * signals — a user suspended by a block draws nothing while the block lasts (the redemptions stay pending), and
 * after it every prize waits for a reviewer; a script calling draw in a loop while blocked writes one decision a
 * minute, not one per call.
 */
import t from 'tap';
import { buildTestApp, count, noonShanghai } from './helpers.ts';
import { mpLogin } from './mp-helpers.ts';
import { seedCampaign } from './campaign-fixtures.ts';
import { manualClock } from '../src/platform/clock.ts';

const HOUR = 3_600_000;

t.test('redeem fast, draw later: blocked users draw nothing during the block; afterwards their prizes are held', async (t) => {
  const clock = manualClock(noonShanghai());
  const h = await buildTestApp(t, { clock, env: { FRAUD_ENABLED: 'true', FRAUD_CACHE_TTL_MS: '0' } });
  const { codes } = await seedCampaign(h.database, h.config.codeKey, {
    unlockMin: 0, questions: [], codes: 30, prizes: [{ name: '10积分', kind: 'points', value: 10, weight: 1 }],
    startsAt: new Date(clock.now().getTime() - 3 * 24 * HOUR), endsAt: new Date(clock.now().getTime() + 30 * 24 * HOUR),
  });
  let who = await mpLogin(h);
  // Sessions last a couple of hours: the member logs in again when coming back.
  const relogin = async () => (who = await mpLogin(h, { openid: who.mpOpenid }));
  const call = async (url: string, payload: unknown = {}) => {
    const res = await h.app.inject({ method: 'POST', url, headers: { ...who.headers, 'x-forwarded-for': '183.6.1.9' }, payload: payload as object });
    return { status: res.statusCode, body: res.json() as any };
  };
  // Redeem without drawing, ten seconds apart, until the velocity blocks a code.
  const pending: string[] = [];
  let refused: { status: number; body: any } | undefined;
  for (let i = 0; i < 30 && !refused; i++) {
    clock.advance(10_000);
    const r = await call('/api/mp/redemptions', { code: codes[i] });
    if (r.status === 200) pending.push(r.body.id);
    else refused = r;
  }
  t.ok(refused, 'a code is refused once the rate crosses the block threshold');
  t.equal(refused!.status, 403);
  t.ok(pending.length >= 5, `${pending.length} redemptions pending`);

  // During the block (6 h): every pending redemption's draw is refused, and stays pending.
  clock.advance(2 * HOUR);
  await relogin();
  for (const id of pending) {
    const d = await call(`/api/mp/redemptions/${id}/draw`);
    t.equal(d.status, 403, `draw of ${id} refused while blocked`);
  }
  t.equal(await count(h.database, 'draws'), 0, 'nothing drawn');
  t.equal(await count(h.database, 'redemptions', `status = 'redeemed'`), pending.length, 'the redemptions are kept for later');

  // A loop of draw calls while blocked: one decision row a minute at most.
  const before = await count(h.database, 'fraud_decisions', `stage = 'draw'`);
  for (let i = 0; i < 10; i++) await call(`/api/mp/redemptions/${pending[0]}/draw`);
  t.ok((await count(h.database, 'fraud_decisions', `stage = 'draw'`)) - before <= 1, 'no decision row per call');

  // After the block: the prizes are drawn and every one waits for a reviewer (a recent block).
  clock.advance(5 * HOUR);
  await relogin();
  const results: string[] = [];
  for (const id of pending) {
    clock.advance(60_000);
    const d = await call(`/api/mp/redemptions/${id}/draw`);
    results.push(d.status !== 200 ? String(d.status) : d.body.draw.review === 'pending' ? 'held' : 'paid');
  }
  t.same(results, pending.map(() => 'held'), `all held after the block: ${results.join(',')}`);
  t.equal(await count(h.database, 'fraud_reviews', `status = 'pending'`), pending.length);
});

t.test('the per-campaign count starts again in the next campaign: a loyal customer of the last one is not held for it', async (t) => {
  const clock = manualClock(noonShanghai());
  const h = await buildTestApp(t, { clock, env: { FRAUD_ENABLED: 'true', FRAUD_CACHE_TTL_MS: '0' } });
  const window = { startsAt: new Date(clock.now().getTime() - 3 * 24 * HOUR), endsAt: new Date(clock.now().getTime() + 30 * 24 * HOUR) };
  const prizes = [{ name: '10积分', kind: 'points' as const, value: 10, weight: 1 }];
  const first = await seedCampaign(h.database, h.config.codeKey, { unlockMin: 0, questions: [], codes: 24, prizes, ...window });
  const second = await seedCampaign(h.database, h.config.codeKey, { unlockMin: 0, questions: [], codes: 3, prizes, ...window });
  let who = await mpLogin(h);
  const play = async (code: string) => {
    who = await mpLogin(h, { openid: who.mpOpenid });
    const headers = { ...who.headers, 'x-forwarded-for': '183.6.1.9' };
    const r = await h.app.inject({ method: 'POST', url: '/api/mp/redemptions', headers, payload: { code } });
    if (r.statusCode !== 200) return String(r.statusCode);
    const d = await h.app.inject({ method: 'POST', url: `/api/mp/redemptions/${r.json().id}/draw`, headers });
    return d.statusCode !== 200 ? String(d.statusCode) : d.json().draw.review === 'pending' ? 'held' : 'paid';
  };
  // 24 packs over three days of the first campaign, three hours apart: far past its allowance of 12 (held from the 20th).
  const loyal: string[] = [];
  for (const code of first.codes) {
    clock.advance(3 * HOUR);
    loyal.push(await play(code));
  }
  t.ok(loyal.slice(-3).every((o) => o === 'held'), `late codes of the first campaign are held (its count): ${loyal.join(',')}`);
  await h.services.fraud.drain();
  clock.advance(3 * HOUR);
  t.equal(await play(second.codes[0]!), 'paid', "the second campaign's first code is not held for the first campaign's count");
  t.equal(await count(h.database, 'fraud_decisions', `decision <> 'allow' AND campaign_id = ${second.campaign.id}`), 0);
});
