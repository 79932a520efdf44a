/**
 * Code generation benchmark (issue 3): 10 million on-pack codes generated, stored and exported through the project
 * path — createCodeBatchService().generate() with a CSV written to a file under /tmp — against raw COPYs of the very
 * same rows, on PostgreSQL.
 *
 *   npm run bench:codegen -- [--count 10000000] [--db postgres://postgres@127.0.0.1:5432/test] [--workers n]
 *                            [--no-raw-pk] [--keep]
 *
 * A scratch database is created per run (named codegen_bench_<pid>_<random>, migrated) and dropped afterwards.
 *
 * What is measured (each timed step starts after a CHECKPOINT, so no step pays for the previous one's dirty pages):
 *  1. project path: generate() end to end — derive + key + CSV-format + bucket the rows (worker threads), COPY in key
 *     order into `codes` (sort + encode on the workers while PostgreSQL ingests), CSV to /tmp, commit. Its "storing"
 *     phase is the COPY + commit: rows / (copy + commit seconds) is the storing rate.
 *  2. raw COPY baselines of the same rows: the batch's rows (key, batch_id, seq, prize_id — the values generate()
 *     produced) are read back with COPY … TO STDOUT (FORMAT binary) and COPYed, unchanged, in one transaction each:
 *     a. into a table of the same shape as `codes` (CREATE TABLE … (LIKE codes INCLUDING ALL): same columns,
 *        defaults and primary key), rows in generation order (seq) — "a raw COPY of the same rows, same table shape".
 *        This is the acceptance baseline: storing rate ≥ 0.5 × this rate;
 *     b. into the same shape without any index, generation order — the stricter ceiling of COPY itself (no btree);
 *     c. into the same shape with its primary key, rows in key order — the best a raw COPY can do with the index,
 *        i.e. what the project path's sorting buys and the most its storing phase can reach.
 *     Binary format for all of them, like the project path (faster than text for the server).
 *  3. exportCsv(): the batch re-derived from its nonce and written to a second file (checked identical).
 *  4. CPU only: lookup-key implementations side by side on --sample codes (codes.ts cites these figures).
 */
import { createReadStream, createWriteStream, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { execSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { pipeline } from 'node:stream/promises';
import { Readable, Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import { openDatabase } from '../../server/src/db/client.ts';
import { systemClock } from '../../server/src/platform/clock.ts';
import { campaigns } from '../../server/src/campaigns/tables.ts';
import { createCodeBatchService, type LoadTimings } from '../../server/src/campaigns/batches.ts';
import { CodeGenerator, LOOKUP_KEY_BYTES, classifyCode, codeLookupKey, createLookupKeyer } from '../../server/src/campaigns/codes.ts';

const { values: args } = parseArgs({
  options: {
    count: { type: 'string', default: '10000000' },
    db: { type: 'string', default: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test' },
    workers: { type: 'string' },
    sample: { type: 'string', default: '200000' },
    'no-raw-pk': { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
  },
});
const COUNT = Number(args.count);
const SAMPLE = Number(args.sample);
for (const [name, v] of [['count', COUNT], ['sample', SAMPLE]] as const) {
  if (!Number.isSafeInteger(v) || v <= 0) throw new Error(`--${name} must be a positive integer`);
}
const WORKERS = args.workers === undefined ? undefined : Number(args.workers);

const fmtInt = (n: number) => Math.round(n).toLocaleString('en-US');
const sec = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const cpus = os.cpus();

// ---------------------------------------------------------------------------------------------------------------------
const adminUrl = args.db;
const dbName = `codegen_bench_${process.pid}_${randomBytes(3).toString('hex')}`;
const url = new URL(adminUrl);
url.pathname = `/${dbName}`;
const admin = new pg.Client({ connectionString: adminUrl });
await admin.connect();
const pgVersion = (await admin.query('SHOW server_version')).rows[0].server_version as string;
await admin.query(`CREATE DATABASE ${dbName}`);
await admin.end();

const tmp = mkdtempSync(path.join(os.tmpdir(), 'codegen-bench-'));
const codeKey = randomBytes(32);
const database = await openDatabase({ url: url.toString(), poolSize: 4 });
const raw = new pg.Client({ connectionString: url.toString() });

let nproc = String(cpus.length);
try {
  nproc = execSync('nproc').toString().trim();
} catch {
  // keep os.cpus()
}

console.log('# Code generation benchmark (issue 3)\n');
console.log(`date: ${new Date().toISOString()}`);
console.log(`machine: ${cpus[0]?.model ?? 'unknown'}, nproc ${nproc}, ${fmtInt(os.totalmem() / 2 ** 20)} MiB RAM`);
console.log(`runtime: node ${process.version}, PostgreSQL ${pgVersion} (scratch database ${dbName})`);
console.log(`load average before: ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
console.log(`codes: ${fmtInt(COUNT)} of 12 + 1 characters\n`);

async function checkpoint(): Promise<void> {
  try {
    await raw.query('CHECKPOINT');
  } catch {
    // not allowed for this role: the steps then share checkpoint costs
  }
}

interface Row {
  label: string;
  rows: number;
  ms: number;
  note?: string;
}
const results: Row[] = [];
function report(r: Row): void {
  results.push(r);
  console.log(`| ${r.label.padEnd(58)} | ${fmtInt(r.rows).padStart(11)} | ${sec(r.ms).padStart(9)} | ${fmtInt((r.rows / r.ms) * 1000).padStart(11)} |${r.note ? ` ${r.note}` : ''}`);
}

try {
  await database.migrate();
  await raw.connect();
  const [c] = await database.db.insert(campaigns).values({ name: 'bench', startsAt: new Date(), endsAt: new Date(Date.now() + 86_400_000) }).returning();
  const batches = createCodeBatchService({ database, codeKey, clock: systemClock, ...(WORKERS === undefined ? {} : { workers: WORKERS }) });

  console.log(`| ${'step'.padEnd(58)} | ${'rows'.padStart(11)} | ${'time'.padStart(9)} | ${'rows/s'.padStart(11)} |`);
  console.log(`|${'-'.repeat(60)}|${'-'.repeat(13)}|${'-'.repeat(11)}|${'-'.repeat(13)}|`);

  // 1. the project path
  await checkpoint();
  const csvFile = path.join(tmp, 'batch.csv');
  let timings: LoadTimings | undefined;
  const t0 = performance.now();
  const batch = await batches.generate({ campaignId: c!.id, count: COUNT, name: 'bench', out: createWriteStream(csvFile, { highWaterMark: 4 << 20 }), onTimings: (x) => (timings = x) });
  const totalMs = performance.now() - t0;
  const t = timings!;
  const storeMs = t.copyMs + t.commitMs;
  report({ label: 'generate() end to end (generate + store + CSV to /tmp)', rows: COUNT, ms: totalMs, note: `${t.threads} worker threads, ${t.attempts} attempt(s)` });
  report({ label: '  of which: derive + key + CSV-format + bucket (workers)', rows: COUNT, ms: t.generateMs });
  report({ label: '  of which: STORING = COPY in key order + commit', rows: COUNT, ms: storeMs });
  report({ label: '  of which: CSV written to the file', rows: COUNT, ms: t.csvMs, note: `${fmtInt(statSync(csvFile).size / 2 ** 20)} MiB` });

  // sanity: the file and the table agree
  const lines = createInterface({ input: createReadStream(csvFile) });
  let n = -1;
  const sampleKeys: string[] = [];
  for await (const line of lines) {
    if (n >= 0 && n < 1000) {
      const cls = classifyCode(line.split(',')[0]!);
      if (cls.kind !== 'code') throw new Error(`bad CSV line ${line}`);
      sampleKeys.push(codeLookupKey(cls.code, codeKey).toString('hex'));
    }
    n++;
  }
  if (n !== COUNT) throw new Error(`CSV has ${n} codes, expected ${COUNT}`);
  const found = await raw.query(`SELECT count(*)::int AS n FROM codes WHERE key = ANY (SELECT decode(h, 'hex') FROM unnest($1::text[]) h) AND batch_id = $2`, [sampleKeys, batch.id]);
  const stored = await raw.query('SELECT count(*)::int AS n FROM codes WHERE batch_id = $1', [batch.id]);
  if (found.rows[0].n !== sampleKeys.length || stored.rows[0].n !== COUNT) throw new Error('codes table does not match the CSV');

  // 2. raw COPY baselines of the same rows
  const dump = async (orderBy: string): Promise<Buffer[]> => {
    const chunks: Buffer[] = [];
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    await pipeline(
      raw.query(copyTo(`COPY (SELECT key, batch_id, seq, prize_id FROM codes WHERE batch_id = ${batch.id} ORDER BY ${orderBy}) TO STDOUT WITH (FORMAT binary)`)),
      new Writable({
        write(chunk: Buffer, _enc, cb) {
          pending.push(chunk);
          pendingBytes += chunk.length;
          if (pendingBytes >= 4 << 20) {
            chunks.push(Buffer.concat(pending));
            pending = [];
            pendingBytes = 0;
          }
          cb();
        },
        final(cb) {
          if (pendingBytes) chunks.push(Buffer.concat(pending));
          cb();
        },
      }),
    );
    return chunks;
  };
  const rawCopy = async (table: string, create: string, data: Buffer[]): Promise<number> => {
    await raw.query(`DROP TABLE IF EXISTS ${table}`);
    await raw.query(create);
    await checkpoint();
    const s = performance.now();
    await raw.query('BEGIN');
    const stream = raw.query(copyFrom(`COPY ${table} (key, batch_id, seq, prize_id) FROM STDIN WITH (FORMAT binary)`));
    await pipeline(Readable.from(data), stream);
    await raw.query('COMMIT');
    const ms = performance.now() - s;
    if (stream.rowCount !== COUNT) throw new Error(`raw COPY stored ${stream.rowCount} rows`);
    await raw.query(`DROP TABLE ${table}`);
    return ms;
  };

  let data = await dump('seq');
  const rawHeapMs = await rawCopy('raw_heap', 'CREATE TABLE raw_heap (LIKE codes INCLUDING DEFAULTS)', data);
  report({ label: 'raw COPY, same rows, generation order, NO index', rows: COUNT, ms: rawHeapMs });
  let rawPkMs: number | undefined;
  if (!args['no-raw-pk']) {
    rawPkMs = await rawCopy('raw_pk', 'CREATE TABLE raw_pk (LIKE codes INCLUDING ALL)', data);
    report({ label: 'raw COPY, same rows, generation order, same shape + PK', rows: COUNT, ms: rawPkMs });
  }
  data = [];
  data = await dump('key');
  const rawSortedMs = await rawCopy('raw_pk_sorted', 'CREATE TABLE raw_pk_sorted (LIKE codes INCLUDING ALL)', data);
  report({ label: 'raw COPY, same rows, key order, same shape + PK', rows: COUNT, ms: rawSortedMs });
  data = [];

  // 3. export (re-derivation)
  await checkpoint();
  const exportFile = path.join(tmp, 'export.csv');
  const e0 = performance.now();
  await batches.exportCsv(batch.id, createWriteStream(exportFile, { highWaterMark: 4 << 20 }));
  const exportMs = performance.now() - e0;
  const same = createHash('sha256').update(readFileSync(csvFile)).digest('hex') === createHash('sha256').update(readFileSync(exportFile)).digest('hex');
  report({ label: 'exportCsv() (re-derived from the nonce) to a file', rows: COUNT, ms: exportMs, note: same ? 'identical to generate()\'s CSV' : 'DIFFERENT FROM generate()\'s CSV' });
  if (!same) throw new Error('export differs from the generated CSV');

  // verdict
  const storeRate = COUNT / (storeMs / 1000);
  const rate = (ms: number) => COUNT / (ms / 1000);
  console.log('\nStoring rate = rows / (COPY + commit) of generate():', fmtInt(storeRate), 'rows/s');
  if (rawPkMs !== undefined) {
    const r = storeRate / rate(rawPkMs);
    console.log(`  ÷ raw COPY of the same rows into the same-shape table with its PK, generation order (${fmtInt(rate(rawPkMs))} rows/s) = ${r.toFixed(2)}×  ← acceptance (≥ 0.5×): ${r >= 0.5 ? 'PASS' : 'FAIL'}`);
  }
  console.log(`  ÷ raw COPY of the same rows into the same-shape table with its PK, key order (${fmtInt(rate(rawSortedMs))} rows/s) = ${(storeRate / rate(rawSortedMs)).toFixed(2)}×  (informative: the best a raw COPY can do with the index)`);
  console.log(`  ÷ raw COPY of the same rows into the same shape WITHOUT any index (${fmtInt(rate(rawHeapMs))} rows/s) = ${(storeRate / rate(rawHeapMs)).toFixed(2)}×  (informative: no btree to maintain at all)`);
  console.log(`End to end: ${fmtInt(COUNT)} codes generated, stored and exported to CSV in ${sec(totalMs)} (${fmtInt(rate(totalMs))} codes/s) ← target < 60 s: ${totalMs < 60_000 ? 'PASS' : 'FAIL'}`);
} finally {
  await raw.end().catch(() => undefined);
  await database.close();
  const a = new pg.Client({ connectionString: adminUrl });
  await a.connect();
  await a.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
  await a.end();
  if (args.keep) console.log(`files kept in ${tmp}`);
  else rmSync(tmp, { recursive: true, force: true });
}

// 4. CPU only: lookup-key implementations (no database)
{
  const secret = randomBytes(32);
  const keyer = createLookupKeyer(secret);
  const gen = new CodeGenerator();
  const codes = gen.strings(SAMPLE);
  const block = gen.block(SAMPLE);
  const keys = Buffer.allocUnsafe(SAMPLE * LOOKUP_KEY_BYTES);
  const cpu = (fn: () => void) => {
    const c0 = process.cpuUsage();
    fn();
    const c = process.cpuUsage(c0);
    return (c.user + c.system) / 1000;
  };
  let sink = 0;
  console.log(`\nLookup key per code, CPU, on ${fmtInt(SAMPLE)} codes (second round):`);
  for (let round = 0; round < 2; round++) {
    const a = cpu(() => {
      for (const code of codes) sink ^= createHmac('sha256', secret).update(code, 'latin1').digest()[0]!;
    });
    const b = cpu(() => {
      for (let i = 0; i < SAMPLE; i++) keyer.keyInto(block, i * 13, 13, keys, i * LOOKUP_KEY_BYTES);
      sink ^= keys[0]!;
    });
    if (round === 1) {
      console.log(`  node:crypto createHmac per code        ${((a * 1e6) / SAMPLE).toFixed(0).padStart(5)} ns/code`);
      console.log(`  createLookupKeyer().keyInto (JS SHA-256) ${((b * 1e6) / SAMPLE).toFixed(0).padStart(5)} ns/code   (sink ${sink & 1})`);
    }
  }
}
console.log(`\nload average after: ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
