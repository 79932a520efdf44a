/**
 * Phone binding through the phone-number button's code (getuserphonenumber in the sandbox): sealed storage, single-use
 * codes, one phone one member, and "broad membership" — a follower who binds a phone becomes a member, once.
 */
import t from 'tap';
import { sql } from 'drizzle-orm';
import { adminHeaders, buildTestApp, count } from './helpers.ts';
import { mintPhoneCode, mpBindPhone, mpLogin } from './mp-helpers.ts';

async function setup(t: Parameters<typeof buildTestApp>[0]) {
  const h = await buildTestApp(t);
  const bind = (token: string, payload: Record<string, unknown>) => h.app.inject({ method: 'POST', url: '/api/mp/me/phone', headers: { authorization: `Bearer ${token}` }, payload });
  /** A follower of the official account, and their mini-program login linked by unionid. */
  const follower = async (oaOpenid: string, unionid: string) => {
    await h.sim.subscribe(oaOpenid);
    await h.database.db.execute(sql`UPDATE followers SET unionid = ${unionid} WHERE openid = ${oaOpenid}`);
    return mpLogin(h, { unionid });
  };
  return { ...h, bind, follower };
}

t.test('a bound phone is stored sealed and shown masked', async (t) => {
  const h = await setup(t);
  const a = await mpLogin(h);
  const r = await mpBindPhone(h, a.token, '13800138000');
  t.equal(r.phoneMasked, '138****8000');
  t.equal(r.member.phoneMasked, '138****8000');
  t.equal(r.becameMember, false, 'not following: not a member yet');
  const [row] = (await h.database.query<{ phone_sealed: string; phone_hash: string }>(sql`SELECT phone_sealed, phone_hash FROM members WHERE mp_openid = ${a.mpOpenid}`));
  t.notOk(row!.phone_sealed.includes('13800138000'));
  t.notOk(row!.phone_hash.includes('13800138000'));
  t.equal(await h.services.phones.get(a.mpOpenid), '13800138000', 'PII_KEY opens it');
  t.equal((await h.app.inject({ method: 'GET', url: '/api/mp/me', headers: a.headers })).json().phoneMasked, '138****8000');
});

t.test('a phone code works once; a reused or unknown code changes nothing', async (t) => {
  const h = await setup(t);
  const a = await mpLogin(h);
  const code = await mintPhoneCode(h, '13900139000');
  t.equal((await h.bind(a.token, { code })).statusCode, 200);
  const b = await mpLogin(h);
  const reused = await h.bind(b.token, { code });
  t.equal(reused.statusCode, 422);
  t.equal(reused.json().code, 'VALIDATION');
  t.equal(reused.json().details.reason, 'invalid_phone_code');
  const unknown = await h.bind(b.token, { code: 'f'.repeat(64) });
  t.equal(unknown.statusCode, 422);
  t.equal((await h.bind(b.token, {})).statusCode, 400, 'code is required');
  t.equal((await h.bind(b.token, { code: 'x', extra: 1 })).statusCode, 400, 'unknown fields refused');
  t.equal(await count(h.database, 'members', 'phone_hash IS NOT NULL'), 1);
});

t.test('one phone binds one member', async (t) => {
  const h = await setup(t);
  const a = await mpLogin(h);
  const b = await mpLogin(h);
  await mpBindPhone(h, a.token, '13700137000');
  const taken = await h.bind(b.token, { code: await mintPhoneCode(h, '13700137000') });
  t.equal(taken.statusCode, 409);
  t.equal(taken.json().details.reason, 'phone_taken');
  t.equal((await h.app.inject({ method: 'GET', url: '/api/mp/me', headers: b.headers })).json().phoneMasked, null);
  // Re-binding one's own number is fine (and records nothing new).
  t.equal((await h.bind(a.token, { code: await mintPhoneCode(h, '13700137000') })).statusCode, 200);
  t.equal(await count(h.database, 'member_events', "kind = 'phone_bound'"), 1);
});

t.test('parallel bindings of one phone by two members: exactly one wins', async (t) => {
  const h = await setup(t);
  const users = await Promise.all(Array.from({ length: 6 }, () => mpLogin(h)));
  const codes = await Promise.all(users.map(() => mintPhoneCode(h, '13600136000')));
  const res = await Promise.all(users.map((u, i) => h.bind(u.token, { code: codes[i] })));
  t.equal(res.filter((r) => r.statusCode === 200).length, 1);
  t.ok(res.filter((r) => r.statusCode !== 200).every((r) => r.statusCode === 409));
});

t.test('a follower who binds a phone becomes a member, and the event is recorded once', async (t) => {
  const h = await setup(t);
  const a = await h.follower('oFollowerPhone1', 'uFollowerPhone1');
  t.equal(a.member.following, true);
  const r = await mpBindPhone(h, a.token, '13500135000');
  t.equal(r.becameMember, true);
  t.equal(r.member.isMember, true);
  t.type(r.member.memberSince, 'string');
  await mpBindPhone(h, a.token, '13500135001');
  t.equal(await count(h.database, 'member_events', "kind = 'became_member'"), 1);
});

t.test('a phone first, the follow later: the member centre shows membership', async (t) => {
  const h = await setup(t);
  await h.sim.subscribe('oLateFollow01');
  await h.sim.unsubscribe('oLateFollow01');
  await h.database.db.execute(sql`UPDATE followers SET unionid = 'uLateFollow01' WHERE openid = 'oLateFollow01'`);
  const a = await mpLogin(h, { unionid: 'uLateFollow01' });
  t.equal((await mpBindPhone(h, a.token, '13400134000')).becameMember, false);
  // WeChat keys an event by user + CreateTime (seconds) + event: a second follow in the same second as the first
  // is a retry of it. A person follows again at least a second later.
  await new Promise((r) => setTimeout(r, 1000 - (Date.now() % 1000) + 5));
  await h.sim.subscribe('oLateFollow01');
  const me = (await h.app.inject({ method: 'GET', url: '/api/mp/me', headers: a.headers })).json();
  t.equal(me.isMember, true);
});

t.test('only mainland numbers; no session → 401', async (t) => {
  const h = await setup(t);
  const a = await mpLogin(h);
  const hk = await h.bind(a.token, { code: await mintPhoneCode(h, '51234567', { countryCode: '852' }) });
  t.equal(hk.statusCode, 422);
  t.equal(hk.json().details.reason, 'unsupported_country');
  const anon = await h.app.inject({ method: 'POST', url: '/api/mp/me/phone', payload: { code: await mintPhoneCode(h, '13300133000') } });
  t.equal(anon.statusCode, 401);
});

t.test('ops find a member by phone (audited) and see them as they see themselves', async (t) => {
  const h = await setup(t);
  const admin = await adminHeaders(h.app);
  const a = await h.follower('oOpsLookup01', 'uOpsLookup01');
  await mpBindPhone(h, a.token, '13200132000');
  const found = await h.app.inject({ method: 'GET', url: '/api/ops/members/lookup?phone=%2B86%20132%200013%202000', headers: admin });
  t.equal(found.statusCode, 200);
  t.same(found.json().memberIds, [a.member.memberId]);
  t.equal(await count(h.database, 'audit_log', "action = 'members.lookup'"), 1);
  t.equal((await h.app.inject({ method: 'GET', url: '/api/ops/members/lookup?phone=123', headers: admin })).statusCode, 400);
  t.equal((await h.app.inject({ method: 'GET', url: '/api/ops/members/lookup?phone=12345678', headers: admin })).statusCode, 422);
  const view = (await h.app.inject({ method: 'GET', url: `/api/ops/members/${a.member.memberId}`, headers: admin })).json();
  t.equal(view.member.phoneMasked, '132****2000');
  t.equal(view.member.isMember, true);
  t.ok(view.events.some((e: any) => e.kind === 'became_member'));
  t.ok(view.points.entries.some((e: any) => e.reason === 'earn:bind_phone'));
  t.equal((await h.app.inject({ method: 'GET', url: '/api/ops/members/999999', headers: admin })).statusCode, 404);
  t.equal((await h.app.inject({ method: 'GET', url: `/api/ops/members/${a.member.memberId}` })).statusCode, 401);
});
