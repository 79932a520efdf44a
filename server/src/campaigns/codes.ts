/**
 * On-pack promotion codes: generation, check character, consumer-input normalization, classification for the chat
 * router, and the keyed lookup hash the database stores instead of the code. Pure: no database, no Fastify.
 *
 * A code is `length` data characters (default 12) followed by one check character, all from CODE_ALPHABET, e.g.
 * `7KQ3MXW9HD2RT`; on the pack it is printed grouped, `7KQ3-MXW9-HD2RT` (formatForPrint).
 *
 * Security properties
 * - Data characters come from node:crypto's CSPRNG (randomFillSync, i.e. OpenSSL's DRBG) through rejection sampling,
 *   so every symbol is uniform and independent: a code says nothing about any other code (no counter, no seed, no
 *   structure but the public check character). 12 data characters carry 12·log2(31) ≈ 59.4 bits; with 10 million
 *   codes in circulation a guessed code (with a correct check character) is valid with probability ≈ 1.3·10⁻¹¹.
 * - The check character is error detection, not authentication: anyone can compute it. It lets the chat reject a
 *   mistyped code ("typo") before any database lookup and tell the consumer to re-check, instead of "invalid code".
 * - The database stores codeLookupKey(code) = HMAC-SHA256(secret, code) truncated to 16 bytes, never the code: a copy
 *   of the database reveals no usable code, and without the secret the keys can be neither reversed nor enumerated
 *   (one cannot even test a guess offline). The secret must therefore live outside the database (environment / KMS).
 *   With the secret an attacker could brute-force the ~7.9·10¹⁷ candidate codes against the stolen keys, which is
 *   why it must not be stored with the data. 16 bytes (128 bits) keep accidental collisions between 10⁷–10⁹ codes
 *   at < 10⁻²⁰ while halving index size versus the full 32-byte MAC.
 */
import { createHash, createHmac, randomFillSync } from 'node:crypto';

/**
 * The 31 symbols: digits and uppercase Latin letters minus 0 O 1 I L (the classic look-alikes: 0/O/Q-ish, 1/I/L/l/7).
 *
 * Why 31 and not 32: 31 is prime, so a weighted sum mod 31 with pairwise distinct non-zero weights detects *every*
 * single substitution and *every* transposition (see WEIGHTS below). Mod 32 cannot have both: an even weight misses
 * some substitutions (w·16 ≡ 0), and two odd weights differ by an even number, so swapping symbols 16 apart goes
 * unnoticed. Luhn mod N misses one transposition pair at any N (values 0 and N−1, like Luhn's 09↔90).
 * Removing exactly 0 O 1 I L from the 36 alphanumerics leaves exactly 31, so there is nothing to add or drop.
 *
 * Why keep 2/Z, 5/S, 8/B, U/V: dropping any of them would leave 29 or fewer symbols (≈ 0.1 bit/char less, a longer
 * code for the same entropy), and in the upper-case sans-serif face the pack is printed with they are clearly
 * distinct; the remaining risk (a consumer typing S for 5 on a phone keyboard) is exactly a single substitution,
 * which the check character always catches, so the consumer is told to re-check rather than told "invalid".
 * Upper case only; normalizeCode accepts lower case (and full-width) input.
 */
export const CODE_ALPHABET = '23456789ABCDEFGHJKMNPQRSTUVWXYZ';

const N = 31;
/** 3 is a primitive root mod 31: 3^0 … 3^29 are 30 distinct non-zero residues. */
const GENERATOR = 3;

export const DEFAULT_CODE_LENGTH = 12;
export const MIN_CODE_LENGTH = 6;
/** Data + check must be ≤ 30 characters so the check weights 3^k are pairwise distinct (ord(3) mod 31 = 30). */
export const MAX_CODE_LENGTH = 29;
/** Inputs longer than this (raw UTF-16 units) are ordinary chat text; they are never normalized. */
export const MAX_CODE_INPUT_LENGTH = 64;

if (CODE_ALPHABET.length !== N || new Set(CODE_ALPHABET).size !== N) throw new Error('CODE_ALPHABET must have 31 distinct symbols');

const ALPHABET_BYTES = Uint8Array.from(CODE_ALPHABET, (c) => c.charCodeAt(0));
/** ASCII code → symbol value 0..30, or -1. */
const CHAR_VALUE = new Int8Array(128).fill(-1);
for (let v = 0; v < N; v++) CHAR_VALUE[ALPHABET_BYTES[v]!] = v;

/**
 * Rejection sampling: a random byte b < 248 = 8·31 maps to b mod 31 (each symbol exactly 8 of the 248 accepted
 * values, so uniform); b ≥ 248 is discarded and the next byte drawn (probability 8/256 = 3.1 %). A plain `b % 31`
 * would make symbols 0..7 (plus 8 for b = 248) 12.5 % more likely than the rest.
 */
const REJECT = 255;
const BYTE_TO_VALUE = new Uint8Array(256).fill(REJECT);
for (let b = 0; b < 248; b++) BYTE_TO_VALUE[b] = b % N;

/**
 * Check weights: for a code of n data characters plus the check character at index n, the character at index k has
 * weight 3^(n−k) mod 31, so the check character has weight 1. A code is valid iff Σ weight_k · value_k ≡ 0 (mod 31).
 *
 * Detected with certainty (31 prime, all weights non-zero, pairwise distinct for up to 30 characters):
 * - any single-character substitution, check character included: Δ = w·(b−a), w ≠ 0, 0 < |b−a| < 31;
 * - any transposition of two different characters, adjacent or not (ab→ba, abc→cba): Δ = (w_i−w_j)·(b−a), w_i ≠ w_j;
 * - twin errors aa→bb on adjacent positions (Δ = 4·w·(b−a)) and a·a→b·b one apart (Δ = 10·w·(b−a));
 * - insertions and deletions, by the length (the input is then not a code of this length at all).
 * Any other error (two or more unrelated substitutions …) slips through with probability 1/31 ≈ 3.2 %.
 */
function weightsFor(dataLength: number): Uint8Array {
  const w = new Uint8Array(dataLength + 1);
  let p = 1;
  for (let k = dataLength; k >= 0; k--) {
    w[k] = p;
    p = (p * GENERATOR) % N;
  }
  return w;
}
const WEIGHTS: Uint8Array[] = [];
for (let n = 0; n <= MAX_CODE_LENGTH; n++) WEIGHTS.push(weightsFor(n));

function checkLength(length: number): number {
  if (!Number.isInteger(length) || length < MIN_CODE_LENGTH || length > MAX_CODE_LENGTH) {
    throw new RangeError(`code length must be an integer in [${MIN_CODE_LENGTH}, ${MAX_CODE_LENGTH}], got ${length}`);
  }
  return length;
}

/** The check character for the given data characters (canonical form, alphabet only). */
export function computeCheckChar(data: string): string {
  const n = checkLength(data.length);
  const w = WEIGHTS[n]!;
  let sum = 0;
  for (let k = 0; k < n; k++) {
    const c = data.charCodeAt(k);
    const v = c < 128 ? CHAR_VALUE[c]! : -1;
    if (v < 0) throw new RangeError(`not a code character: ${JSON.stringify(data[k])}`);
    sum += w[k]! * v;
  }
  return CODE_ALPHABET[(N - (sum % N)) % N]!;
}

/* ------------------------------------------------------------------------------------------------------------------ */
/* Generation                                                                                                         */
/* ------------------------------------------------------------------------------------------------------------------ */

/** Fills the whole buffer with random bytes. Default: node:crypto randomFillSync (CSPRNG). Override only in tests. */
export type RandomFill = (buf: Uint8Array) => void;

export interface GenerateOptions {
  /** Data characters per code (the check character comes on top). Default 12. */
  length?: number;
  random?: RandomFill;
}

const defaultRandom: RandomFill = (buf) => {
  randomFillSync(buf);
};

/** Largest random pool: one randomFillSync call per ~1 MiB (≈ 80,000 codes of 12 characters). */
const MAX_POOL = 1 << 20;

/**
 * A stateful code generator writing ASCII codes (data + check, no separator) into byte blocks. Randomness is drawn
 * in bulk into a pool (one randomFillSync per pool refill), and codes are written as bytes — no per-code strings —
 * so a block can go straight to hashing and to a COPY/CSV stream.
 */
export class CodeGenerator {
  readonly length: number;
  /** Bytes per code: data + check. */
  readonly stride: number;
  private readonly random: RandomFill;
  private readonly weights: Uint8Array;
  private pool: Uint8Array;
  private pos: number;

  constructor(options: GenerateOptions = {}, poolHint = 64 * 1024) {
    this.length = checkLength(options.length ?? DEFAULT_CODE_LENGTH);
    this.stride = this.length + 1;
    this.random = options.random ?? defaultRandom;
    this.weights = WEIGHTS[this.length]!;
    this.pool = new Uint8Array(Math.max(256, Math.min(MAX_POOL, Math.ceil(poolHint))));
    this.pos = this.pool.length;
  }

  /** Sizes the random pool for chunks of `codes` codes (≈ 3.3 % spare for rejected bytes). */
  static forChunks(codes: number, options: GenerateOptions = {}): CodeGenerator {
    const length = options.length ?? DEFAULT_CODE_LENGTH;
    return new CodeGenerator(options, codes * length * (33 / 32) + 64);
  }

  /** Writes `count` codes into `out` from `offset` (needs count × stride bytes). Returns the end offset. */
  fill(out: Uint8Array, count: number, offset = 0): number {
    if (offset + count * this.stride > out.length) throw new RangeError('output buffer too small');
    const n = this.length;
    const w = this.weights;
    let pool = this.pool;
    let pos = this.pos;
    let end = pool.length;
    let o = offset;
    for (let i = 0; i < count; i++) {
      let sum = 0;
      for (let k = 0; k < n; k++) {
        let v: number;
        do {
          if (pos === end) {
            this.random(pool);
            pos = 0;
          }
          v = BYTE_TO_VALUE[pool[pos++]!]!;
        } while (v === REJECT);
        out[o++] = ALPHABET_BYTES[v]!;
        sum += w[k]! * v;
      }
      out[o++] = ALPHABET_BYTES[(N - (sum % N)) % N]!;
    }
    this.pos = pos;
    return o;
  }

  /** `count` codes as one Buffer of count × stride ASCII bytes. */
  block(count: number): Buffer {
    const out = Buffer.allocUnsafe(count * this.stride);
    this.fill(out, count);
    return out;
  }

  /** `count` codes as strings. */
  strings(count: number): string[] {
    return blockToStrings(this.block(count), count, this.stride);
  }
}

/** Splits a block of ASCII codes into strings (one flat latin1 string per code). */
export function blockToStrings(block: Uint8Array, count: number, stride: number): string[] {
  const buf = Buffer.isBuffer(block) ? block : Buffer.from(block.buffer, block.byteOffset, block.byteLength);
  const codes = new Array<string>(count);
  for (let i = 0, o = 0; i < count; i++, o += stride) codes[i] = buf.toString('latin1', o, o + stride);
  return codes;
}

function checkCount(count: number, what = 'count'): number {
  if (!Number.isSafeInteger(count) || count < 0) throw new RangeError(`${what} must be a non-negative integer, got ${count}`);
  return count;
}

/** `count` fresh codes (data + check, canonical form). For millions, prefer generateCodeChunks / CodeGenerator. */
export function generateCodes(count: number, options: GenerateOptions = {}): string[] {
  checkCount(count);
  const chunk = 65536;
  const gen = CodeGenerator.forChunks(Math.min(count, chunk), options);
  if (count <= chunk) return gen.strings(count);
  const codes: string[] = [];
  for (let left = count; left > 0; left -= chunk) {
    for (const c of gen.strings(Math.min(chunk, left))) codes.push(c);
  }
  return codes;
}

/** `count` fresh codes in arrays of `chunkSize` (the last one shorter), for streaming millions into COPY. */
export function* generateCodeChunks(count: number, chunkSize = 65536, options: GenerateOptions = {}): Generator<string[], void, undefined> {
  checkCount(count);
  if (checkCount(chunkSize, 'chunkSize') === 0) throw new RangeError('chunkSize must be positive');
  const gen = CodeGenerator.forChunks(Math.min(count, chunkSize), options);
  for (let left = count; left > 0; left -= chunkSize) yield gen.strings(Math.min(chunkSize, left));
}

/** Byte-level counterpart of generateCodeChunks: Buffers of n × (length + 1) ASCII bytes, no separators. */
export function* generateCodeBlocks(count: number, chunkSize = 65536, options: GenerateOptions = {}): Generator<{ block: Buffer; count: number; stride: number }, void, undefined> {
  checkCount(count);
  if (checkCount(chunkSize, 'chunkSize') === 0) throw new RangeError('chunkSize must be positive');
  const gen = CodeGenerator.forChunks(Math.min(count, chunkSize), options);
  for (let left = count; left > 0; left -= chunkSize) {
    const n = Math.min(chunkSize, left);
    yield { block: gen.block(n), count: n, stride: gen.stride };
  }
}

/**
 * Printing form: groups of 4 joined by '-', a trailing single character merged into the last group so no group is
 * shorter than 2 (13 characters → `ABCD-EFGH-JKMNP`). normalizeCode undoes it.
 */
export function formatForPrint(code: string, groupSize = 4): string {
  if (!Number.isInteger(groupSize) || groupSize < 2) throw new RangeError('groupSize must be an integer ≥ 2');
  for (let i = 0; i < code.length; i++) {
    const c = code.charCodeAt(i);
    if (c >= 128 || CHAR_VALUE[c]! < 0) throw new RangeError(`not a canonical code: ${JSON.stringify(code)}`);
  }
  const groups: string[] = [];
  for (let i = 0; i < code.length; i += groupSize) groups.push(code.slice(i, i + groupSize));
  if (groups.length > 1 && groups[groups.length - 1]!.length < 2) {
    const last = groups.pop()!;
    groups[groups.length - 1] += last;
  }
  return groups.join('-');
}

/* ------------------------------------------------------------------------------------------------------------------ */
/* Consumer input                                                                                                     */
/* ------------------------------------------------------------------------------------------------------------------ */

/**
 * Separators dropped from consumer input: any whitespace (incl. the ideographic space U+3000 and NBSP), ASCII and
 * Unicode hyphens/dashes (U+2010–U+2015, U+2212 minus; a Chinese IME's "——" for shift+minus), and invisible
 * zero-width characters that copy-paste brings along (U+200B–U+200D, U+2060, U+FEFF).
 */
const SEPARATORS = /[\s\-\u2010-\u2015\u2212\u200b-\u200d\u2060\ufeff]+/g;

/**
 * What a consumer typed → canonical form (the result may still be no code; classifyCode decides):
 * 1. Unicode NFKC: full-width letters/digits from Chinese IMEs ('ＡＢ１２' → 'AB12'), the full-width hyphen '－' and
 *    the ideographic space become ASCII;
 * 2. separators dropped (spaces, dashes, see SEPARATORS), so the printed 'ABCD-EFGH-JKMNP' and 'abcd efgh jkmnp' work;
 * 3. ASCII a–z upper-cased (only ASCII, so no exotic case mapping can turn a foreign letter into a code letter).
 *
 * Look-alikes are deliberately NOT mapped: every character the alphabet drops (0 O 1 I L) resembles two or more
 * kept ones or none (0/O → D or Q? 1/I/L → 7, J or T?), so any mapping would be a guess that may turn a typo into
 * another consumer's code. Such input stays as typed and classifies as 'not_code'. Likewise 5/S, 8/B, 2/Z, U/V
 * are all valid symbols and kept as typed; a confusion between them is a single substitution the check catches.
 */
export function normalizeCode(input: string): string {
  return input
    .normalize('NFKC')
    .replace(SEPARATORS, '')
    .replace(/[a-z]+/g, (s) => s.toUpperCase());
}

export type CodeClassification =
  | { kind: 'code'; code: string }
  | { kind: 'typo'; code: string }
  | { kind: 'not_code' };

/**
 * 'code': a well-formed code (right length, alphabet, check character); look it up with codeLookupKey(code).
 * 'typo': right length and alphabet but the check character fails — almost surely a mistyped code: ask the consumer
 *         to re-check it; no database lookup.
 * 'not_code': anything else (wrong length, characters outside the alphabet such as 0 O 1 I L, Chinese text …) —
 *         ordinary chat for the router.
 */
export function classifyCode(input: string, options: { length?: number } = {}): CodeClassification {
  const n = checkLength(options.length ?? DEFAULT_CODE_LENGTH);
  if (typeof input !== 'string' || input.length === 0 || input.length > MAX_CODE_INPUT_LENGTH) return { kind: 'not_code' };
  const code = normalizeCode(input);
  if (code.length !== n + 1) return { kind: 'not_code' };
  const w = WEIGHTS[n]!;
  let sum = 0;
  for (let k = 0; k <= n; k++) {
    const c = code.charCodeAt(k);
    const v = c < 128 ? CHAR_VALUE[c]! : -1;
    if (v < 0) return { kind: 'not_code' };
    sum += w[k]! * v;
  }
  return sum % N === 0 ? { kind: 'code', code } : { kind: 'typo', code };
}

/** For the chat router: does this message look like a promotion code (valid or mistyped)? */
export function looksLikeCode(text: string, options: { length?: number } = {}): boolean {
  return classifyCode(text, options).kind !== 'not_code';
}

/* ------------------------------------------------------------------------------------------------------------------ */
/* Lookup key                                                                                                         */
/* ------------------------------------------------------------------------------------------------------------------ */

export const LOOKUP_KEY_BYTES = 16;
/** Shortest accepted HMAC secret; generate it with randomBytes(32) and keep it out of the database. */
export const MIN_SECRET_BYTES = 16;

function checkSecret(secret: Buffer): void {
  if (!Buffer.isBuffer(secret) || secret.length < MIN_SECRET_BYTES) {
    throw new RangeError(`lookup secret must be a Buffer of at least ${MIN_SECRET_BYTES} bytes`);
  }
}

function checkCanonical(code: string): void {
  let ok = code.length > 0 && code.length <= MAX_CODE_LENGTH + 1;
  for (let i = 0; ok && i < code.length; i++) {
    const c = code.charCodeAt(i);
    ok = c < 128 && CHAR_VALUE[c]! >= 0;
  }
  if (!ok) throw new RangeError(`lookup key needs a canonical code (classifyCode(...).code), got ${JSON.stringify(code)}`);
}

/**
 * What the database stores and indexes instead of the code: HMAC-SHA256(secret, ASCII bytes of the canonical code),
 * first 16 bytes. Deterministic per secret, so a consumer's code is found with one index lookup; see the header for
 * why a copy of the database then reveals no usable code. Reference implementation on node:crypto; for millions
 * of codes use createLookupKeyer (same output, ~4× faster).
 */
export function codeLookupKey(code: string, secret: Buffer): Buffer {
  checkSecret(secret);
  checkCanonical(code);
  return createHmac('sha256', secret).update(code, 'latin1').digest().subarray(0, LOOKUP_KEY_BYTES);
}

export interface LookupKeyer {
  /** Same as codeLookupKey(code, secret). */
  key(code: string): Buffer;
  /**
   * Lookup key of the ASCII code at src[srcOffset, srcOffset + codeLength) into dst[dstOffset, dstOffset + 16).
   * No validation: meant for blocks from CodeGenerator.
   */
  keyInto(src: Uint8Array, srcOffset: number, codeLength: number, dst: Uint8Array, dstOffset: number): void;
}

/*
 * Why a hand-written HMAC: node:crypto costs ~2.5–4 µs per createHmac(...).update().digest() on this machine (2-core
 * AMD EPYC, Node 20) — almost all of it JS↔C++ object set-up, not SHA-256 — i.e. 25–40 s of CPU for 10 million codes,
 * most of the budget; scripts/bench/codegen.ts measures both.
 * HMAC(K, m) = SHA256((K⊕opad) ‖ SHA256((K⊕ipad) ‖ m)); the two 64-byte key blocks are compressed once per secret
 * (the "midstates"), after which a code of ≤ 55 bytes needs exactly two SHA-256 compressions (one inner block with
 * padding, one outer block), done below in 32-bit integer JS at ~0.65 µs (4× faster). The output is bit-identical to
 * node:crypto's HMAC-SHA256 (asserted in server/test/codes.test.ts over random secrets, including ones longer than
 * the block, and all code lengths). No data-dependent branches or table lookups.
 */
const SHA256_K = new Int32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01,
  0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc,
  0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
  0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08,
  0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
  0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);
/** Message schedule scratch (single-threaded, never held across calls). */
const SHA256_W = new Int32Array(64);
const SHA256_IV = new Int32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);

/** One SHA-256 compression of the block in SHA256_W[0..15] (expanded in place to the full schedule), state h → out. */
function sha256Compress(h: Int32Array, out: Int32Array): void {
  const w = SHA256_W;
  for (let i = 16; i < 64; i++) {
    const x = w[i - 15]!;
    const y = w[i - 2]!;
    const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
    const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
    w[i] = (w[i - 16]! + s0 + w[i - 7]! + s1) | 0;
  }
  let a = h[0]!, b = h[1]!, c = h[2]!, d = h[3]!, e = h[4]!, f = h[5]!, g = h[6]!, hh = h[7]!;
  for (let i = 0; i < 64; i++) {
    const s1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
    const ch = (e & f) ^ (~e & g);
    const t1 = (hh + s1 + ch + SHA256_K[i]! + w[i]!) | 0;
    const s0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
    const maj = (a & b) ^ (a & c) ^ (b & c);
    hh = g;
    g = f;
    f = e;
    e = (d + t1) | 0;
    d = c;
    c = b;
    b = a;
    a = (t1 + ((s0 + maj) | 0)) | 0;
  }
  out[0] = (h[0]! + a) | 0;
  out[1] = (h[1]! + b) | 0;
  out[2] = (h[2]! + c) | 0;
  out[3] = (h[3]! + d) | 0;
  out[4] = (h[4]! + e) | 0;
  out[5] = (h[5]! + f) | 0;
  out[6] = (h[6]! + g) | 0;
  out[7] = (h[7]! + hh) | 0;
}

/** A reusable HMAC-SHA256 lookup keyer for one secret (see codeLookupKey). */
export function createLookupKeyer(secret: Buffer): LookupKeyer {
  checkSecret(secret);
  const secretCopy = Buffer.from(secret); // for the (unused for codes) > 55-byte fallback
  const key = new Uint8Array(64);
  key.set(secret.length > 64 ? createHash('sha256').update(secret).digest() : secret);
  const w = SHA256_W;
  const innerState = new Int32Array(8);
  const outerState = new Int32Array(8);
  const inner = new Int32Array(8);
  const outer = new Int32Array(8);
  for (const [pad, state] of [[0x36, innerState], [0x5c, outerState]] as const) {
    for (let i = 0; i < 16; i++) {
      w[i] = ((key[4 * i]! ^ pad) << 24) | ((key[4 * i + 1]! ^ pad) << 16) | ((key[4 * i + 2]! ^ pad) << 8) | (key[4 * i + 3]! ^ pad);
    }
    sha256Compress(SHA256_IV, state);
  }
  key.fill(0);
  const MAX_FAST = 55; // one padded block: message + 0x80 + 8-byte length

  function keyInto(src: Uint8Array, srcOffset: number, codeLength: number, dst: Uint8Array, dstOffset: number): void {
    if (codeLength > MAX_FAST) {
      const mac = createHmac('sha256', secretCopy).update(src.subarray(srcOffset, srcOffset + codeLength)).digest();
      dst.set(mac.subarray(0, LOOKUP_KEY_BYTES), dstOffset);
      return;
    }
    // Inner block: message, 0x80, zeros, bit length of (64-byte key block + message).
    const words = codeLength >> 2;
    const rest = codeLength & 3;
    let j = srcOffset;
    for (let i = 0; i < words; i++, j += 4) w[i] = (src[j]! << 24) | (src[j + 1]! << 16) | (src[j + 2]! << 8) | src[j + 3]!;
    let last = 0x80 << (24 - 8 * rest);
    for (let r = 0; r < rest; r++) last |= src[j + r]! << (24 - 8 * r);
    w[words] = last;
    for (let i = words + 1; i < 15; i++) w[i] = 0;
    w[15] = (64 + codeLength) * 8;
    sha256Compress(innerState, inner);
    // Outer block: the 32-byte inner digest, 0x80, zeros, bit length 96·8.
    for (let i = 0; i < 8; i++) w[i] = inner[i]!;
    w[8] = 0x80000000 | 0;
    for (let i = 9; i < 15; i++) w[i] = 0;
    w[15] = (64 + 32) * 8;
    sha256Compress(outerState, outer);
    for (let i = 0, o = dstOffset; i < LOOKUP_KEY_BYTES / 4; i++, o += 4) {
      const v = outer[i]!;
      dst[o] = v >>> 24;
      dst[o + 1] = (v >>> 16) & 255;
      dst[o + 2] = (v >>> 8) & 255;
      dst[o + 3] = v & 255;
    }
  }

  return {
    keyInto,
    key(code: string): Buffer {
      checkCanonical(code);
      const src = Buffer.from(code, 'latin1');
      const out = Buffer.allocUnsafe(LOOKUP_KEY_BYTES);
      keyInto(src, 0, src.length, out, 0);
      return out;
    },
  };
}
