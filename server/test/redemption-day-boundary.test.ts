/**
 * Daily counters at the day boundary (Asia/Shanghai midnight), through the webhook with two app instances on one
 * database whose clocks straddle midnight: B already lives on day D+1, A is a few seconds behind and still stamps
 * its messages with day D (clock skew between hosts, or a request that waited). A late request of day D must never
 * move a counter back to D — that reset the daily cap, and the next D+1 request restarted its count at 1.
 * The late request is counted into the newer day (the conservative choice: it uses up one of D+1's units).
 */
import t from 'tap';
import { sql } from 'drizzle-orm';
import { manualClock } from '../src/platform/clock.ts';
import { openDatabase } from '../src/db/client.ts';
import { localDay } from '../src/campaigns/texts.ts';
import { codeLookupKey } from '../src/campaigns/codes.ts';
import { buildTestApp, count, holdLocks, onPostgres, simulatorOn } from './helpers.ts';
import { QUESTIONS, seedCampaign, type SeedOptions } from './campaign-fixtures.ts';
import { mpLogin } from './mp-helpers.ts';

const HOUR = 3_600_000;

/** The latest Asia/Shanghai midnight (16:00 UTC) before now. */
function lastShanghaiMidnight(): Date {
  const d = new Date();
  d.setUTCHours(16, 0, 0, 0);
  if (d.getTime() > Date.now()) d.setUTCDate(d.getUTCDate() - 1);
  return d;
}

async function straddlingMidnight(t: { teardown(fn: () => unknown): void }, seed: SeedOptions) {
  const midnight = lastShanghaiMidnight();
  const early = manualClock(new Date(midnight.getTime() - 2_000)); // instance A: 23:59:58 of day D
  const late = manualClock(new Date(midnight.getTime() + 2_000)); // instance B: 00:00:02 of day D+1
  const a = await buildTestApp(t, { clock: early });
  const url = (a.database as { url?: string }).url;
  const shared = a.database.kind === 'postgres' ? await openDatabase({ url: url!, poolSize: 8 }) : a.database;
  if (shared !== a.database) t.teardown(() => shared.close());
  const b = await buildTestApp(t, { clock: late, database: shared });
  const seeded = await seedCampaign(a.database, a.config.codeKey, {
    startsAt: new Date(midnight.getTime() - 3 * 24 * HOUR), endsAt: new Date(midnight.getTime() + 30 * 24 * HOUR), ...seed,
  });
  const simOf = (ctx: typeof a, clock: typeof early) => simulatorOn(ctx, () => clock.now().getTime());
  const dayD = localDay(early.now());
  const dayD1 = localDay(late.now());
  return { a, b, A: simOf(a, early), B: simOf(b, late), dayD, dayD1, ...seeded };
}

t.test('the two clocks really are on two days', async (t) => {
  const s = await straddlingMidnight(t, { codes: 1 });
  t.not(s.dayD, s.dayD1);
  t.ok(s.dayD < s.dayD1);
});

t.test('daily prize cap 2, drawn in the redemption statement: a late day-D draw does not reset day D+1', async (t) => {
  const s = await straddlingMidnight(t, {
    unlockMin: 0, questions: [], codes: 6, shards: 1,
    prizes: [{ name: '优惠券', kind: 'coupon', value: 500, weight: 1, totalStock: 100, dailyStock: 2, coupon: { title: '5元券', validDays: 30 } }],
  });
  const replies: string[] = [];
  replies.push((await s.B.text('oCap0', s.codes[0]!)).content ?? ''); // D+1: 1 of 2
  replies.push((await s.A.text('oCap1', s.codes[1]!)).content ?? ''); // late D: counted into D+1, 2 of 2
  replies.push((await s.B.text('oCap2', s.codes[2]!)).content ?? ''); // D+1: cap reached
  replies.push((await s.B.text('oCap3', s.codes[3]!)).content ?? '');
  replies.push((await s.A.text('oCap4', s.codes[4]!)).content ?? ''); // late D again: still over D+1's cap
  replies.push((await s.B.text('oCap5', s.codes[5]!)).content ?? '');
  const won = replies.filter((c) => /恭喜/.test(c)).length;
  t.equal(won, 2, 'exactly the daily cap was issued');
  t.equal(replies.filter((c) => /奖品已发完/.test(c)).length, 4, 'everyone else was told the prizes are gone');
  t.same(replies.slice(0, 2).map((c) => /恭喜/.test(c)), [true, true], 'the first two draws won');
  t.equal(await count(s.a.database, 'draws', `outcome = 'won' AND prize_id = ${s.prizes[0]!.id}`), 2);
  t.equal(await count(s.a.database, 'draws', `outcome = 'out_of_stock'`), 4);
  t.equal(await count(s.a.database, 'fulfilments', `kind = 'coupon'`), 2);
  const [row] = await s.a.database.query<{ day: string; issued_today: number; remaining: number }>(sql`
    SELECT day::text AS day, issued_today, remaining FROM prize_stock_shards WHERE prize_id = ${s.prizes[0]!.id}`);
  t.same({ ...row }, { day: s.dayD1, issued_today: 2, remaining: 98 }, 'the shard stays on day D+1 and counts both units');
});

t.test('daily prize cap 2, drawn after the questions (the stock transaction): a late day-D draw does not reset day D+1', async (t) => {
  const s = await straddlingMidnight(t, {
    unlockMin: 1, questions: [QUESTIONS[0]!], codes: 5, shards: 1,
    prizes: [{ name: '5元话费', kind: 'topup', value: 500, weight: 1, totalStock: 100, dailyStock: 2 }],
  });
  // Every user redeems on B and gets the question; the answers (where the draw happens) alternate.
  for (let i = 0; i < 5; i++) t.match((await s.B.text(`oAsk${i}`, s.codes[i]!)).content, /第1题/);
  const answerOn = [s.B, s.A, s.B, s.B, s.A];
  const replies: string[] = [];
  for (let i = 0; i < 5; i++) replies.push((await answerOn[i]!.text(`oAsk${i}`, '张三')).content ?? '');
  t.same(replies.map((c) => /恭喜/.test(c)), [true, true, false, false, false], 'the first two draws won, the cap held after');
  t.equal(replies.filter((c) => /奖品已发完/.test(c)).length, 3);
  t.equal(await count(s.a.database, 'draws', `outcome = 'won'`), 2, 'exactly the daily cap was issued');
  t.equal(await count(s.a.database, 'fulfilments', `kind = 'topup'`), 2);
  const [row] = await s.a.database.query<{ day: string; issued_today: number; remaining: number }>(sql`
    SELECT day::text AS day, issued_today, remaining FROM prize_stock_shards WHERE prize_id = ${s.prizes[0]!.id}`);
  t.same({ ...row }, { day: s.dayD1, issued_today: 2, remaining: 98 });
});

t.test('per-user daily limit 2: a late day-D redemption does not reset the user\'s day D+1 count', async (t) => {
  const s = await straddlingMidnight(t, {
    unlockMin: 0, questions: [], codes: 6, redemptionsPerDay: 2,
    prizes: [{ name: '1积分', kind: 'points', value: 1, weight: 1 }],
  });
  const on = [s.B, s.A, s.B, s.B, s.A, s.B];
  const replies: string[] = [];
  for (let i = 0; i < 6; i++) replies.push((await on[i]!.text('oLimit', s.codes[i]!)).content ?? '');
  t.same(replies.map((c) => /恭喜/.test(c)), [true, true, false, false, false, false], 'two redemptions, then the limit');
  t.equal(replies.filter((c) => /达到每日上限/.test(c)).length, 4, 'the others were told the daily limit is reached');
  t.equal(await count(s.a.database, 'redemptions', `openid = 'oLimit'`), 2, 'exactly the daily limit went through');
  t.equal(await count(s.a.database, 'codes', 'redeemed_at IS NOT NULL'), 2, 'refused codes stay unused');
  const [row] = await s.a.database.query<{ day: string; day_count: number; total: number }>(sql`
    SELECT day::text AS day, day_count, total FROM campaign_user_counters WHERE openid = 'oLimit'`);
  t.same({ ...row }, { day: s.dayD1, day_count: 2, total: 2 }, 'the counter stays on day D+1');
  const [{ pts }] = (await s.a.database.query<{ pts: number }>(sql`SELECT coalesce(sum(balance), 0)::int AS pts FROM points_accounts`)) as [{ pts: number }];
  t.equal(pts, 2);
});

t.test('day order still rolls forward: a day-D count followed by day D+1 starts D+1 afresh', async (t) => {
  const s = await straddlingMidnight(t, {
    unlockMin: 0, questions: [], codes: 5, redemptionsPerDay: 2, shards: 1,
    prizes: [{ name: '优惠券', kind: 'coupon', value: 500, weight: 1, totalStock: 100, dailyStock: 2, coupon: { title: '5元券', validDays: 30 } }],
  });
  const on = [s.A, s.A, s.A, s.B, s.B];
  const replies: string[] = [];
  for (let i = 0; i < 5; i++) replies.push((await on[i]!.text('oRoll', s.codes[i]!)).content ?? '');
  t.same(replies.map((c) => /恭喜/.test(c)), [true, true, false, true, true], 'two on D, limit, two on D+1');
  t.match(replies[2], /达到每日上限/);
  const [u] = await s.a.database.query<{ day: string; day_count: number; total: number }>(sql`
    SELECT day::text AS day, day_count, total FROM campaign_user_counters WHERE openid = 'oRoll'`);
  t.same({ ...u }, { day: s.dayD1, day_count: 2, total: 4 });
  const [p] = await s.a.database.query<{ day: string; issued_today: number; remaining: number }>(sql`
    SELECT day::text AS day, issued_today, remaining FROM prize_stock_shards WHERE prize_id = ${s.prizes[0]!.id}`);
  t.same({ ...p }, { day: s.dayD1, issued_today: 2, remaining: 96 });
});

t.test('a late day-D message that loses its code to another redeemer gives its count back to day D+1, where it went', { skip: !onPostgres && 'needs a second connection (PostgreSQL)' }, async (t) => {
  const s = await straddlingMidnight(t, { unlockMin: 0, questions: [], codes: 2, redemptionsPerDay: 3, prizes: [{ name: '1积分', kind: 'points', value: 1, weight: 1 }] });
  t.match((await s.B.text('oRace', s.codes[0]!)).content, /恭喜/); // D+1: 1 of 3
  // Another transaction takes the second code and holds it until the late message's statement waits for it: that
  // statement has counted the message into D+1 (the counter's day) and then finds the code gone.
  const lock = await holdLocks(t, (s.a.database as { url?: string }).url!,
    `UPDATE codes SET redeemed_by = 'oThief', redeemed_at = now() WHERE key = $1`, [codeLookupKey(s.codes[1]!, s.a.config.codeKey)]);
  const late = s.A.text('oRace', s.codes[1]!); // day D, late
  t.ok((await lock.releaseWhen(1)) >= 1, 'the late message\'s statement waited for the code');
  t.match((await late).content, /已被其他用户使用/, 'the code went to the other redeemer');
  const [row] = await s.a.database.query<{ day: string; day_count: number; total: number }>(sql`
    SELECT day::text AS day, day_count, total FROM campaign_user_counters WHERE openid = 'oRace'`);
  t.same({ ...row }, { day: s.dayD1, day_count: 1, total: 1 }, 'D+1 counts only the redemption that happened');
  t.equal(await count(s.a.database, 'redemptions', `openid = 'oRace'`), 1);
});

t.test('the same in the mini program: a late day-D redemption that loses its code gives its count back to day D+1', { skip: !onPostgres && 'needs a second connection (PostgreSQL)' }, async (t) => {
  const s = await straddlingMidnight(t, { unlockMin: 0, questions: [], codes: 2, redemptionsPerDay: 3, prizes: [{ name: '1积分', kind: 'points', value: 1, weight: 1 }] });
  const member = await mpLogin(s.a);
  const redeem = async (ctx: typeof s.a, code: string) => {
    const res = await ctx.app.inject({ method: 'POST', url: '/api/mp/redemptions', headers: member.headers, payload: { code } });
    return { status: res.statusCode, body: res.json() as { status?: string; message?: string; reason?: string } };
  };
  t.equal((await redeem(s.b, s.codes[0]!)).status, 200, 'D+1 on instance B: 1 of 3');
  const [{ openid } = { openid: '' }] = await s.a.database.query<{ openid: string }>(sql`SELECT openid FROM redemptions`);
  const lock = await holdLocks(t, (s.a.database as { url?: string }).url!,
    `UPDATE codes SET redeemed_by = 'oThief', redeemed_at = now() WHERE key = $1`, [codeLookupKey(s.codes[1]!, s.a.config.codeKey)]);
  const late = redeem(s.a, s.codes[1]!); // instance A: day D, late
  t.ok((await lock.releaseWhen(1)) >= 1, 'the late redemption\'s statement waited for the code');
  const refused = await late;
  t.equal(refused.status, 409, 'refused');
  t.match(refused.body.message, /已被其他用户使用/, 'the code went to the other redeemer');
  const [row] = await s.a.database.query<{ day: string; day_count: number; total: number }>(sql`
    SELECT day::text AS day, day_count, total FROM campaign_user_counters WHERE openid = ${openid}`);
  t.same({ ...row }, { day: s.dayD1, day_count: 1, total: 1 }, 'D+1 counts only the redemption that happened');
  t.equal(await count(s.a.database, 'redemptions', `openid = '${openid}'`), 1);
});
