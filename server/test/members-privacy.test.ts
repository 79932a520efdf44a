/**
 * Profile, consent, export and account deletion through /api/mp: the golden-question profile shared with the chat
 * (the campaigns' profile_answers), answers read as the chat reads them, all-or-nothing updates, the
 * complete-profile points once, and PIPL: export everything, delete = personal data erased, ledger anonymised.
 */
import t from 'tap';
import { sql } from 'drizzle-orm';
import { buildTestApp, count } from './helpers.ts';
import { mintPhoneCode, mpBindPhone, mpLogin } from './mp-helpers.ts';

async function setup(t: Parameters<typeof buildTestApp>[0]) {
  const h = await buildTestApp(t);
  const req = (method: string, url: string, headers: Record<string, string>, payload?: any) => h.app.inject({ method: method as any, url, headers, ...(payload === undefined ? {} : { payload }) });
  const linked = async (oaOpenid: string) => {
    await h.sim.subscribe(oaOpenid);
    await h.database.db.execute(sql`UPDATE followers SET unionid = ${`u_${oaOpenid}`} WHERE openid = ${oaOpenid}`);
    return mpLogin(h, { unionid: `u_${oaOpenid}` });
  };
  return { ...h, req, linked };
}

t.test('the profile shows answers given in the chat and stores form answers the way the chat reads them', async (t) => {
  const h = await setup(t);
  const s = await h.linked('oProfile001');
  // An answer the chat stored during a redemption.
  await h.database.db.execute(sql`INSERT INTO profile_answers (openid, question_key, value, display, source, answered_at) VALUES ('oProfile001', 'name', '"王小明"', '王小明', 'chat', now())`);
  let p = (await h.req('GET', '/api/mp/me/profile', s.headers)).json();
  t.same(p.answers.map((a: any) => [a.key, a.display, a.source]), [['name', '王小明', 'chat']]);
  t.ok(p.questions.length >= 5);
  t.equal(p.complete, false);
  const r = await h.req('PUT', '/api/mp/me/profile', s.headers, { answers: { occupation: '2', region: '广东深圳', spending: '75' } });
  t.equal(r.statusCode, 200);
  p = r.json();
  const byKey = Object.fromEntries(p.answers.map((a: any) => [a.key, a]));
  t.equal(byKey.occupation.display, '上班族', 'option number, as in the chat');
  t.equal(byKey.region.display, '广东省 深圳市', '"province+city" in one answer, as in the chat');
  t.match(byKey.region.value, { province: '广东省', city: '深圳市', provinceCode: String, cityCode: String });
  t.equal(byKey.occupation.source, 'mini_program');
  t.equal(p.complete, false, 'business_type still open');
  const done = (await h.req('PUT', '/api/mp/me/profile', s.headers, { answers: { business_type: '便利店' } })).json();
  t.equal(done.complete, true);
  await h.req('PUT', '/api/mp/me/profile', s.headers, { answers: { business_type: '商超' } });
  t.equal(await count(h.database, 'points_ledger', "reason = 'earn:complete_profile'"), 1, 'the complete-profile points, once');
});

t.test('a bad answer refuses the whole update and says which field', async (t) => {
  const h = await setup(t);
  const s = await mpLogin(h);
  const bad = await h.req('PUT', '/api/mp/me/profile', s.headers, { answers: { occupation: '99', name: '李雷' } });
  t.equal(bad.statusCode, 422);
  t.equal(bad.json().details.reason, 'invalid_answers');
  t.ok(bad.json().details.fields.occupation);
  t.equal(await count(h.database, 'profile_answers'), 0, 'nothing stored');
  t.equal((await h.req('PUT', '/api/mp/me/profile', s.headers, { answers: { nope: 'x' } })).statusCode, 422);
  t.equal((await h.req('PUT', '/api/mp/me/profile', s.headers, { answers: { region: '广东' } })).json().details.fields.region, '请同时填写省份和城市，如：广东深圳');
  t.equal((await h.req('PUT', '/api/mp/me/profile', s.headers, { answers: {} })).statusCode, 422);
  t.equal((await h.req('PUT', '/api/mp/me/profile', s.headers, { answers: { 'Bad-Key': 'x' } })).statusCode, 422);
  t.equal((await h.req('PUT', '/api/mp/me/profile', {}, { answers: { name: '李雷' } })).statusCode, 401);
});

t.test('consent is recorded with its version and time', async (t) => {
  const h = await setup(t);
  const s = await mpLogin(h);
  const c = await h.req('PUT', '/api/mp/me/consent', s.headers, { version: '2026-11' });
  t.equal(c.statusCode, 200);
  t.equal(c.json().version, '2026-11');
  const me = (await h.req('GET', '/api/mp/me', s.headers)).json();
  t.equal(me.consent.version, '2026-11');
  t.equal(me.consent.at, c.json().at);
  t.equal((await h.req('PUT', '/api/mp/me/consent', s.headers, { version: '' })).statusCode, 400);
  t.equal((await h.req('PUT', '/api/mp/me/consent', s.headers, { version: 'v 1' })).statusCode, 400);
  t.equal(await count(h.database, 'member_events', "kind = 'consent'"), 1);
});

t.test('export holds all my data, phone in the clear', async (t) => {
  const h = await setup(t);
  const s = await h.linked('oExport0001');
  await mpBindPhone(h, s.token, '13800001111');
  await h.req('PUT', '/api/mp/me/profile', s.headers, { answers: { name: '韩梅梅' } });
  const res = await h.req('GET', '/api/mp/me/export', s.headers);
  t.equal(res.statusCode, 200);
  const d = res.json();
  t.equal(d.member.phone, '13800001111');
  t.equal(d.member.openid, 'oExport0001');
  t.ok(d.points_ledger.length >= 2, 'follow and phone points');
  t.equal(d.profile_answers[0].display, '韩梅梅');
  t.equal(d.follower.subscribed, true);
  t.ok(d.memberEvents.some((e: any) => e.kind === 'became_member'));
  t.equal((await h.req('GET', '/api/mp/me/export', {})).statusCode, 401);
});

t.test('deleting the account erases personal data, keeps the ledger anonymised, ends the session', async (t) => {
  const h = await setup(t);
  const s = await h.linked('oDelete0001');
  await mpBindPhone(h, s.token, '13800002222');
  await h.req('PUT', '/api/mp/me/profile', s.headers, { answers: { name: '张三' } });
  const balance = (await h.req('GET', '/api/mp/me', s.headers)).json().points;
  t.equal((await h.req('POST', '/api/mp/me/delete', s.headers, {})).statusCode, 400, 'confirm: true is required');
  t.equal((await h.req('POST', '/api/mp/me/delete', s.headers, { confirm: false })).statusCode, 400);
  const del = await h.req('POST', '/api/mp/me/delete', s.headers, { confirm: true });
  t.equal(del.statusCode, 200);
  t.equal((await h.req('GET', '/api/mp/me', s.headers)).statusCode, 401, 'sessions end');
  t.equal(await count(h.database, 'profile_answers'), 0);
  t.equal(await count(h.database, 'points_ledger', "openid = 'oDelete0001'"), 0);
  const anon = `deleted:${s.member.memberId}`;
  t.ok(await count(h.database, 'points_ledger', `openid = '${anon}'`) >= 2, 'ledger rows kept, anonymised');
  t.equal(await h.services.ledger.balance(anon), balance);
  const [m] = await h.database.query<any>(sql`SELECT phone_sealed, phone_hash, unionid, mp_openid, deleted_at FROM members WHERE id = ${s.member.memberId}`);
  t.same([m.phone_sealed, m.phone_hash, m.unionid, m.mp_openid], [null, null, null, null]);
  t.ok(m.deleted_at);
  // The number is free again, and the same WeChat user starting over is a new, empty member.
  const other = await mpLogin(h);
  t.equal((await h.req('POST', '/api/mp/me/phone', other.headers, { code: await mintPhoneCode(h, '13800002222') })).statusCode, 200);
  const again = await mpLogin(h, { openid: s.mpOpenid });
  t.not(again.member.memberId, s.member.memberId);
  t.equal(again.member.phoneMasked, null);
});
