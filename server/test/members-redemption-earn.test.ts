/**
 * The members' `redemption` earn rule: off by default (the campaign's prize table rewards a redemption already); once
 * ops enable it, every redeemed code — in chat or in the mini program — earns its points exactly once, and a credit
 * lost on the way is made up by the catch-up pass, once.
 */
import t from 'tap';
import { sql } from 'drizzle-orm';
import { manualClock } from '../src/platform/clock.ts';
import { adminHeaders, buildTestApp, count } from './helpers.ts';
import { seedCampaign } from './campaign-fixtures.ts';
import { mpLogin } from './mp-helpers.ts';

const earned = (h: { database: { query: any } }, openid: string) =>
  h.database.query(sql`SELECT coalesce(sum(delta), 0)::int AS n FROM points_ledger WHERE openid = ${openid} AND reason = 'earn:redemption'`).then((r: Array<{ n: number }>) => r[0]!.n);

t.test('redemption earn › off by default; enabled by ops, chat and mini-program redemptions earn once each', async (t) => {
  const clock = manualClock(new Date());
  const h = await buildTestApp(t, { clock });
  const admin = await adminHeaders(h.app);
  const { codes } = await seedCampaign(h.database, h.config.codeKey, { unlockMin: 0, questions: [], codes: 4, prizes: [{ name: '1积分', kind: 'points', value: 1, weight: 1 }] });

  t.match((await h.sim.text('oRedeemEarn1', codes[0]!)).content, /恭喜/);
  await h.services.redemptionEarn.drain();
  t.equal(await earned(h, 'oRedeemEarn1'), 0, 'the rule is off by default: only the prize point');

  clock.advance(1_000);
  const on = await h.app.inject({ method: 'PATCH', url: '/api/ops/members/earn-rules/redemption', headers: admin, payload: { enabled: true } });
  t.equal(on.statusCode, 200);
  clock.advance(10_000); // past the rules cache
  t.match((await h.sim.text('oRedeemEarn1', codes[1]!)).content, /恭喜/);
  // A retried message (same MsgId) is the same redemption: no second credit.
  await h.services.redemptionEarn.drain();
  t.equal(await earned(h, 'oRedeemEarn1'), 10, 'the enabled rule credits its 10 points for the chat redemption');

  const s = await mpLogin(h);
  const r = await h.app.inject({ method: 'POST', url: '/api/mp/redemptions', headers: { authorization: `Bearer ${s.token}` }, payload: { code: codes[2] } });
  t.equal(r.statusCode, 200, r.body);
  await h.services.redemptionEarn.drain();
  t.equal(await earned(h, s.mpOpenid), 10, 'and for the mini-program redemption');

  clock.advance(120_000);
  t.equal(await h.services.redemptionEarn.catchUp(), 0, 'the catch-up pass finds nothing missing (nor credits the code redeemed while the rule was off)');
  t.equal(await earned(h, 'oRedeemEarn1'), 10);
  t.equal(await count(h.database, 'points_ledger', `reason = 'earn:redemption'`), 2);
});

t.test('redemption earn › a credit lost on the way is made up once by the catch-up pass', async (t) => {
  const clock = manualClock(new Date());
  const h = await buildTestApp(t, { clock });
  const { codes } = await seedCampaign(h.database, h.config.codeKey, { unlockMin: 0, questions: [], codes: 3, prizes: [{ name: '谢谢参与', kind: 'thanks', weight: 1 }] });
  await h.database.db.execute(sql`UPDATE earn_rules SET enabled = true, updated_at = now() - interval '1 minute' WHERE key = 'redemption'`);
  // The credit fails on its way (here: the ledger refuses it), as a crash after the redemption would lose it.
  await h.database.db.execute(sql.raw(`CREATE FUNCTION test_refuse_earn() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused for the test'; END $$`));
  await h.database.db.execute(sql.raw(`CREATE TRIGGER test_refuse_earn BEFORE INSERT ON points_ledger FOR EACH ROW WHEN (NEW.reason = 'earn:redemption') EXECUTE FUNCTION test_refuse_earn()`));
  t.match((await h.sim.text('oRedeemLost1', codes[0]!)).content, /很遗憾/);
  t.match((await h.sim.text('oRedeemLost2', codes[1]!)).content, /很遗憾/);
  await h.services.redemptionEarn.drain();
  t.equal(await earned(h, 'oRedeemLost1'), 0, 'the credit was lost');
  await h.database.db.execute(sql.raw('DROP TRIGGER test_refuse_earn ON points_ledger'));
  clock.advance(10_000);
  t.equal(await h.services.redemptionEarn.catchUp(), 0, 'a redemption younger than a minute is left to its own credit');
  clock.advance(120_000);
  const [a, b] = await Promise.all([h.services.redemptionEarn.catchUp(), h.services.redemptionEarn.catchUp()]);
  t.equal(a + b, 2, 'both lost credits are made up, by one of two concurrent passes');
  t.equal(await h.services.redemptionEarn.catchUp(), 0, 'and never again');
  t.equal(await earned(h, 'oRedeemLost1'), 10);
  t.equal(await earned(h, 'oRedeemLost2'), 10);
});
