/**
 * A follow asks WeChat (user/info) for the follower's unionid, beside the reply; a later mini-program login with the
 * same unionid is then the same person (the member's points are the follower's). Without an open-platform binding
 * there is no unionid, and a failing user/info never fails the follow.
 */
import t from 'tap';
import { sql } from 'drizzle-orm';
import { buildTestApp } from './helpers.ts';
import { mpLogin } from './mp-helpers.ts';

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
