/**
 * parseWechatXml reads flat documents without xml2js (wechat/xml.ts parseFlatXml). Whatever it reads that way must be
 * exactly what xml2js gives, and whatever xml2js refuses must still be refused: checked on every official sample and
 * on generated documents full of the characters and shapes where the two could differ.
 */
import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import { buildXml, parseFlatXml, parseWechatXml, parseXmlGeneric, XmlError } from '../src/wechat/xml.ts';
import { buildReplyXml } from '../src/wechat/reply.ts';

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures/wechat');

type Outcome = { ok: true; value: unknown; keys: string[] } | { ok: false };
function outcome(parse: (s: string) => unknown, body: string): Outcome {
  try {
    const value = parse(body);
    return { ok: true, value, keys: Object.getOwnPropertyNames(value) };
  } catch (err) {
    if (!(err instanceof XmlError)) throw err;
    return { ok: false };
  }
}

function same(t: any, body: string, label: string) {
  const fast = outcome(parseWechatXml, body);
  const slow = outcome(parseXmlGeneric, body);
  // node:util's deep strict equality (own keys, prototypes, values); tap's diff only when they differ.
  if (isDeepStrictEqual(fast, slow)) t.pass(label);
  else t.strictSame(fast, slow, label);
}

t.test('xml fast path › every official sample reads the same as through xml2js', async (t) => {
  const files = readdirSync(FIXTURES).filter((f) => f.endsWith('.xml'));
  t.ok(files.length >= 30);
  let flat = 0;
  for (const f of files) {
    const body = readFileSync(path.join(FIXTURES, f), 'utf8');
    same(t, body, f);
    if (parseFlatXml(body)) flat++;
  }
  t.ok(flat >= files.length / 2, `most samples take the flat path (${flat} of ${files.length})`);
});

t.test('xml fast path › a text message with a pack code takes the flat path', async (t) => {
  const body = buildXml({ ToUserName: 'gh_sandbox00001', FromUserName: 'oUser', CreateTime: 1700000000, MsgType: 'text', Content: 'ABCD-EFGH-12345', MsgId: '9223372036854775001' });
  const node = parseFlatXml(body);
  t.ok(node);
  t.strictSame(node, parseXmlGeneric(body));
  t.equal(node!.MsgId![0], '9223372036854775001', 'MsgId stays a string');
});

t.test('xml fast path › tricky shapes: same result or the same refusal', async (t) => {
  const cases = [
    '<xml></xml>', '<xml> </xml>', '<xml><A></A></xml>', '<xml><A> </A></xml>', '<xml><A>\n</A></xml>', '<xml><A><![CDATA[]]></A></xml>',
    '<xml><A><![CDATA[ x ]]></A></xml>', '<xml><A>1</A><A>2</A></xml>', '<xml><A>1</A><B>2</B><A>3</A></xml>',
    ' <xml><A>1</A></xml>', '\n<xml><A>1</A></xml>\n', '<xml>\r\n<A>1</A>\r\n</xml>', '<xml><A>a\r\nb</A></xml>', '<xml><A><![CDATA[a\r\nb]]></A></xml>',
    '<xml><A><![CDATA[a]]]]><![CDATA[>b]]></A></xml>', '<xml><A><![CDATA[a]]></A>', '<xml><A>1</A></xml>x', '<xml><A>1</A></xml><xml></xml>',
    '<xml><A>1</B></xml>', '<xml><A>1</A>', '<xml><A attr="1">x</A></xml>', '<xml a="1"><A>x</A></xml>', '<xml><A>x<!-- c --></A></xml>',
    '<xml><!-- c --><A>x</A></xml>', '<?xml version="1.0"?><xml><A>x</A></xml>', '<xml><A>&amp;</A></xml>', '<xml><A>&lt;b&gt;</A></xml>',
    '<xml><A>a]]>b</A></xml>', '<xml><A>a>b</A></xml>', '<xml><A>a]b</A></xml>', '<xml><A><B>x</B></A></xml>', '<xml><A> <B>x</B> </A></xml>',
    '<xml><__proto__>x</__proto__></xml>', '<xml><constructor>x</constructor><toString>y</toString></xml>',
    '<xml><xml>a</xml></xml>', '<xml><A:B>x</A:B></xml>', '<xml><A-B>x</A-B></xml>', '<xml><_a>x</_a></xml>', '<xml><A>x</A ></xml>',
    '<xml ><A>x</A></xml>', '<XML><A>x</A></XML>', '<xml><A>\u0000</A></xml>', '<xml><A>\u0001\u001f</A></xml>', '<xml><A><![CDATA[\u0000]]></A></xml>',
    '<xml><A>\uFEFF</A></xml>', '\uFEFF<xml><A>x</A></xml>', '<xml><A>😀 中文</A></xml>', '<xml><A><![CDATA[<b>&amp;</b>]]></A></xml>', '<xml>\t<A>x</A>\t</xml>',
    '<xml><A>x</A>junk</xml>', '<xml>junk<A>x</A></xml>', '<xml><A>x</A></xml >', '<xml><A/></xml>', '<xml><A>x</A><B/></xml>',
  ];
  for (const c of cases) same(t, c, JSON.stringify(c));
  // Names objects inherit are xml2js's own business (it merges them with the inherited value): never read flat.
  for (const name of ['__proto__', 'constructor', 'hasOwnProperty', 'toString', 'valueOf']) {
    t.equal(parseFlatXml(`<xml><A>1</A><${name}>x</${name}></xml>`), undefined, `${name} goes through xml2js`);
  }
  // What the reply builder writes (CDATA split around terminators) reads back the same either way.
  same(t, buildReplyXml({ type: 'text', content: 'a]]>b <tag> & 😀 ]]]]>' }, 'oUser', 'gh_x', 1), 'reply with CDATA terminators');
});

t.test('xml fast path › generated documents: same result or the same refusal', async (t) => {
  // A small deterministic generator (no Math.random: a failure must reproduce).
  let seed = 42;
  const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2147483648) % n);
  const alphabet = ['a', 'Z', '0', ' ', '\n', '\r', '\t', '<', '>', '&', ']', '[', '!', '/', '"', "'", '=', '中', '😀', '\u0000', '\u0007', '\uFEFF', ';', '-', ':'];
  const text = () => Array.from({ length: rnd(8) }, () => alphabet[rnd(alphabet.length)]).join('');
  const names = ['A', 'Content', 'MsgId', 'x_1', '__proto__', 'xml', 'A:B', '1A', 'Event'];
  const element = (): string => {
    const name = names[rnd(names.length)]!;
    switch (rnd(6)) {
      case 0: return `<${name}>${text()}</${name}>`;
      case 1: return `<${name}><![CDATA[${text()}]]></${name}>`;
      case 2: return `<${name}>${text()}<![CDATA[${text()}]]></${name}>`;
      case 3: return `<${name}>${element()}</${name}>`;
      case 4: return `${text()}<${name}>${text()}</${name}>`;
      default: return `<${name}>${text().replace(/[<&\]>]/g, '')}</${name}>`;
    }
  };
  let n = 0;
  let flat = 0;
  for (let i = 0; i < 3000; i++) {
    const body = `${rnd(5) === 0 ? text() : ''}<xml>${Array.from({ length: 1 + rnd(5) }, element).join(rnd(2) ? '\n' : '')}</xml>${rnd(5) === 0 ? text() : ''}`;
    const fast = outcome(parseWechatXml, body);
    const slow = outcome(parseXmlGeneric, body);
    if (parseFlatXml(body)) flat++;
    // Report only mismatches (3,000 passing assertions would drown the output).
    if (JSON.stringify(fast) !== JSON.stringify(slow) || (fast.ok && slow.ok && !isDeepStrictEqual(fast.value, slow.value))) {
      t.strictSame(fast, slow, JSON.stringify(body));
      n++;
    }
  }
  t.equal(n, 0, 'no generated document reads differently');
  t.ok(flat > 100, `the generator exercises the flat path (${flat} documents)`);
});

