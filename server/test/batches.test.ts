/**
 * Code batches through their public doors: the service (generate / export / import / void / retry / discard), the
 * ops HTTP API (roles, audit, streamed export) and the CLI (scripts/codes.ts). Campaigns are seeded straight into the
 * tables. Runs on PGlite, and on PostgreSQL with DATABASE_URL.
 */
import t, { type Test } from 'tap';
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { sql } from 'drizzle-orm';
import { adminHeaders, buildTestApp, testDatabase } from './helpers.ts';
import { openDatabase, type Database } from '../src/db/client.ts';
import { manualClock } from '../src/platform/clock.ts';
import { AppError } from '../src/platform/errors.ts';
import { campaignPrizes, campaigns, codeBatches } from '../src/campaigns/tables.ts';
import { classifyCode, codeLookupKey, formatForPrint, generateCodes, CODE_ALPHABET } from '../src/campaigns/codes.ts';
import { createCodeBatchService, recomputeDeck } from '../src/campaigns/batches.ts';
import { allocBuckets, encodeBuckets, layoutForKeys, scatterRows } from '../src/campaigns/batch-derive.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

type PrizeSeed = { name: string; kind: 'points' | 'coupon' | 'physical' | 'thanks'; totalStock?: number | null };

async function seedCampaign(database: Database, o: { prizeMode?: 'dynamic' | 'deck'; prizes?: PrizeSeed[]; codeLength?: number; status?: 'draft' | 'live' | 'ended' } = {}) {
  const now = Date.now();
  const [c] = await database.db.insert(campaigns).values({
    name: '夏日开盖有礼', status: o.status ?? 'draft', startsAt: new Date(now - 86_400_000), endsAt: new Date(now + 30 * 86_400_000),
    prizeMode: o.prizeMode ?? 'dynamic', codeLength: o.codeLength ?? 12,
  }).returning();
  const prizes = [];
  for (const [i, p] of (o.prizes ?? []).entries()) {
    const [row] = await database.db.insert(campaignPrizes).values({ campaignId: c!.id, name: p.name, kind: p.kind, weight: 1, totalStock: p.totalStock ?? null, position: i }).returning();
    prizes.push(row!);
  }
  return { campaign: c!, prizes };
}

/** A writable that collects what is written to it. */
function sink() {
  const chunks: Buffer[] = [];
  const out = new PassThrough();
  out.on('data', (b: Buffer) => chunks.push(b));
  return { out, text: () => Buffer.concat(chunks).toString('latin1') };
}

function parseCsv(csv: string) {
  const lines = csv.split('\n');
  const header = lines.shift();
  if (lines[lines.length - 1] === '') lines.pop();
  return { header, rows: lines.map((l) => l.split(',')).map(([code, batch, seq]) => ({ code: code!, batch: Number(batch), seq: Number(seq) })) };
}

async function rows<T>(database: Database, q: ReturnType<typeof sql>): Promise<T[]> {
  return database.query<T>(q);
}

async function keysOf(database: Database, batchId: number): Promise<Map<string, { seq: number; prizeId: number | null }>> {
  const r = await rows<{ key: string; seq: number; prize_id: number | null }>(database, sql`SELECT encode(key, 'hex') AS key, seq, prize_id FROM codes WHERE batch_id = ${batchId}`);
  return new Map(r.map((x) => [x.key, { seq: Number(x.seq), prizeId: x.prize_id === null ? null : Number(x.prize_id) }]));
}

async function expectAppError(t: Test, p: Promise<unknown>, code: string, pattern: RegExp) {
  try {
    await p;
    t.fail(`expected ${code}`);
  } catch (err) {
    t.ok(err instanceof AppError, 'an AppError');
    t.equal((err as AppError).code, code);
    t.match((err as Error).message, pattern);
  }
}

/** A code of the given length with a wrong check character (a "typo"). */
function typo(code: string): string {
  const last = code[code.length - 1]!;
  return code.slice(0, -1) + (last === CODE_ALPHABET[0] ? CODE_ALPHABET[1] : CODE_ALPHABET[0]);
}

/** testDatabase migrates on PGlite (template) but not on PostgreSQL; buildApp would. */
async function migrated(t: Test) {
  const database = await testDatabase(t);
  await database.migrate();
  return database;
}

const clock = manualClock(new Date('2026-11-23T08:00:00Z'));

t.test('generate → CSV, keys, export', async (t) => {
  const database = await migrated(t);
  const codeKey = randomBytes(32);
  const batches = createCodeBatchService({ database, codeKey, clock, workers: 0 });
  const { campaign } = await seedCampaign(database);

  const csvOut = sink();
  const progress: number[] = [];
  const batch = await batches.generate({ campaignId: campaign.id, count: 3000, name: '第一批', sku: 'SKU-330ML', createdBy: 'test', out: csvOut.out, onProgress: (d) => progress.push(d) });
  t.match(batch, { campaignId: campaign.id, name: '第一批', sku: 'SKU-330ML', source: 'generated', status: 'active', count: 3000, codeLength: 12, createdBy: 'test' });
  t.notOk('nonce' in batch, 'the nonce is not part of the answer');
  t.equal(progress[progress.length - 1], 3000, 'progress reaches the total');

  const csv = csvOut.text();
  const { header, rows: lines } = parseCsv(csv);
  t.equal(header, 'code,batch,seq');
  t.equal(lines.length, 3000);
  t.ok(lines.every((l, i) => l.batch === batch.id && l.seq === i), 'lines in seq order with the batch id');
  t.ok(lines.every((l) => classifyCode(l.code).kind === 'code' && l.code.length === 13), 'every code is well-formed with a valid check character');
  t.equal(new Set(lines.map((l) => l.code)).size, 3000, 'codes are unique within the batch');

  const stored = await keysOf(database, batch.id);
  t.equal(stored.size, 3000, 'one codes row per code');
  t.ok(lines.every((l) => stored.get(codeLookupKey(l.code, codeKey).toString('hex'))?.seq === l.seq), "every code's lookup key is stored with its seq");
  t.ok([...stored.values()].every((v) => v.prizeId === null), 'dynamic campaign: no pre-assigned prizes');

  const again1 = sink();
  await batches.exportCsv(batch.id, again1.out);
  const again2 = sink();
  await batches.exportCsv(batch.id, again2.out);
  t.equal(again1.text(), csv, "export re-derives exactly generate's CSV");
  t.equal(again2.text(), again1.text(), 'export is repeatable');

  // No plaintext code anywhere in the batch's rows (as text, as hex of the ASCII bytes).
  const dump = (await rows<{ r: string }>(database, sql`SELECT c::text AS r FROM codes c UNION ALL SELECT b::text FROM code_batches b`)).map((x) => x.r).join('\n');
  const leaked = lines.filter((l) => dump.includes(l.code) || dump.includes(Buffer.from(l.code, 'latin1').toString('hex')) || dump.includes(l.code.slice(0, 8)));
  t.same(leaked, [], 'the database holds no plaintext code');
  const [nonce] = await rows<{ n: number }>(database, sql`SELECT octet_length(nonce) AS n FROM code_batches WHERE id = ${batch.id}`);
  t.equal(Number(nonce!.n), 16, 'a 16-byte nonce is stored');

  t.test('a second batch draws different codes; both listed', async (t) => {
    const out2 = sink();
    const b2 = await batches.generate({ campaignId: campaign.id, count: 500, out: out2.out });
    const codes2 = parseCsv(out2.text()).rows.map((l) => l.code);
    const first = new Set(lines.map((l) => l.code));
    t.notOk(codes2.some((c) => first.has(c)), 'no overlap with the first batch');
    t.same((await batches.list(campaign.id)).map((b) => [b.id, b.count]), [[batch.id, 3000], [b2.id, 500]]);
    t.equal((await batches.get(b2.id)).status, 'active');
  });

  t.test('codeLength follows the campaign', async (t) => {
    const { campaign: c8 } = await seedCampaign(database, { codeLength: 8 });
    const out = sink();
    await batches.generate({ campaignId: c8.id, count: 50, out: out.out });
    const codes = parseCsv(out.text()).rows.map((l) => l.code);
    t.ok(codes.every((c) => c.length === 9 && classifyCode(c, { length: 8 }).kind === 'code'));
  });

  t.test('bad input', async (t) => {
    await expectAppError(t, batches.generate({ campaignId: 999_999, count: 10 }), 'NOT_FOUND', /campaign 999999/);
    await expectAppError(t, batches.generate({ campaignId: campaign.id, count: 0 }), 'VALIDATION', /count/);
    await expectAppError(t, batches.generate({ campaignId: campaign.id, count: 1.5 }), 'VALIDATION', /count/);
    const { campaign: ended } = await seedCampaign(database, { status: 'ended' });
    await expectAppError(t, batches.generate({ campaignId: ended.id, count: 10 }), 'CONFLICT', /ended/);
    await expectAppError(t, batches.exportCsv(999_999, new PassThrough()), 'NOT_FOUND', /batch/);
  });
});

t.test('worker threads produce the same batch as the inline path', async (t) => {
  const database = await migrated(t);
  const codeKey = randomBytes(32);
  const threaded = createCodeBatchService({ database, codeKey, clock, workers: 2 });
  const inline = createCodeBatchService({ database, codeKey, clock, workers: 0 });
  const { campaign } = await seedCampaign(database);
  const out = sink();
  const timings: Array<{ threads: number }> = [];
  const batch = await threaded.generate({ campaignId: campaign.id, count: 70_000, out: out.out, onTimings: (x) => timings.push(x) });
  t.equal(timings[0]?.threads, 2, 'two worker threads ran');
  const again = sink();
  await inline.exportCsv(batch.id, again.out);
  t.equal(again.text(), out.text(), 'inline export (2 derivation chunks) equals the threaded generation');
  const { rows: lines } = parseCsv(out.text());
  const stored = await keysOf(database, batch.id);
  t.equal(stored.size, 70_000);
  t.ok(lines.every((l) => stored.get(codeLookupKey(l.code, codeKey).toString('hex'))?.seq === l.seq), 'every key stored with its seq');
});

/** The deck PRNG exactly as documented in batch-derive.ts, written independently. */
function documentedDeck(seed: string, batchId: number, units: Array<{ prizeId: number; count: number }>, count: number): Array<number | null> {
  const deck: Array<number | null> = [];
  for (const u of units) for (let i = 0; i < u.count; i++) deck.push(u.prizeId);
  while (deck.length < count) deck.push(null);
  const cipher = createCipheriv('aes-256-ctr', createHash('sha256').update(`${seed}:${batchId}`, 'utf8').digest(), Buffer.alloc(16));
  let pool = Buffer.alloc(0);
  const u32 = () => {
    if (pool.length < 4) pool = Buffer.concat([pool, cipher.update(Buffer.alloc(4096))]);
    const v = pool.readUInt32LE(0);
    pool = pool.subarray(4);
    return v;
  };
  for (let i = count - 1; i > 0; i--) {
    const range = i + 1;
    const limit = 2 ** 32 - (2 ** 32 % range);
    let v = u32();
    while (v >= limit) v = u32();
    const j = v % range;
    [deck[i], deck[j]] = [deck[j]!, deck[i]!];
  }
  return deck;
}

t.test('deck mode', async (t) => {
  const database = await migrated(t);
  const codeKey = randomBytes(32);
  const batches = createCodeBatchService({ database, codeKey, clock, workers: 0 });
  const { campaign, prizes } = await seedCampaign(database, {
    prizeMode: 'deck',
    prizes: [{ name: '一等奖', kind: 'physical', totalStock: 5 }, { name: '谢谢参与', kind: 'thanks' }, { name: '优惠券', kind: 'coupon', totalStock: 30 }],
  });
  const [first, thanks, coupon] = prizes;
  const out = sink();
  const batch = await batches.generate({ campaignId: campaign.id, count: 200, out: out.out });
  const [c] = await database.db.select().from(campaigns).where(sql`id = ${campaign.id}`);
  t.match(c!.deckSeed, /^[0-9a-f]{64}$/, 'a 32-byte hex seed was created');
  t.equal(c!.deckSeedHash, createHash('sha256').update(c!.deckSeed!, 'utf8').digest('hex'), 'deck_seed_hash = sha256(seed string)');

  const stored = await keysOf(database, batch.id);
  const bySeq = new Map([...stored.values()].map((v) => [v.seq, v.prizeId]));
  const counts = new Map<number | null, number>();
  for (const p of bySeq.values()) counts.set(p, (counts.get(p) ?? 0) + 1);
  t.equal(counts.get(first!.id), 5, 'exactly totalStock units of the first prize');
  t.equal(counts.get(coupon!.id), 30, 'exactly totalStock units of the coupon');
  t.equal(counts.get(thanks!.id), undefined, '"thanks" is never dealt');
  t.equal(counts.get(null), 165, 'the rest carry nothing');

  const units = [{ prizeId: first!.id, count: 5 }, { prizeId: coupon!.id, count: 30 }];
  const recomputed = recomputeDeck(c!.deckSeed!, batch.id, units, 200);
  t.same(recomputed, Array.from({ length: 200 }, (_, i) => bySeq.get(i)), 'recomputeDeck(seed, batch, units, count) reproduces the stored prize of every seq');
  t.same(documentedDeck(c!.deckSeed!, batch.id, units, 200), recomputed, 'the documented algorithm, reimplemented, gives the same deck');
  // the CSV's seq maps each printed code to its prize
  const { rows: lines } = parseCsv(out.text());
  t.ok(lines.every((l) => stored.get(codeLookupKey(l.code, codeKey).toString('hex'))?.prizeId === recomputed[l.seq]), 'printed code → seq → prize');

  t.test('later batches get what is left; explicit decks are checked', async (t) => {
    const b2 = await batches.generate({ campaignId: campaign.id, count: 20 });
    const s2 = await keysOf(database, b2.id);
    t.ok([...s2.values()].every((v) => v.prizeId === null), 'stock exhausted: the next batch deals no prizes');
    await expectAppError(t, batches.generate({ campaignId: campaign.id, count: 20, deck: { [first!.id]: 1 } }), 'VALIDATION', /0 units left/);
    await expectAppError(t, batches.generate({ campaignId: campaign.id, count: 20, deck: { [thanks!.id]: 1 } }), 'VALIDATION', /not a prize/);
    // voiding a batch returns its unredeemed units to the pool
    await batches.voidBatch(batch.id, 'test');
    const b3 = await batches.generate({ campaignId: campaign.id, count: 40, deck: { [first!.id]: 2, [coupon!.id]: 3 } });
    const s3 = [...(await keysOf(database, b3.id)).values()];
    t.equal(s3.filter((v) => v.prizeId === first!.id).length, 2);
    t.equal(s3.filter((v) => v.prizeId === coupon!.id).length, 3);
    const [again] = await database.db.select().from(campaigns).where(sql`id = ${campaign.id}`);
    t.equal(again!.deckSeed, c!.deckSeed, 'the seed is created once per campaign');
  });

  t.test('a deck larger than the batch is refused and leaves no batch behind', async (t) => {
    const { campaign: small } = await seedCampaign(database, { prizeMode: 'deck', prizes: [{ name: '券', kind: 'coupon', totalStock: 100 }] });
    await expectAppError(t, batches.generate({ campaignId: small.id, count: 10 }), 'VALIDATION', /deck of 100 prizes exceeds the batch of 10 codes/);
    const { campaign: unlimited } = await seedCampaign(database, { prizeMode: 'deck', prizes: [{ name: '券', kind: 'coupon', totalStock: null }] });
    await expectAppError(t, batches.generate({ campaignId: unlimited.id, count: 10 }), 'VALIDATION', /no total stock/);
    t.same(await batches.list(small.id), []);
    t.same(await batches.list(unlimited.id), []);
  });
});

t.test('import', async (t) => {
  const database = await migrated(t);
  const codeKey = randomBytes(32);
  const batches = createCodeBatchService({ database, codeKey, clock, workers: 0 });
  const { campaign } = await seedCampaign(database);
  const codes = generateCodes(100);

  // header, extra columns, a printer's grouping, lower case, CRLF, a blank line
  const file = ['serial,code', ...codes.map((c, i) => `${i + 1},${i % 2 ? formatForPrint(c) : c.toLowerCase()}`)].join('\r\n') + '\r\n\r\n';
  const batch = await batches.importCsv({ campaignId: campaign.id, name: '印厂第一批', input: file, sku: 'SKU-1', createdBy: 'test' });
  t.match(batch, { source: 'imported', status: 'active', count: 100, name: '印厂第一批', sku: 'SKU-1' });
  const stored = await keysOf(database, batch.id);
  t.ok(codes.every((c, i) => stored.get(codeLookupKey(c, codeKey).toString('hex'))?.seq === i), 'every code stored under its lookup key, seq = file order');
  const [n] = await rows<{ n: number }>(database, sql`SELECT count(*)::int AS n FROM code_batches WHERE id = ${batch.id} AND nonce IS NULL`);
  t.equal(Number(n!.n), 1, 'imported batches have no nonce');
  await expectAppError(t, batches.exportCsv(batch.id, new PassThrough()), 'CONFLICT', /only keyed hashes/);

  t.test('without a header, from a stream', async (t) => {
    const more = generateCodes(20);
    const b = await batches.importCsv({ campaignId: campaign.id, name: 'plain', input: Readable.from([more.join('\n')]) });
    t.equal(b.count, 20);
  });

  t.test('a typo line rejects the file and names the line', async (t) => {
    const fresh = generateCodes(5);
    const bad = ['code', fresh[0], typo(fresh[1]!), fresh[2], 'HELLO', fresh[3]].join('\n');
    await expectAppError(t, batches.importCsv({ campaignId: campaign.id, name: 'typo', input: bad }), 'VALIDATION', /2 bad lines: line 3: check character does not match.*line 5: not a code/);
    try {
      await batches.importCsv({ campaignId: campaign.id, name: 'typo', input: bad });
    } catch (err) {
      t.same((err as AppError).details, { badCount: 2, badLines: [{ line: 3, reason: 'check character does not match (typo?)', value: typo(fresh[1]!) }, { line: 5, reason: 'not a code of 13 characters from the code alphabet', value: 'HELLO' }] });
    }
    const many = ['code', ...Array.from({ length: 30 }, () => 'NOPE')].join('\n');
    await expectAppError(t, batches.importCsv({ campaignId: campaign.id, name: 'many', input: many }), 'VALIDATION', /30 bad lines.*… and 10 more/);
  });

  t.test('duplicates within the file', async (t) => {
    const fresh = generateCodes(3);
    const dup = ['code', fresh[0], fresh[1], formatForPrint(fresh[0]!), fresh[2]].join('\n');
    await expectAppError(t, batches.importCsv({ campaignId: campaign.id, name: 'dup', input: dup }), 'VALIDATION', /line 4: duplicate of line 2/);
  });

  t.test('codes that already exist', async (t) => {
    const fresh = generateCodes(2);
    const clash = ['code', fresh[0], codes[7], fresh[1], codes[3]].join('\n');
    await expectAppError(t, batches.importCsv({ campaignId: campaign.id, name: 'clash', input: clash }), 'CONFLICT', new RegExp(`2 codes already exist: line 3 \\(batch ${batch.id}\\), line 5 \\(batch ${batch.id}\\)`));
  });

  t.test('failed imports leave no batch behind', async (t) => {
    t.same((await batches.list(campaign.id)).map((b) => b.name), ['印厂第一批', 'plain']);
    await expectAppError(t, batches.importCsv({ campaignId: campaign.id, name: 'empty', input: 'code\n' }), 'VALIDATION', /no codes/);
    await expectAppError(t, batches.importCsv({ campaignId: campaign.id, name: ' ', input: codes[0]! }), 'VALIDATION', /name/);
  });
});

t.test('void, retry, discard', async (t) => {
  const database = await migrated(t);
  const codeKey = randomBytes(32);
  const batches = createCodeBatchService({ database, codeKey, clock, workers: 0 });
  const { campaign } = await seedCampaign(database);
  const out = sink();
  const batch = await batches.generate({ campaignId: campaign.id, count: 300, out: out.out });

  t.test('void', async (t) => {
    const v = await batches.voidBatch(batch.id, 'test');
    t.equal(v.status, 'voided');
    t.ok(v.voidedAt instanceof Date);
    t.same(await batches.voidBatch(batch.id, 'test'), v, 'idempotent');
    const exp = sink();
    await batches.exportCsv(batch.id, exp.out);
    t.equal(exp.text(), out.text(), 'a voided batch can still be exported');
  });

  t.test('a batch a crash left loading is reloaded with the same codes', async (t) => {
    const b = await batches.generate({ campaignId: campaign.id, count: 120 });
    const before = await keysOf(database, b.id);
    // what a crash between the insert of the batch row and the commit of the load leaves behind
    await database.query(sql`DELETE FROM codes WHERE batch_id = ${b.id}`);
    await database.query(sql`UPDATE code_batches SET status = 'loading' WHERE id = ${b.id}`);
    await expectAppError(t, batches.exportCsv(b.id, new PassThrough()), 'CONFLICT', /still loading/);
    await expectAppError(t, batches.voidBatch(b.id), 'CONFLICT', /discard/);
    const csv = sink();
    const r = await batches.retry(b.id, { out: csv.out });
    t.equal(r.status, 'active');
    t.same(await keysOf(database, b.id), before, 'the very same codes');
    t.equal(parseCsv(csv.text()).rows.length, 120);
    await expectAppError(t, batches.retry(b.id), 'CONFLICT', /not loading/);
  });

  t.test('discard', async (t) => {
    const [row] = await database.db.insert(codeBatches).values({ campaignId: campaign.id, name: 'crashed', source: 'generated', count: 10, status: 'loading', nonce: randomBytes(16), codeLength: 12 }).returning();
    await batches.discard(row!.id);
    await expectAppError(t, batches.get(row!.id), 'NOT_FOUND', /not found/);
    await expectAppError(t, batches.discard(batch.id), 'CONFLICT', /only a loading batch/);
  });
});

t.test('key buckets report duplicate keys', async (t) => {
  const keys = randomBytes(16 * 5000);
  keys.copy(keys, 16 * 4321, 16 * 17, 16 * 18);
  const buckets = allocBuckets(layoutForKeys(keys, 5000), false);
  scatterRows(buckets, keys, 5000, 0, null);
  const n = buckets.start.length - 1;
  const results = [];
  for (let b = 0; b < n; b++) results.push(encodeBuckets(buckets, b, b + 1, 1));
  t.ok(results.some((r) => !r.ok && r.reason === 'duplicate'), 'a duplicate is found');
  const unique = randomBytes(16 * 5000);
  const ub = allocBuckets(layoutForKeys(unique, 5000), false);
  scatterRows(ub, unique, 5000, 0, null);
  const all = encodeBuckets(ub, 0, ub.start.length - 1, 1);
  t.ok(all.ok, 'no duplicate in distinct keys');
  if (all.ok) {
    // rows come out in ascending key order: check the key fields of the binary rows
    const ks: string[] = [];
    for (let o = 0; o < all.buf.length;) {
      ks.push(all.buf.toString('hex', o + 6, o + 22));
      o += 6 + 16 + 16 + (all.buf.readInt32BE(o + 38) === -1 ? 4 : 8);
    }
    t.equal(ks.length, 5000);
    t.ok(ks.every((k, i) => i === 0 || ks[i - 1]! < k), 'ascending key order');
  }
});

t.test('ops API', async (t) => {
  const { app, database, config } = await buildTestApp(t, { clock });
  const admin = await adminHeaders(app);
  const login = async (role: string) => {
    const username = `${role}1`;
    const created = await app.inject({ method: 'POST', url: '/api/ops/users', headers: admin, payload: { username, password: 'password-123', role } });
    t.equal(created.statusCode, 201);
    const res = await app.inject({ method: 'POST', url: '/api/ops/login', payload: { username, password: 'password-123' } });
    return { authorization: `Bearer ${res.json().token}` };
  };
  const operator = await login('operator');
  const analyst = await login('analyst');
  const { campaign } = await seedCampaign(database);

  const gen = await app.inject({ method: 'POST', url: `/api/ops/campaigns/${campaign.id}/batches`, headers: operator, payload: { count: 150, name: '线上批次', sku: 'SKU-9' } });
  t.equal(gen.statusCode, 201, gen.body);
  const batch = gen.json();
  t.match(batch, { campaignId: campaign.id, count: 150, status: 'active', source: 'generated', name: '线上批次', createdBy: 'operator1' });
  t.notOk('nonce' in batch);

  t.equal((await app.inject({ method: 'POST', url: `/api/ops/campaigns/${campaign.id}/batches`, headers: analyst, payload: { count: 10 } })).statusCode, 403, 'analyst cannot generate');
  t.equal((await app.inject({ method: 'POST', url: `/api/ops/campaigns/${campaign.id}/batches`, headers: operator, payload: { count: 2_000_001 } })).statusCode, 400, 'over 2,000,000 is for the CLI');
  t.equal((await app.inject({ method: 'POST', url: `/api/ops/campaigns/${campaign.id}/batches`, payload: { count: 10 } })).statusCode, 401);
  t.equal((await app.inject({ method: 'POST', url: '/api/ops/campaigns/999999/batches', headers: operator, payload: { count: 10 } })).statusCode, 404);

  const list = await app.inject({ method: 'GET', url: `/api/ops/campaigns/${campaign.id}/batches`, headers: analyst });
  t.equal(list.statusCode, 200);
  t.same(list.json().map((b: { id: number }) => b.id), [batch.id], 'any ops user may list');

  t.equal((await app.inject({ method: 'GET', url: `/api/ops/batches/${batch.id}/codes.csv`, headers: analyst })).statusCode, 403, 'analyst cannot export codes');
  t.equal((await app.inject({ method: 'GET', url: `/api/ops/batches/${batch.id}/codes.csv`, headers: operator })).statusCode, 403, 'operator cannot export codes');
  const exp = await app.inject({ method: 'GET', url: `/api/ops/batches/${batch.id}/codes.csv`, headers: admin });
  t.equal(exp.statusCode, 200);
  t.match(exp.headers['content-type'], /^text\/csv/);
  t.match(exp.headers['content-disposition'], new RegExp(`batch-${batch.id}-codes\\.csv`));
  const { header, rows: lines } = parseCsv(exp.body);
  t.equal(header, 'code,batch,seq');
  t.equal(lines.length, 150);
  const stored = await keysOf(database, batch.id);
  t.ok(lines.every((l) => stored.has(codeLookupKey(l.code, config.codeKey).toString('hex'))), "exported codes are the stored ones (server's CODE_KEY)");
  t.equal((await app.inject({ method: 'GET', url: '/api/ops/batches/999999/codes.csv', headers: admin })).statusCode, 404);

  const codes = generateCodes(40);
  const imp = await app.inject({ method: 'POST', url: `/api/ops/campaigns/${campaign.id}/batches/import?name=${encodeURIComponent('印厂')}`, headers: { ...operator, 'content-type': 'text/csv' }, payload: `code\n${codes.join('\n')}\n` });
  t.equal(imp.statusCode, 201, imp.body);
  t.match(imp.json(), { source: 'imported', count: 40, name: '印厂' });
  const impExport = await app.inject({ method: 'GET', url: `/api/ops/batches/${imp.json().id}/codes.csv`, headers: admin });
  t.equal(impExport.statusCode, 409, 'imported batches cannot be exported');
  const bad = await app.inject({ method: 'POST', url: `/api/ops/campaigns/${campaign.id}/batches/import?name=x`, headers: { ...operator, 'content-type': 'text/csv' }, payload: `code\n${generateCodes(1)[0]}\n${typo(generateCodes(1)[0]!)}\n` });
  t.equal(bad.statusCode, 422);
  t.match(bad.json(), { code: 'VALIDATION', message: /line 3: check character/ });

  const voided = await app.inject({ method: 'POST', url: `/api/ops/batches/${batch.id}/void`, headers: operator });
  t.equal(voided.statusCode, 200);
  t.equal(voided.json().status, 'voided');
  t.equal((await app.inject({ method: 'POST', url: `/api/ops/batches/${batch.id}/void`, headers: analyst })).statusCode, 403);

  const audit = (await app.inject({ method: 'GET', url: '/api/ops/audit?limit=50', headers: admin })).json() as Array<{ action: string; targetId: string | null; actorName: string; detail: unknown }>;
  const actions = audit.map((a) => `${a.action}:${a.targetId}:${a.actorName}`);
  t.ok(actions.includes(`code_batch.generate:${campaign.id}:operator1`));
  t.ok(actions.includes(`code_batch.export:${batch.id}:admin`), 'the export is audited');
  t.ok(actions.includes(`code_batch.import:${campaign.id}:operator1`));
  t.ok(actions.includes(`code_batch.void:${batch.id}:operator1`));
  const auditText = JSON.stringify(audit);
  t.notOk(codes.some((c) => auditText.includes(c)) || lines.some((l) => auditText.includes(l.code)), 'no code in the audit log');
});

/** Run the CLI; resolves with exit code and output. */
function cli(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !['DATABASE_URL', 'DATA_DIR', 'CODE_KEY'].includes(k))) as Record<string, string>;
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'scripts/codes.ts'), ...args], {
      cwd: ROOT, env: { ...base, NODE_ENV: 'test', LOG_LEVEL: 'silent', ...env }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

t.test('CLI', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'codes-cli-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  let env: Record<string, string>;
  let campaignId: number;
  let reopen: () => Promise<Database>;
  const codeKey = createHash('sha256').update('sandbox-codes:wx0sandbox0000001').digest(); // the sandbox CODE_KEY
  if (process.env.DATABASE_URL) {
    const database = await migrated(t);
    campaignId = (await seedCampaign(database)).campaign.id;
    env = { DATABASE_URL: database.url! };
    reopen = async () => database;
  } else {
    const dataDir = path.join(dir, 'data');
    const database = await openDatabase({ dataDir });
    await database.migrate();
    campaignId = (await seedCampaign(database)).campaign.id;
    await database.close(); // PGlite: one process per data directory
    env = { DATA_DIR: dataDir };
    reopen = async () => {
      const db = await openDatabase({ dataDir });
      t.teardown(() => db.close());
      return db;
    };
  }
  const file = path.join(dir, 'batch.csv');
  const gen = await cli(['generate', '--campaign', String(campaignId), '--count', '1500', '--out', file, '--name', 'CLI批次', '--sku', 'SKU-CLI'], env);
  t.equal(gen.code, 0, gen.stderr);
  t.match(gen.stdout, /batch \d+ "CLI批次" \(generated, active\): 1,500 codes/);
  const csv = readFileSync(file, 'latin1');
  const { header, rows: lines } = parseCsv(csv);
  t.equal(header, 'code,batch,seq');
  t.equal(lines.length, 1500, 'one line per code after the header');
  t.ok(lines.every((l) => classifyCode(l.code).kind === 'code'));

  // usage errors exit before the database is opened: run them side by side
  const [again, bad, unknown] = await Promise.all([
    cli(['generate', '--campaign', String(campaignId), '--count', '10', '--out', file], env),
    cli(['generate', '--campaign', 'abc', '--count', '10', '--out', path.join(dir, 'x.csv')], env),
    cli(['frobnicate'], env),
  ]);
  t.equal(again.code, 2, 'refuses to overwrite');
  t.match(again.stderr, /exists; refusing to overwrite/);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /^codes: error: --campaign must be a positive integer, got "abc"$/m);
  t.equal(unknown.code, 2);
  t.match(unknown.stderr, /unknown command "frobnicate"/);

  const exp = path.join(dir, 'export.csv');
  const ex = await cli(['export', '--batch', String(lines[0]!.batch), '--out', exp], env);
  t.equal(ex.code, 0, ex.stderr);
  t.equal(readFileSync(exp, 'latin1'), csv, 'CLI export equals the generated file');

  const missingOut = path.join(dir, 'none.csv');
  const failed = await cli(['generate', '--campaign', '999999', '--count', '10', '--out', missingOut], env);
  t.equal(failed.code, 1);
  t.match(failed.stderr, /^codes: error: campaign 999999 not found$/m, 'a one-line error');
  t.notOk(existsSync(missingOut), 'no file left behind by a failed run');

  const database = await reopen();
  const stored = await keysOf(database, lines[0]!.batch);
  t.equal(stored.size, 1500);
  t.ok(lines.every((l) => stored.get(codeLookupKey(l.code, codeKey).toString('hex'))?.seq === l.seq), 'the CLI used the configured CODE_KEY');
});
