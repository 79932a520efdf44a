import t from 'tap';
import { MsgCrypt, MsgCryptError, wechatSignature } from '../src/wechat/crypto.ts';
import { buildXml, parseWechatXml, XmlError } from '../src/wechat/xml.ts';
import { toInbound, dedupKeyOf } from '../src/wechat/inbound.ts';
import { buildReplyXml, encryptReply } from '../src/wechat/reply.ts';
import { parseJsonLossless } from '../src/wechat/json.ts';
import { fixture, fixtureJson } from './helpers.ts';

t.test('crypto › URL verification vector: sha1(sort(token, timestamp, nonce))', async (t) => {
  const v = fixtureJson('url-verify-vector.json');
  t.equal(wechatSignature(v.token, v.timestamp, v.nonce), v.signature);
});

t.test('crypto › official MP sample (vector 1): msg_signature verifies and Encrypt decrypts to the text message', async (t) => {
  const v = fixtureJson('crypto-vector-1.json');
  t.equal(wechatSignature(v.token, v.timestamp, v.nonce, v.encrypt), v.msg_signature);
  const plain = new MsgCrypt(v.encodingAESKey, v.appid).decrypt(v.encrypt);
  t.equal(plain, v.expected_plaintext);
  const m = toInbound(parseWechatXml(plain));
  t.equal(m.kind, 'text');
  t.equal((m as { msgId: string }).msgId, '6054768590064713728', 'MsgId beyond 2^53 kept exactly');
});

t.test('crypto › official Java sample (vector 2): deterministic encryption byte for byte, Chinese included', async (t) => {
  const v = fixtureJson('crypto-vector-2.json');
  const crypt = new MsgCrypt(v.encodingAESKey, v.appid);
  t.equal(v.cases.length, 2);
  for (const c of v.cases) {
    t.equal(crypt.encrypt(c.plaintext, Buffer.from(v.random, 'utf8')), c.encrypt);
    t.equal(crypt.decrypt(c.encrypt), c.plaintext);
  }
});

t.test('crypto › WeCom sample (vector 3): same algorithm with the corp id as tail', async (t) => {
  const v = fixtureJson('crypto-vector-3.json');
  const crypt = new MsgCrypt(v.encodingAESKey, v.receiveid);
  t.equal(wechatSignature(v.token, v.message.timestamp, v.message.nonce, v.message.encrypt), v.message.msg_signature);
  t.equal(crypt.decrypt(v.message.encrypt), v.message.expected_plaintext);
  const u = v.url_verify_wecom_style;
  t.equal(wechatSignature(v.token, u.timestamp, u.nonce, u.echostr), u.msg_signature);
  t.equal(crypt.decrypt(u.echostr), u.expected_reply);
});

t.test('crypto › encrypted reply envelope (vector 4) reproduced byte for byte', async (t) => {
  const v = fixtureJson('crypto-vector-4.json');
  const crypt = new MsgCrypt(v.encodingAESKey, v.receiveid);
  t.equal(encryptReply(crypt, v.token, v.reply_plaintext, v.timestamp, v.nonce, Buffer.from(v.random)), v.expected_envelope);
});

t.test('crypto › padding is PKCS#7 to 32 bytes, and round trips at every length', async (t) => {
  const crypt = new MsgCrypt('abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG', 'wx0sandbox0000001');
  for (let n = 0; n < 70; n++) {
    const msg = 'x'.repeat(n) + '中😀';
    t.equal(crypt.decrypt(crypt.encrypt(msg)), msg);
  }
  t.throws(() => new MsgCrypt('abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG', 'wxOTHER').decrypt(crypt.encrypt('hi')), { name: 'MsgCryptError', code: -40005 }, 'appid mismatch is -40005');
  t.throws(() => crypt.decrypt('not base64 at all!!'), MsgCryptError);
  t.throws(() => new MsgCrypt('short', 'wx'), MsgCryptError);
});

t.test('xml › leaves stay strings, repeated elements stay arrays, no trimming', async (t) => {
  const sel = toInbound(parseWechatXml(fixture('mp-event-location-select.xml')));
  t.equal(sel.kind, 'location_select');
  t.equal((sel as { label: string }).label, ' 广州市海珠区客村艺苑路 106号', 'leading space kept');
  t.equal((sel as { poiname: string }).poiname, '');
  const popup = toInbound(parseWechatXml(fixture('mp-event-subscribe-msg-popup.xml')));
  t.equal(popup.kind, 'subscribe_msg_popup');
  t.equal((popup as { items: unknown[] }).items.length, 2);
  const single = toInbound(parseWechatXml(fixture('mp-event-subscribe-msg-change.xml')));
  t.equal((single as { items: unknown[] }).items.length, 1, 'a single List is still an array');
  const sent = toInbound(parseWechatXml(fixture('mp-event-subscribe-msg-sent.xml')));
  t.equal((sent as { items: Array<{ msgId: string }> }).items[0]!.msgId, '1700827132819554304');
});

t.test('xml › DTDs and entity declarations are refused before parsing', async (t) => {
  const laughs = '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]><xml><Content>&lol2;</Content></xml>';
  t.throws(() => parseWechatXml(laughs), XmlError);
  t.throws(() => parseWechatXml('<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><xml>&xxe;</xml>'), XmlError);
  t.throws(() => parseWechatXml('<xml><Content>&undefined;</Content></xml>'), XmlError, 'unknown entities are errors');
  t.throws(() => parseWechatXml('<xml><Content>cut'), XmlError);
  t.throws(() => parseWechatXml('<notxml/>'), XmlError);
});

t.test('xml › __proto__ elements do not pollute prototypes and are not copied', async (t) => {
  const m = toInbound(parseWechatXml('<xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType><Content>x</Content><MsgId>1</MsgId><__proto__><polluted>yes</polluted></__proto__></xml>'));
  t.equal(({} as Record<string, unknown>).polluted, undefined);
  t.notOk(Object.keys(m).includes('__proto__'));
});

t.test('replies › CDATA terminators inside content survive a round trip', async (t) => {
  const tricky = 'a]]>b <tag> & 😀 ]]]]>';
  const xml = buildReplyXml({ type: 'text', content: tricky }, 'oUser', 'gh_x', 1);
  t.equal(parseWechatXml(xml).Content?.[0], tricky);
  const news = buildReplyXml({ type: 'news', articles: [{ title: 't', description: 'd', picUrl: 'p', url: 'u' }] }, 'o', 'g', 1);
  t.match(news, /<ArticleCount>1<\/ArticleCount><Articles><item><Title><!\[CDATA\[t\]\]><\/Title>/);
  t.match(buildXml({ A: 'x' }), '<xml><A><![CDATA[x]]></A></xml>');
});

t.test('dedup keys › messages by user+MsgId, events by user+CreateTime+Event+key', async (t) => {
  const a = toInbound(parseWechatXml(fixture('mp-text.xml')));
  t.equal(dedupKeyOf(a), 'm:fromUser:1234567890123456');
  const e = toInbound(parseWechatXml(fixture('mp-event-click.xml')));
  t.match(dedupKeyOf(e), /^e:.+:CLICK:/);
});

t.test('json › 64-bit ids survive API response parsing', async (t) => {
  const r = parseJsonLossless('{"errcode":0,"msgid":271781022721654784,"n":5}');
  t.equal(r.msgid, '271781022721654784');
  t.equal(r.n, 5);
});

t.test('xml › the safe-mode envelope yields exactly one Encrypt value', async (t) => {
  const { extractEncrypt } = await import('../src/wechat/xml.ts');
  t.equal(extractEncrypt(fixture('mp-encrypted-safe-derived.xml')), fixtureJson('crypto-vector-1.json').encrypt);
  t.equal(extractEncrypt(fixture('mp-encrypted-compat-official-sample.xml')), fixtureJson('crypto-vector-1.json').encrypt, 'compatible mode: plaintext fields ignored');
  t.equal(extractEncrypt('<xml><Encrypt>QUJD</Encrypt></xml>'), 'QUJD', 'CDATA is optional');
  t.throws(() => extractEncrypt('<xml><Encrypt><![CDATA[QUJD]]></Encrypt><Encrypt><![CDATA[REVG]]></Encrypt></xml>'), XmlError, 'two Encrypt elements');
  t.throws(() => extractEncrypt('<xml><ToUserName>a</ToUserName></xml>'), XmlError, 'none');
  t.throws(() => extractEncrypt('<xml><Encrypt><![CDATA[not base64!]]></Encrypt></xml>'), XmlError);
  t.throws(() => extractEncrypt('<!DOCTYPE x [<!ENTITY e "QUJD">]><xml><Encrypt>&e;</Encrypt></xml>'), XmlError);
  t.throws(() => extractEncrypt('<foo><Encrypt>QUJD</Encrypt></foo>'), XmlError);
});
