/**
 * Code batches of on-pack campaigns: generate (and bulk-load) a print run, import a printer's CSV, re-export a
 * generated batch, void a batch. No Fastify here; routes are in batch-routes.ts, the CLI in scripts/codes.ts.
 *
 * Storage: one `codes` row per code, keyed by the 16-byte HMAC lookup key (codes.ts), never the code itself. A batch
 * row is inserted as 'loading' and committed first; its codes are then loaded in ONE transaction that ends by setting
 * the batch 'active' (redemption only accepts codes of 'active' batches). A crash therefore leaves a 'loading' batch
 * with no codes: `retry` reloads it (generated batches: the very same codes, re-derived from the stored nonce, so a
 * CSV already handed to the printer stays valid) and `discard` removes it.
 *
 * Generated codes are re-derivable: see batch-derive.ts for the exact derivation (AES-256-CTR keyed DRBG under
 * HMAC(CODE_KEY, "batch-codes:" ‖ nonce), per 65,536-code chunk). The database holds the nonce and the keyed hashes;
 * without CODE_KEY neither reveals a code.
 *
 * Bulk load path (10 million codes generated, stored and exported in 33–43 s on 2 shared cores, docs/BENCHMARKS.md):
 * generation workers derive, key and CSV-format chunks and scatter (key, seq, prize) rows into key buckets in shared
 * memory; then, bucket by bucket in key order, the workers sort and encode binary COPY rows while this thread streams
 * them into `COPY codes … FROM STDIN (FORMAT binary)`. Sorted keys fill the primary-key btree left to right, 4–5×
 * faster than the same rows in generation order. PGlite gets the same rows through `COPY … FROM '/dev/blob'`.
 *
 * Collisions: two equal codes in one batch (p ≈ n²/2·31¹² ≈ 6·10⁻⁵ for 10M) or a code equal to an existing one are
 * detected (sort / unique violation); the attempt is rolled back and retried with a fresh nonce. That is why the
 * printer CSV, formatted by the workers while generating, is written to `out` only once the rows are stored (before
 * the commit): a CSV never contains codes of a discarded attempt.
 */
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { and, asc, eq, isNull } from 'drizzle-orm';
import type { PGlite, Transaction as PgliteTx } from '@electric-sql/pglite';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { parse as parseCsv } from 'csv-parse';
import type { Database } from '../db/client.ts';
import type { Clock } from '../platform/clock.ts';
import { AppError } from '../platform/errors.ts';
import { campaignPrizes, campaigns, codeBatches, type Campaign, type CampaignPrize, type CodeBatch } from './tables.ts';
import { LOOKUP_KEY_BYTES, classifyCode, createLookupKeyer } from './codes.ts';
import {
  COPY_BINARY_HEADER,
  COPY_BINARY_TRAILER,
  COPY_COLUMNS,
  CSV_HEADER,
  DERIVE_CHUNK,
  NONCE_BYTES,
  allocBuckets,
  batchStreamKey,
  bucketsPerTask,
  chunkCount,
  deckSeedHash,
  layoutForKeys,
  layoutForUniform,
  scatterRows,
  shuffleDeck,
  type Buckets,
  type ChunkJob,
  type DeckUnits,
} from './batch-derive.ts';
import { openRunner, type Runner } from './batch-pipeline.ts';

export { recomputeDeck, shuffleDeck, deckSeedHash, CSV_HEADER, type DeckUnits } from './batch-derive.ts';

/** Largest batch (seq is an int; memory ≈ 90 bytes per code while loading). Split larger print runs. */
export const MAX_BATCH_CODES = 20_000_000;
/** Largest import; the file is parsed in memory. */
export const MAX_IMPORT_CODES = 5_000_000;
const LOAD_ATTEMPTS = 3;
/** Up to this many bad lines are listed in an import error. */
const MAX_LISTED_LINES = 20;
/** Session lock space for "deck of campaign X is being dealt" (with the campaign id as second key). */
const DECK_LOCK = 727_003;

/** A batch as the API shows it (the nonce stays inside). */
export type BatchInfo = Omit<CodeBatch, 'nonce'>;

export type ProgressPhase = 'generate' | 'store' | 'export';
export type Progress = (done: number, total: number, phase: ProgressPhase) => void;

/** Where the time of one generate() went (ms); for the benchmark and logs. */
export interface LoadTimings {
  attempts: number;
  threads: number;
  /** Derive + key + CSV-format + bucket scatter of all codes (and the deck shuffle). */
  generateMs: number;
  /** COPY of all rows in key order (sort + encode run concurrently on the workers), until the server confirmed it. */
  copyMs: number;
  /** Writing the CSV to `out`. */
  csvMs: number;
  /** Status update + COMMIT. */
  commitMs: number;
  totalMs: number;
}

export interface GenerateInput {
  campaignId: number;
  count: number;
  name?: string | undefined;
  sku?: string | undefined;
  createdBy?: string | undefined;
  /** Deck campaigns: units per prize id (default per prize: totalStock minus units in the campaign's other batches). */
  deck?: Record<number, number> | undefined;
  /** Printer CSV (CSV_HEADER format), written in seq order once the codes are stored, then ended. */
  out?: NodeJS.WritableStream | undefined;
  onProgress?: Progress | undefined;
  onTimings?: ((t: LoadTimings) => void) | undefined;
}

export interface ImportInput {
  campaignId: number;
  name: string;
  /** CSV text or stream. A header row is recognised by a cell `code`; without one the first column holds the codes. */
  input: NodeJS.ReadableStream | string;
  sku?: string | undefined;
  createdBy?: string | undefined;
  deck?: Record<number, number> | undefined;
}

export interface BadLine {
  line: number;
  reason: string;
  value: string;
}

export interface CodeBatchServiceDeps {
  database: Database;
  /** config.codeKey: the HMAC secret of the lookup keys and the root of the batch derivation. */
  codeKey: Buffer;
  clock: Clock;
  /** Worker threads for large batches (undefined: automatic, 0: always inline). */
  workers?: number;
}

/** A failed load attempt that a fresh nonce fixes (duplicate code, bucket overflow, code already in the table). */
class RetryableLoad extends Error {}

interface LoadTx {
  query<T = Record<string, unknown>>(text: string, params?: unknown[]): Promise<T[]>;
  /** COPY the binary rows into `codes`; returns the number of rows the server reports. */
  copyIn(rows: AsyncIterable<Buffer>): Promise<number>;
  /** PostgreSQL: take a transaction-scoped advisory lock (PGlite has a single connection: no-op). */
  lock(a: number, b: number): Promise<void>;
}

const info = (b: CodeBatch): BatchInfo => {
  const { nonce: _nonce, ...rest } = b;
  return rest;
};

const isUniqueViolation = (err: unknown) => (err as { code?: string } | null)?.code === '23505';

/** Resolves on `event`; rejects on 'error', or on 'close' before it (a destroyed stream never drains). */
function waitFor(out: NodeJS.WritableStream, event: 'drain' | 'finish'): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const cleanup = () => {
      out.removeListener(event, onEvent);
      out.removeListener('close', onClose);
      out.removeListener('error', onError);
    };
    const onEvent = () => {
      cleanup();
      resolve();
    };
    const onClose = () => {
      cleanup();
      reject(new Error('output stream closed'));
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    out.on(event, onEvent);
    out.on('close', onClose);
    out.on('error', onError);
  });
}

async function writeOut(out: NodeJS.WritableStream, chunk: Buffer | string): Promise<void> {
  if ((out as { destroyed?: boolean }).destroyed) throw new Error('output stream closed');
  if (!out.write(chunk)) await waitFor(out, 'drain');
}

async function endOut(out: NodeJS.WritableStream): Promise<void> {
  const w = out as NodeJS.WritableStream & { writableFinished?: boolean };
  const finished = w.writableFinished === undefined ? Promise.resolve() : waitFor(out, 'finish');
  out.end();
  await finished;
}

/** Results of task(i) in index order, at most `window` running. Started tasks are left to finish if the loop stops. */
async function* ordered<T>(n: number, window: number, task: (i: number) => Promise<T>): AsyncGenerator<T> {
  const inflight = new Map<number, Promise<T>>();
  let next = 0;
  for (let i = 0; i < n; i++) {
    while (next < n && next < i + window) {
      const p = task(next);
      p.catch(() => undefined);
      inflight.set(next++, p);
    }
    const r = await inflight.get(i)!;
    inflight.delete(i);
    yield r;
  }
}

/** Binary COPY rows of all buckets in key order, sorted + encoded by the runner. */
async function* encodedRows(runner: Runner, buckets: Buckets, expected: number, onRows?: (rows: number) => void): AsyncGenerator<Buffer> {
  const count = buckets.start.length - 1;
  const per = bucketsPerTask(buckets);
  const tasks = Math.ceil(count / per);
  let rows = 0;
  for await (const r of ordered(tasks, Math.max(2, 2 * runner.threads + 2), (t) => runner.encode(t * per, Math.min(count, (t + 1) * per)))) {
    if (!r.ok) throw new RetryableLoad(`key ${r.reason}`);
    rows += r.rows;
    onRows?.(rows);
    yield r.buf;
  }
  if (rows !== expected) throw new Error(`encoded ${rows} rows, expected ${expected}`);
}

function checkDeckParam(deck: Record<number, number> | undefined): void {
  if (!deck) return;
  for (const [k, v] of Object.entries(deck)) {
    if (!/^[1-9]\d*$/.test(k) || !Number.isSafeInteger(v) || v < 0) throw new AppError('VALIDATION', `deck: "${k}": ${v} is not prize id → non-negative unit count`);
  }
}

/**
 * Open-addressing hash set of 16-byte keys stored in an external buffer (entry = index + 1), hashed by their first
 * 4 bytes (HMAC output: uniform). ≈ 8 bytes per key instead of a Map of strings.
 */
class KeyIndex {
  private slots = new Uint32Array(1 << 15);
  private size = 0;

  private static hash(keys: Uint8Array, o: number): number {
    return ((keys[o]! << 24) | (keys[o + 1]! << 16) | (keys[o + 2]! << 8) | keys[o + 3]!) >>> 0;
  }

  private static equal(a: Uint8Array, ao: number, b: Uint8Array, bo: number): boolean {
    for (let k = 0; k < LOOKUP_KEY_BYTES; k++) if (a[ao + k] !== b[bo + k]) return false;
    return true;
  }

  /** Index of an equal key already added, or −1 after adding key `i` of `keys`. */
  add(keys: Uint8Array, i: number): number {
    if ((this.size + 1) * 2 > this.slots.length) this.grow(keys);
    const mask = this.slots.length - 1;
    const o = i * LOOKUP_KEY_BYTES;
    for (let s = KeyIndex.hash(keys, o) & mask; ; s = (s + 1) & mask) {
      const e = this.slots[s]!;
      if (e === 0) {
        this.slots[s] = i + 1;
        this.size++;
        return -1;
      }
      if (KeyIndex.equal(keys, (e - 1) * LOOKUP_KEY_BYTES, keys, o)) return e - 1;
    }
  }

  /** Index of `key` (16 bytes) among the added keys, or −1. */
  find(keys: Uint8Array, key: Uint8Array): number {
    const mask = this.slots.length - 1;
    for (let s = KeyIndex.hash(key, 0) & mask; ; s = (s + 1) & mask) {
      const e = this.slots[s]!;
      if (e === 0) return -1;
      if (KeyIndex.equal(keys, (e - 1) * LOOKUP_KEY_BYTES, key, 0)) return e - 1;
    }
  }

  private grow(keys: Uint8Array): void {
    const old = this.slots;
    this.slots = new Uint32Array(old.length * 2);
    const mask = this.slots.length - 1;
    for (const e of old) {
      if (e === 0) continue;
      let s = KeyIndex.hash(keys, (e - 1) * LOOKUP_KEY_BYTES) & mask;
      while (this.slots[s] !== 0) s = (s + 1) & mask;
      this.slots[s] = e;
    }
  }
}

export function createCodeBatchService(deps: CodeBatchServiceDeps) {
  const { database, codeKey, clock } = deps;
  const { db } = database;
  const keyer = createLookupKeyer(codeKey);

  /* ---------------------------------------------------------------------------------------------------------------- */
  /* Database plumbing                                                                                                */
  /* ---------------------------------------------------------------------------------------------------------------- */

  /** One transaction on one connection: pg client from the pool, or PGlite's exclusive transaction. */
  async function withLoadTx<T>(fn: (tx: LoadTx) => Promise<T>): Promise<T> {
    if (database.kind === 'postgres') {
      const pool = (db as unknown as { $client: pg.Pool }).$client;
      const client = await pool.connect();
      let broken = false;
      const tx: LoadTx = {
        async query(text, params) {
          return (await client.query(text, params as unknown[])).rows;
        },
        async copyIn(rows) {
          const stream = client.query(copyFrom(`COPY codes ${COPY_COLUMNS} FROM STDIN WITH (FORMAT binary)`));
          await pipeline(Readable.from(framed(rows), { objectMode: false }), stream);
          return stream.rowCount;
        },
        async lock(a, b) {
          await client.query('SELECT pg_advisory_xact_lock($1::int, $2::int)', [a, b]);
        },
      };
      try {
        await client.query('BEGIN');
        const r = await fn(tx);
        await client.query('COMMIT');
        return r;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => {
          broken = true;
        });
        throw err;
      } finally {
        client.release(broken);
      }
    }
    const pglite = (db as unknown as { $client: PGlite }).$client;
    return pglite.transaction(async (t: PgliteTx) => {
      const tx: LoadTx = {
        async query(text, params) {
          return (await t.query<any>(text, params as unknown[])).rows;
        },
        async copyIn(rows) {
          let parts: Uint8Array[] = [];
          let bytes = 0;
          let total = 0;
          const flush = async () => {
            if (bytes === 0) return;
            const blob = new Blob([COPY_BINARY_HEADER, ...parts, COPY_BINARY_TRAILER]);
            parts = [];
            bytes = 0;
            const r = await t.query(`COPY codes ${COPY_COLUMNS} FROM '/dev/blob' WITH (FORMAT binary)`, [], { blob });
            total += r.affectedRows ?? 0;
          };
          for await (const b of rows) {
            parts.push(b);
            bytes += b.length;
            if (bytes >= 16 << 20) await flush();
          }
          await flush();
          return total;
        },
        async lock() {},
      };
      return fn(tx);
    });
  }

  async function* framed(rows: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    yield COPY_BINARY_HEADER;
    for await (const b of rows) yield b;
    yield COPY_BINARY_TRAILER;
  }

  async function campaignOr404(id: number): Promise<Campaign> {
    const [c] = await db.select().from(campaigns).where(eq(campaigns.id, id));
    if (!c) throw new AppError('NOT_FOUND', `campaign ${id} not found`);
    return c;
  }

  async function batchOr404(id: number): Promise<CodeBatch> {
    const [b] = await db.select().from(codeBatches).where(eq(codeBatches.id, id));
    if (!b) throw new AppError('NOT_FOUND', `code batch ${id} not found`);
    return b;
  }

  function checkOpen(c: Campaign): void {
    if (c.status === 'ended') throw new AppError('CONFLICT', `campaign ${c.id} has ended: no new codes`);
  }

  /* ---------------------------------------------------------------------------------------------------------------- */
  /* Deck                                                                                                             */
  /* ---------------------------------------------------------------------------------------------------------------- */

  /** The campaign's deck seed, created on first use: 32 random bytes as 64 hex characters; hash = deckSeedHash. */
  async function ensureDeckSeed(c: Campaign): Promise<string> {
    if (c.deckSeed) return c.deckSeed;
    if (c.deckSeedHash) throw new AppError('CONFLICT', `campaign ${c.id} has a deck seed hash but no seed`);
    const seed = randomBytes(32).toString('hex');
    await db.update(campaigns).set({ deckSeed: seed, deckSeedHash: deckSeedHash(seed), updatedAt: clock.now() })
      .where(and(eq(campaigns.id, c.id), isNull(campaigns.deckSeed)));
    const [again] = await db.select({ deckSeed: campaigns.deckSeed }).from(campaigns).where(eq(campaigns.id, c.id));
    return again!.deckSeed!;
  }

  /**
   * Units per prize of this batch's deck, in prize position order: deck[prizeId] when given, otherwise the prize's
   * totalStock minus the units in the campaign's other batches (voided batches count only for codes already redeemed).
   */
  async function deckUnits(q: LoadTx['query'], campaignId: number, batchId: number, count: number, deck: Record<number, number> | undefined): Promise<DeckUnits[]> {
    const prizes = await q<{ id: number; name: string; kind: CampaignPrize['kind']; total_stock: number | null }>(
      'SELECT id, name, kind, total_stock FROM campaign_prizes WHERE campaign_id = $1 ORDER BY position, id', [campaignId]);
    const eligible = prizes.filter((p) => p.kind !== 'thanks');
    for (const k of Object.keys(deck ?? {})) {
      if (!eligible.some((p) => p.id === Number(k))) throw new AppError('VALIDATION', `deck: prize ${k} is not a prize (other than "thanks") of campaign ${campaignId}`);
    }
    const assigned = new Map<number, number>();
    const [others] = await q<{ n: number }>('SELECT count(*)::int AS n FROM code_batches WHERE campaign_id = $1 AND id <> $2', [campaignId, batchId]);
    if (others!.n > 0) {
      const rows = await q<{ prize_id: number; n: number }>(
        `SELECT c.prize_id, count(*)::int AS n FROM codes c JOIN code_batches b ON b.id = c.batch_id
         WHERE b.campaign_id = $1 AND b.id <> $2 AND c.prize_id IS NOT NULL AND (b.status <> 'voided' OR c.redeemed_at IS NOT NULL)
         GROUP BY c.prize_id`, [campaignId, batchId]);
      for (const r of rows) assigned.set(Number(r.prize_id), Number(r.n));
    }
    const units: DeckUnits[] = [];
    let total = 0;
    for (const p of eligible) {
      const remaining = p.total_stock === null ? null : Math.max(0, p.total_stock - (assigned.get(p.id) ?? 0));
      const explicit = deck?.[p.id];
      let n: number;
      if (explicit !== undefined) {
        if (remaining !== null && explicit > remaining) throw new AppError('VALIDATION', `deck: prize ${p.id} (${p.name}) has ${remaining} units left, ${explicit} requested`);
        n = explicit;
      } else if (remaining === null) {
        throw new AppError('VALIDATION', `deck: prize ${p.id} (${p.name}) has no total stock; give its unit count in deck`);
      } else n = remaining;
      units.push({ prizeId: p.id, count: n });
      total += n;
    }
    if (total > count) throw new AppError('VALIDATION', `deck of ${total} prizes exceeds the batch of ${count} codes; give smaller unit counts in deck`);
    return units;
  }

  /* ---------------------------------------------------------------------------------------------------------------- */
  /* Loading                                                                                                          */
  /* ---------------------------------------------------------------------------------------------------------------- */

  /** Start of every load transaction: the batch row, locked, must still be loading. */
  async function lockLoading(tx: LoadTx, batchId: number): Promise<void> {
    const [row] = await tx.query<{ status: string }>('SELECT status FROM code_batches WHERE id = $1 FOR UPDATE', [batchId]);
    if (!row) throw new AppError('NOT_FOUND', `code batch ${batchId} not found`);
    if (row.status !== 'loading') throw new AppError('CONFLICT', `code batch ${batchId} is ${row.status}, not loading`);
  }

  /** The deck of this batch (null for dynamic campaigns), computed under the campaign's deck lock. */
  async function dealDeck(tx: LoadTx, c: Campaign, batchId: number, count: number, deck: Record<number, number> | undefined): Promise<Int32Array | null> {
    if (c.prizeMode !== 'deck') return null;
    await tx.lock(DECK_LOCK, c.id);
    // The seed is created before the transaction (ensureDeckSeed): PGlite's connection is held by this one.
    const seed = c.deckSeed;
    if (!seed) throw new Error(`campaign ${c.id} has no deck seed`);
    const units = await deckUnits(tx.query, c.id, batchId, count, deck);
    return shuffleDeck(seed, batchId, units, count);
  }

  async function activate(tx: LoadTx, batchId: number, count: number, nonce: Buffer | null): Promise<void> {
    await tx.query(`UPDATE code_batches SET status = 'active', count = $2, nonce = $3 WHERE id = $1`, [batchId, count, nonce]);
  }

  /**
   * Load a generated batch (status loading) from `nonce`; on a retryable collision a fresh nonce is tried.
   * Returns the nonce that was stored.
   */
  async function loadGenerated(batch: CodeBatch, c: Campaign, input: Pick<GenerateInput, 'deck' | 'out' | 'onProgress' | 'onTimings'>): Promise<void> {
    const started = performance.now();
    let nonce = batch.nonce!;
    const count = batch.count;
    for (let attempt = 1; ; attempt++) {
      const t: LoadTimings = { attempts: attempt, threads: 0, generateMs: 0, copyMs: 0, csvMs: 0, commitMs: 0, totalMs: 0 };
      try {
        let commitFrom = 0;
        await withLoadTx(async (tx) => {
          await lockLoading(tx, batch.id);
          const t0 = performance.now();
          const deck = await dealDeck(tx, c, batch.id, count, input.deck);
          const buckets = allocBuckets(layoutForUniform(count), true);
          const job: ChunkJob = { codeKey, streamKey: batchStreamKey(codeKey, nonce), length: batch.codeLength, batchId: batch.id, count, csv: !!input.out, buckets, deck };
          const runner = await openRunner(job, count, deps.workers);
          t.threads = runner.threads;
          try {
            const chunks = chunkCount(count);
            const csv: Array<Buffer | null> = [];
            let done = 0;
            for await (const r of ordered(chunks, Math.max(1, 2 * runner.threads + 2), (i) => runner.chunk(i))) {
              if (r.overflow) throw new RetryableLoad('key bucket overflow');
              csv.push(r.csv);
              done = Math.min(count, done + DERIVE_CHUNK);
              input.onProgress?.(done, count, 'generate');
            }
            const t1 = performance.now();
            t.generateMs = t1 - t0;
            const copied = await tx.copyIn(encodedRows(runner, buckets, count, (rows) => input.onProgress?.(rows, count, 'store')));
            if (copied !== count) throw new Error(`COPY stored ${copied} rows, expected ${count}`);
            const t2 = performance.now();
            t.copyMs = t2 - t1;
            await activate(tx, batch.id, count, nonce);
            if (input.out) {
              await writeOut(input.out, CSV_HEADER);
              for (const b of csv) if (b) await writeOut(input.out, b);
              await endOut(input.out);
            }
            t.csvMs = performance.now() - t2;
            commitFrom = performance.now();
          } finally {
            await runner.close();
          }
        });
        t.commitMs = performance.now() - commitFrom;
        t.totalMs = performance.now() - started;
        input.onTimings?.(t);
        return;
      } catch (err) {
        const retryable = err instanceof RetryableLoad || isUniqueViolation(err);
        if (!retryable) throw err;
        if (attempt >= LOAD_ATTEMPTS) throw new AppError('CONFLICT', `could not load batch ${batch.id} after ${attempt} attempts (code collisions); try again`);
        nonce = randomBytes(NONCE_BYTES);
        await db.update(codeBatches).set({ nonce }).where(eq(codeBatches.id, batch.id));
      }
    }
  }

  /** Remove a batch that did not load (best effort; a crash leaves it for discard). */
  async function dropLoading(batchId: number): Promise<void> {
    await db.delete(codeBatches).where(and(eq(codeBatches.id, batchId), eq(codeBatches.status, 'loading'))).catch(() => undefined);
  }

  function checkCount(count: number, max: number): void {
    if (!Number.isSafeInteger(count) || count < 1 || count > max) throw new AppError('VALIDATION', `count must be an integer in [1, ${max}]`);
  }

  /* ---------------------------------------------------------------------------------------------------------------- */
  /* Import                                                                                                           */
  /* ---------------------------------------------------------------------------------------------------------------- */

  interface ParsedImport {
    keys: Buffer;
    count: number;
    /** Line of each code in the file (by index). */
    lineOf: Uint32Array;
    index: KeyIndex;
  }

  async function parseImport(input: NodeJS.ReadableStream | string, length: number): Promise<ParsedImport> {
    const parser = parseCsv({ bom: true, trim: true, skip_empty_lines: true, relax_column_count: true, info: true });
    const source = typeof input === 'string' ? Readable.from([input]) : input;
    source.on('error', (err: Error) => parser.destroy(err));
    source.pipe(parser);
    let column = -1;
    const bad: BadLine[] = [];
    let badCount = 0;
    let keys = Buffer.allocUnsafe(16_384 * LOOKUP_KEY_BYTES);
    let lineOf = new Uint32Array(16_384);
    const index = new KeyIndex();
    let count = 0;
    const reject = (line: number, reason: string, value: string) => {
      badCount++;
      if (bad.length < MAX_LISTED_LINES) bad.push({ line, reason, value: value.slice(0, 64) });
    };
    try {
      for await (const { record, info: at } of parser as AsyncIterable<{ record: string[]; info: { lines: number } }>) {
        const line = at.lines;
        if (column < 0) {
          const h = record.findIndex((cell) => cell.trim().toLowerCase() === 'code');
          column = h >= 0 ? h : 0;
          if (h >= 0) continue;
        }
        const value = record[column] ?? '';
        const c = classifyCode(value, { length });
        if (c.kind === 'typo') {
          reject(line, 'check character does not match (typo?)', value);
          continue;
        }
        if (c.kind !== 'code') {
          reject(line, `not a code of ${length + 1} characters from the code alphabet`, value);
          continue;
        }
        if (count >= MAX_IMPORT_CODES) throw new AppError('VALIDATION', `import is limited to ${MAX_IMPORT_CODES} codes per file`);
        if (count === lineOf.length) {
          const k2 = Buffer.allocUnsafe(keys.length * 2);
          keys.copy(k2, 0, 0, count * LOOKUP_KEY_BYTES);
          keys = k2;
          const l2 = new Uint32Array(lineOf.length * 2);
          l2.set(lineOf);
          lineOf = l2;
        }
        const src = Buffer.from(c.code, 'latin1');
        keyer.keyInto(src, 0, src.length, keys, count * LOOKUP_KEY_BYTES);
        const first = index.add(keys, count);
        if (first >= 0) {
          reject(line, `duplicate of line ${lineOf[first]}`, value);
          continue;
        }
        lineOf[count++] = line;
      }
    } catch (err) {
      if (err instanceof AppError) throw err;
      throw new AppError('VALIDATION', `CSV could not be parsed: ${(err as Error).message}`);
    }
    if (badCount > 0) {
      const listed = bad.map((b) => `line ${b.line}: ${b.reason} (${JSON.stringify(b.value)})`).join('; ');
      const more = badCount > bad.length ? `; … and ${badCount - bad.length} more` : '';
      throw new AppError('VALIDATION', `CSV rejected, ${badCount} bad line${badCount > 1 ? 's' : ''}: ${listed}${more}`, { badLines: bad, badCount });
    }
    if (count === 0) throw new AppError('VALIDATION', 'CSV contains no codes');
    return { keys: keys.subarray(0, count * LOOKUP_KEY_BYTES), count, lineOf, index };
  }

  /** Codes of the file that already exist in `codes` → CONFLICT listing their lines. */
  async function checkExisting(parsed: ParsedImport): Promise<void> {
    const found: Array<{ line: number; batchId: number }> = [];
    const PAGE = 5000;
    for (let i = 0; i < parsed.count; i += PAGE) {
      const hex: string[] = [];
      for (let k = i; k < Math.min(parsed.count, i + PAGE); k++) hex.push(parsed.keys.toString('hex', k * LOOKUP_KEY_BYTES, (k + 1) * LOOKUP_KEY_BYTES));
      const rows = await database.prepared<{ key: string; batch_id: number }>('codes_existing_keys',
        `SELECT encode(key, 'hex') AS key, batch_id FROM codes WHERE key = ANY (SELECT decode(h, 'hex') FROM unnest($1::text[]) AS h)`, [hex]);
      for (const r of rows) {
        const at = parsed.index.find(parsed.keys, Buffer.from(r.key, 'hex'));
        found.push({ line: at >= 0 ? parsed.lineOf[at]! : 0, batchId: Number(r.batch_id) });
      }
    }
    if (found.length === 0) return;
    found.sort((a, b) => a.line - b.line);
    const listed = found.slice(0, MAX_LISTED_LINES).map((f) => `line ${f.line} (batch ${f.batchId})`).join(', ');
    throw new AppError('CONFLICT', `CSV rejected, ${found.length} code${found.length > 1 ? 's' : ''} already exist${found.length > 1 ? '' : 's'}: ${listed}${found.length > MAX_LISTED_LINES ? ', …' : ''}`,
      { existing: found.slice(0, MAX_LISTED_LINES) });
  }

  /* ---------------------------------------------------------------------------------------------------------------- */
  /* Export                                                                                                           */
  /* ---------------------------------------------------------------------------------------------------------------- */

  /** Validate that a batch can be exported; returns the writer. */
  async function openExport(batchId: number): Promise<{ batch: BatchInfo; write(out: NodeJS.WritableStream, onProgress?: Progress): Promise<void> }> {
    const batch = await batchOr404(batchId);
    if (batch.source === 'imported' || !batch.nonce) {
      throw new AppError('CONFLICT', `code batch ${batchId} was imported: only keyed hashes (HMAC) of its codes are stored, so its codes cannot be exported — use the printer's original file`);
    }
    if (batch.status === 'loading') throw new AppError('CONFLICT', `code batch ${batchId} is still loading (retry or discard it)`);
    // A voided batch may still be exported (e.g. to identify the packs to pull back); its codes stay unredeemable.
    const nonce = batch.nonce;
    return {
      batch: info(batch),
      async write(out, onProgress) {
        const job: ChunkJob = { codeKey, streamKey: batchStreamKey(codeKey, nonce), length: batch.codeLength, batchId: batch.id, count: batch.count, csv: true };
        const runner = await openRunner(job, batch.count, deps.workers);
        try {
          await writeOut(out, CSV_HEADER);
          const chunks = chunkCount(batch.count);
          let done = 0;
          for await (const r of ordered(chunks, Math.max(1, 2 * runner.threads + 2), (i) => runner.chunk(i))) {
            await writeOut(out, r.csv!);
            done = Math.min(batch.count, done + DERIVE_CHUNK);
            onProgress?.(done, batch.count, 'export');
          }
          await endOut(out);
        } finally {
          await runner.close();
        }
      },
    };
  }

  /* ---------------------------------------------------------------------------------------------------------------- */
  /* Public API                                                                                                       */
  /* ---------------------------------------------------------------------------------------------------------------- */

  return {
    /**
     * Generate `count` codes for the campaign (length = campaign.codeLength), store their lookup keys (deck campaigns:
     * with the dealt prize per seq) and, when `out` is given, write the printer CSV (then end `out`). Returns the
     * active batch. Errors: NOT_FOUND (campaign), CONFLICT (campaign ended), VALIDATION (count, deck).
     */
    async generate(input: GenerateInput): Promise<BatchInfo> {
      checkCount(input.count, MAX_BATCH_CODES);
      checkDeckParam(input.deck);
      const c = await campaignOr404(input.campaignId);
      checkOpen(c);
      if (c.prizeMode === 'deck') {
        // Fail fast on a bad deck before a batch row exists (checked again, authoritatively, under the lock).
        await withLoadTx((tx) => deckUnits(tx.query, c.id, 0, input.count, input.deck));
        c.deckSeed = await ensureDeckSeed(c);
      }
      const now = clock.now();
      const [batch] = await db.insert(codeBatches).values({
        campaignId: c.id,
        name: input.name?.trim() || `${input.count} codes ${now.toISOString().slice(0, 10)}`,
        source: 'generated',
        sku: input.sku ?? null,
        count: input.count,
        status: 'loading',
        nonce: randomBytes(NONCE_BYTES),
        codeLength: c.codeLength,
        createdAt: now,
        createdBy: input.createdBy ?? null,
      }).returning();
      try {
        await loadGenerated(batch!, c, input);
      } catch (err) {
        await dropLoading(batch!.id);
        throw err;
      }
      return info(await batchOr404(batch!.id));
    },

    /**
     * Import a printer's CSV as a batch (nonce NULL: not exportable). All or nothing: any bad line (not a code, wrong
     * check character, duplicate within the file) or a code that already exists rejects the file, listing up to 20
     * lines (VALIDATION / CONFLICT).
     */
    async importCsv(input: ImportInput): Promise<BatchInfo> {
      const name = input.name?.trim();
      if (!name) throw new AppError('VALIDATION', 'name is required');
      checkDeckParam(input.deck);
      const c = await campaignOr404(input.campaignId);
      checkOpen(c);
      const parsed = await parseImport(input.input, c.codeLength);
      await checkExisting(parsed);
      if (c.prizeMode === 'deck') {
        await withLoadTx((tx) => deckUnits(tx.query, c.id, 0, parsed.count, input.deck));
        c.deckSeed = await ensureDeckSeed(c);
      }
      const now = clock.now();
      const [batch] = await db.insert(codeBatches).values({
        campaignId: c.id, name, source: 'imported', sku: input.sku ?? null, count: parsed.count, status: 'loading', nonce: null,
        codeLength: c.codeLength, createdAt: now, createdBy: input.createdBy ?? null,
      }).returning();
      const id = batch!.id;
      try {
        await withLoadTx(async (tx) => {
          await lockLoading(tx, id);
          const deck = await dealDeck(tx, c, id, parsed.count, input.deck);
          const buckets = allocBuckets(layoutForKeys(parsed.keys, parsed.count), false);
          scatterRows(buckets, parsed.keys, parsed.count, 0, deck);
          const runner = await openRunner({ codeKey, streamKey: Buffer.alloc(32), length: c.codeLength, batchId: id, count: parsed.count, csv: false, buckets }, 0, 0);
          try {
            await tx.copyIn(encodedRows(runner, buckets, parsed.count));
          } catch (err) {
            if (isUniqueViolation(err)) throw new AppError('CONFLICT', 'a code of the file was loaded by another batch meanwhile; import again to see which');
            if (err instanceof RetryableLoad) throw new AppError('VALIDATION', 'CSV contains the same code twice');
            throw err;
          }
          await activate(tx, id, parsed.count, null);
        });
      } catch (err) {
        await dropLoading(id);
        throw err;
      }
      return info(await batchOr404(id));
    },

    /** Write a generated batch's CSV (same bytes as generate's `out`) to `out`, then end it. Imported: CONFLICT. */
    async exportCsv(batchId: number, out: NodeJS.WritableStream, onProgress?: Progress): Promise<void> {
      const e = await openExport(batchId);
      await e.write(out, onProgress);
    },

    /** exportCsv in two steps, so an HTTP route can answer errors before it starts streaming. */
    openExport,

    /** Void a batch: its codes can no longer be redeemed (idempotent). `actor` is for the caller's audit trail. */
    async voidBatch(batchId: number, _actor?: string): Promise<BatchInfo> {
      const b = await batchOr404(batchId);
      if (b.status === 'voided') return info(b);
      if (b.status === 'loading') throw new AppError('CONFLICT', `code batch ${batchId} is still loading: discard it instead`);
      const [row] = await db.update(codeBatches).set({ status: 'voided', voidedAt: clock.now() })
        .where(and(eq(codeBatches.id, batchId), eq(codeBatches.status, 'active'))).returning();
      return info(row ?? (await batchOr404(batchId)));
    },

    /**
     * Reload a batch left 'loading' by a crash. Generated: the same codes again (same nonce), so a CSV already written
     * stays valid; `out` receives it again. Imported batches cannot be reloaded (their codes are not stored): discard.
     */
    async retry(batchId: number, opts: Pick<GenerateInput, 'deck' | 'out' | 'onProgress' | 'onTimings'> = {}): Promise<BatchInfo> {
      checkDeckParam(opts.deck);
      const b = await batchOr404(batchId);
      if (b.status !== 'loading') throw new AppError('CONFLICT', `code batch ${batchId} is ${b.status}, not loading`);
      if (b.source !== 'generated' || !b.nonce) throw new AppError('CONFLICT', `code batch ${batchId} was imported: discard it and import the file again`);
      const c = await campaignOr404(b.campaignId);
      checkOpen(c);
      if (c.prizeMode === 'deck') c.deckSeed = await ensureDeckSeed(c);
      await withLoadTx(async (tx) => {
        await lockLoading(tx, batchId);
        await tx.query('DELETE FROM codes WHERE batch_id = $1', [batchId]);
      });
      await loadGenerated(b, c, opts);
      return info(await batchOr404(batchId));
    },

    /** Remove a batch left 'loading' (and any codes of it). CONFLICT if it is not loading or being loaded right now. */
    async discard(batchId: number): Promise<void> {
      await withLoadTx(async (tx) => {
        let row: { status: string } | undefined;
        try {
          [row] = await tx.query<{ status: string }>(`SELECT status FROM code_batches WHERE id = $1 FOR UPDATE${database.kind === 'postgres' ? ' NOWAIT' : ''}`, [batchId]);
        } catch (err) {
          if ((err as { code?: string }).code === '55P03') throw new AppError('CONFLICT', `code batch ${batchId} is being loaded right now`);
          throw err;
        }
        if (!row) throw new AppError('NOT_FOUND', `code batch ${batchId} not found`);
        if (row.status !== 'loading') throw new AppError('CONFLICT', `code batch ${batchId} is ${row.status}; only a loading batch can be discarded (void it instead)`);
        await tx.query('DELETE FROM codes WHERE batch_id = $1', [batchId]);
        await tx.query('DELETE FROM code_batches WHERE id = $1', [batchId]);
      });
    },

    async list(campaignId: number): Promise<BatchInfo[]> {
      await campaignOr404(campaignId);
      const rows = await db.select().from(codeBatches).where(eq(codeBatches.campaignId, campaignId)).orderBy(asc(codeBatches.id));
      return rows.map(info);
    },

    async get(batchId: number): Promise<BatchInfo> {
      return info(await batchOr404(batchId));
    },
  };
}

export type CodeBatchService = ReturnType<typeof createCodeBatchService>;
