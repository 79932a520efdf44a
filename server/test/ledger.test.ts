/**
 * The points ledger (append-only rows + balance in one transaction, exactly once per key, never below zero) and
 * member phones (normalised, sealed with AES-256-GCM, hashed).
 */
import t from 'tap';
import { createLedger } from '../src/members/ledger.ts';
import { createPhones, maskPhone, normalisePhone, phoneHash, sealPii, unsealPii } from '../src/members/phones.ts';
import { AppError } from '../src/platform/errors.ts';
import { count, onPostgres, testDatabase } from './helpers.ts';

const KEY = Buffer.alloc(32, 9);

async function freshDb(t: Parameters<typeof testDatabase>[0]) {
  const database = await testDatabase(t);
  await database.migrate();
  return database;
}

t.test('ledger › credit and debit write one row each and move the balance', async (t) => {
  const database = await freshDb(t);
  const ledger = createLedger({ db: database.db });
  const a = await ledger.credit('oL1', 100, 'k:1', 'test', { why: 'first' });
  t.match(a, { openid: 'oL1', delta: 100, balanceAfter: 100, idempotencyKey: 'k:1', reason: 'test', duplicate: false });
  t.same(a.detail, { why: 'first' });
  const b = await ledger.debit('oL1', 30, 'k:2', 'spend');
  t.match(b, { delta: -30, balanceAfter: 70, duplicate: false });
  t.equal(await ledger.balance('oL1'), 70);
  t.equal(await ledger.balance('oNobody'), 0);
  const entries = await ledger.entries('oL1', 10);
  t.same(entries.map((e) => e.idempotencyKey), ['k:2', 'k:1'], 'newest first');
  t.equal((await ledger.entries('oL1', 1)).length, 1);
});

t.test('ledger › a repeated key returns the original entry and changes nothing', async (t) => {
  const database = await freshDb(t);
  const ledger = createLedger({ db: database.db });
  const first = await ledger.credit('oL2', 50, 'draw:1', 'lottery_prize');
  const again = await ledger.credit('oL2', 50, 'draw:1', 'lottery_prize');
  t.equal(again.duplicate, true);
  t.equal(again.id, first.id);
  t.equal(again.balanceAfter, 50);
  t.equal(await ledger.balance('oL2'), 50);
  t.equal(await count(database, 'points_ledger'), 1);
  // Same key, different change (a bug in the caller): refused, nothing changes.
  await t.rejects(ledger.credit('oL2', 60, 'draw:1', 'lottery_prize'), { code: 'CONFLICT' });
  await t.rejects(ledger.credit('oOther', 50, 'draw:1', 'lottery_prize'), { code: 'CONFLICT' });
  t.equal(await ledger.balance('oOther'), 0, 'the other user got nothing');
  t.equal(await count(database, 'points_ledger'), 1);
});

t.test('ledger › a debit beyond the balance is refused clearly; invalid amounts too', async (t) => {
  const database = await freshDb(t);
  const ledger = createLedger({ db: database.db });
  await ledger.credit('oL3', 20, 'k:a', 'test');
  const err = await ledger.debit('oL3', 21, 'k:b', 'spend').catch((e: unknown) => e);
  t.ok(err instanceof AppError);
  t.match(err, { code: 'VALIDATION', status: 422, message: /Insufficient points: balance 20, debit 21/, details: { reason: 'insufficient_points', balance: 20, requested: 21 } });
  t.equal(await ledger.balance('oL3'), 20);
  t.equal(await count(database, 'points_ledger', "idempotency_key = 'k:b'"), 0, 'no row for the refused debit');
  t.equal((await ledger.debit('oL3', 20, 'k:c', 'spend')).balanceAfter, 0, 'exactly the balance is fine');
  for (const bad of [0, -5, 1.5, Number.NaN]) await t.rejects(ledger.credit('oL3', bad, `bad:${bad}`, 'x'), { code: 'VALIDATION' }, `credit ${bad}`);
  await t.rejects(ledger.credit('oL3', 1, '', 'x'), { code: 'VALIDATION' }, 'empty key');
});

t.test('ledger › inside the caller\'s transaction: their rollback undoes the credit', async (t) => {
  const database = await freshDb(t);
  const ledger = createLedger({ db: database.db });
  await t.rejects(database.db.transaction(async (tx) => {
    await ledger.credit('oL4', 10, 'tx:1', 'test', undefined, tx);
    throw new Error('caller fails');
  }), /caller fails/);
  t.equal(await ledger.balance('oL4'), 0);
  t.equal(await count(database, 'points_ledger'), 0);
  await database.db.transaction(async (tx) => {
    await ledger.credit('oL4', 10, 'tx:1', 'test', undefined, tx);
  });
  t.equal(await ledger.balance('oL4'), 10);
});

t.test('ledger › 100 parallel credits with one key → one entry, credited once', async (t) => {
  const database = await freshDb(t);
  const ledger = createLedger({ db: database.db });
  const results = await Promise.all(Array.from({ length: 100 }, () => ledger.credit('oPar', 7, 'same-key', 'test')));
  t.equal(results.filter((r) => !r.duplicate).length, 1, 'one original');
  t.equal(new Set(results.map((r) => r.id)).size, 1, 'everyone got the same entry');
  t.equal(await ledger.balance('oPar'), 7);
  t.equal(await count(database, 'points_ledger'), 1);
});

t.test('ledger › parallel debits never overdraw', async (t) => {
  const database = await freshDb(t);
  const ledger = createLedger({ db: database.db });
  await ledger.credit('oDebit', 100, 'seed', 'test');
  const outcomes = await Promise.allSettled(Array.from({ length: 30 }, (_, i) => ledger.debit('oDebit', 7, `d:${i}`, 'spend')));
  const ok = outcomes.filter((o) => o.status === 'fulfilled').length;
  t.equal(ok, 14, '14 × 7 = 98 fit into 100');
  t.ok(outcomes.filter((o) => o.status === 'rejected').every((o) => (o as PromiseRejectedResult).reason?.code === 'VALIDATION'));
  t.equal(await ledger.balance('oDebit'), 2);
  const rows = await database.query<{ s: number; min: number }>((await import('drizzle-orm')).sql`SELECT sum(delta)::int AS s, min(balance_after)::int AS min FROM points_ledger WHERE openid = 'oDebit'`);
  t.equal(rows[0]!.s, 2, 'ledger sums to the balance');
  t.ok(rows[0]!.min >= 0, 'no row ever recorded a negative balance');
  if (!onPostgres) t.comment('PGlite serialises transactions; run with DATABASE_URL for real concurrency');
});

t.test('phones › normalise accepts what people type, rejects the rest', async (t) => {
  for (const ok of ['13800138000', '138 0013 8000', '138-0013-8000', '+86 138 0013 8000', '+8613800138000', '008613800138000', '8613800138000', '（138）00138000', '１３８００１３８０００']) {
    t.equal(normalisePhone(ok), '13800138000', ok);
  }
  for (const bad of ['12800138000', '1380013800', '138001380000', '23800138000', 'abc', '', '+1 415 555 0100', '1380013800a']) t.equal(normalisePhone(bad), null, bad);
  t.equal(maskPhone('13800138000'), '138****8000');
});

t.test('phones › sealed with AES-256-GCM and hashed; bind and get round-trip', async (t) => {
  const sealed = sealPii('13800138000', KEY);
  t.not(sealed, sealPii('13800138000', KEY), 'a fresh IV each time');
  t.equal(unsealPii(sealed, KEY), '13800138000');
  const raw = Buffer.from(sealed, 'base64');
  raw[raw.length - 1]! ^= 1;
  t.throws(() => unsealPii(raw.toString('base64'), KEY), 'tampering is detected');
  t.throws(() => unsealPii(sealed, Buffer.alloc(32, 1)), 'another key cannot open it');

  const database = await freshDb(t);
  const phones = createPhones({ db: database.db, piiKey: KEY });
  t.equal(await phones.get('oPhone'), null);
  t.match(await phones.bind('oPhone', '+86 139-0000-1111'), { phone: '13900001111', masked: '139****1111', changed: true });
  t.equal(await phones.get('oPhone'), '13900001111');
  t.match(await phones.bind('oPhone', '13900001111'), { changed: false });
  const [row] = await database.query<{ phone_sealed: string; phone_hash: string }>((await import('drizzle-orm')).sql`SELECT phone_sealed, phone_hash FROM members WHERE openid = 'oPhone'`);
  t.notMatch(row!.phone_sealed, /1390000/, 'not stored in the clear');
  t.equal(row!.phone_hash, phoneHash('13900001111', KEY));
  t.same(await phones.openidsWithPhone('139 0000 1111'), ['oPhone']);
  await t.rejects(phones.bind('oPhone', '12345'), { code: 'VALIDATION' });
  t.equal(await phones.get('oPhone'), '13900001111', 'unchanged after a bad input');
});
