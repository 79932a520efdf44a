/**
 * The member centre, rendered from its real WXML with its real logic, against a running server: tier and points as
 * the member reads them, binding the phone (which makes a follower a member), an expired session refreshed without the
 * member noticing, and the way to the other member pages.
 */
import t from 'tap';
import { sql } from 'drizzle-orm';
import { manualClock } from '../../server/src/platform/clock.ts';
import { buildTestApp } from '../../server/test/helpers.ts';
import { mintLoginCode, mintPhoneCode, newMpOpenid } from '../../server/test/mp-helpers.ts';
import { configure } from '../config.ts';
import { logout } from '../services/api.ts';
import { installWx, renderPage } from './harness.ts';

async function setup(t: Parameters<typeof buildTestApp>[0]) {
  const clock = manualClock(new Date());
  const h = await buildTestApp(t, { clock, env: { MP_SESSION_TTL_S: '600' } });
  const address = await h.app.listen({ port: 0, host: '127.0.0.1' });
  configure({ apiBase: address });
  // A follower of the official account, whose unionid links the mini program to them.
  await h.sim.subscribe('oFollower0001');
  await h.database.db.execute(sql`UPDATE followers SET unionid = 'uMemberPage01' WHERE openid = 'oFollower0001'`);
  const mpOpenid = newMpOpenid();
  const wx = installWx({ login: () => mintLoginCode(h, mpOpenid, 'uMemberPage01') });
  logout();
  return { h, wx, clock, mpOpenid };
}

t.test('member centre: tier and points, binding the phone makes the follower a member', async (t) => {
  const { h, wx } = await setup(t);
  await h.services.ledger.credit('oFollower0001', 120, 'test:earlier-draw', 'lottery_prize');

  const p = await renderPage('pages/member/index', wx);
  t.same(wx.calls.map((c) => `${c.method} ${c.path.split('?')[0]}`), ['POST /api/mp/login', 'GET /api/mp/me/centre'], 'one call for the whole centre');
  const centre = wx.calls[1]!.response;
  t.match(p.$('#tier-name').dom.textContent, /普通/);
  t.ok(centre.next, 'a next tier to reach');
  t.match(p.$('#progress').dom.textContent, new RegExp(`近期积分 ${centre.rollingPoints}，再获得 ${centre.toNext} 积分升级为${centre.next.name}`));
  t.match(p.$('#benefits').dom.textContent, /会员权益/);
  t.ok(p.$$('.benefit').length >= 1);
  // The points won in chat (plus what the earn rules gave for following): one person, one account.
  const balance = await h.services.ledger.balance('oFollower0001');
  t.ok(balance >= 120);
  t.equal(p.$('#points').dom.textContent, String(balance));
  t.match(p.$('#member-state').dom.textContent, /尚未成为会员/);
  t.match(p.text(), /绑定手机号即可成为品牌会员/);
  t.ok(p.has('#bind-phone'));
  t.notOk(p.has('#phone'));

  // The member declines the phone-number prompt: told why it matters, nothing sent.
  const sent = wx.calls.length;
  p.$('#bind-phone').dispatchEvent('getphonenumber', { detail: { errMsg: 'getPhoneNumber:fail user deny' } });
  await wx.idle();
  t.match(p.$('#notice').dom.textContent, /需要授权手机号才能成为会员/);
  t.equal(wx.calls.length, sent);

  // The member allows it: the code goes to the server, the page shows the member.
  const code = await mintPhoneCode(h, '13812348000');
  p.$('#bind-phone').dispatchEvent('getphonenumber', { detail: { code, errMsg: 'getPhoneNumber:ok' } });
  await wx.idle();
  const bind = wx.calls.at(-1)!;
  t.equal(`${bind.method} ${bind.path} ${bind.status}`, 'POST /api/mp/me/phone 200');
  t.same(bind.body, { code });
  t.match(p.$('#notice').dom.textContent, /恭喜您成为品牌会员/);
  t.match(p.$('#member-state').dom.textContent, /品牌会员/);
  t.notMatch(p.$('#member-state').dom.textContent, /尚未/);
  t.equal(p.$('#phone').dom.textContent, '138****8000');
  t.notOk(p.has('#bind-phone'), 'no second binding button');
  t.notMatch(p.text(), /13812348000/, 'the number is never shown in full');

  // Opened again, the page shows the bound phone.
  const other = await renderPage('pages/member/index', wx);
  t.ok(other.has('#phone'));

  // Daily check-in: points once a day; the second tap is told so.
  const beforeCheckin = Number(p.$('#points').dom.textContent);
  await p.tap('#checkin');
  const first = wx.calls.at(-1)!;
  t.equal(`${first.method} ${first.path} ${first.status}`, 'POST /api/mp/me/checkin 200');
  t.match(p.$('#notice').dom.textContent, new RegExp(`签到成功，获得 ${first.response.points} 积分`));
  t.equal(p.$('#points').dom.textContent, String(beforeCheckin + first.response.points));
  t.match(p.$('#checkin').dom.textContent, /今日已签到/);
  await p.tap('#checkin');
  t.match(p.$('#notice').dom.textContent, /今天已经签到过了/);
  t.equal(p.$('#points').dom.textContent, String(beforeCheckin + first.response.points));

  await p.tap('#to-points');
  await p.tap('#to-mall');
  await p.tap('#to-profile');
  t.same(wx.navigations, ['/pages/points/index', '/pages/mall/index', '/pages/profile/index']);
});

t.test('member centre: an expired session is refreshed once, without a new wx.login, and the call retried', async (t) => {
  const { h, wx, clock } = await setup(t);
  const p = await renderPage('pages/member/index', wx);
  const before = await h.services.ledger.balance('oFollower0001');
  t.equal(p.$('#points').dom.textContent, String(before));
  await h.services.ledger.credit('oFollower0001', 30, 'test:later', 'lottery_prize');

  clock.advance(601_000);
  const sent = wx.calls.length;
  await p.page.onPullDownRefresh();
  await wx.idle();
  t.same(wx.calls.slice(sent).map((c) => `${c.method} ${c.path.split('?')[0]} ${c.status}`).slice(0, 3), [
    'GET /api/mp/me/centre 401', 'POST /api/mp/session/refresh 200', 'GET /api/mp/me/centre 200',
  ]);
  t.equal(p.$('#points').dom.textContent, String(before + 30));
  t.equal(wx.calls.filter((c) => c.path === '/api/mp/login').length, 1, 'no second login');
});

t.test('member centre: a session that cannot be refreshed logs in again; concurrent calls share that login', async (t) => {
  const { wx } = await setup(t);
  const p = await renderPage('pages/member/index', wx);
  // The mini program restarts with a stored session the server refuses (revoked, forged): both tokens fail.
  logout();
  wx.storage.set('mp.session', { token: 'mps_forged', expiresAt: new Date().toISOString(), refreshToken: 'mpr_forged' });
  const before = wx.calls.length;
  const { me } = await import('../services/member.ts');
  const results = await Promise.all([me(), me(), me()]);
  t.equal(new Set(results.map((m) => m.memberId)).size, 1);
  const after = wx.calls.slice(before).map((c) => `${c.method} ${c.path} ${c.status}`);
  t.equal(after.filter((c) => c === 'GET /api/mp/me 401').length, 3);
  t.equal(after.filter((c) => c.startsWith('POST /api/mp/session/refresh')).length, 1, 'one refresh attempt for all three');
  t.equal(after.filter((c) => c === 'POST /api/mp/login 200').length, 1, 'one login for all three');
  t.equal(after.filter((c) => c === 'GET /api/mp/me 200').length, 3, 'each call retried once');
  t.match(p.$('#points').dom.textContent, /^\d+$/);
});
