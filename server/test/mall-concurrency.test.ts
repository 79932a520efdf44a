/**
 * Stock is never oversold and points are debited once per order, under parallel load through /api/mp:
 * 200 parallel orders from 200 members for an item with stock 20 → exactly 20 orders and 20 debits (PostgreSQL;
 * PGlite is one connection, so it runs a smaller version of the same race).
 */
import t from 'tap';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
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

t.test('an order and a follower link (points account, then per-member counts) never deadlock', { skip: !onPostgres && 'needs a second connection (PostgreSQL)' }, async (t) => {
  const h = await commerceApp(t);
  const item = await h.createItem({ kind: 'sample', title: '限兑试用装', points: 10, stock: 100, perMemberLimit: 3 });
  const m = await h.member(1000);
  t.equal((await h.order(m, { itemId: item.id, address: ADDRESS })).statusCode, 200, 'bought once: the counts row exists');
  // Another transaction in the order the follower link and account deletion lock: the points account, then the counts.
  const other = new pg.Client({ connectionString: (h.database as { url?: string }).url! });
  await other.connect();
  t.teardown(() => other.end());
  await other.query('BEGIN');
  await other.query('SELECT 1 FROM points_accounts WHERE openid = $1 FOR UPDATE', [m.who.openid]);
  const second = h.order(m, { itemId: item.id, address: ADDRESS });
  for (let i = 0; i < 500; i++) {
    await other.query('SELECT pg_stat_clear_snapshot()');
    const w = await other.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()`);
    if (w.rows[0].n > 0) break;
    await new Promise((r) => setTimeout(r, 10));
  }
  let counts: unknown;
  try {
    await other.query(`SET LOCAL lock_timeout = '5s'`);
    counts = (await other.query('SELECT quantity FROM mall_member_counts WHERE openid = $1 AND item_id = $2 FOR UPDATE', [m.who.openid, item.id])).rows[0];
    await other.query('COMMIT');
  } catch (err) {
    await other.query('ROLLBACK').catch(() => undefined);
    counts = err;
  }
  t.same(counts, { quantity: 1 }, 'the other transaction got the counts: the order waits for the account before touching them');
  const res = await second;
  t.equal(res.statusCode, 200, res.body);
  t.equal(await count(h.database, 'mall_orders'), 2);
});
