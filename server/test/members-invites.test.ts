/**
 * Member-get-member through /api/mp: my invite code and its mini-program code image (wxacode.getUnlimited in the
 * sandbox: a real PNG), the invitee bound at login or by code, the reward when the invitee becomes a member — once
 * per invitee — no self-invite, and a fraud hold withholding the reward.
 */
import t from 'tap';
import { inflateSync } from 'node:zlib';
import { sql } from 'drizzle-orm';
import { adminHeaders, buildTestApp, count } from './helpers.ts';
import { mpBindPhone, mpLogin } from './mp-helpers.ts';

async function setup(t: Parameters<typeof buildTestApp>[0], env: Record<string, string> = {}) {
  const h = await buildTestApp(t, { env });
  const req = (method: string, url: string, headers: Record<string, string>, payload?: any) => h.app.inject({ method: method as any, url, headers, ...(payload === undefined ? {} : { payload }) });
  /** Follow the official account and log in linked to it (a member once the phone is bound). */
  const follower = async (oaOpenid: string, inviteCode?: string) => {
    await h.sim.subscribe(oaOpenid);
    await h.database.db.execute(sql`UPDATE followers SET unionid = ${`u_${oaOpenid}`} WHERE openid = ${oaOpenid}`);
    return mpLogin(h, { unionid: `u_${oaOpenid}`, inviteCode });
  };
  const rewards = () => count(h.database, 'points_ledger', "reason = 'earn:invite_reward'");
  return { ...h, req, follower, rewards };
}

/** PNG chunks, checked the way a decoder would. */
function pngInfo(buf: Buffer) {
  if (!buf.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))) throw new Error('not a PNG');
  let off = 8;
  let width = 0;
  let height = 0;
  const idat: Buffer[] = [];
  while (off < buf.length) {
    const len = buf.readUInt32BE(off);
    const type = buf.subarray(off + 4, off + 8).toString('ascii');
    const data = buf.subarray(off + 8, off + 8 + len);
    if (type === 'IHDR') { width = data.readUInt32BE(0); height = data.readUInt32BE(4); }
    if (type === 'IDAT') idat.push(data);
    off += 12 + len;
  }
  const raw = inflateSync(Buffer.concat(idat));
  return { width, height, rawBytes: raw.length };
}

t.test('my invite code and a real PNG mini-program code for it', async (t) => {
  const h = await setup(t);
  const a = await mpLogin(h);
  const v = (await h.req('GET', '/api/mp/me/invite', a.headers)).json();
  t.match(v.code, /^[A-Z2-9]{8}$/);
  t.equal(v.scene, `i=${v.code}`);
  t.equal(v.page, 'pages/index/index');
  t.equal((await h.req('GET', '/api/mp/me/invite', a.headers)).json().code, v.code, 'the code is stable');
  const img = await h.req('GET', '/api/mp/me/invite/qrcode', a.headers);
  t.equal(img.statusCode, 200);
  t.match(img.headers['content-type'], /^image\/png/);
  const info = pngInfo(img.rawPayload);
  t.ok(info.width >= 280 && info.width <= 430 && info.width === info.height);
  t.equal(info.rawBytes, (info.width + 1) * info.height, 'the image data inflates to width × height grey pixels');
  const calls = (await (await fetch(`${h.sandbox.url}/__sandbox/calls?path=/wxa/getwxacodeunlimit`)).json()) as any[];
  t.same(calls.at(-1).body.scene, `i=${v.code}`, 'the official request shape: scene, page …');
  t.equal(calls.at(-1).body.page, 'pages/index/index');
  t.equal((await h.req('GET', '/api/mp/me/invite/qrcode', {})).statusCode, 401);
});

t.test('the inviter is rewarded once, when the invitee becomes a member', async (t) => {
  const h = await setup(t);
  const inviter = await h.follower('oInviter001');
  const code = (await h.req('GET', '/api/mp/me/invite', inviter.headers)).json().code;
  const before = (await h.req('GET', '/api/mp/me', inviter.headers)).json().points;
  const invitee = await h.follower('oInvitee001', code);
  t.equal(await h.rewards(), 0, 'logging in is not enough');
  await mpBindPhone(h, invitee.token, '13900001001');
  t.equal(await h.rewards(), 1, 'the invitee became a member');
  t.equal((await h.req('GET', '/api/mp/me', inviter.headers)).json().points, before + 200);
  await mpBindPhone(h, invitee.token, '13900001002');
  await h.sim.unsubscribe('oInvitee001');
  await new Promise((r) => setTimeout(r, 1000 - (Date.now() % 1000) + 5)); // a new CreateTime second: a new follow, not a retry
  await h.sim.subscribe('oInvitee001');
  await h.req('GET', '/api/mp/me', invitee.headers);
  t.equal(await h.rewards(), 1, 'one reward per invitee');
  const v = (await h.req('GET', '/api/mp/me/invite', inviter.headers)).json();
  t.same([v.invited, v.rewarded], [1, 1]);
});

t.test('an invite accepted after login, and the refusals: self, unknown, twice, already a member', async (t) => {
  const h = await setup(t);
  const a = await mpLogin(h);
  const codeA = (await h.req('GET', '/api/mp/me/invite', a.headers)).json().code;
  const self = await h.req('POST', '/api/mp/me/invited-by', a.headers, { inviteCode: codeA });
  t.equal(self.statusCode, 422);
  t.equal(self.json().details.reason, 'self_invite');
  const unknown = await h.req('POST', '/api/mp/me/invited-by', a.headers, { inviteCode: 'ZZZZ9999' });
  t.equal(unknown.statusCode, 404);
  t.equal((await h.req('POST', '/api/mp/me/invited-by', a.headers, { inviteCode: 'bad code!' })).statusCode, 400);
  const b = await h.follower('oLateInvitee');
  t.equal((await h.req('POST', '/api/mp/me/invited-by', b.headers, { inviteCode: codeA })).statusCode, 200);
  t.equal((await h.req('POST', '/api/mp/me/invited-by', b.headers, { inviteCode: codeA })).statusCode, 200, 'repeating the same invite is harmless');
  const c = await mpLogin(h);
  const codeC = (await h.req('GET', '/api/mp/me/invite', c.headers)).json().code;
  const twice = await h.req('POST', '/api/mp/me/invited-by', b.headers, { inviteCode: codeC });
  t.equal(twice.statusCode, 409);
  t.equal(twice.json().details.reason, 'already_invited');
  await mpBindPhone(h, b.token, '13900002001');
  t.equal(await h.rewards(), 1);
  const m = await h.follower('oAlreadyMem1');
  await mpBindPhone(h, m.token, '13900002002');
  const late = await h.req('POST', '/api/mp/me/invited-by', m.headers, { inviteCode: codeA });
  t.equal(late.statusCode, 409);
  t.equal(late.json().details.reason, 'already_member');
  // Self-invite by the same phone on a second WeChat account: refused as well.
  const d = await mpLogin(h);
  await mpBindPhone(h, d.token, '13900002003');
  const codeD = (await h.req('GET', '/api/mp/me/invite', d.headers)).json().code;
  await h.database.db.execute(sql`UPDATE members SET phone_hash = (SELECT phone_hash FROM members WHERE id = ${d.member.memberId}), phone_verified = false WHERE id = ${c.member.memberId}`);
  t.equal((await h.req('POST', '/api/mp/me/invited-by', c.headers, { inviteCode: codeD })).json().details?.reason, 'self_invite');
});

t.test('a fraud hold on the invitee (a blacklisted phone) withholds the reward', async (t) => {
  const h = await setup(t, { FRAUD_ENABLED: 'true' }); // off by default under NODE_ENV=test
  const admin = await adminHeaders(h.app);
  const bl = await h.app.inject({ method: 'POST', url: '/api/ops/fraud/blacklist', headers: admin, payload: { kind: 'phone', value: '13900003001' } });
  t.ok(bl.statusCode < 300, `blacklisted (${bl.statusCode})`);
  const inviter = await h.follower('oInviterF01');
  const code = (await h.req('GET', '/api/mp/me/invite', inviter.headers)).json().code;
  const invitee = await h.follower('oInviteeF01', code);
  await mpBindPhone(h, invitee.token, '13900003001');
  t.equal(await h.rewards(), 0);
  t.equal(await count(h.database, 'member_events', "kind = 'invite_reward_held'"), 1);
});
