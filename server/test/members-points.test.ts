/**
 * Points and tiers through /api/mp and /api/ops: earn rules (follow, phone, check-in, interaction, purchase CSV),
 * the tier multiplier, upgrades on earning and downgrades by the scheduled job, FIFO expiry lots, the 7-day
 * reminder, history, and idempotency (the same earn event in parallel → one ledger entry).
 */
import t from 'tap';
import { sql } from 'drizzle-orm';
import { manualClock } from '../src/platform/clock.ts';
import { adminHeaders, buildTestApp, count, onPostgres } from './helpers.ts';
import { mpBindPhone, mpLogin } from './mp-helpers.ts';
import { seedCampaign } from './campaign-fixtures.ts';

const DAY = 86_400_000;

async function setup(t: Parameters<typeof buildTestApp>[0], env: Record<string, string> = {}) {
  // Real time: the simulator signs with the wall clock, and the webhook checks the timestamp against this clock.
  const clock = manualClock(new Date());
  const h = await buildTestApp(t, { clock, env });
  const admin = await adminHeaders(h.app);
  const get = (url: string, headers: Record<string, string>) => h.app.inject({ method: 'GET', url, headers });
  const post = (url: string, headers: Record<string, string>, payload?: any) => h.app.inject({ method: 'POST', url, headers, ...(payload === undefined ? {} : { payload }) });
  /** A follower of the official account, logged in to the mini program (linked by unionid), phone bound → member. */
  const member = async (oaOpenid: string, phone: string) => {
    await h.sim.subscribe(oaOpenid);
    await h.database.db.execute(sql`UPDATE followers SET unionid = ${`u_${oaOpenid}`} WHERE openid = ${oaOpenid}`);
    const s = await mpLogin(h, { unionid: `u_${oaOpenid}` });
    await mpBindPhone(h, s.token, phone);
    return s;
  };
  /** Log the same person in again (sessions last MP_SESSION_TTL_S; the tests move the clock by days). */
  const relogin = (oaOpenid: string, prev: { mpOpenid: string }) => mpLogin(h, { openid: prev.mpOpenid, unionid: `u_${oaOpenid}` });
  const importCsv = (csv: string, headers = admin) => h.app.inject({ method: 'POST', url: '/api/ops/members/purchases/import', headers: { ...headers, 'content-type': 'text/csv' }, payload: csv });
  return { ...h, clock, admin, get, post, member, relogin, importCsv };
}

t.test('following, binding a phone and checking in earn points by the rules; repeats earn nothing', async (t) => {
  const h = await setup(t);
  const s = await h.member('oEarner0001', '13800000001');
  let c = (await h.get('/api/mp/me/centre', s.headers)).json();
  t.equal(c.member.points, 150, 'follow 50 + phone 100');
  t.equal(c.member.isMember, true);
  await h.sim.unsubscribe('oEarner0001');
  await new Promise((r) => setTimeout(r, 1000 - (Date.now() % 1000) + 5)); // a new CreateTime second: a new follow, not a retry
  await h.sim.subscribe('oEarner0001');
  await mpBindPhone(h, s.token, '13800000001');
  const first = (await h.post('/api/mp/me/checkin', s.headers)).json();
  t.same({ firstToday: first.firstToday, points: first.points, balance: first.balance }, { firstToday: true, points: 5, balance: 155 });
  const again = (await h.post('/api/mp/me/checkin', s.headers)).json();
  t.equal(again.firstToday, false);
  t.equal(again.balance, 155, 're-follow, re-bind and a second check-in earn nothing');
  c = (await h.get('/api/mp/me/centre', s.headers)).json();
  t.equal(c.checkedInToday, true);
  h.clock.advance(DAY);
  const next = await h.relogin('oEarner0001', s);
  t.equal((await h.post('/api/mp/me/checkin', next.headers)).json().firstToday, true, 'a new China day, a new check-in');
});

t.test('rolling points: a prize held for fraud review and released counts once; one held and rejected, not at all', async (t) => {
  const h = await setup(t);
  const s = await h.member('oHeldPrize1', '13800000009');
  const rolling = async () => (await h.get('/api/mp/me/centre', s.headers)).json().rollingPoints as number;
  t.equal(await rolling(), 150, 'follow 50 + phone 100');
  const { ledger } = h.services;
  // What the draw, the look-back hold and the review write (fraud/service.ts): the same keys and reasons.
  await ledger.credit('oHeldPrize1', 800, 'draw:9001', 'lottery_prize');
  await ledger.debit('oHeldPrize1', 800, 'hold:draw:9001', 'fraud_hold');
  await ledger.credit('oHeldPrize1', 800, 'release:draw:9001', 'lottery_prize');
  t.equal(await rolling(), 950, 'released: the prize once');
  await ledger.credit('oHeldPrize1', 300, 'draw:9002', 'lottery_prize');
  await ledger.debit('oHeldPrize1', 300, 'hold:draw:9002', 'fraud_hold');
  t.equal(await rolling(), 950, 'rejected: not at all');
});

t.test('history: newest first, titled in Chinese, paged; bad input is refused', async (t) => {
  const h = await setup(t);
  const s = await h.member('oHistory001', '13800000002');
  await h.post('/api/mp/me/checkin', s.headers);
  const page1 = (await h.get('/api/mp/me/points?limit=2', s.headers)).json();
  t.equal(page1.balance, 155);
  t.same(page1.entries.map((e: any) => e.title), ['每日签到', '绑定手机号']);
  t.type(page1.nextBefore, 'number');
  const page2 = (await h.get(`/api/mp/me/points?limit=2&before=${page1.nextBefore}`, s.headers)).json();
  t.same(page2.entries.map((e: any) => [e.title, e.delta]), [['关注公众号', 50]]);
  t.equal(page2.nextBefore, null);
  t.equal((await h.get('/api/mp/me/points?limit=0', s.headers)).statusCode, 400);
  t.equal((await h.get('/api/mp/me/points?limit=abc', s.headers)).statusCode, 400);
  t.equal((await h.get('/api/mp/me/points', {})).statusCode, 401);
});

t.test('menu interactions earn up to the daily cap', async (t) => {
  const h = await setup(t);
  await h.sim.click('oClicker001', 'MENU_ANY');
  t.equal(await h.services.ledger.balance('oClicker001'), 1, 'a menu click earns the interaction rule');
  for (let i = 0; i < 6; i++) await h.services.earn.earn('oClicker001', 'interaction', `test:${i}`);
  t.equal(await h.services.ledger.balance('oClicker001'), 5, 'capped at 5 a day');
  h.clock.advance(DAY);
  await h.services.earn.earn('oClicker001', 'interaction', 'test:next-day');
  t.equal(await h.services.ledger.balance('oClicker001'), 6);
});

t.test(`the same earn event ${onPostgres ? 10 : 10} times in parallel → one ledger entry`, async (t) => {
  const h = await setup(t);
  const results = await Promise.all(Array.from({ length: 10 }, () => h.services.earn.earn('oParallel01', 'follow', 'oParallel01')));
  t.equal(results.filter((r) => r.credited && !r.duplicate).length, 1);
  t.equal(await count(h.database, 'points_ledger', "idempotency_key = 'earn:follow:oParallel01'"), 1);
  t.equal(await h.services.ledger.balance('oParallel01'), 50);
  // Through HTTP too: ten parallel check-ins of one member.
  const s = await mpLogin(h);
  const res = await Promise.all(Array.from({ length: 10 }, () => h.post('/api/mp/me/checkin', s.headers)));
  t.ok(res.every((r) => r.statusCode === 200));
  t.equal(res.filter((r) => r.json().firstToday).length, 1);
  t.equal(await count(h.database, 'points_ledger', "reason = 'earn:daily_checkin'"), 1);
});

t.test('purchases import: points per yuan, once per order, bad rows reported and skipped', async (t) => {
  const h = await setup(t);
  const s = await h.member('oBuyer00001', '13800000003');
  const csv = 'order_no,phone,amount,purchased_at\nSO-1,13800000003,88.50,2026-05-30\nSO-2,+86 138 0000 0003,12,\nSO-3,13999999999,10,\nSO-4,12345,10,\nSO-5,13800000003,-3,\nSO-1,13800000003,88.50,\n';
  const r = await h.importCsv(csv);
  t.equal(r.statusCode, 200);
  const body = r.json();
  t.same({ rows: body.rows, credited: body.credited, rejected: body.rejected }, { rows: 6, credited: 2, rejected: 4 });
  t.same(body.report.map((x: any) => x.status), ['credited', 'credited', 'no_member', 'bad_phone', 'bad_amount', 'repeated_in_file']);
  t.equal(body.report[0].points, 88, 'whole yuan × 1 point');
  const again = (await h.importCsv(csv)).json();
  t.equal(again.credited, 0);
  t.equal(again.duplicates, 2, 're-importing the same file credits nothing');
  t.equal((await h.get('/api/mp/me', s.headers)).json().points, 150 + 88 + 12);
  t.equal((await h.importCsv('foo,bar\n1,2\n')).statusCode, 422, 'missing columns');
  t.equal((await h.importCsv('')).statusCode, 400);
  const json = await h.app.inject({ method: 'POST', url: '/api/ops/members/purchases/import', headers: h.admin, payload: { rows: [] } });
  t.equal(json.statusCode, 400, 'only text/csv');
  t.equal((await h.importCsv(csv, {} as any)).statusCode, 401);
});

t.test('tiers: rolling points raise the tier on earning, with its multiplier and monthly coupon; the job lowers it later', async (t) => {
  const h = await setup(t);
  const s = await h.member('oTiered0001', '13800000004');
  let c = (await h.get('/api/mp/me/centre', s.headers)).json();
  t.equal(c.tier.key, 'normal');
  t.equal(c.next.key, 'silver');
  t.equal(c.toNext, 1000 - 150);
  await h.importCsv('order_no,phone,amount\nBIG-1,13800000004,5000\n');
  c = (await h.get('/api/mp/me/centre', s.headers)).json();
  t.equal(c.tier.key, 'gold', '5150 rolling points: gold at once');
  t.equal(c.tier.name, '金卡会员');
  t.equal(c.tier.multiplierPct, 150);
  t.equal(c.tier.reservedItems, true);
  t.equal(c.next.key, 'diamond');
  t.equal(c.toNext, 20000 - 5150);
  t.equal(await count(h.database, 'user_coupons', "source_key LIKE 'tier:%'"), 1, "the gold tier's coupon for this month");
  t.equal((await h.post('/api/mp/me/checkin', s.headers)).json().points, 7, '5 × 1.5, rounded down');
  // The monthly job in the same month issues nothing new; a year later the points have rolled out of the window.
  await h.services.tiers.runScheduled();
  t.equal(await count(h.database, 'user_coupons', "source_key LIKE 'tier:%'"), 1);
  h.clock.advance(366 * DAY);
  await h.services.tiers.runScheduled();
  c = (await h.get('/api/mp/me/centre', (await h.relogin('oTiered0001', s)).headers)).json();
  t.equal(c.tier.key, 'normal', 'downgraded by the scheduled job');
  t.equal(await count(h.database, 'member_events', "kind = 'tier_changed'"), 2);
});

t.test('points expire FIFO by lot, once, and the member is reminded 7 days before', async (t) => {
  const h = await setup(t);
  const s = await h.member('oExpiry0001', '13800000005'); // 50 + 100 on day 0
  h.clock.advance(100 * DAY);
  await h.services.earn.earn('oExpiry0001', 'invite_reward', 'test-invitee'); // 200 on day 100
  h.clock.advance(100 * DAY);
  await h.services.ledger.debit('oExpiry0001', 170, 'test:spend', 'mall_order'); // day 200: uses the 150 lots, then 20 of the 200
  t.equal(await h.services.ledger.balance('oExpiry0001'), 180);
  h.clock.advance(166 * DAY); // day 366: the day-0 lots are due but empty
  t.equal(await h.services.earn.expireDue(), 0, 'spent points do not expire again');
  h.clock.advance(92 * DAY); // day 458: 7 days before the day-100 lot expires
  const c = (await h.get('/api/mp/me/centre', (await h.relogin('oExpiry0001', s)).headers)).json();
  t.equal(c.expiring.points, 180);
  t.equal(await h.services.earn.remindExpiring(), 1);
  t.equal(await h.services.earn.remindExpiring(), 0, 'one reminder per expiry day');
  const [rem] = await h.database.query<{ channel: string; points: number }>(sql`SELECT channel, points FROM points_expiry_reminders`);
  t.match(rem!.channel, /^cs:/, 'no subscribe template configured: a customer-service message');
  t.equal(rem!.points, 180);
  h.clock.advance(8 * DAY);
  t.equal(await h.services.earn.expireDue(), 180);
  t.equal(await h.services.earn.expireDue(), 0, 'the nightly job expires once');
  const hist = (await h.get('/api/mp/me/points?limit=1', (await h.relogin('oExpiry0001', s)).headers)).json();
  t.same([hist.balance, hist.entries[0].title, hist.entries[0].delta], [0, '积分过期', -180]);
});

t.test('points credited for many users in one draw statement each get their own lot, spent first-in first-out and expired once', async (t) => {
  const h = await setup(t);
  const users = Array.from({ length: 24 }, (_, i) => `oBatchLot${String(i).padStart(3, '0')}`);
  const { codes } = await seedCampaign(h.database, h.config.codeKey, { unlockMin: 0, questions: [], codes: users.length, prizes: [{ name: '10积分', kind: 'points', value: 10, weight: 1 }] });
  // Sent at once: the redemptions and their draws share batched statements (one ledger INSERT for many users).
  const replies = await Promise.all(users.map((u, i) => h.sim.text(u, codes[i]!)));
  t.ok(replies.every((r) => /10积分/.test(r.content ?? '')), 'every user won the 10 points');
  const lots = await h.database.query<{ openid: string; points: number; remaining: number; ok: boolean }>(sql`
    SELECT p.openid, p.points, p.remaining, (p.ledger_id = l.id AND p.earned_at = l.created_at AND p.expires_at = l.created_at + interval '365 days') AS ok
    FROM points_lots p JOIN points_ledger l ON l.id = p.ledger_id WHERE p.openid LIKE 'oBatchLot%' ORDER BY p.openid`);
  t.same(lots.map((l) => l.openid), users, 'one lot per credited user');
  t.ok(lots.every((l) => l.points === 10 && l.remaining === 10 && l.ok), 'each lot holds its ledger row\'s points from its time, for 365 days');
  t.equal(await count(h.database, 'points_ledger', "openid LIKE 'oBatchLot%'"), users.length, 'and one ledger row each');

  h.clock.advance(100 * DAY);
  await h.services.ledger.credit(users[0]!, 30, 'test:later', 'purchase'); // a newer lot of 30
  await h.services.ledger.debit(users[0]!, 15, 'test:spend', 'mall_order'); // the drawn 10 first, then 5 of the 30
  const mine = await h.database.query<{ points: number; remaining: number }>(sql`SELECT points, remaining FROM points_lots WHERE openid = ${users[0]!} ORDER BY id`);
  t.same(mine.map((l) => [l.points, l.remaining]), [[10, 0], [30, 25]], 'the oldest lot is spent first');

  h.clock.advance(266 * DAY); // day 366: the drawn lots are due; users[0]'s is already spent
  t.equal(await h.services.earn.expireDue(), 10 * (users.length - 1));
  t.equal(await h.services.earn.expireDue(), 0, 'expired once');
  t.equal(await h.services.ledger.balance(users[0]!), 25);
  t.equal(await h.services.ledger.balance(users[1]!), 0);
});

t.test('the expiry reminder goes as a subscribe message when the member accepted the template', async (t) => {
  const h = await setup(t, { MP_POINTS_EXPIRY_TEMPLATE_ID: 'TPL_points_expiry' });
  const s = await mpLogin(h);
  await fetch(`${h.sandbox.url}/__sandbox/mina/subscribe`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ openid: s.mpOpenid, templateId: 'TPL_points_expiry' }) });
  await h.services.earn.earn(s.mpOpenid, 'daily_checkin', 'test-day');
  h.clock.advance(360 * DAY);
  t.equal(await h.services.earn.remindExpiring(), 1);
  const calls = (await (await fetch(`${h.sandbox.url}/__sandbox/calls?path=/cgi-bin/message/subscribe/send`)).json()) as any[];
  t.equal(calls.length, 1);
  t.equal(calls[0].errcode, 0);
  t.equal(calls[0].body.touser, s.mpOpenid);
  t.equal(calls[0].body.data.number2.value, '5');
});

t.test('ops edit earn rules and tiers (operator only, audited, validated)', async (t) => {
  const h = await setup(t);
  const rules = (await h.get('/api/ops/members/earn-rules', h.admin)).json();
  t.equal(rules.length, 8);
  const patched = await h.app.inject({ method: 'PATCH', url: '/api/ops/members/earn-rules/daily_checkin', headers: h.admin, payload: { points: 20 } });
  t.equal(patched.statusCode, 200);
  t.equal(patched.json().points, 20);
  const s = await mpLogin(h);
  t.equal((await h.post('/api/mp/me/checkin', s.headers)).json().points, 20);
  t.equal((await h.app.inject({ method: 'PATCH', url: '/api/ops/members/earn-rules/daily_checkin', headers: h.admin, payload: { points: -1 } })).statusCode, 400);
  t.equal((await h.app.inject({ method: 'PATCH', url: '/api/ops/members/earn-rules/nope', headers: h.admin, payload: { points: 1 } })).statusCode, 400);
  t.equal((await h.app.inject({ method: 'PATCH', url: '/api/ops/members/earn-rules/follow', headers: h.admin, payload: {} })).statusCode, 400);
  const off = await h.app.inject({ method: 'PATCH', url: '/api/ops/members/earn-rules/follow', headers: h.admin, payload: { enabled: false } });
  t.equal(off.json().enabled, false);
  await h.sim.subscribe('oNoFollowPts');
  t.equal(await h.services.ledger.balance('oNoFollowPts'), 0, 'a disabled rule earns nothing');
  const order = await h.app.inject({ method: 'PATCH', url: '/api/ops/members/tiers/gold', headers: h.admin, payload: { minPoints: 500 } });
  t.equal(order.statusCode, 422, 'gold below silver is refused');
  t.equal(order.json().details.reason, 'threshold_order');
  const ok = await h.app.inject({ method: 'PATCH', url: '/api/ops/members/tiers/silver', headers: h.admin, payload: { minPoints: 800, multiplierPct: 110 } });
  t.equal(ok.statusCode, 200);
  t.equal(ok.json().minPoints, 800);
  t.equal((await h.app.inject({ method: 'GET', url: '/api/ops/members/tiers', headers: {} })).statusCode, 401);
  t.equal(await count(h.database, 'audit_log', "action LIKE 'members.%'"), 3);
});
