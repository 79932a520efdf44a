/**
 * The pure half of code batches (no database, no Fastify; also loaded by the generation worker): how a generated
 * batch's codes are derived from its nonce, the printer CSV, the deck shuffle, sorting lookup keys for the bulk load,
 * and the PostgreSQL binary COPY encoding of `codes` rows.
 *
 * Derivation of a generated batch (format v1 — never change it: exports of existing batches depend on it)
 * - streamKey = HMAC-SHA256(CODE_KEY, ASCII "batch-codes:" ‖ nonce), nonce = the batch's 16 random bytes
 *   (code_batches.nonce). Without CODE_KEY the nonce stored in the database reveals nothing about the codes.
 * - The batch is cut into chunks of DERIVE_CHUNK (65,536) codes in print order; chunk j (codes at seq
 *   j·65536 … j·65536 + 65535) reads the AES-256-CTR keystream under streamKey with the 16-byte counter block
 *   IV = uint64be(j) ‖ uint64be(0). Chunks are independent, so they can be derived in parallel and a single chunk can be
 *   re-derived without the ones before it.
 * - The keystream bytes are the RandomFill of codes.ts's CodeGenerator for the campaign's code length: rejection
 *   sampling (bytes ≥ 248 skipped), data characters, then the check character — exactly as for fresh codes. The
 *   generator consumes the stream strictly in order, so its pool size has no influence on the codes.
 * AES-CTR under a secret key is a standard keyed DRBG (cf. NIST SP 800-90A CTR_DRBG): its output is
 * indistinguishable from random to anyone without streamKey, so the codes keep the properties described in codes.ts.
 */
import { createCipheriv, createHash, createHmac } from 'node:crypto';
import { CodeGenerator, LOOKUP_KEY_BYTES, type LookupKeyer, type RandomFill } from './codes.ts';

export const NONCE_BYTES = 16;
/** Codes per derivation chunk (part of the derivation format: do not change). */
export const DERIVE_CHUNK = 65_536;

/** streamKey = HMAC-SHA256(codeKey, "batch-codes:" ‖ nonce). */
export function batchStreamKey(codeKey: Buffer, nonce: Uint8Array): Buffer {
  if (nonce.length !== NONCE_BYTES) throw new RangeError(`batch nonce must be ${NONCE_BYTES} bytes`);
  return createHmac('sha256', codeKey).update('batch-codes:', 'latin1').update(nonce).digest();
}

/** AES-256-CTR keystream of one chunk as a RandomFill (each call continues the stream). */
export function chunkKeystream(streamKey: Buffer, chunk: number): RandomFill {
  const iv = Buffer.alloc(16);
  iv.writeBigUInt64BE(BigInt(chunk), 0);
  const cipher = createCipheriv('aes-256-ctr', streamKey, iv);
  let zeros = Buffer.alloc(0);
  return (buf) => {
    if (zeros.length !== buf.length) zeros = Buffer.alloc(buf.length);
    buf.set(cipher.update(zeros));
  };
}

export function chunkCount(count: number): number {
  return Math.ceil(count / DERIVE_CHUNK);
}

/** Number of codes in chunk `chunk` of a batch of `count`. */
export function chunkSize(count: number, chunk: number): number {
  return Math.max(0, Math.min(DERIVE_CHUNK, count - chunk * DERIVE_CHUNK));
}

/** The codes of one chunk as ASCII bytes, (length + 1) per code, no separator. */
export function deriveChunkCodes(streamKey: Buffer, chunk: number, count: number, length: number): Buffer {
  // Pool sized so one keystream call usually covers the chunk (expected need: count·length·256/248 bytes).
  const gen = new CodeGenerator({ length, random: chunkKeystream(streamKey, chunk) }, count * length * 1.04 + 256);
  return gen.block(count);
}

/** Lookup keys of `count` codes in `block` into keys[offset…] (16 bytes each). */
export function keyBlock(keyer: LookupKeyer, block: Uint8Array, count: number, stride: number, keys: Uint8Array, offset = 0): void {
  for (let i = 0, s = 0, o = offset; i < count; i++, s += stride, o += LOOKUP_KEY_BYTES) keyer.keyInto(block, s, stride, keys, o);
}

/* ------------------------------------------------------------------------------------------------------------------ */
/* Printer CSV                                                                                                        */
/* ------------------------------------------------------------------------------------------------------------------ */

/**
 * The printer's CSV: a header line, then one line per code in print order (seq ascending), LF line ends, ASCII:
 *
 *   code,batch,seq
 *   7KQ3MXW9HD2RT,12,0
 *
 * `code` is the canonical code (data + check character, no separators); the printer lays it out grouped for the pack
 * with formatForPrint's rule (groups of 4 joined by '-': 7KQ3-MXW9-HD2RT) — normalizeCode accepts both forms.
 * `batch` is the batch id and `seq` the 0-based position in the batch (which also places the deck prize).
 */
export const CSV_HEADER = 'code,batch,seq\n';

const DIGITS = new Uint8Array(10);
function writeUint(buf: Uint8Array, o: number, v: number): number {
  let n = 0;
  do {
    DIGITS[n++] = 48 + (v % 10);
    v = Math.floor(v / 10);
  } while (v > 0);
  while (n > 0) buf[o++] = DIGITS[--n]!;
  return o;
}

/** CSV lines (no header) for `count` codes of `block`, seq from `seqStart`. */
export function csvLines(block: Uint8Array, count: number, stride: number, batchId: number, seqStart: number): Buffer {
  const batchDigits = Buffer.from(`,${batchId},`, 'latin1');
  const out = Buffer.allocUnsafe(count * (stride + batchDigits.length + 11));
  let o = 0;
  for (let i = 0, s = 0; i < count; i++, s += stride) {
    for (let k = 0; k < stride; k++) out[o++] = block[s + k]!;
    out.set(batchDigits, o);
    o += batchDigits.length;
    o = writeUint(out, o, seqStart + i);
    out[o++] = 0x0a;
  }
  return out.subarray(0, o);
}

/* ------------------------------------------------------------------------------------------------------------------ */
/* Deck                                                                                                               */
/* ------------------------------------------------------------------------------------------------------------------ */

export interface DeckUnits {
  prizeId: number;
  count: number;
}

/**
 * The deck of a batch, as an Int32Array of `count` prize ids in seq order (0 = no prize, "thanks"):
 * 1. laid out in the given order (the campaign's prizes by position): units[0].count × units[0].prizeId, then
 *    units[1] …, then zeros up to `count`;
 * 2. shuffled by Fisher–Yates: for i = count−1 down to 1, j = uniform integer in [0, i], swap deck[i] and deck[j];
 * 3. the uniform integers come from a deterministic PRNG: AES-256-CTR keystream with key
 *    SHA-256(UTF-8(seed + ':' + batchId)) (seed = the campaign's deck_seed hex string, batchId in decimal), IV = 16 zero
 *    bytes, read 4 bytes at a time as uint32 little-endian; for range r = i + 1 a value u is accepted when
 *    u < 2³² − (2³² mod r) and gives j = u mod r, otherwise the next uint32 is drawn (rejection sampling, unbiased).
 * With the seed published after the campaign (commit–reveal: deck_seed_hash = SHA-256 of the seed string, published
 * before), anyone can recompute every batch's deck with recomputeDeck and compare it with the prizes issued.
 * (A deck of zero prizes is all zeros, which the shuffle cannot change, so it is returned unshuffled.)
 */
export function shuffleDeck(seed: string, batchId: number, units: readonly DeckUnits[], count: number): Int32Array {
  if (!Number.isSafeInteger(count) || count < 0 || count >= 2 ** 31) throw new RangeError('deck count out of range');
  let total = 0;
  for (const u of units) {
    if (!Number.isSafeInteger(u.prizeId) || u.prizeId <= 0 || u.prizeId >= 2 ** 31) throw new RangeError(`bad prize id ${u.prizeId}`);
    if (!Number.isSafeInteger(u.count) || u.count < 0) throw new RangeError(`bad unit count ${u.count} for prize ${u.prizeId}`);
    total += u.count;
  }
  if (total > count) throw new RangeError(`deck of ${total} prizes exceeds the batch of ${count} codes`);
  const deck = new Int32Array(count);
  let o = 0;
  for (const u of units) {
    deck.fill(u.prizeId, o, o + u.count);
    o += u.count;
  }
  if (total === 0) return deck;

  const key = createHash('sha256').update(`${seed}:${batchId}`, 'utf8').digest();
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  const BUF_WORDS = 16_384;
  const zeros = Buffer.alloc(BUF_WORDS * 4);
  let words = new Uint32Array(0);
  let w = 0;
  const next = (): number => {
    if (w === words.length) {
      const ks = cipher.update(zeros);
      words = new Uint32Array(BUF_WORDS);
      for (let k = 0; k < BUF_WORDS; k++) words[k] = ks.readUInt32LE(4 * k);
      w = 0;
    }
    return words[w++]!;
  };
  for (let i = count - 1; i > 0; i--) {
    const range = i + 1;
    const limit = 4294967296 - (4294967296 % range);
    let u: number;
    do u = next();
    while (u >= limit);
    const j = u % range;
    const t = deck[i]!;
    deck[i] = deck[j]!;
    deck[j] = t;
  }
  return deck;
}

/**
 * Recompute a batch's deck from the revealed seed: element i is the prize id the code at seq i carries, null = thanks.
 * `units` are the batch's prizes with their unit counts in the campaign's prize position order (see shuffleDeck).
 */
export function recomputeDeck(seed: string, batchId: number, units: readonly DeckUnits[], count: number): Array<number | null> {
  return Array.from(shuffleDeck(seed, batchId, units, count), (p) => (p === 0 ? null : p));
}

/** deck_seed_hash: SHA-256 hex of the UTF-8 bytes of the seed string (64 lowercase hex characters). */
export function deckSeedHash(seed: string): string {
  return createHash('sha256').update(seed, 'utf8').digest('hex');
}

/* ------------------------------------------------------------------------------------------------------------------ */
/* Key-ordered rows for the bulk load                                                                                  */
/* ------------------------------------------------------------------------------------------------------------------ */

/*
 * Rows reach COPY sorted by lookup key, so the primary-key btree of `codes` is filled left to right (PostgreSQL's
 * rightmost-leaf fast path) instead of at random pages: measured on this machine, 10M rows into the PK table load
 * ≈ 5× faster sorted than in generation order. Sorting is a one-pass radix partition plus small in-cache sorts:
 *  1. scatter: each row (key, seq, prize) is appended to the bucket of its key's top `bits` bits (≈ 1,000–2,500 rows
 *     per bucket); generation workers do this chunk by chunk into shared memory, reserving slots with Atomics;
 *  2. per bucket, in key order: sort the bucket's rows (counting sort on the next 11 key bits, then an insertion pass
 *     on the full key — HMAC keys are uniform, so that pass is linear) and encode them as binary COPY rows.
 * A row whose key equals another's is reported as a duplicate (the caller discards the attempt).
 */

/** Bytes per bucketed row: key (16), seq (uint32 LE), prize id (int32 LE, 0 = none). */
export const REC_BYTES = LOOKUP_KEY_BYTES + 8;
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

export interface BucketLayout {
  /** A row's bucket is the top `bits` bits of its key (0 → a single bucket). */
  bits: number;
  /** Row region of bucket b: [start[b], start[b + 1]) (length 2^bits + 1). */
  start: Int32Array;
}

export interface Buckets extends BucketLayout {
  /** Rows, REC_BYTES each (on a SharedArrayBuffer when workers fill it). */
  rec: Uint8Array;
  /** Rows appended per bucket (Atomics); may exceed the region on overflow, which encodeBuckets reports. */
  fill: Int32Array;
}

function bucketBits(n: number): number {
  return Math.max(0, Math.min(12, Math.ceil(Math.log2(Math.max(1, n / 1024)))));
}

/** Buckets with room for `n` uniformly distributed keys: mean + 10σ + 32 per bucket (overflow ≈ never; see encode). */
export function layoutForUniform(n: number): BucketLayout {
  const bits = bucketBits(n);
  const count = 1 << bits;
  const mean = n / count;
  const cap = count === 1 ? n : Math.ceil(mean + 10 * Math.sqrt(mean) + 32);
  const start = new Int32Array(count + 1);
  for (let b = 0; b <= count; b++) start[b] = b * cap;
  return { bits, start };
}

/** Buckets sized exactly for the given keys (known in advance, e.g. an import). */
export function layoutForKeys(keys: Uint8Array, n: number): BucketLayout {
  const bits = bucketBits(n);
  const count = 1 << bits;
  const start = new Int32Array(count + 1);
  if (bits > 0) {
    for (let i = 0, o = 0; i < n; i++, o += LOOKUP_KEY_BYTES) start[keyBucket(keys, o, bits) + 1]!++;
    for (let b = 1; b <= count; b++) start[b]! += start[b - 1]!;
  } else start[1] = n;
  return { bits, start };
}

export function allocBuckets(layout: BucketLayout, shared: boolean): Buckets {
  const count = layout.start.length - 1;
  const rows = layout.start[count]!;
  const Buf = shared ? SharedArrayBuffer : ArrayBuffer;
  return { ...layout, rec: new Uint8Array(new Buf(rows * REC_BYTES)), fill: new Int32Array(new Buf(count * 4)) };
}

function keyBucket(keys: Uint8Array, o: number, bits: number): number {
  return bits === 0 ? 0 : (((keys[o]! << 24) | (keys[o + 1]! << 16) | (keys[o + 2]! << 8) | keys[o + 3]!) >>> (32 - bits));
}

/**
 * Append rows seqStart … seqStart + count − 1 (keys[16·i …] for row i of this call; prize deck[seq] if a deck is given)
 * to their buckets. Returns false if a bucket overflowed its region (its rows are then incomplete).
 */
export function scatterRows(b: Buckets, keys: Uint8Array, count: number, seqStart: number, deck: Int32Array | null): boolean {
  const { rec, fill, start, bits } = b;
  // Word-at-a-time when the buffers allow it (aligned, little-endian host): 6 stores per row instead of 24.
  const words = LITTLE_ENDIAN && keys.byteOffset % 4 === 0 && rec.byteOffset % 4 === 0;
  const rec32 = words ? new Uint32Array(rec.buffer, rec.byteOffset, rec.byteLength >>> 2) : null;
  const keys32 = words ? new Uint32Array(keys.buffer, keys.byteOffset, (count * LOOKUP_KEY_BYTES) >>> 2) : null;
  let ok = true;
  for (let i = 0, o = 0; i < count; i++, o += LOOKUP_KEY_BYTES) {
    const bucket = keyBucket(keys, o, bits);
    const slot = Atomics.add(fill, bucket, 1);
    const at = start[bucket]! + slot;
    if (at >= start[bucket + 1]!) {
      ok = false;
      continue;
    }
    const seq = seqStart + i;
    const prize = deck ? deck[seq]! : 0;
    if (rec32 && keys32) {
      const w = at * (REC_BYTES >>> 2);
      const k = o >>> 2;
      rec32[w] = keys32[k]!;
      rec32[w + 1] = keys32[k + 1]!;
      rec32[w + 2] = keys32[k + 2]!;
      rec32[w + 3] = keys32[k + 3]!;
      rec32[w + 4] = seq;
      rec32[w + 5] = prize;
      continue;
    }
    let r = at * REC_BYTES;
    for (let k = 0; k < LOOKUP_KEY_BYTES; k++) rec[r++] = keys[o + k]!;
    rec[r] = seq & 255; rec[r + 1] = (seq >>> 8) & 255; rec[r + 2] = (seq >>> 16) & 255; rec[r + 3] = seq >>> 24;
    rec[r + 4] = prize & 255; rec[r + 5] = (prize >>> 8) & 255; rec[r + 6] = (prize >>> 16) & 255; rec[r + 7] = prize >>> 24;
  }
  return ok;
}

/** The COPY statement the encoded rows are for (binary format: no text escaping or hex decoding on the server). */
export const COPY_COLUMNS = '(key, batch_id, seq, prize_id)';
/** Binary COPY file header: signature, flags (int32 0), header extension length (int32 0). */
export const COPY_BINARY_HEADER = Buffer.concat([Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1'), Buffer.alloc(8)]);
/** File trailer: a field count of −1. */
export const COPY_BINARY_TRAILER = Buffer.from([0xff, 0xff]);
/** Bytes per row at most: field count, key (length + 16), batch_id, seq, prize_id (length + 4 each). */
export const COPY_ROW_BYTES = 2 + 4 + LOOKUP_KEY_BYTES + 3 * 8;

let sortIdx = new Uint32Array(0);
let sortTmp = new Uint32Array(0);
let sortW = new Uint32Array(0);
const subCounts = new Uint32Array(2048);

/** Key order of one bucket's rows (indices relative to `base`) in sortIdx[0, n); returns whether two keys are equal. */
function sortBucket(rec: Uint8Array, base: number, n: number, bits: number): boolean {
  if (sortIdx.length < n) {
    sortIdx = new Uint32Array(n * 2);
    sortTmp = new Uint32Array(n * 2);
    sortW = new Uint32Array(n * 2);
  }
  const idx = sortIdx;
  const w = sortW;
  for (let i = 0, r = base * REC_BYTES; i < n; i++, r += REC_BYTES) w[i] = ((rec[r]! << 24) | (rec[r + 1]! << 16) | (rec[r + 2]! << 8) | rec[r + 3]!) >>> 0;
  if (n > 64) {
    // counting sort on the 11 bits below the bucket bits
    const shift = Math.max(0, 32 - bits - 11);
    subCounts.fill(0);
    for (let i = 0; i < n; i++) subCounts[(w[i]! >>> shift) & 2047]!++;
    let sum = 0;
    for (let d = 0; d < 2048; d++) {
      const c = subCounts[d]!;
      subCounts[d] = sum;
      sum += c;
    }
    for (let i = 0; i < n; i++) sortTmp[subCounts[(w[i]! >>> shift) & 2047]!++] = i;
    idx.set(sortTmp.subarray(0, n));
  } else {
    for (let i = 0; i < n; i++) idx[i] = i;
  }
  // insertion pass on the full key: (first 4 bytes as uint32, then bytes 4..15)
  let duplicate = false;
  for (let a = 1; a < n; a++) {
    const v = idx[a]!;
    const wv = w[v]!;
    let b = a - 1;
    while (b >= 0) {
      const u = idx[b]!;
      let c = w[u]! - wv;
      if (c === 0) {
        const ou = (base + u) * REC_BYTES;
        const ov = (base + v) * REC_BYTES;
        for (let k = 4; k < LOOKUP_KEY_BYTES && c === 0; k++) c = rec[ou + k]! - rec[ov + k]!;
        if (c === 0) duplicate = true;
      }
      if (c <= 0) break;
      idx[b + 1] = u;
      b--;
    }
    idx[b + 1] = v;
  }
  return duplicate;
}

export type EncodeResult = { ok: true; buf: Buffer; rows: number } | { ok: false; reason: 'duplicate' | 'overflow' };

/** Binary COPY rows (no header/trailer) of buckets [b0, b1) in key order. */
export function encodeBuckets(b: Buckets, b0: number, b1: number, batchId: number): EncodeResult {
  const { rec, fill, start, bits } = b;
  let rows = 0;
  for (let k = b0; k < b1; k++) {
    const n = Atomics.load(fill, k);
    if (start[k]! + n > start[k + 1]!) return { ok: false, reason: 'overflow' };
    rows += n;
  }
  const out = Buffer.allocUnsafe(rows * COPY_ROW_BYTES);
  const b0b = batchId >>> 24, b1b = (batchId >>> 16) & 255, b2b = (batchId >>> 8) & 255, b3b = batchId & 255;
  let o = 0;
  for (let k = b0; k < b1; k++) {
    const n = fill[k]!;
    const base = start[k]!;
    if (sortBucket(rec, base, n, bits)) return { ok: false, reason: 'duplicate' };
    for (let i = 0; i < n; i++) {
      let r = (base + sortIdx[i]!) * REC_BYTES;
      // field count 4; key: length 16 + bytes
      out[o] = 0; out[o + 1] = 4; out[o + 2] = 0; out[o + 3] = 0; out[o + 4] = 0; out[o + 5] = LOOKUP_KEY_BYTES;
      o += 6;
      for (let e = r + LOOKUP_KEY_BYTES; r < e; r++) out[o++] = rec[r]!;
      // batch_id
      out[o] = 0; out[o + 1] = 0; out[o + 2] = 0; out[o + 3] = 4;
      out[o + 4] = b0b; out[o + 5] = b1b; out[o + 6] = b2b; out[o + 7] = b3b;
      // seq (stored little-endian in the record, big-endian on the wire)
      out[o + 8] = 0; out[o + 9] = 0; out[o + 10] = 0; out[o + 11] = 4;
      out[o + 12] = rec[r + 3]!; out[o + 13] = rec[r + 2]!; out[o + 14] = rec[r + 1]!; out[o + 15] = rec[r]!;
      o += 16;
      if ((rec[r + 4]! | rec[r + 5]! | rec[r + 6]! | rec[r + 7]!) === 0) {
        out[o] = 255; out[o + 1] = 255; out[o + 2] = 255; out[o + 3] = 255;
        o += 4;
      } else {
        out[o] = 0; out[o + 1] = 0; out[o + 2] = 0; out[o + 3] = 4;
        out[o + 4] = rec[r + 7]!; out[o + 5] = rec[r + 6]!; out[o + 6] = rec[r + 5]!; out[o + 7] = rec[r + 4]!;
        o += 8;
      }
    }
  }
  return { ok: true, buf: out.subarray(0, o), rows };
}

/** Buckets per encode task so that one task is ≈ `rows` rows. */
export function bucketsPerTask(b: BucketLayout, rows = 65_536): number {
  const count = b.start.length - 1;
  const total = b.start[count]!;
  const perBucket = Math.max(1, total / count);
  return Math.max(1, Math.min(count, Math.round(rows / perBucket)));
}

/**
 * Everything a generation worker needs to derive, key, CSV-format and scatter chunks (structured-clone friendly).
 */
export interface ChunkJob {
  codeKey: Buffer | Uint8Array;
  streamKey: Buffer | Uint8Array;
  length: number;
  batchId: number;
  count: number;
  csv: boolean;
  /** Absent for export (CSV only). */
  buckets?: Buckets;
  deck?: Int32Array | null;
}

/** Derive chunk `chunk`, key it and scatter its rows (when job.buckets), and format its CSV lines (when job.csv). */
export function processChunk(job: ChunkJob, keyer: LookupKeyer | null, chunk: number): { csv: Buffer | null; overflow: boolean } {
  const n = chunkSize(job.count, chunk);
  const stride = job.length + 1;
  const streamKey = Buffer.isBuffer(job.streamKey) ? job.streamKey : Buffer.from(job.streamKey.buffer, job.streamKey.byteOffset, job.streamKey.byteLength);
  const block = deriveChunkCodes(streamKey, chunk, n, job.length);
  let overflow = false;
  if (job.buckets && keyer) {
    const keys = chunkKeys(n);
    keyBlock(keyer, block, n, stride, keys);
    overflow = !scatterRows(job.buckets, keys, n, chunk * DERIVE_CHUNK, job.deck ?? null);
  }
  return { csv: job.csv ? csvLines(block, n, stride, job.batchId, chunk * DERIVE_CHUNK) : null, overflow };
}

let keysScratch = new Uint8Array(0);
function chunkKeys(n: number): Uint8Array {
  if (keysScratch.length < n * LOOKUP_KEY_BYTES) keysScratch = new Uint8Array(DERIVE_CHUNK * LOOKUP_KEY_BYTES);
  return keysScratch;
}
