/**
 * Home, mall, orders, coupons and points pages, rendered from their real WXML with their real logic against a running
 * server: the banner and recommendations (a tap is a click), exchanging points, a points + cash order paid through
 * wx.requestPayment at the pay sandbox, the store QR of the coupon, and the points history that records it all.
 */
import t from 'tap';
import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { adminHeaders, buildTestApp } from '../../server/test/helpers.ts';
import { mintLoginCode, newMpOpenid } from '../../server/test/mp-helpers.ts';
import { seedCampaign } from '../../server/test/campaign-fixtures.ts';
import { configure } from '../config.ts';
import { logout } from '../services/api.ts';
import { qrDataUrl } from '../utils/qr.ts';
import { installWx, renderPage } from './harness.ts';

async function setup(t: Parameters<typeof buildTestApp>[0]) {
  const h = await buildTestApp(t);
  const address = await h.app.listen({ port: 0, host: '127.0.0.1' });
  configure({ apiBase: address });
  const mpOpenid = newMpOpenid();
  const wx = installWx({
    login: () => mintLoginCode(h, mpOpenid),
    pay: async (params) => (await fetch(`${h.paySandbox.url}/__sandbox/pay/request-payment`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...params, openid: mpOpenid }),
    })).status === 200,
  });
  logout();
  const ops = await adminHeaders(h.app);
  const createItem = async (body: Record<string, unknown>) => (await h.app.inject({ method: 'POST', url: '/api/ops/mall/items', headers: ops, payload: { status: 'active', ...body } })).json();
  return { h, wx, createItem, mpOpenid };
}

t.test('home: the live campaign banner leads to redeem; recommendations are shown and a tap is recorded', async (t) => {
  const { h, wx } = await setup(t);
  await seedCampaign(h.database, h.config.codeKey, { prizes: [{ name: '100积分', kind: 'points', value: 100, weight: 1 }, { name: '谢谢参与', kind: 'thanks', weight: 3 }] });
  const p = await renderPage('pages/index/index', wx);
  t.match(p.$('#banner').dom.textContent, /夏日开盖有礼[\s\S]*好礼：100积分[\s\S]*扫码兑奖/);
  const recs = wx.calls.find((c) => c.path.startsWith('/api/mp/recommendations'))!;
  t.equal(recs.status, 200);
  t.ok(recs.response.length > 0, 'the seeded rules or the popular fallback give cards');
  t.equal(p.$$('.rec').length, recs.response.length);
  t.match(p.text(), new RegExp(recs.response[0].title));
  p.$$('.rec')[0].dispatchEvent('tap', {});
  await wx.idle();
  const click = wx.calls.at(-1)!;
  t.equal(`${click.method} ${click.path} ${click.status}`, 'POST /api/mp/recommendations/click 200');
  t.equal((click.body as { itemId: number }).itemId, recs.response[0].itemId);
  await p.tap('#banner');
  t.same(wx.navigations.at(-1), '/pages/redeem/index');
});

t.test('mall → coupons → orders → points: exchange, pay points + cash, show the store QR, read the history', async (t) => {
  const { h, wx, createItem } = await setup(t);
  const coupon = await createItem({ kind: 'coupon', title: '5元无门槛券', points: 100, stock: 10, perMemberLimit: 1, coupon: { title: '5元券', valueFen: 500, validDays: 30 } });
  const cash = await createItem({ kind: 'points_cash', title: '积分+9.9元 奶酪礼盒', points: 200, cashFen: 990, stock: 5, coupon: { title: '奶酪礼盒券', valueFen: 3000, validDays: 30 } });
  await createItem({ kind: 'sample', title: '钻石专享礼盒', points: 10, stock: 5, minTier: 'diamond' });

  // The member's points (as if won in a draw).
  const mall = await renderPage('pages/mall/index', wx);
  const openid = (await h.database.query<{ openid: string }>(sql`SELECT openid FROM members LIMIT 1`))[0]!.openid;
  await h.services.ledger.credit(openid, 1000, `test:grant:${randomUUID()}`, 'lottery_prize');
  const start = await h.services.ledger.balance(openid);
  await mall.page.onPullDownRefresh();
  await wx.idle();
  t.equal(mall.$('#balance').dom.textContent, String(start));
  t.match(mall.text(), /5元无门槛券[\s\S]*100 积分[\s\S]*每人限 1 件/);
  t.match(mall.text(), /200 积分 \+ ¥9\.90/);
  t.match(mall.$(`#buy-${coupon.id}`).dom.textContent, /兑换/);
  t.match(mall.text(), /钻石会员专享/, 'a reserved item says who it is for');

  // Declining the confirmation sends nothing.
  wx.state.modalConfirm = false;
  const sent = wx.calls.length;
  await mall.tap(`#buy-${coupon.id}`);
  t.equal(wx.calls.length, sent);
  t.match(wx.modals.at(-1)!.content, /使用 100 积分 兑换「5元无门槛券」？/);
  wx.state.modalConfirm = true;

  await mall.tap(`#buy-${coupon.id}`);
  const placed = wx.calls.find((c) => c.path === '/api/mp/mall/orders' && c.method === 'POST')!;
  t.equal(placed.status, 200);
  t.match(mall.$('#notice').dom.textContent, /兑换成功，券已放入“我的券”/);
  t.equal(mall.$('#balance').dom.textContent, String(start - 100));
  t.match(mall.$(`#buy-${coupon.id}`).dom.textContent, /已达兑换上限/, 'the per-member limit shows');

  // Points + cash: WeChat Pay with the server's parameters; the server confirms the payment.
  await mall.tap(`#buy-${cash.id}`);
  t.equal(wx.payments.length, 1);
  t.same(Object.keys(wx.payments[0]).sort(), ['nonceStr', 'package', 'paySign', 'signType', 'timeStamp']);
  const paid = wx.calls.find((c) => /^\/api\/mp\/mall\/orders\/\d+\/paid$/.test(c.path))!;
  t.equal(paid.status, 200);
  t.match(mall.$('#notice').dom.textContent, /支付成功，兑换完成/);
  t.equal(mall.$('#balance').dom.textContent, String(start - 300));

  // My coupons: both, usable; the store QR is the server's signed payload drawn as an image.
  const coupons = await renderPage('pages/coupons/index', wx);
  t.equal(coupons.$$('.coupon').length, 2);
  t.match(coupons.text(), /5元券[\s\S]*¥5\.00[\s\S]*全部门店可用/);
  const ids = (wx.calls.filter((c) => c.path === '/api/mp/coupons').at(-1)!.response as Array<{ id: number; title: string; couponCode: string }>);
  const five = ids.find((c) => c.title === '5元券')!;
  await coupons.tap(`#show-${five.id}`);
  const qr = wx.calls.at(-1)!;
  t.equal(`${qr.method} ${qr.path} ${qr.status}`, `GET /api/mp/coupons/${five.id}/qr 200`);
  t.ok(coupons.has('#qr-panel'));
  t.equal(coupons.page.data.shown.image, qrDataUrl(qr.response.qr), 'the image encodes the server\'s payload');
  t.match(coupons.page.data.shown.image, /^data:image\/gif;base64,/);
  t.match(coupons.$('#qr-code').dom.textContent, new RegExp(five.couponCode));
  await coupons.tap('#close-qr');
  t.notOk(coupons.has('#qr-panel'));
  coupons.page.onUnload();

  // My orders: both done; nothing to pay.
  const orders = await renderPage('pages/orders/index', wx);
  t.equal(orders.$$('.order').length, 2);
  t.match(orders.text(), /积分\+9\.9元 奶酪礼盒[\s\S]*已完成/);
  t.notOk(orders.text().includes('去支付'));

  // Points history: the two spends, newest first.
  const points = await renderPage('pages/points/index', wx);
  t.equal(points.$('#balance').dom.textContent, String(start - 300));
  const entries = points.$$('.entry');
  t.ok(entries.length >= 3);
  t.match(entries[0].dom.textContent, /-200/);
  t.match(entries[1].dom.textContent, /-100/);
  t.match(entries[2].dom.textContent, /\+1000/);
});

t.test('orders: an unpaid points + cash order is paid later from my orders, or cancelled with the points back', async (t) => {
  const { h, wx, createItem } = await setup(t);
  const cash = await createItem({ kind: 'points_cash', title: '积分+1元 酸奶', points: 50, cashFen: 100, stock: 5, coupon: { title: '酸奶券', valueFen: 800, validDays: 30 } });
  const mall = await renderPage('pages/mall/index', wx);
  const openid = (await h.database.query<{ openid: string }>(sql`SELECT openid FROM members LIMIT 1`))[0]!.openid;
  await h.services.ledger.credit(openid, 500, `test:grant:${randomUUID()}`, 'lottery_prize');
  const start = await h.services.ledger.balance(openid);
  await mall.page.onPullDownRefresh();
  await wx.idle();

  // The member closes the payment sheet twice: two unpaid orders.
  wx.state.paymentFails = true;
  await mall.tap(`#buy-${cash.id}`);
  t.match(mall.$('#notice').dom.textContent, /支付未完成，可在“我的订单”中继续支付/);
  await mall.tap(`#buy-${cash.id}`);
  wx.state.paymentFails = false;
  t.equal(await h.services.ledger.balance(openid), start - 100, 'the points part is held');

  const orders = await renderPage('pages/orders/index', wx);
  t.equal(orders.$$('.order').length, 2);
  t.match(orders.text(), /待支付/);
  const [newer, older] = orders.page.data.rows as Array<{ id: number }>;
  await orders.tap(`#pay-${older!.id}`);
  t.match(wx.calls.map((c) => c.path).join(' '), new RegExp(`/api/mp/mall/orders/${older!.id}/pay .*/api/mp/mall/orders/${older!.id}/paid`));
  t.match(orders.$('#notice').dom.textContent, /支付成功/);

  await orders.tap(`#cancel-${newer!.id}`);
  t.match(wx.modals.at(-1)!.content, /积分将退回/);
  t.match(orders.$('#notice').dom.textContent, /订单已取消，积分已退回/);
  t.match(orders.$(`#order-${newer!.id}`).dom.textContent, /已取消/);
  t.equal(await h.services.ledger.balance(openid), start - 50);
});

t.test('mall: a gift that ships asks for the address (wx.chooseAddress); without one nothing is ordered', async (t) => {
  const { h, wx, createItem } = await setup(t);
  const gift = await createItem({ kind: 'sample', title: '奶酪试吃装', points: 30, stock: 3 });
  const mall = await renderPage('pages/mall/index', wx);
  const openid = (await h.database.query<{ openid: string }>(sql`SELECT openid FROM members LIMIT 1`))[0]!.openid;
  await h.services.ledger.credit(openid, 100, `test:grant:${randomUUID()}`, 'lottery_prize');
  await mall.page.onPullDownRefresh();
  await wx.idle();

  const sent = wx.calls.length;
  await mall.tap(`#buy-${gift.id}`);
  t.match(mall.$('#notice').dom.textContent, /需要收货地址才能寄送礼品/);
  t.equal(wx.calls.length, sent, 'no order without an address');

  wx.state.address = { userName: '孙八', telNumber: '13700001111', provinceName: '浙江省', cityName: '杭州市', countyName: '西湖区', detailInfo: '文三路 1 号', postalCode: '310000', nationalCode: '330106' };
  await mall.tap(`#buy-${gift.id}`);
  const placed = wx.calls.find((c) => c.path === '/api/mp/mall/orders' && c.method === 'POST')!;
  t.equal(placed.status, 200);
  t.match(placed.body, { itemId: gift.id, address: { name: '孙八', phone: '13700001111', province: '浙江省', city: '杭州市', district: '西湖区', detail: '文三路 1 号' } });
  t.match(mall.$('#notice').dom.textContent, /兑换成功，我们会尽快为您寄出/);
});
