/**
 * The redeem page, rendered from its real WXML with its real logic, against a running server: what the member sees at
 * each step (code → questions form → draw → result) and what each tap sends.
 */
import t from 'tap';
import { sql } from 'drizzle-orm';
import { buildTestApp } from '../../server/test/helpers.ts';
import { mintLoginCode, newMpOpenid } from '../../server/test/mp-helpers.ts';
import { seedCampaign } from '../../server/test/campaign-fixtures.ts';
import { configure } from '../config.ts';
import { logout } from '../services/api.ts';
import { installWx, renderPage } from './harness.ts';

async function setup(t: Parameters<typeof buildTestApp>[0]) {
  const h = await buildTestApp(t);
  const address = await h.app.listen({ port: 0, host: '127.0.0.1' });
  configure({ apiBase: address });
  const openid = newMpOpenid();
  const wx = installWx({ login: () => mintLoginCode(h, openid) });
  logout();
  return { h, wx };
}

t.test('redeem: a typo, then a scanned code, the questions as a form, the draw and the result', async (t) => {
  const { h, wx } = await setup(t);
  const { codes } = await seedCampaign(h.database, h.config.codeKey, { unlockMin: 2, prizes: [{ name: '50积分', kind: 'points', value: 50, weight: 1 }] });
  const p = await renderPage('pages/redeem/index', wx);
  t.match(p.text(), /输入兑奖码/);
  t.ok(p.has('#scan'), 'a scan button');
  t.same(wx.calls, [], 'nothing is fetched before the member acts');

  // Nothing typed: told so, nothing sent.
  await p.tap('#submit-code');
  t.match(p.$('#error').dom.textContent, /请输入包装内的兑奖码/);
  t.same(wx.calls, []);

  // A typo: the server's reason, in Chinese; still on the code step.
  const c0 = codes[0]!;
  await p.input('#code', c0.slice(0, 3) + (c0[3] === 'A' ? 'B' : 'A') + c0.slice(4));
  await p.tap('#submit-code');
  t.same(wx.calls.map((c) => `${c.method} ${c.path} ${c.status}`), ['POST /api/mp/login 200', 'POST /api/mp/redemptions 422'], 'logged in transparently first');
  t.match(p.text(), /似乎有字符输错了/);
  t.match(p.text(), /输入兑奖码/);

  // Scanning the pack's QR code: redeemed, the questions appear as a form.
  wx.scans.push(`https://brand.example/r?c=${c0}`);
  await p.tap('#scan');
  const redeem = wx.calls.at(-1)!;
  t.same(redeem.body, { code: `https://brand.example/r?c=${c0}`, via: 'scan' });
  t.equal(redeem.status, 200);
  t.match(p.text(), /夏日开盖有礼/);
  t.match(p.text(), /回答几个小问题/);
  t.match(p.text(), /兑奖码验证成功！回答几个小问题即可抽奖（至少回答 2 题）/);
  t.match(p.text(), /1\. 请问怎么称呼您？\*/);
  t.match(p.text(), /2\. 您的职业是？/);
  t.match(p.text(), /3\. 您在哪个城市？\s*请选择省份和城市/);
  t.equal(p.$$('.field').length, 5);

  // Submitting with the required question empty: told so, nothing sent.
  const sent = wx.calls.length;
  await p.tap('#submit-answers');
  t.match(p.text(), /请先回答必答题/);
  t.match(p.text(), /这道题是必答题/);
  t.equal(wx.calls.length, sent);

  // A name the server refuses: its reason shows under the question.
  await p.input('#q-name', 'A');
  await p.tap('#submit-answers');
  t.equal(wx.calls.at(-1)!.status, 422);
  t.match(p.text(), /请输入 2–20 个字/);
  t.match(p.text(), /有的回答需要修改/);

  // The name, and the region by the province → city picker.
  await p.input('#q-name', '张三');
  const region = () => p.page.data.fields.find((f: any) => f.key === 'region');
  const gd = region().columns[0].indexOf('广东省');
  t.ok(gd >= 0, 'provinces in the first column');
  await p.columnChange('#q-region', 0, gd);
  t.ok(region().columns[1].includes('深圳市'), 'the second column shows the province\'s cities');
  const sz = region().columns[1].indexOf('深圳市');
  await p.change('#q-region', [gd, sz]);
  t.match(p.text(), /广东省 深圳市/);
  await p.tap('#submit-answers');
  t.same(wx.calls.at(-1)!.body, { answers: { name: '张三', region: { provinceCode: '440000', cityCode: '440300' } } });
  t.match(p.text(), /答题完成/);
  t.ok(p.has('#draw'));

  // The draw and what the member reads.
  await p.tap('#draw');
  t.match(wx.calls.at(-1)!.path, /^\/api\/mp\/redemptions\/\d+\/draw$/);
  t.match(p.$('#result-title').dom.textContent, /恭喜您抽中【50积分】/);
  t.match(p.text(), /本次获得 50 积分，当前积分 50/);
  t.match(p.text(), /积分已存入您的会员账户/);
  const rows = await h.database.query<{ display: string }>(sql`SELECT display FROM profile_answers WHERE question_key = 'region'`);
  t.equal(rows[0]!.display, '广东省 深圳市', 'the answer is on the profile the chat uses');

  await p.tap('#to-member');
  t.same(wx.navigations, ['/pages/member/index']);
  await p.tap('#again');
  t.match(p.text(), /输入兑奖码/);
  t.equal(wx.calls.filter((c) => c.path === '/api/mp/login').length, 1, 'one login for the whole flow');
});

t.test('redeem: opened on a pending redemption it resumes it; a drawn one shows its result', async (t) => {
  const { h, wx } = await setup(t);
  const { codes } = await seedCampaign(h.database, h.config.codeKey, { unlockMin: 0, questions: [], prizes: [{ name: '谢谢参与', kind: 'thanks', weight: 1 }], lossPoints: 5 });
  const first = await renderPage('pages/redeem/index', wx);
  await first.input('#code', codes[0]!);
  await first.tap('#submit-code');
  t.match(first.text(), /答题完成/, 'no questions: ready to draw at once');
  const id = first.page.data.redemptionId as string;

  const resumed = await renderPage('pages/redeem/index', wx, { id });
  t.match(resumed.text(), /立即抽奖/);
  await resumed.tap('#draw');
  t.match(resumed.text(), /很遗憾，这次没有中奖/);
  t.match(resumed.text(), /本次获得 5 积分，当前积分 5/);

  const again = await renderPage('pages/redeem/index', wx, { id });
  t.match(again.text(), /很遗憾，这次没有中奖/, 'the same result, read back');
  t.equal(again.page.data.result.points, 5);
});

t.test('redeem: opened by WeChat\'s own scanner with the pack URL (?q=), the code is redeemed at once', async (t) => {
  const { h, wx } = await setup(t);
  const { codes } = await seedCampaign(h.database, h.config.codeKey, { unlockMin: 1 });
  const url = `https://brand.example/r?c=${codes[0]}`;
  const p = await renderPage('pages/redeem/index', wx, { q: encodeURIComponent(url) });
  const redeem = wx.calls.find((c) => c.path === '/api/mp/redemptions')!;
  t.same(redeem.body, { code: url, via: 'scan' });
  t.match(p.text(), /回答几个小问题/);
});
