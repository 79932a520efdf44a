/**
 * Profile and privacy, and invite pages, rendered from their real WXML with their real logic against a running server:
 * editing the golden-question profile shared with the chat, consent with its version, exporting my data, deleting my
 * account; my invite code and its mini-program code image.
 */
import t from 'tap';
import { sql } from 'drizzle-orm';
import { buildTestApp } from '../../server/test/helpers.ts';
import { mintLoginCode, newMpOpenid } from '../../server/test/mp-helpers.ts';
import { configure, config } from '../config.ts';
import { logout } from '../services/api.ts';
import { installWx, renderPage } from './harness.ts';

async function setup(t: Parameters<typeof buildTestApp>[0]) {
  const h = await buildTestApp(t);
  const address = await h.app.listen({ port: 0, host: '127.0.0.1' });
  configure({ apiBase: address });
  const mpOpenid = newMpOpenid();
  const wx = installWx({ login: () => mintLoginCode(h, mpOpenid) });
  logout();
  return { h, wx, mpOpenid };
}

t.test('profile: answers saved as the chat reads them, consent with its version, export, then delete', async (t) => {
  const { h, wx } = await setup(t);
  const p = await renderPage('pages/profile/index', wx);
  t.match(p.text(), /我的资料/);
  t.ok(p.has('#p-name'), 'the golden questions as fields');
  t.ok(p.has('#agree'), 'no consent yet');

  await p.input('#p-name', '钱七');
  const occupation = p.page.data.rows.find((r: any) => r.key === 'occupation');
  await p.change('#p-occupation', occupation.options.indexOf('上班族'));
  await p.input('#p-region', '广东深圳');
  await p.tap('#save');
  const put = wx.calls.at(-1)!;
  t.equal(`${put.method} ${put.path} ${put.status}`, 'PUT /api/mp/me/profile 200');
  t.same(put.body, { answers: { name: '钱七', occupation: '上班族', region: '广东深圳' } });
  t.match(p.$('#notice').dom.textContent, /资料已保存/);
  const stored = await h.database.query<{ question_key: string; display: string }>(sql`SELECT question_key, display FROM profile_answers ORDER BY question_key`);
  t.same(stored.map((r) => [r.question_key, r.display]), [['name', '钱七'], ['occupation', '上班族'], ['region', '广东省 深圳市']]);

  // A wrong answer: the server's reason, nothing saved.
  await p.input('#p-name', 'X');
  await p.tap('#save');
  t.equal(wx.calls.at(-1)!.status, 422);
  t.match(p.$('#notice').dom.textContent, /请输入 2–20 个字/);

  await p.tap('#agree');
  const consent = wx.calls.at(-1)!;
  t.equal(`${consent.method} ${consent.path} ${consent.status}`, 'PUT /api/mp/me/consent 200');
  t.same(consent.body, { version: config.privacyVersion });
  t.match(p.$('#consent').dom.textContent, new RegExp(`同意（版本 ${config.privacyVersion}）`));
  t.notOk(p.has('#agree'));

  await p.tap('#export');
  t.equal(wx.calls.at(-1)!.path, '/api/mp/me/export');
  t.match(p.$('#exported').dom.textContent, /已导出 \d+ 类数据/);
  t.match(wx.state.clipboard, /钱七/, 'my data, to keep');

  // Deleting: confirmed in a modal, then the session is gone.
  wx.state.modalConfirm = false;
  const sent = wx.calls.length;
  await p.tap('#delete');
  t.equal(wx.calls.length, sent, 'cancelled: nothing sent');
  wx.state.modalConfirm = true;
  await p.tap('#delete');
  const del = wx.calls.at(-1)!;
  t.equal(`${del.method} ${del.path} ${del.status}`, 'POST /api/mp/me/delete 200');
  t.match(p.text(), /账号已注销/);
  t.notOk(wx.storage.has('mp.session'), 'the session is forgotten');
  t.equal((await h.database.query(sql`SELECT 1 FROM profile_answers`)).length, 0, 'the profile is erased');
  await p.tap('#home');
  t.same(wx.navigations.at(-1), '/pages/index/index');
});

t.test('invite: my code, the mini-program code image and sharing with my scene', async (t) => {
  const { wx } = await setup(t);
  const p = await renderPage('pages/invite/index', wx);
  const view = wx.calls.find((c) => c.path === '/api/mp/me/invite')!;
  t.equal(view.status, 200);
  t.equal(p.$('#code').dom.textContent, view.response.code);
  const image = wx.calls.find((c) => c.path === view.response.imagePath)!;
  t.equal(image.status, 200);
  t.match(p.page.data.image, /^data:image\/png;base64,iVBORw0KGgo/, 'a real PNG from the sandbox wxacode');
  t.ok(p.has('#wxacode'));
  await p.tap('#copy');
  t.equal(wx.state.clipboard, view.response.code);
  t.match(p.$('#notice').dom.textContent, /邀请码已复制/);
  const share = p.page.onShareAppMessage();
  t.equal(share.path, `/${view.response.page}?scene=${encodeURIComponent(view.response.scene)}`);
  t.match(p.$('#invited').dom.textContent, /^0$/);
});
