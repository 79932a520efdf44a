/**
 * Mini-program login and sessions through /api/mp: code2Session in the sandbox, one person one member, linking to
 * the official-account follower by unionid, the auth contract (missing / forged / expired tokens → 401), refresh
 * rotation, and the public transfer route that stays reachable without a session.
 */
import t from 'tap';
import { sql } from 'drizzle-orm';
import { manualClock } from '../src/platform/clock.ts';
import { buildTestApp, count } from './helpers.ts';
import { mintLoginCode, mpLogin, newMpOpenid } from './mp-helpers.ts';

async function setup(t: Parameters<typeof buildTestApp>[0]) {
  const clock = manualClock(new Date());
  const h = await buildTestApp(t, { clock, env: { MP_SESSION_TTL_S: '3600', MP_REFRESH_TTL_S: '86400' } });
  const me = (headers: Record<string, string | undefined>) => h.app.inject({ method: 'GET', url: '/api/mp/me', headers });
  return { ...h, clock, me };
}

t.test('a wx.login code gives a session that identifies the member', async (t) => {
  const h = await setup(t);
  const a = await mpLogin(h);
  t.match(a.token, /^mps_/);
  t.equal(a.member.isMember, false);
  t.equal(a.member.points, 0);
  const res = await h.me(a.headers);
  t.equal(res.statusCode, 200);
  t.equal(res.json().memberId, a.member.memberId);
  t.notOk(JSON.stringify(res.json()).includes('session_key'), 'session_key never leaves the server');
});

t.test('logging in twice as the same mini-program user is the same member', async (t) => {
  const h = await setup(t);
  const openid = newMpOpenid();
  const a = await mpLogin(h, { openid });
  const b = await mpLogin(h, { openid });
  t.equal(b.member.memberId, a.member.memberId);
  t.not(b.token, a.token);
  t.equal((await h.me(a.headers)).statusCode, 200, 'the first session still works');
  t.equal(await count(h.database, 'members', `mp_openid = '${openid}'`), 1);
});

t.test('parallel first logins of one user create one member', async (t) => {
  const h = await setup(t);
  const openid = newMpOpenid();
  const logins = await Promise.all(Array.from({ length: 5 }, () => mpLogin(h, { openid, unionid: 'uParallel01' })));
  t.equal(new Set(logins.map((l) => l.member.memberId)).size, 1);
  t.equal(await count(h.database, 'members'), 1);
});

t.test('a unionid shared with an official-account follower links the mini program to that follower', async (t) => {
  const h = await setup(t);
  await h.sim.subscribe('oOfficialAcct01');
  // What user/info would have recorded for the follower (the followers capability does not fetch it yet).
  await h.database.db.execute(sql`UPDATE followers SET unionid = 'uLinked0001' WHERE openid = 'oOfficialAcct01'`);
  // Points won in chat live under the official-account openid …
  await h.services.ledger.credit('oOfficialAcct01', 30, 'test:chat-draw', 'draw');
  const a = await mpLogin(h, { unionid: 'uLinked0001' });
  // … and the mini program sees them (with the follow points): one person, one account.
  t.equal(a.member.points, 30 + 50);
  t.equal(a.member.following, true);
  const b = await mpLogin(h, { unionid: 'uNotLinked01' });
  t.equal(b.member.points, 0);
  t.equal(b.member.following, false);
  t.not(b.member.memberId, a.member.memberId);
});

t.test('a bad, reused or missing login code is refused and creates nothing', async (t) => {
  const h = await setup(t);
  const bad = await h.app.inject({ method: 'POST', url: '/api/mp/login', payload: { code: 'not-a-code' } });
  t.equal(bad.statusCode, 401);
  t.equal(bad.json().code, 'UNAUTHENTICATED');
  const code = await mintLoginCode(h);
  t.equal((await h.app.inject({ method: 'POST', url: '/api/mp/login', payload: { code } })).statusCode, 200);
  const reused = await h.app.inject({ method: 'POST', url: '/api/mp/login', payload: { code } });
  t.equal(reused.statusCode, 401, 'a code is single-use');
  t.equal(reused.json().details.reason, 'invalid_code');
  const missing = await h.app.inject({ method: 'POST', url: '/api/mp/login', payload: {} });
  t.equal(missing.statusCode, 400);
  t.equal(missing.json().code, 'VALIDATION');
  t.equal(await count(h.database, 'members'), 1);
});

t.test('requests without a valid session token get 401 UNAUTHENTICATED', async (t) => {
  const h = await setup(t);
  const a = await mpLogin(h);
  for (const headers of [
    {},
    { authorization: 'Basic abc' },
    { authorization: 'Bearer ' },
    { authorization: `Bearer mps_${'A'.repeat(43)}` }, // right shape, never issued
    { authorization: `Bearer ${a.token.slice(0, -2)}xx` }, // tampered
    { authorization: `Bearer ${a.refreshToken}` }, // a refresh token is not a session token
  ]) {
    const res = await h.me(headers);
    t.equal(res.statusCode, 401, JSON.stringify(headers));
    t.equal(res.json().code, 'UNAUTHENTICATED');
    t.type(res.json().message, 'string');
  }
});

t.test('an expired session token is refused; the refresh token gives a new one, once', async (t) => {
  const h = await setup(t);
  const a = await mpLogin(h);
  h.clock.advance(3601_000);
  t.equal((await h.me(a.headers)).statusCode, 401, 'expired after MP_SESSION_TTL_S');
  const r = await h.app.inject({ method: 'POST', url: '/api/mp/session/refresh', payload: { refreshToken: a.refreshToken } });
  t.equal(r.statusCode, 200);
  const fresh = r.json();
  t.not(fresh.token, a.token);
  t.equal((await h.me({ authorization: `Bearer ${fresh.token}` })).json().memberId, a.member.memberId);
  const replay = await h.app.inject({ method: 'POST', url: '/api/mp/session/refresh', payload: { refreshToken: a.refreshToken } });
  t.equal(replay.statusCode, 401, 'a refresh token is single-use');
  h.clock.advance(86_401_000);
  const late = await h.app.inject({ method: 'POST', url: '/api/mp/session/refresh', payload: { refreshToken: fresh.refreshToken } });
  t.equal(late.statusCode, 401, 'refresh tokens expire too');
  const forged = await h.app.inject({ method: 'POST', url: '/api/mp/session/refresh', payload: { refreshToken: 'mpr_forged' } });
  t.equal(forged.statusCode, 401);
});

t.test('public routes in /api/mp stay reachable without a session; unknown ones are 404', async (t) => {
  const h = await setup(t);
  const transfer = await h.app.inject({ method: 'GET', url: '/api/mp/transfers/999?t=abc' });
  t.not(transfer.statusCode, 401, 'the transfer page is protected by its own HMAC token');
  t.equal((await h.app.inject({ method: 'GET', url: '/api/mp/nope' })).statusCode, 404);
});

t.test('the hourly prune drops sessions a day past their refresh expiry, and only those', async (t) => {
  const h = await setup(t);
  const old = await mpLogin(h);
  h.clock.advance(86_400_000 + 86_401_000); // refresh TTL (1 day in this file) + the one-day grace
  const fresh = await mpLogin(h);
  t.equal(await h.services.sessions.prune(), 1);
  t.equal(await count(h.database, 'mp_sessions'), 1);
  t.equal((await h.me(fresh.headers)).statusCode, 200);
  t.equal((await h.me(old.headers)).statusCode, 401);
});
