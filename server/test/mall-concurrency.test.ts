/**
 * Stock is never oversold and points are debited once per order, under parallel load through /api/mp:
 * 200 parallel orders from 200 members for an item with stock 20 → exactly 20 orders and 20 debits (PostgreSQL;
 * PGlite is one connection, so it runs a smaller version of the same race).
 */
import t from 'tap';
import { randomUUID } from 'node:crypto';
import { count, onPostgres } from './helpers.ts';
import { ADDRESS, commerceApp } from './commerce-helpers.ts';

const MEMBERS = onPostgres ? 200 : 40;
const STOCK = onPostgres ? 20 : 5;

t.test(`${MEMBERS} parallel orders for an item with stock ${STOCK} → exactly ${STOCK} orders, ${STOCK} debits`, async (t) => {
  const h = await commerceApp(t);
  const item = await h.createItem({ kind: 'coupon', title: '限量券', points: 100, stock: STOCK, coupon: { title: '限量券', valueFen: 500, validDays: 7 } });
  const members = [];
  for (let i = 0; i < MEMBERS; i += 20) members.push(...(await Promise.all(Array.from({ length: Math.min(20, MEMBERS - i) }, () => h.member(150)))));
  const results = await Promise.all(members.map((m) => h.order(m, { itemId: item.id })));
  const codes = results.map((r) => r.statusCode);
  t.equal(codes.filter((c) => c === 200).length, STOCK, 'as many orders as stock');
  t.equal(codes.filter((c) => c === 409).length, MEMBERS - STOCK, 'the rest sold out');
  t.ok(results.filter((r) => r.statusCode === 409).every((r) => r.json().details.reason === 'sold_out'));
  t.equal(await count(h.database, 'mall_orders'), STOCK);
  t.equal(await count(h.database, 'points_ledger', `reason = 'mall_order'`), STOCK, 'points debited once per order');
  t.equal(await count(h.database, 'user_coupons'), STOCK);
  const after = (await h.services.mall.getItem(item.id))!;
  t.equal(after.stock, 0);
  t.equal(after.sold, STOCK);
  const balances = await Promise.all(members.map((m) => m.balance()));
  t.equal(balances.filter((b) => b === 50).length, STOCK);
  t.equal(balances.filter((b) => b === 150).length, MEMBERS - STOCK, 'nobody who missed out paid');
});

t.test('the same order submitted 10 times in parallel is one order and one debit', async (t) => {
  const h = await commerceApp(t);
  const item = await h.createItem({ kind: 'sample', title: '试用装', points: 30, stock: 100 });
  const m = await h.member(300);
  const clientKey = randomUUID();
  const results = await Promise.all(Array.from({ length: 10 }, () => h.order(m, { itemId: item.id, clientKey, address: ADDRESS })));
  t.ok(results.every((r) => r.statusCode === 200), results.map((r) => r.statusCode).join(','));
  t.equal(new Set(results.map((r) => r.json().order.id)).size, 1);
  t.equal(results.filter((r) => !r.json().duplicate).length, 1);
  t.equal(await count(h.database, 'mall_orders'), 1);
  t.equal(await m.balance(), 270);
  t.equal((await h.services.mall.getItem(item.id))!.stock, 99);
});

t.test('one member racing for a per-member limit of 2 gets 2', async (t) => {
  const h = await commerceApp(t);
  const item = await h.createItem({ kind: 'sample', title: '试用装', points: 10, stock: 100, perMemberLimit: 2 });
  const m = await h.member(1000);
  const results = await Promise.all(Array.from({ length: 12 }, () => h.order(m, { itemId: item.id, address: ADDRESS })));
  t.equal(results.filter((r) => r.statusCode === 200).length, 2);
  t.ok(results.filter((r) => r.statusCode !== 200).every((r) => r.json().details?.reason === 'limit_reached'));
  t.equal(await m.balance(), 980);
});
