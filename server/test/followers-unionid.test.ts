/**
 * A follow asks WeChat (user/info) for the follower's unionid, beside the reply; a later mini-program login with the
 * same unionid is then the same person (the member's points are the follower's), and a member who started in the mini
 * program is linked to the follower when they follow. Without an open-platform binding
 * there is no unionid, and a failing user/info never fails the follow.
 */
import t from 'tap';
import { sql } from 'drizzle-orm';
import { buildTestApp, count } from './helpers.ts';
import { seedCampaign } from './campaign-fixtures.ts';
import { mpBindPhone, mpLogin } from './mp-helpers.ts';

const unionidOf = async (h: Awaited<ReturnType<typeof buildTestApp>>, openid: string) =>
  ((await h.database.query<{ unionid: string | null }>(sql`SELECT unionid FROM followers WHERE openid = ${openid}`))[0]?.unionid ?? null);

const sandboxPost = (h: Awaited<ReturnType<typeof buildTestApp>>, path: string, body: unknown) =>
  fetch(`${h.sandbox.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }).then((r) => r.json());

t.test('follow › the unionid from user/info links the follower to their mini-program login', async (t) => {
  const h = await buildTestApp(t);
  t.same(await sandboxPost(h, '/__sandbox/user-profile', { openid: 'oFanUnion01', unionid: 'uFanUnion01' }), { ok: true });
  const welcome = await h.sim.subscribe('oFanUnion01');
  t.equal(welcome.status, 200);
  t.ok(welcome.content, 'the follow is answered (the welcome reply)');
  await h.services.followers.drain();
  t.equal(await unionidOf(h, 'oFanUnion01'), 'uFanUnion01', 'the follower has the unionid user/info returned');
  const call = h.sandbox.state.calls.find((c) => c.path === '/cgi-bin/user/info');
  t.ok(call, 'user/info was called');

  const s = await mpLogin(h, { unionid: 'uFanUnion01' });
  const centre = (await h.app.inject({ method: 'GET', url: '/api/mp/me/centre', headers: s.headers })).json();
  const [{ balance }] = await h.database.query<{ balance: number }>(sql`SELECT balance::int FROM points_accounts WHERE openid = 'oFanUnion01'`) as [{ balance: number }];
  t.ok(balance > 0, 'the follow earned points in the chat');
  t.equal(centre.member.points, balance, 'the mini-program member sees the follower’s points: one person, one member');
});

t.test('follow › no unionid without an open-platform binding; a failing user/info does not fail the follow', async (t) => {
  const h = await buildTestApp(t);
  await h.sim.subscribe('oFanPlain01');
  await h.services.followers.drain();
  t.equal(await unionidOf(h, 'oFanPlain01'), null);

  await sandboxPost(h, '/__sandbox/user-profile', { openid: 'oFanBusy01', unionid: 'uFanBusy01' });
  await sandboxPost(h, '/__sandbox/control/fail', { path: '/cgi-bin/user/info', errcodes: [45009, 45009, 45009] });
  const r = await h.sim.subscribe('oFanBusy01');
  t.equal(r.status, 200);
  t.ok(r.content, 'still welcomed');
  await h.services.followers.drain();
  t.equal(await unionidOf(h, 'oFanBusy01'), null, 'no unionid this time (user/info refused)');
  const [{ subscribed }] = await h.database.query<{ subscribed: boolean }>(sql`SELECT subscribed FROM followers WHERE openid = 'oFanBusy01'`) as [{ subscribed: boolean }];
  t.equal(subscribed, true, 'the follow itself is recorded');
});

t.test('follow › a member who started in the mini program is linked when they follow: one member, one balance', async (t) => {
  const h = await buildTestApp(t);
  const s = await mpLogin(h, { unionid: 'uMpFirst01' });
  await mpBindPhone(h, s.token, '13900000123');
  const checkin = await h.app.inject({ method: 'POST', url: '/api/mp/me/checkin', headers: s.headers });
  t.equal(checkin.statusCode, 200, checkin.body);
  const before = (await h.app.inject({ method: 'GET', url: '/api/mp/me/centre', headers: s.headers })).json().member.points;
  t.ok(before > 0, `points earned in the mini program (${before})`);

  await sandboxPost(h, '/__sandbox/user-profile', { openid: 'oMpFirst01', unionid: 'uMpFirst01' });
  await h.sim.subscribe('oMpFirst01');
  await h.services.followers.drain();
  const followPoints = (await h.database.query<{ n: number }>(sql`SELECT coalesce(sum(delta), 0)::int AS n FROM points_ledger WHERE openid = 'oMpFirst01' AND reason = 'earn:follow'`))[0]!.n;

  const after = (await h.app.inject({ method: 'GET', url: '/api/mp/me/centre', headers: s.headers })).json();
  t.equal(after.member.points, before + followPoints, 'the same session now sees one balance: the mini program’s and the follow’s');
  t.equal(after.member.following, true);
  t.equal(await count(h.database, 'members', `unionid = 'uMpFirst01'`), 1, 'one member');
  t.equal(await count(h.database, 'points_accounts', `openid = '${s.mpOpenid}'`), 0, 'the mini-program key holds nothing any more');
  const [{ ledger, balance }] = await h.database.query<{ ledger: number; balance: number }>(sql`
    SELECT (SELECT coalesce(sum(delta), 0)::int FROM points_ledger WHERE openid = 'oMpFirst01') AS ledger,
           (SELECT balance::int FROM points_accounts WHERE openid = 'oMpFirst01') AS balance`) as [{ ledger: number; balance: number }];
  t.equal(ledger, balance, 'the moved ledger still adds up to the balance');

  // The chat now credits the same member: a code redeemed in the chat shows in the mini program.
  const { codes } = await seedCampaign(h.database, h.config.codeKey, { unlockMin: 0, questions: [], codes: 1, prizes: [{ name: '7积分', kind: 'points', value: 7, weight: 1 }] });
  t.match((await h.sim.text('oMpFirst01', codes[0]!)).content, /恭喜/);
  t.equal((await h.app.inject({ method: 'GET', url: '/api/mp/me/centre', headers: s.headers })).json().member.points, before + followPoints + 7);

  // Following again (a second later at least: a follow in the same second is a retry of the first) links nothing twice.
  await h.sim.unsubscribe('oMpFirst01');
  await new Promise((r) => setTimeout(r, 1000 - (Date.now() % 1000) + 5));
  await h.sim.subscribe('oMpFirst01');
  await h.services.followers.drain();
  t.equal(await count(h.database, 'member_events', `kind = 'linked'`), 1, 'linked once');
});
