/**
 * The cash-prize confirmation page (pages/prize/confirm), rendered from its real WXML with its real logic against a
 * running server: opened from the chat link, it shows the amount and the deadline, hands WeChat Pay's parameters to
 * wx.requestMerchantTransfer, and shows what the server (not WeChat's callback) says afterwards; a bad link is refused.
 */
import t from 'tap';
import { fulfilments } from '../../server/src/fulfilment/tables.ts';
import { SANDBOX_PAY } from '../../server/src/wechat/sandbox/pay-keys.ts';
import { buildTestApp } from '../../server/test/helpers.ts';
import { configure } from '../config.ts';
import { logout } from '../services/api.ts';
import { installWx, renderPage } from './harness.ts';

t.test('confirm: a waiting cash prize is confirmed through wx.requestMerchantTransfer; the server settles it', async (t) => {
  const h = await buildTestApp(t);
  const address = await h.app.listen({ port: 0, host: '127.0.0.1' });
  configure({ apiBase: address });
  const wx = installWx({
    login: async () => {
      throw new Error('the confirm page needs no member login');
    },
    // The winner confirms in WeChat: the pay sandbox moves the bill on and notifies our server.
    merchantTransfer: async () => (await fetch(`${h.paySandbox.url}/__sandbox/pay/bills/${outNo}/confirm`, { method: 'POST' })).status === 200,
  });
  logout();
  // A cash prize job exactly as the draw inserts it; the worker creates the WeChat Pay bill.
  const now = new Date();
  const [job] = await h.database.db.insert(fulfilments).values({
    sourceKey: 'draw:7001', drawId: 7001, campaignId: null, openid: 'oCashWinner', prizeId: null, kind: 'cash', amount: 888,
    state: 'pending', nextAttemptAt: now, outNo: 'D7001', createdAt: now, updatedAt: now,
  }).returning();
  const outNo = job!.outNo;
  await h.services.fulfilment.runDue();
  const token = h.services.fulfilment.linkToken(job!.id, 'oCashWinner');

  const p = await renderPage('pages/prize/confirm', wx, { f: String(job!.id), t: token });
  t.same(wx.calls.map((c) => `${c.method} ${c.path.split('?')[0]} ${c.status}`), [`GET /api/mp/transfers/${job!.id} 200`], 'no login: the link token is enough');
  t.match(p.text(), /¥8\.88/);
  t.match(p.text(), /恭喜您获得现金红包/);
  t.match(p.text(), /请在 .* 前确认收款/);

  const bill = h.paySandbox.state.bills.get(outNo)!;
  t.equal(bill.state, 'WAIT_USER_CONFIRM');
  await p.tap('.primary');
  t.same(wx.transfers[0], { mchId: SANDBOX_PAY.mchid, package: bill.package_info, appId: h.config.wechatPay.appId, openId: 'oCashWinner' }, 'WeChat Pay\'s parameters, as the server gave them');
  t.match(wx.calls.at(-1)!.path, new RegExp(`^/api/mp/transfers/${job!.id}/confirmed\\?t=`));
  t.match(p.text(), /已转入您的微信零钱/);
  t.notOk(p.text().includes('确认收款'), 'nothing left to confirm');
  t.equal((await h.services.fulfilment.get(job!.id))!.state, 'succeeded');

  const bad = await renderPage('pages/prize/confirm', wx, { f: String(job!.id), t: `${token.slice(0, -1)}${token.endsWith('A') ? 'B' : 'A'}` });
  t.match(bad.text(), /无法领取[\s\S]*链接无效或已过期/);
  const malformed = await renderPage('pages/prize/confirm', wx, { f: 'abc' });
  t.match(malformed.text(), /链接无效或已过期/);
});
