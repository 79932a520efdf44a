/**
 * Promotion-code generation benchmark (server/src/campaigns/codes.ts): can 10 million on-pack codes be generated,
 * keyed and exported fast enough to leave most of a 60 s budget to the database COPY?
 *
 *   npx tsx scripts/bench/codegen.ts [--count 10000000] [--chunk 65536] [--sample 200000] [--out file.csv] [--keep]
 *
 * Stages, each a separate full pass over --count codes in chunks of --chunk (so every figure stands alone):
 *   1. generation alone, as byte blocks (CodeGenerator → Buffer; what an export/COPY pipeline uses) and as strings
 *      (generateCodeChunks → string[]);
 *   2. generation + lookup key (HMAC-SHA256 truncated to 16 bytes, createLookupKeyer().keyInto on the block);
 *   3. generation + lookup key + CSV `code,lookup_key_hex\n` written through an fs write stream (backpressure
 *      honoured) to a temp file, which is then spot-checked (first 1,000 lines re-classified and re-keyed with
 *      codeLookupKey) and deleted unless --keep.
 * Plus a side-by-side of lookup-key implementations on --sample codes: node:crypto createHmac per code vs the
 * reused keyer (precomputed HMAC midstates + two SHA-256 compressions in JS).
 * Single-threaded throughout. Wall and CPU time are both shown: on a shared machine wall time includes waiting for
 * a core; the load average is printed before and after.
 */
import { createReadStream, createWriteStream, mkdtempSync, rmSync, statSync } from 'node:fs';
import { createHmac, randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import {
  CodeGenerator,
  DEFAULT_CODE_LENGTH,
  LOOKUP_KEY_BYTES,
  classifyCode,
  codeLookupKey,
  createLookupKeyer,
  generateCodeChunks,
} from '../../server/src/campaigns/codes.ts';

const { values: args } = parseArgs({
  options: {
    count: { type: 'string', default: '10000000' },
    chunk: { type: 'string', default: '65536' },
    sample: { type: 'string', default: '200000' },
    out: { type: 'string' },
    keep: { type: 'boolean', default: false },
  },
});
const COUNT = Number(args.count);
const CHUNK = Number(args.chunk);
const SAMPLE = Number(args.sample);
for (const [name, v] of [['count', COUNT], ['chunk', CHUNK], ['sample', SAMPLE]] as const) {
  if (!Number.isSafeInteger(v) || v <= 0) throw new Error(`--${name} must be a positive integer`);
}

const secret = randomBytes(32);
const keyer = createLookupKeyer(secret);
const STRIDE = DEFAULT_CODE_LENGTH + 1;

interface Timing {
  wallMs: number;
  cpuMs: number;
}
function measure(fn: () => void): Timing;
function measure(fn: () => Promise<void>): Promise<Timing>;
function measure(fn: () => void | Promise<void>): Timing | Promise<Timing> {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const done = (): Timing => {
    const cpu = process.cpuUsage(cpu0);
    return { wallMs: performance.now() - t0, cpuMs: (cpu.user + cpu.system) / 1000 };
  };
  const r = fn();
  return r instanceof Promise ? r.then(done) : done();
}

const fmtInt = (n: number) => Math.round(n).toLocaleString('en-US');
const rows: string[] = [];
function report(label: string, n: number, t: Timing, note = ''): void {
  const row = `| ${label.padEnd(42)} | ${fmtInt(n).padStart(11)} | ${(t.wallMs / 1000).toFixed(2).padStart(7)} s | ${(t.cpuMs / 1000).toFixed(2).padStart(7)} s | ${fmtInt((n / t.wallMs) * 1000).padStart(11)} | ${((t.wallMs * 1e6) / n).toFixed(0).padStart(6)} ns |${note ? ` ${note}` : ''}`;
  rows.push(row);
  console.log(row);
}

// ---------------------------------------------------------------------------------------------------------------------
const cpus = os.cpus();
console.log('# Promotion code generation benchmark\n');
console.log(`machine: ${cpus[0]?.model ?? 'unknown'} × ${cpus.length} cores (availableParallelism ${os.availableParallelism()}), ${fmtInt(os.totalmem() / 2 ** 20)} MiB RAM`);
console.log(`runtime: node ${process.version} (V8 ${process.versions.v8}), OpenSSL ${process.versions.openssl}, ${os.platform()} ${os.release()}`);
console.log(`load average before: ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
console.log(`codes: ${fmtInt(COUNT)} × ${STRIDE} characters (${DEFAULT_CODE_LENGTH} data + 1 check), chunks of ${fmtInt(CHUNK)}\n`);
console.log(`| ${'stage'.padEnd(42)} | ${'codes'.padStart(11)} | ${'wall'.padStart(9)} | ${'CPU'.padStart(9)} | ${'codes/s'.padStart(11)} | ${'/code'.padStart(9)} |`);
console.log(`|${'-'.repeat(44)}|${'-'.repeat(13)}|${'-'.repeat(11)}|${'-'.repeat(11)}|${'-'.repeat(13)}|${'-'.repeat(11)}|`);

let sink = 0; // keeps results observable so nothing is optimized away

// 1a. generation alone, byte blocks
{
  const gen = CodeGenerator.forChunks(CHUNK);
  const block = Buffer.allocUnsafe(CHUNK * STRIDE);
  const t = measure(() => {
    for (let left = COUNT; left > 0; left -= CHUNK) {
      const n = Math.min(CHUNK, left);
      gen.fill(block, n);
      sink ^= block[n * STRIDE - 1]!;
    }
  });
  report('generate (byte blocks)', COUNT, t);
}

// 1b. generation alone, strings
{
  const t = measure(() => {
    for (const codes of generateCodeChunks(COUNT, CHUNK)) sink ^= codes[codes.length - 1]!.charCodeAt(0);
  });
  report('generate (string[] chunks)', COUNT, t);
}

// 2. generation + lookup key
{
  const gen = CodeGenerator.forChunks(CHUNK);
  const block = Buffer.allocUnsafe(CHUNK * STRIDE);
  const keys = Buffer.allocUnsafe(CHUNK * LOOKUP_KEY_BYTES);
  const t = measure(() => {
    for (let left = COUNT; left > 0; left -= CHUNK) {
      const n = Math.min(CHUNK, left);
      gen.fill(block, n);
      for (let i = 0; i < n; i++) keyer.keyInto(block, i * STRIDE, STRIDE, keys, i * LOOKUP_KEY_BYTES);
      sink ^= keys[0]!;
    }
  });
  report('generate + HMAC lookup key', COUNT, t);
}

// 3. generation + lookup key + CSV through a write stream
const HEX = Uint8Array.from('0123456789abcdef', (c) => c.charCodeAt(0));
const LINE = STRIDE + 1 + 2 * LOOKUP_KEY_BYTES + 1; // code , hex \n
const dir = mkdtempSync(path.join(os.tmpdir(), 'codegen-bench-'));
const file = args.out ?? path.join(dir, 'codes.csv');
try {
  const gen = CodeGenerator.forChunks(CHUNK);
  const block = Buffer.allocUnsafe(CHUNK * STRIDE);
  const keys = Buffer.allocUnsafe(CHUNK * LOOKUP_KEY_BYTES);
  const t = await measure(async () => {
    const out = createWriteStream(file, { highWaterMark: 4 * 1024 * 1024 });
    const finished = new Promise<void>((resolve, reject) => {
      out.on('finish', resolve);
      out.on('error', reject);
    });
    for (let left = COUNT; left > 0; left -= CHUNK) {
      const n = Math.min(CHUNK, left);
      gen.fill(block, n);
      const csv = Buffer.allocUnsafe(n * LINE); // a fresh buffer per chunk: the stream holds it until flushed
      for (let i = 0, s = 0, o = 0; i < n; i++, s += STRIDE) {
        keyer.keyInto(block, s, STRIDE, keys, 0);
        for (let k = 0; k < STRIDE; k++) csv[o++] = block[s + k]!;
        csv[o++] = 0x2c; // ,
        for (let k = 0; k < LOOKUP_KEY_BYTES; k++) {
          const b = keys[k]!;
          csv[o++] = HEX[b >>> 4]!;
          csv[o++] = HEX[b & 15]!;
        }
        csv[o++] = 0x0a; // \n
      }
      if (!out.write(csv)) await new Promise<void>((resolve) => out.once('drain', resolve));
    }
    out.end();
    await finished;
  });
  const bytes = statSync(file).size;
  report('generate + HMAC + CSV write (stream)', COUNT, t, `${fmtInt(bytes / 2 ** 20)} MiB`);
  if (bytes !== COUNT * LINE) throw new Error(`CSV has ${bytes} bytes, expected ${COUNT * LINE}`);

  // Spot check: the file's first lines are valid codes whose keys match the reference implementation.
  let checked = 0;
  const lines = createInterface({ input: createReadStream(file, { end: 1000 * LINE - 1 }) });
  for await (const line of lines) {
    const [code, hex] = line.split(',');
    const c = classifyCode(code ?? '');
    if (c.kind !== 'code' || codeLookupKey(c.code, secret).toString('hex') !== hex) throw new Error(`bad CSV line: ${line}`);
    checked++;
  }
  console.log(`\nCSV spot check: first ${fmtInt(checked)} lines re-classified as codes and re-keyed with codeLookupKey: OK`);
  console.log(args.keep ? `CSV kept at ${file}` : `CSV written to ${file} (deleted)`);
} finally {
  if (!args.keep) rmSync(dir, { recursive: true, force: true });
}

// 4. lookup-key implementations side by side
{
  const gen = new CodeGenerator();
  const codes = gen.strings(SAMPLE);
  const block = gen.block(SAMPLE);
  const keys = Buffer.allocUnsafe(SAMPLE * LOOKUP_KEY_BYTES);
  console.log(`\nLookup key per code on ${fmtInt(SAMPLE)} codes (10M extrapolated):`);
  const show = (label: string, t: Timing) =>
    console.log(`  ${label.padEnd(52)} ${((t.wallMs * 1e6) / SAMPLE).toFixed(0).padStart(5)} ns/code wall, ${((t.cpuMs * 1e6) / SAMPLE).toFixed(0).padStart(5)} ns CPU → ${((t.cpuMs / SAMPLE) * 1e4).toFixed(1)} s CPU per 10M`);
  for (let round = 0; round < 2; round++) {
    show('createHmac(secret).update(code).digest() per code', measure(() => {
      for (const c of codes) sink ^= createHmac('sha256', secret).update(c, 'latin1').digest()[0]!;
    }));
    show('codeLookupKey(code, secret) (validates, createHmac)', measure(() => {
      for (const c of codes) sink ^= codeLookupKey(c, secret)[0]!;
    }));
    show('createLookupKeyer(secret).key(code) (string in)', measure(() => {
      for (const c of codes) sink ^= keyer.key(c)[0]!;
    }));
    show('createLookupKeyer(secret).keyInto(block…) (bytes)', measure(() => {
      for (let i = 0; i < SAMPLE; i++) keyer.keyInto(block, i * STRIDE, STRIDE, keys, i * LOOKUP_KEY_BYTES);
      sink ^= keys[0]!;
    }));
  }
}

console.log(`\nload average after: ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}   (sink ${sink & 1})`);
