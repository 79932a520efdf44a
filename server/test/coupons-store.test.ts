/**
 * Store-bound coupons end to end: ops set up stores and staff tokens, a member gets a store-bound coupon (a mall
 * coupon item) and shows its QR, staff check and redeem it with their token — once, only at a store it is bound to —
 * and ops see usage per store. Bad input: forged and revoked staff tokens, tampered and expired QR codes, a
 * coupon used twice (also in parallel).
 */
import t from 'tap';
import { manualClock } from '../src/platform/clock.ts';
import { count } from './helpers.ts';
import { commerceApp } from './commerce-helpers.ts';

type H = Awaited<ReturnType<typeof commerceApp>>;

async function setup(t: Parameters<typeof commerceApp>[0], clock = manualClock(new Date())) {
  const h = await commerceApp(t, { clock });
  const store = async (id: string, name: string, city = '上海') => {
    const res = await h.inject({ method: 'POST', url: '/api/ops/stores', headers: h.ops, payload: { id, name, city, address: `${name}地址` } });
    if (res.statusCode !== 200) throw new Error(res.body);
    return res.json();
  };
  const staff = async (storeId: string, name = '店员') => {
    const res = await h.inject({ method: 'POST', url: `/api/ops/stores/${storeId}/staff`, headers: h.ops, payload: { name } });
    if (res.statusCode !== 200) throw new Error(res.body);
    const body = res.json();
    return { ...body, headers: { authorization: `Bearer ${body.token}` } };
  };
  await store('S001', '浦东批发店');
  await store('S002', '徐汇批发店');
  const item = await h.createItem({ kind: 'coupon', title: '门店10元券', points: 10, stock: 100, coupon: { title: '批发店10元券', valueFen: 1000, validDays: 30, storeIds: ['S001'] } });
  /** A member holding one S001-bound coupon. */
  const holder = async () => {
    const m = await h.member(100);
    const placed = (await h.order(m, { itemId: item.id })).json();
    return { ...m, couponId: placed.order.couponId as number };
  };
  const qr = async (m: { headers: Record<string, string> }, couponId: number) => h.inject({ method: 'GET', url: `/api/mp/coupons/${couponId}/qr`, headers: m.headers });
  const redeem = (s: { headers: Record<string, string> }, payload: unknown) => h.inject({ method: 'POST', url: '/api/store/coupons/redeem', headers: s.headers, payload });
  return { ...h, clock, store, staff, holder, qr, redeem };
}

t.test('a member shows the QR, staff of the bound store redeem it once', async (t) => {
  const h = await setup(t);
  const staff = await h.staff('S001', '小王');
  t.match(staff.token, /^st_/);
  t.equal(await count(h.database, 'store_staff', `token_hash = '${staff.token}'`), 0, 'the token itself is not stored');
  t.equal(await count(h.database, 'audit_log', `action = 'store.staff.issue'`), 1);
  const m = await h.holder();
  const list = (await h.inject({ method: 'GET', url: '/api/mp/coupons', headers: m.headers })).json();
  t.equal(list[0].status, 'issued');
  t.same(list[0].stores, [{ id: 'S001', name: '浦东批发店', city: '上海', address: '浦东批发店地址' }]);
  const code = (await h.qr(m, m.couponId)).json();
  t.match(code.qr, /^CPN1\.\d+\.\d+\.[A-Za-z0-9_-]+$/);
  const check = await h.inject({ method: 'POST', url: '/api/store/coupons/check', headers: staff.headers, payload: { qr: code.qr } });
  t.equal(check.statusCode, 200);
  t.equal(check.json().redeemable, true);
  t.equal(check.json().title, '批发店10元券');
  const used = await h.redeem(staff, { qr: code.qr });
  t.equal(used.statusCode, 200, used.body);
  t.equal(used.json().status, 'used');
  const twice = await h.redeem(staff, { qr: code.qr });
  t.equal(twice.statusCode, 409);
  t.equal(twice.json().message, '该券已使用');
  t.equal(twice.json().details.reason, 'already_used');
  const mine = (await h.inject({ method: 'GET', url: '/api/mp/coupons', headers: m.headers })).json();
  t.equal(mine[0].status, 'used');
  t.ok(mine[0].usedAt);
  t.equal((await h.qr(m, m.couponId)).statusCode, 409, 'no QR for a used coupon');
});

t.test('staff of another store cannot redeem a store-bound coupon; a typed code works where it is bound', async (t) => {
  const h = await setup(t);
  const other = await h.staff('S002');
  const own = await h.staff('S001');
  const m = await h.holder();
  const code = (await h.inject({ method: 'GET', url: '/api/mp/coupons', headers: m.headers })).json()[0].couponCode;
  const wrong = await h.redeem(other, { code });
  t.equal(wrong.statusCode, 403);
  t.equal(wrong.json().details.reason, 'wrong_store');
  const check = (await h.inject({ method: 'POST', url: '/api/store/coupons/check', headers: other.headers, payload: { code } })).json();
  t.equal(check.redeemable, false);
  t.equal(check.reason, '该券不能在本店使用');
  t.equal((await h.redeem(own, { code: code.toLowerCase() })).statusCode, 200);
  const usage = (await h.inject({ method: 'GET', url: '/api/ops/coupons/usage', headers: h.ops })).json();
  t.same(usage, [
    { storeId: 'S001', name: '浦东批发店', city: '上海', issued: 1, redeemed: 1, refused: 0 },
    { storeId: 'S002', name: '徐汇批发店', city: '上海', issued: 0, redeemed: 0, refused: 1 },
  ]);
});

t.test('forged, missing and revoked staff tokens are refused', async (t) => {
  const h = await setup(t);
  const staff = await h.staff('S001');
  const m = await h.holder();
  const code = (await h.qr(m, m.couponId)).json().qr;
  t.equal((await h.redeem({ headers: { authorization: 'Bearer st_forgedforgedforgedforged00' } }, { qr: code })).statusCode, 401);
  t.equal((await h.redeem({ headers: {} }, { qr: code })).statusCode, 401);
  const me = await h.inject({ method: 'GET', url: '/api/store/me', headers: staff.headers });
  t.same(me.json(), { staffId: staff.id, storeId: 'S001', name: '店员' });
  const revoke = await h.inject({ method: 'POST', url: `/api/ops/staff/${staff.id}/revoke`, headers: h.ops });
  t.equal(revoke.statusCode, 200);
  t.equal((await h.redeem(staff, { qr: code })).statusCode, 401, 'revoked');
  const mpToken = await h.redeem({ headers: m.headers }, { qr: code });
  t.equal(mpToken.statusCode, 401, 'a member session is not a staff token');
  await h.inject({ method: 'PATCH', url: '/api/ops/stores/S001', headers: h.ops, payload: { active: false } });
  const fresh = await h.inject({ method: 'POST', url: '/api/ops/stores/S001/staff', headers: h.ops, payload: { name: '新店员' } });
  t.equal((await h.redeem({ headers: { authorization: `Bearer ${fresh.json().token}` } }, { qr: code })).statusCode, 401, 'a closed store redeems nothing');
  const coupons = (await h.inject({ method: 'GET', url: '/api/mp/coupons', headers: m.headers })).json();
  t.equal(coupons[0].status, 'issued', 'nothing was used');
});

t.test('tampered, foreign and expired QR codes are refused', async (t) => {
  const h = await setup(t);
  const staff = await h.staff('S001');
  const a = await h.holder();
  const b = await h.holder();
  const qr = (await h.qr(a, a.couponId)).json().qr as string;
  const [p, id, exp, sig] = qr.split('.');
  const swapped = await h.redeem(staff, { qr: `${p}.${b.couponId}.${exp}.${sig}` });
  t.equal(swapped.statusCode, 422, 'another coupon id under the same signature');
  t.equal(swapped.json().details.reason, 'bad_qr');
  t.equal((await h.redeem(staff, { qr: `${p}.${id}.${Number(exp) + 3600}.${sig}` })).statusCode, 422, 'a stretched expiry');
  t.equal((await h.redeem(staff, { qr: 'hello' })).statusCode, 422);
  t.equal((await h.qr(b, a.couponId)).statusCode, 404, "no QR for someone else's coupon");
  h.clock.advance(301_000);
  const expired = await h.redeem(staff, { qr });
  t.equal(expired.statusCode, 422);
  t.equal(expired.json().message, '二维码无效或已过期，请让顾客刷新后再扫');
  const refreshed = (await h.qr(a, a.couponId)).json().qr;
  t.equal((await h.redeem(staff, { qr: refreshed })).statusCode, 200, 'a refreshed QR works');
  t.equal(await count(h.database, 'coupon_redemptions', `outcome = 'bad_qr'`), 4);
});

t.test('an expired coupon is refused at the till', async (t) => {
  const h = await setup(t);
  const staff = await h.staff('S001');
  const m = await h.holder();
  const code = (await h.inject({ method: 'GET', url: '/api/mp/coupons', headers: m.headers })).json()[0].couponCode;
  h.clock.advance(31 * 86_400_000);
  const res = await h.redeem(staff, { code });
  t.equal(res.statusCode, 409);
  t.equal(res.json().details.reason, 'expired');
  t.equal((await h.services.coupons.myCoupons(m.who.openid))[0]!.status, 'expired', 'my list shows it expired');
});

t.test('the same coupon redeemed 10 times in parallel (two tills) is used exactly once', async (t) => {
  const h = await setup(t);
  const a = await h.staff('S001', '收银1');
  const b = await h.staff('S001', '收银2');
  const m = await h.holder();
  const qr = (await h.qr(m, m.couponId)).json().qr;
  const results = await Promise.all(Array.from({ length: 10 }, (_, i) => h.redeem(i % 2 ? a : b, { qr })));
  t.equal(results.filter((r) => r.statusCode === 200).length, 1);
  t.equal(results.filter((r) => r.statusCode === 409).length, 9);
  t.equal(await count(h.database, 'coupon_redemptions', `outcome = 'redeemed'`), 1);
  t.equal(await count(h.database, 'coupon_redemptions', `outcome = 'already_used'`), 9);
});

t.test('ops store input is validated', async (t) => {
  const h: H & { store: (id: string, name: string) => Promise<unknown> } = await setup(t);
  t.equal((await h.inject({ method: 'POST', url: '/api/ops/stores', headers: h.ops, payload: { id: 'S001', name: '重复' } })).statusCode, 409);
  t.equal((await h.inject({ method: 'POST', url: '/api/ops/stores', headers: h.ops, payload: { id: 'bad id!', name: 'x' } })).statusCode, 400);
  t.equal((await h.inject({ method: 'POST', url: '/api/ops/stores/NOPE/staff', headers: h.ops, payload: { name: 'x' } })).statusCode, 404);
  t.equal((await h.inject({ method: 'GET', url: '/api/ops/stores', headers: h.ops })).json().length, 2);
  t.equal((await h.inject({ method: 'GET', url: '/api/ops/stores/S001/staff', headers: h.ops })).json().length, 0);
});

t.test("a campaign's store-bound coupon prize is shown, redeemed at its store and counted for the campaign", async (t) => {
  const h = await setup(t);
  const { campaigns, campaignPrizes } = await import('../src/campaigns/tables.ts');
  const { fulfilments } = await import('../src/fulfilment/tables.ts');
  const { db } = h.database;
  const now = h.clock.now();
  const [c] = await db.insert(campaigns).values({ name: '开盖有礼', status: 'live', startsAt: new Date(now.getTime() - 86_400_000), endsAt: new Date(now.getTime() + 30 * 86_400_000) }).returning();
  const [prize] = await db.insert(campaignPrizes).values({ campaignId: c!.id, name: '批发店满50减10', kind: 'coupon', value: 1000, coupon: { title: '满50减10', validDays: 30, storeIds: ['S002'] }, weight: 1 }).returning();
  const m = await h.member();
  // The fulfilment job exactly as the draw inserts it; the worker issues the coupon.
  await db.insert(fulfilments).values({ sourceKey: 'draw:9001', drawId: 9001, campaignId: c!.id, openid: m.who.openid, prizeId: prize!.id, kind: 'coupon', amount: 1000, state: 'pending', nextAttemptAt: now, outNo: 'D9001', createdAt: now, updatedAt: now });
  await h.services.fulfilment.runDue();
  const mine = (await h.inject({ method: 'GET', url: '/api/mp/coupons', headers: m.headers })).json();
  t.equal(mine.length, 1);
  t.match(mine[0], { title: '满50减10', valueFen: 1000, status: 'issued', stores: [{ id: 'S002', name: '徐汇批发店' }] });
  const staff = await h.staff('S002');
  const qr = (await h.qr(m, mine[0].id)).json().qr;
  t.equal((await h.redeem(staff, { qr })).statusCode, 200);
  const usage = (await h.inject({ method: 'GET', url: `/api/ops/coupons/usage?campaignId=${c!.id}`, headers: h.ops })).json();
  t.match(usage.find((u: any) => u.storeId === 'S002'), { issued: 1, redeemed: 1 });
  const other = (await h.inject({ method: 'GET', url: `/api/ops/coupons/usage?campaignId=${c!.id + 1}`, headers: h.ops })).json();
  t.match(other.find((u: any) => u.storeId === 'S002'), { issued: 0, redeemed: 0 });
});
