/**
 * Contract test: the mini program's real service layer (services/*.ts over services/api.ts) against a running server,
 * with a wx shim whose request is real HTTP — login → bind phone → redeem (questions, draw) → mall orders (points;
 * points + cash paid through wx.requestPayment at the WeChat Pay sandbox). What the server answers is what the
 * mini program's types say it answers.
 */
import t from 'tap';
import { sql } from 'drizzle-orm';
import { adminHeaders, buildTestApp } from '../../server/test/helpers.ts';
import { mintLoginCode, mintPhoneCode, newMpOpenid } from '../../server/test/mp-helpers.ts';
import { seedCampaign } from '../../server/test/campaign-fixtures.ts';
import { configure } from '../config.ts';
import { ApiError, logout } from '../services/api.ts';
import * as member from '../services/member.ts';
import * as redeem from '../services/redeem.ts';
import * as mall from '../services/mall.ts';
import { installWx } from './harness.ts';

t.test('login → bind phone → redeem → mall order, through services/api.ts over HTTP', async (t) => {
  const h = await buildTestApp(t);
  const address = await h.app.listen({ port: 0, host: '127.0.0.1' });
  configure({ apiBase: address });
  const mpOpenid = newMpOpenid();
  const wx = installWx({
    login: () => mintLoginCode(h, mpOpenid, 'uContract0001'),
    // The WeChat client paying: the wx.requestPayment object goes to the pay sandbox, which checks paySign.
    pay: async (params) => {
      const res = await fetch(`${h.paySandbox.url}/__sandbox/pay/request-payment`, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...params, openid: mpOpenid }),
      });
      return res.status === 200;
    },
  });
  logout();
  await h.sim.subscribe('oContract0001');
  await h.database.db.execute(sql`UPDATE followers SET unionid = 'uContract0001' WHERE openid = 'oContract0001'`);
  const { codes } = await seedCampaign(h.database, h.config.codeKey, { unlockMin: 1, prizes: [{ name: '500积分', kind: 'points', value: 500, weight: 1 }] });
  const ops = await adminHeaders(h.app);
  const createItem = async (body: Record<string, unknown>) => (await h.app.inject({ method: 'POST', url: '/api/ops/mall/items', headers: ops, payload: { status: 'active', ...body } })).json();
  const couponItem = await createItem({ kind: 'coupon', title: '5元无门槛券', points: 100, stock: 10, perMemberLimit: 3, coupon: { title: '5元券', valueFen: 500, validDays: 30 } });
  const cashItem = await createItem({ kind: 'points_cash', title: '积分+9.9元 奶酪礼盒', points: 200, cashFen: 990, stock: 5, coupon: { title: '奶酪礼盒兑换券', valueFen: 3000, validDays: 30 } });

  // Login is transparent: the first call logs in.
  const me = await member.me();
  t.same(wx.calls.map((c) => `${c.method} ${c.path} ${c.status}`), ['POST /api/mp/login 200', 'GET /api/mp/me 200']);
  t.equal(me.isMember, false);
  t.equal(me.following, true, 'linked to the follower by unionid');

  // Bind phone: a follower with a phone is a member.
  const bound = await member.bindPhone(await mintPhoneCode(h, '13900001234'));
  t.equal(bound.phoneMasked, '139****1234');
  t.equal(bound.becameMember, true);
  t.equal(bound.member.isMember, true);
  // The same phone-number code again is refused with the server's reason (a reused code).
  const usedCode = (wx.calls.at(-1)!.body as { code: string }).code;
  const reused = await member.bindPhone(usedCode).catch((e: unknown) => e);
  t.ok(reused instanceof ApiError && reused.status >= 400 && reused.status < 500, 'a reused phone code is refused');

  // Redeem: a typo is refused with its reason; the code gives the questions; the answers unlock; the draw pays out.
  const c0 = codes[0]!;
  const typo = await redeem.redeemCode(c0.slice(0, 3) + (c0[3] === 'A' ? 'B' : 'A') + c0.slice(4), 'typed').catch((e: unknown) => e);
  t.ok(typo instanceof ApiError);
  t.equal((typo as ApiError).reason, 'typo');
  const r = await redeem.redeemCode(codes[0]!, 'typed');
  t.equal(r.status, 'redeemed');
  t.equal(r.needed, 1);
  const name = r.questions.find((q) => q.key === 'name')!;
  t.equal(name.required, true);
  const locked = await redeem.draw(r.id).catch((e: unknown) => e);
  t.equal((locked as ApiError).reason, 'locked');
  // Points the member earned for following and binding (the earn rules) come before the draw's.
  const start = (await member.me()).points;
  const answered = await redeem.submitAnswers(r.id, { name: '赵六' });
  t.equal(answered.unlocked, true);
  const drawn = await redeem.draw(r.id);
  t.equal(drawn.draw?.outcome, 'won');
  t.equal(drawn.draw?.points, 500);
  t.equal(drawn.draw?.balance, start + 500);
  t.equal((await redeem.draw(r.id)).draw?.drawId, drawn.draw?.drawId, 'a second tap: the same draw');
  t.same((await redeem.myRedemptions()).map((x) => x.status), ['drawn']);
  t.equal((await member.me()).points, start + 500, 'the points are on the member');

  // Mall: a points order; the same tap retried is the same order.
  const items = await mall.items();
  t.same(items.map((i) => i.title).sort(), ['5元无门槛券', '积分+9.9元 奶酪礼盒']);
  const key = mall.newClientKey();
  const o1 = await mall.placeOrder(couponItem.id, key);
  t.equal(o1.payment, null);
  t.equal(o1.duplicate, false);
  const o1again = await mall.placeOrder(couponItem.id, key);
  t.equal(o1again.duplicate, true);
  t.equal(o1again.order.id, o1.order.id);
  t.equal((await member.me()).points, start + 400);

  // Points + cash: the server's wx.requestPayment object, paid in WeChat, confirmed by the server (not by the client).
  const o2 = await mall.placeOrder(cashItem.id, mall.newClientKey());
  t.equal(o2.order.state, 'awaiting_payment');
  t.ok(o2.payment);
  const paidOrder = await mall.payOrder(o2.order, o2.payment!);
  t.equal(paidOrder.paidInWeChat, true);
  t.same(Object.keys(wx.payments[0]).sort(), ['nonceStr', 'package', 'paySign', 'signType', 'timeStamp']);
  t.ok(['paid', 'fulfilled'].includes(paidOrder.order.state), `paid order: ${paidOrder.order.state}`);
  const mine = await mall.orders();
  t.same(mine.map((o) => o.id).sort(), [o1.order.id, o2.order.id].sort());
  t.equal((await member.me()).points, start + 200);

  // Overspend: more than the balance is refused and nothing changes.
  const big = await createItem({ kind: 'sample', title: '大礼包', points: 50_000, stock: 1 });
  const overspend = await mall.placeOrder(big.id, mall.newClientKey(), { name: '赵六', phone: '13900001234', province: '上海市', city: '上海市', detail: '世纪大道 1 号' }).catch((e: unknown) => e);
  t.ok(overspend instanceof ApiError && overspend.status >= 400 && overspend.status < 500, 'overspend refused');
  t.equal((await member.me()).points, start + 200);
  t.equal(wx.calls.filter((c) => c.path === '/api/mp/login').length, 1, 'one login for the whole session');
});
