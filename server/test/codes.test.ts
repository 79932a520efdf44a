import t from 'tap';
import { createHmac, randomBytes } from 'node:crypto';
import {
  CODE_ALPHABET,
  CodeGenerator,
  DEFAULT_CODE_LENGTH,
  MAX_CODE_LENGTH,
  MIN_CODE_LENGTH,
  classifyCode,
  codeLookupKey,
  computeCheckChar,
  createLookupKeyer,
  formatForPrint,
  generateCodeBlocks,
  generateCodeChunks,
  generateCodes,
  looksLikeCode,
  normalizeCode,
  type RandomFill,
} from '../src/campaigns/codes.ts';

const A = CODE_ALPHABET;
const CODE_CHARS = DEFAULT_CODE_LENGTH + 1;

/** Pearson's chi-square statistic of observed counts against a uniform expectation. */
function chiSquare(counts: ArrayLike<number>): number {
  let total = 0;
  for (let i = 0; i < counts.length; i++) total += counts[i]!;
  const expected = total / counts.length;
  let x2 = 0;
  for (let i = 0; i < counts.length; i++) x2 += (counts[i]! - expected) ** 2 / expected;
  return x2;
}
/**
 * df = 30. P(χ² > 120) ≈ 1.1·10⁻¹² and P(χ² < 2.2) ≈ 10⁻¹² for a uniform source (scipy.stats.chi2.isf / ppf), so
 * these bounds never flake; a plain `byte % 31` generator scores ~3,000 on 1M symbols (asserted below).
 */
const CHI2_UPPER = 120;
const CHI2_LOWER = 2.2;

/** A deterministic byte stream 0, 1, …, 255, 0, 1, … whatever the buffer sizes it is asked for. */
function countingRandom(): RandomFill {
  let next = 0;
  return (buf) => {
    for (let i = 0; i < buf.length; i++) buf[i] = next++ & 255;
  };
}

t.test('alphabet › 31 distinct upper-case symbols, prime size, no look-alikes', async (t) => {
  t.equal(A.length, 31);
  t.equal(new Set(A).size, 31, 'no duplicates');
  t.match(A, /^[2-9A-Z]+$/, 'digits and upper-case letters only');
  for (const c of '0O1IL') t.notOk(A.includes(c), `${c} is excluded`);
  t.equal(A, [...A].sort().join(''), 'sorted, so symbol values are easy to reason about');
  for (let d = 2; d * d <= A.length; d++) t.not(A.length % d, 0, `size not divisible by ${d}`);
});

t.test('check › documented examples: computeCheckChar appends the character that makes the code valid', async (t) => {
  const data = '7KQ3MXW9HD2R';
  const code = data + computeCheckChar(data);
  t.same(classifyCode(code), { kind: 'code', code });
  t.equal(computeCheckChar('222222222222'), '2', 'all-zero data has check value 0');
  t.throws(() => computeCheckChar('7KQ3MXW9HD2O'), RangeError, 'excluded character');
  t.throws(() => computeCheckChar('ABC'), RangeError, 'too short');
});

t.test('generate › codes have data + check characters from the alphabet and all classify as "code"', async (t) => {
  const codes = generateCodes(20_000);
  t.equal(codes.length, 20_000);
  let bad = 0;
  for (const c of codes) {
    if (c.length !== CODE_CHARS || !/^[2-9A-HJKMNP-Z]+$/.test(c)) bad++;
    const r = classifyCode(c);
    if (r.kind !== 'code' || r.code !== c) bad++;
    if (computeCheckChar(c.slice(0, -1)) !== c.at(-1)) bad++;
  }
  t.equal(bad, 0, 'every generated code is well formed and valid');
  t.same(generateCodes(0), []);
});

t.test('generate › other lengths work end to end; out-of-range lengths and counts are refused', async (t) => {
  for (const length of [MIN_CODE_LENGTH, 8, 16, 20, MAX_CODE_LENGTH]) {
    const codes = generateCodes(500, { length });
    t.ok(codes.every((c) => c.length === length + 1 && classifyCode(c, { length }).kind === 'code'), `length ${length}`);
    t.equal(classifyCode(codes[0]!).kind, length === DEFAULT_CODE_LENGTH ? 'code' : 'not_code', 'default length is 12');
  }
  t.throws(() => generateCodes(1, { length: MIN_CODE_LENGTH - 1 }), RangeError);
  t.throws(() => generateCodes(1, { length: MAX_CODE_LENGTH + 1 }), RangeError);
  t.throws(() => generateCodes(1, { length: 12.5 }), RangeError);
  t.throws(() => generateCodes(-1), RangeError);
  t.throws(() => generateCodes(1.5), RangeError);
});

t.test('generate › chunked generators yield exactly count codes in chunks of chunkSize', async (t) => {
  const sizes: number[] = [];
  const all: string[] = [];
  for (const chunk of generateCodeChunks(100_001, 25_000)) {
    sizes.push(chunk.length);
    all.push(...chunk);
  }
  t.same(sizes, [25_000, 25_000, 25_000, 25_000, 1]);
  t.ok(all.every((c) => classifyCode(c).kind === 'code'));
  t.same([...generateCodeChunks(0)], []);
  t.throws(() => generateCodeChunks(10, 0).next(), RangeError);

  let n = 0;
  for (const { block, count, stride } of generateCodeBlocks(70_000, 65_536)) {
    t.equal(block.length, count * stride);
    for (let i = 0; i < count; i++) {
      if (classifyCode(block.toString('latin1', i * stride, (i + 1) * stride)).kind !== 'code') t.fail('bad code in block');
    }
    n += count;
  }
  t.equal(n, 70_000);
});

t.test('generate › uses the injected random source, one bulk fill per pool, deterministic for tests', async (t) => {
  const calls: number[] = [];
  const rnd = countingRandom();
  const spy: RandomFill = (buf) => {
    calls.push(buf.length);
    rnd(buf);
  };
  const a = generateCodes(50_000, { random: spy });
  t.ok(calls.length >= 1 && calls.length <= 3, `randomness drawn in bulk (${calls.length} fills for 50,000 codes)`);
  t.ok(calls.every((n) => n >= 64 * 1024), 'no small per-code reads');
  t.same(generateCodes(50_000, { random: countingRandom() }), a, 'same bytes → same codes');
});

t.test('generate › rejection sampling: bytes ≥ 248 are skipped, each symbol owns exactly 8 of the accepted byte values', async (t) => {
  // Over the counting stream 0..255 repeated, every symbol must appear exactly 8 times per 248 accepted bytes.
  const gen = new CodeGenerator({ random: countingRandom() });
  const codes = 248 * 10; // 12 data symbols each: 29,760 symbols = 120 full cycles of the 248 accepted bytes
  const block = gen.block(codes);
  const counts = new Array<number>(31).fill(0);
  for (let i = 0; i < codes; i++) {
    for (let k = 0; k < DEFAULT_CODE_LENGTH; k++) counts[A.indexOf(String.fromCharCode(block[i * CODE_CHARS + k]!))]!++;
  }
  t.same(counts, new Array(31).fill((codes * DEFAULT_CODE_LENGTH) / 31), 'exactly uniform over whole cycles');

  t.equal(block.length, codes * CODE_CHARS);

  // A source offering eight rejected bytes (248..255) before each accepted one (31, value 0 → '2').
  const pattern = [248, 249, 250, 251, 252, 253, 254, 255, 31];
  let served = 0;
  const first = new CodeGenerator({
    random: (buf) => {
      for (let i = 0; i < buf.length; i++) buf[i] = pattern[served++ % pattern.length]!;
    },
  }).block(1);
  t.equal(first.toString('latin1', 0, DEFAULT_CODE_LENGTH), '2'.repeat(DEFAULT_CODE_LENGTH), 'only the accepted bytes were used');
});

t.test('check › every single-character substitution of 200 codes is a "typo" (all positions × all other symbols)', async (t) => {
  const codes = generateCodes(200);
  let tried = 0;
  const missed: string[] = [];
  for (const code of codes) {
    for (let k = 0; k < code.length; k++) {
      for (const s of A) {
        if (s === code[k]) continue;
        const typo = code.slice(0, k) + s + code.slice(k + 1);
        tried++;
        if (classifyCode(typo).kind !== 'typo') missed.push(typo);
      }
    }
  }
  t.equal(tried, 200 * CODE_CHARS * 30);
  t.same(missed, [], 'none undetected');
});

t.test('check › every adjacent transposition of distinct characters is a "typo", and so are farther swaps', async (t) => {
  const codes = generateCodes(2_000);
  let adjacent = 0;
  let far = 0;
  const missed: string[] = [];
  for (const code of codes) {
    for (let i = 0; i < code.length; i++) {
      for (let j = i + 1; j < code.length; j++) {
        if (code[i] === code[j]) continue;
        const swapped = code.slice(0, i) + code[j] + code.slice(i + 1, j) + code[i] + code.slice(j + 1);
        if (j === i + 1) adjacent++;
        else far++;
        if (classifyCode(swapped).kind !== 'typo') missed.push(`${code}→${swapped}`);
      }
    }
  }
  t.ok(adjacent > 20_000 && far > 100_000, `${adjacent} adjacent and ${far} non-adjacent swaps tried`);
  t.same(missed, [], 'none undetected');
});

t.test('check › twin errors (aa→bb, adjacent or one apart) are detected, as documented', async (t) => {
  const missed: string[] = [];
  let tried = 0;
  for (const code of generateCodes(300)) {
    for (let i = 0; i < code.length; i++) {
      for (const gap of [1, 2]) {
        const j = i + gap;
        if (j >= code.length || code[i] !== code[j]) continue;
        for (const s of A) {
          if (s === code[i]) continue;
          const twin = code.slice(0, i) + s + code.slice(i + 1, j) + s + code.slice(j + 1);
          tried++;
          if (classifyCode(twin).kind !== 'typo') missed.push(twin);
        }
      }
    }
  }
  // Also constructed twins, since random codes have few doubled letters.
  for (const data of ['22ABCDEFGHJK', 'AB33CDEFGHJK', 'ABCDEFGHJK99', 'A7B7CDEFGHJK']) {
    const code = data + computeCheckChar(data);
    const i = /(.)(.?)\1/.exec(code)!.index;
    const j = code[i + 1] === code[i] ? i + 1 : i + 2;
    for (const s of A) {
      if (s === code[i]) continue;
      const twin = code.slice(0, i) + s + code.slice(i + 1, j) + s + code.slice(j + 1);
      tried++;
      if (classifyCode(twin).kind !== 'typo') missed.push(twin);
    }
  }
  t.ok(tried > 100, `${tried} twin errors tried`);
  t.same(missed, []);
});

t.test('normalize › lower case, spaces, dashes, full-width and IME punctuation become the canonical code', async (t) => {
  const [code] = generateCodes(1, { random: countingRandom() });
  const c = code!;
  const printed = formatForPrint(c);
  t.match(printed, /^[^-]{4}-[^-]{4}-[^-]{5}$/, '13 characters print as 4-4-5');
  t.equal(formatForPrint('ABCDEFGH'), 'ABCD-EFGH');
  t.equal(formatForPrint('ABCDEFGHJ'), 'ABCD-EFGHJ', 'a lone trailing character joins the last group');
  t.equal(formatForPrint('ABCDEFGHJK'), 'ABCD-EFGH-JK');
  t.throws(() => formatForPrint('abcd'), RangeError);

  const fullWidth = (s: string) => s.replace(/[!-~]/g, (ch) => String.fromCharCode(ch.charCodeAt(0) + 0xfee0));
  t.equal(normalizeCode('ＡＢ１２'), 'AB12');
  t.equal(normalizeCode('ａｂｃ　ｄｅｆ－ｇｈ'), 'ABCDEFGH', 'full-width lower case, ideographic space, full-width hyphen');

  const inputs = [
    c,
    c.toLowerCase(),
    printed,
    printed.toLowerCase(),
    `  ${printed}  `,
    printed.replaceAll('-', ' '),
    printed.replaceAll('-', '\u3000'),
    printed.replaceAll('-', '——'),
    printed.replaceAll('-', ' – '),
    `\t${c.slice(0, 6)}\n${c.slice(6)}\u00a0`,
    fullWidth(c),
    fullWidth(printed.toLowerCase()),
    `\u200b${c}\ufeff`,
  ];
  for (const input of inputs) {
    t.equal(normalizeCode(input), c, JSON.stringify(input));
    t.same(classifyCode(input), { kind: 'code', code: c });
    t.ok(looksLikeCode(input));
  }
});

t.test('normalize › look-alikes are not guessed: 0 O 1 I L make the input "not_code"', async (t) => {
  const [c] = generateCodes(1);
  for (const bad of '0O1IL') {
    const input = bad + c!.slice(1);
    t.equal(normalizeCode(input), input, `${bad} kept as typed`);
    t.same(classifyCode(input), { kind: 'not_code' });
    t.same(classifyCode(input.toLowerCase()), { kind: 'not_code' });
  }
  t.equal(classifyCode('ſ' + c!.slice(1)).kind, c![0] === 'S' ? 'code' : 'typo', 'compatibility letters fold to their ASCII letter (ſ → S)');
});

t.test('classify › a wrong check character is a "typo" (carries the normalized code); looksLikeCode is true', async (t) => {
  const [c] = generateCodes(1);
  const wrong = c!.slice(0, -1) + A[(A.indexOf(c!.at(-1)!) + 1) % 31];
  t.same(classifyCode(wrong.toLowerCase()), { kind: 'typo', code: wrong });
  t.ok(looksLikeCode(wrong));
});

t.test('classify › ordinary Chinese and English chat text is "not_code"', async (t) => {
  const chat = [
    '',
    '   ',
    '你好',
    '帮助',
    '抽奖',
    '我要兑奖',
    '怎么参加活动？',
    '你好，我的码扫不出来',
    '１２３',
    'hi',
    'help',
    'Hello',
    'HELP ME PLEASE',
    'international', // 13 letters, but I/L/O are not code symbols
    'How do I enter the code?',
    'thanks a lot!',
    '13800138000', // a phone number
    '1234567890123',
    '😀😀😀😀😀😀😀😀😀😀😀😀😀',
    'ABCD-EFGH-JKM', // too short
    'ABCD-EFGH-JKMNPQ', // too long
    '你好'.repeat(6) + '呀', // 13 characters, none a code symbol
    '你好'.repeat(7),
    'x'.repeat(10_000),
  ];
  for (const text of chat) {
    t.same(classifyCode(text), { kind: 'not_code' }, JSON.stringify(text.slice(0, 40)));
    t.notOk(looksLikeCode(text));
  }
  t.same(classifyCode(undefined as unknown as string), { kind: 'not_code' }, 'non-strings too');
});

t.test('generate › 200,000 codes are all distinct', async (t) => {
  const codes = generateCodes(200_000);
  t.equal(new Set(codes).size, 200_000);
  // And the data parts alone: the check character adds no uniqueness.
  t.equal(new Set(codes.map((c) => c.slice(0, -1))).size, 200_000);
});

t.test('generate › symbol frequencies are uniform (chi-square over 1M data symbols, and over check characters)', async (t) => {
  const codes = Math.ceil(1_000_000 / DEFAULT_CODE_LENGTH);
  const block = new CodeGenerator().block(codes);
  const index = new Int8Array(128).fill(-1);
  for (let v = 0; v < 31; v++) index[A.charCodeAt(v)] = v;
  const data = new Array<number>(31).fill(0);
  const check = new Array<number>(31).fill(0);
  const perPosition = Array.from({ length: DEFAULT_CODE_LENGTH }, () => new Array<number>(31).fill(0));
  for (let i = 0, o = 0; i < codes; i++) {
    for (let k = 0; k < DEFAULT_CODE_LENGTH; k++, o++) {
      const v = index[block[o]!]!;
      data[v]!++;
      perPosition[k]![v]!++;
    }
    check[index[block[o++]!]!]!++;
  }
  const x2 = chiSquare(data);
  t.ok(x2 < CHI2_UPPER && x2 > CHI2_LOWER, `data symbols: χ² = ${x2.toFixed(1)} (df 30, bounds ${CHI2_LOWER}..${CHI2_UPPER})`);
  const x2c = chiSquare(check);
  t.ok(x2c < CHI2_UPPER && x2c > CHI2_LOWER, `check characters: χ² = ${x2c.toFixed(1)}`);
  // Per position (83k symbols each) with a Bonferroni-safe bound: 12 tests × P(χ² > 120) is still ~10⁻¹¹.
  for (let k = 0; k < DEFAULT_CODE_LENGTH; k++) {
    const x2k = chiSquare(perPosition[k]!);
    if (!(x2k < CHI2_UPPER)) t.fail(`position ${k}: χ² = ${x2k.toFixed(1)}`);
  }

  // The test has power: a modulo-biased generator (byte % 31) fails it by a wide margin.
  const biased = new Array<number>(31).fill(0);
  const bytes = randomBytes(1_000_000);
  for (const b of bytes) biased[b % 31]!++;
  t.ok(chiSquare(biased) > 10 * CHI2_UPPER, `byte % 31 scores χ² = ${chiSquare(biased).toFixed(0)}`);
});

t.test('lookup key › HMAC-SHA256 of the canonical code, 16 bytes, deterministic per secret, different across secrets', async (t) => {
  const secret = randomBytes(32);
  const other = randomBytes(32);
  const [c1, c2] = generateCodes(2);
  const k1 = codeLookupKey(c1!, secret);
  t.ok(Buffer.isBuffer(k1));
  t.equal(k1.length, 16);
  t.same(k1, codeLookupKey(c1!, Buffer.from(secret)), 'deterministic');
  t.same(k1, createHmac('sha256', secret).update(c1!).digest().subarray(0, 16), 'is truncated HMAC-SHA256');
  t.notSame(k1, codeLookupKey(c1!, other), 'another secret gives another key');
  t.notSame(k1, codeLookupKey(c2!, secret), 'another code gives another key');
  const r = classifyCode(formatForPrint(c1!).toLowerCase());
  t.same(codeLookupKey(r.kind === 'code' ? r.code : '', secret), k1, 'what the consumer types maps to the stored key');

  t.throws(() => codeLookupKey(c1!.toLowerCase(), secret), RangeError, 'non-canonical code refused');
  t.throws(() => codeLookupKey('', secret), RangeError);
  t.throws(() => codeLookupKey(c1!, Buffer.alloc(8)), RangeError, 'short secret refused');
  t.throws(() => createLookupKeyer(Buffer.alloc(15)), RangeError);
});

t.test('lookup key › the fast keyer is bit-identical to node:crypto HMAC for random secrets and every code length', async (t) => {
  let compared = 0;
  const mismatches: string[] = [];
  for (const secretLength of [16, 32, 63, 64, 65, 100, 200]) {
    const secret = randomBytes(secretLength);
    const keyer = createLookupKeyer(secret);
    for (let length = MIN_CODE_LENGTH; length <= MAX_CODE_LENGTH; length++) {
      for (const code of generateCodes(40, { length })) {
        compared++;
        const expected = createHmac('sha256', secret).update(code).digest().subarray(0, 16);
        if (!keyer.key(code).equals(expected)) mismatches.push(`${secretLength}/${code}`);
      }
    }
    // Raw message lengths 0..70 through keyInto (the > 55-byte fallback included), at an offset.
    const raw = randomBytes(80);
    const dst = Buffer.alloc(24);
    for (let len = 0; len <= 70; len++) {
      compared++;
      keyer.keyInto(raw, 5, len, dst, 3);
      const expected = createHmac('sha256', secret).update(raw.subarray(5, 5 + len)).digest().subarray(0, 16);
      if (!dst.subarray(3, 19).equals(expected)) mismatches.push(`${secretLength}/raw ${len}`);
    }
  }
  t.ok(compared > 5_000, `${compared} comparisons`);
  t.same(mismatches, []);

  // Bulk: one keyer over a generated block agrees with codeLookupKey.
  const secret = randomBytes(32);
  const keyer = createLookupKeyer(secret);
  const gen = new CodeGenerator();
  const block = gen.block(5_000);
  const keys = Buffer.alloc(5_000 * 16);
  for (let i = 0; i < 5_000; i++) keyer.keyInto(block, i * gen.stride, gen.stride, keys, i * 16);
  let bad = 0;
  for (let i = 0; i < 5_000; i++) {
    const code = block.toString('latin1', i * gen.stride, (i + 1) * gen.stride);
    if (!keys.subarray(i * 16, i * 16 + 16).equals(codeLookupKey(code, secret))) bad++;
  }
  t.equal(bad, 0);
  const k = createLookupKeyer(secret);
  const mutable = Buffer.from(secret);
  const k2 = createLookupKeyer(mutable);
  mutable.fill(0);
  t.same(k2.key(block.toString('latin1', 0, 13)), k.key(block.toString('latin1', 0, 13)), 'keyer does not alias the secret buffer');
});
