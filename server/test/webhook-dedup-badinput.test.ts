import t from 'tap';
import { sql } from 'drizzle-orm';
import { wechatSignature } from '../src/wechat/crypto.ts';
import { buildXml } from '../src/wechat/xml.ts';
import { buildTestApp, count } from './helpers.ts';

const text = (openid: string, content: string, msgId: string, createTime = Math.floor(Date.now() / 1000)) =>
  buildXml({ ToUserName: 'gh_sandbox00001', FromUserName: openid, CreateTime: createTime, MsgType: 'text', Content: content, MsgId: msgId });

t.test('dedup › a message posted three times has one effect and the same reply', async (t) => {
  const { sim, database } = await buildTestApp(t);
  const xml = text('oDup', '帮助', '9223372036854775001');
  const replies = [await sim.push(xml, 'oDup', 'message'), await sim.push(xml), await sim.push(xml)];
  for (const r of replies) t.equal(r.status, 200);
  t.equal(replies[1]!.content, replies[0]!.content, 'retry gets the same reply');
  t.equal(replies[2]!.content, replies[0]!.content);
  t.match(replies[0]!.content, /兑奖码/);
  t.equal(await count(database, 'interactions'), 1, 'logged once');
  t.equal(await count(database, 'webhook_dedup'), 1);
  const [row] = await database.query<{ msg_id: string }>(sql`SELECT msg_id FROM interactions`);
  t.equal(row!.msg_id, '9223372036854775001', '64-bit MsgId stored exactly');
});

t.test('dedup › three concurrent deliveries of one subscribe event count one follow', async (t) => {
  const { sim, database } = await buildTestApp(t);
  const xml = buildXml({ ToUserName: 'gh_sandbox00001', FromUserName: 'oSub', CreateTime: 1700000000, MsgType: 'event', Event: 'subscribe', EventKey: 'qrscene_store42', Ticket: 'T' });
  const rs = await Promise.all([sim.push(xml), sim.push(xml), sim.push(xml)]);
  t.same(rs.map((r) => r.status), [200, 200, 200]);
  t.equal(await count(database, 'interactions'), 1);
  const [f] = await database.query<{ subscribe_count: number; subscribe_scene: string; subscribed: boolean }>(sql`SELECT subscribe_count, subscribe_scene, subscribed FROM followers WHERE openid = 'oSub'`);
  t.equal(f!.subscribe_count, 1);
  t.equal(f!.subscribe_scene, 'store42');
  t.equal(f!.subscribed, true);
});

t.test('dedup › the same MsgId from two users is two messages', async (t) => {
  const { sim, database } = await buildTestApp(t);
  await sim.push(text('oA', 'hi', '42'));
  await sim.push(text('oB', 'hi', '42'));
  t.equal(await count(database, 'interactions'), 2);
});

t.test('followers › follow, unfollow and re-follow keep time, source and count', async (t) => {
  const { sim, database } = await buildTestApp(t);
  await sim.subscribe('oF', 'posterA');
  await sim.unsubscribe('oF');
  let [f] = await database.query<any>(sql`SELECT * FROM followers WHERE openid = 'oF'`);
  t.equal(f.subscribed, false);
  t.ok(f.unsubscribed_at);
  await new Promise((r) => setTimeout(r, 1100)); // a new CreateTime second: a new event, not a retry
  await sim.subscribe('oF');
  [f] = await database.query<any>(sql`SELECT * FROM followers WHERE openid = 'oF'`);
  t.equal(f.subscribed, true);
  t.equal(f.subscribe_count, 2);
  t.equal(f.subscribe_scene, null, 'search follow has no scene');
  await sim.text('oF', 'hello');
  [f] = await database.query<any>(sql`SELECT * FROM followers WHERE openid = 'oF'`);
  t.ok(f.last_message_at, 'a user message opens the 48-hour window');
  await sim.click('oF', 'MEMBER_CENTER');
  const clicks = await database.query<{ event_key: string }>(sql`SELECT event_key FROM interactions WHERE event = 'CLICK'`);
  t.same(clicks.map((c) => c.event_key), ['MEMBER_CENTER'], 'menu clicks recorded by key');
});

t.test('bad input › answers with the right status and leaves the database unchanged', async (t) => {
  const { app, config, database } = await buildTestApp(t);
  const token = config.wechat.token;
  const now = () => String(Math.floor(Date.now() / 1000));
  const signed = (ts = now(), nonce = '123') => `signature=${wechatSignature(token, ts, nonce)}&timestamp=${ts}&nonce=${nonce}`;
  const good = text('oBad', 'hi', '1001');
  const post = (qs: string, payload: string | Buffer, contentType = 'text/xml') =>
    app.inject({ method: 'POST', url: `/wechat?${qs}`, payload, headers: { 'content-type': contentType } });

  const cases: Array<[string, () => Promise<{ statusCode: number }>, number]> = [
    ['missing signature', () => post(`timestamp=${now()}&nonce=1`, good), 401],
    ['wrong signature', () => post(`signature=${'a'.repeat(40)}&timestamp=${now()}&nonce=1`, good), 401],
    ['signature of 40 non-ASCII characters', () => post(`signature=${encodeURIComponent('é'.repeat(40))}&timestamp=${now()}&nonce=1`, good), 401],
    ['msg_signature of 40 non-ASCII characters', () => post(`${signed()}&encrypt_type=aes&msg_signature=${encodeURIComponent('签'.repeat(40))}`, '<xml><ToUserName>a</ToUserName><Encrypt>AAAA</Encrypt></xml>'), 401],
    ['signature of another token', () => post(`signature=${wechatSignature('other', now(), '1')}&timestamp=${now()}&nonce=1`, good), 401],
    ['replayed old timestamp (validly signed)', () => post(signed(String(Math.floor(Date.now() / 1000) - 3600)), good), 401],
    ['timestamp from the future', () => post(signed(String(Math.floor(Date.now() / 1000) + 3600)), good), 401],
    ['non-numeric timestamp', () => post(signed('abc'), good), 401],
    ['truncated XML', () => post(signed(), good.slice(0, good.length - 20)), 400],
    ['empty body', () => post(signed(), ''), 400],
    ['not an <xml> root', () => post(signed(), '<foo><bar/></foo>'), 400],
    ['missing FromUserName', () => post(signed(), '<xml><ToUserName>a</ToUserName><CreateTime>1</CreateTime><MsgType>text</MsgType><Content>x</Content><MsgId>1</MsgId></xml>'), 400],
    ['text without MsgId', () => post(signed(), '<xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType><Content>x</Content></xml>'), 400],
    ['billion laughs entity declarations', () => post(signed(), '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]><xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType><Content>&lol2;</Content><MsgId>1</MsgId></xml>'), 400],
    ['external entity (XXE)', () => post(signed(), '<!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><xml><ToUserName>a</ToUserName><FromUserName>&xxe;</FromUserName></xml>'), 400],
    ['10 MB body', () => post(signed(), Buffer.alloc(10 * 1024 * 1024, 'a')), 413],
    ['JSON content type', () => post(signed(), JSON.stringify({ MsgType: 'text' }), 'application/json'), 415],
    ['form content type', () => post(signed(), 'a=b', 'application/x-www-form-urlencoded'), 415],
    ['unknown encrypt_type', () => post(`${signed()}&encrypt_type=rot13`, good), 400],
    ['aes without msg_signature', () => post(`${signed()}&encrypt_type=aes`, '<xml><ToUserName>a</ToUserName><Encrypt>AAAA</Encrypt></xml>'), 401],
    ['aes with a forged Encrypt', () => {
      const ts = now();
      const enc = Buffer.alloc(64, 7).toString('base64');
      return post(`${signed(ts)}&encrypt_type=aes&msg_signature=${wechatSignature(token, ts, '123', enc)}`, `<xml><ToUserName>a</ToUserName><Encrypt>${enc}</Encrypt></xml>`);
    }, 400],
    ['GET with a wrong signature', () => app.inject({ method: 'GET', url: `/wechat?signature=x&timestamp=1&nonce=1&echostr=abc` }), 401],
  ];
  for (const [name, send, status] of cases) {
    const res = await send();
    t.equal(res.statusCode, status, `${name} → ${status}`);
  }
  for (const table of ['interactions', 'webhook_dedup', 'followers', 'cs_grants', 'cs_outbox']) t.equal(await count(database, table), 0, `${table} unchanged`);

  const ok = await app.inject({ method: 'GET', url: `/wechat?${signed()}&echostr=5837397749` });
  t.equal(ok.statusCode, 200);
  t.equal(ok.body, '5837397749', 'URL verification returns echostr verbatim');
  t.equal(({} as Record<string, unknown>).polluted, undefined);
});

t.test('bad input › unknown kinds are logged and answered success, emoji and CDATA survive exactly', async (t) => {
  const { sim, database } = await buildTestApp(t);
  const unknownEvent = buildXml({ ToUserName: 'gh', FromUserName: 'oU', CreateTime: 1700000001, MsgType: 'event', Event: 'brand_new_event', EventKey: 'k' });
  t.equal((await sim.push(unknownEvent)).raw, 'success');
  const unknownType = buildXml({ ToUserName: 'gh', FromUserName: 'oU', CreateTime: 1700000002, MsgType: 'hologram', MsgId: '77' });
  t.equal((await sim.push(unknownType)).raw, 'success');
  const tricky = '  前后空格 😀👍🏻 ]]> <b>&amp; \n 换行  ';
  const r = await sim.text('oU', tricky);
  t.equal(r.status, 200);
  const rows = await database.query<{ payload: any }>(sql`SELECT payload FROM interactions ORDER BY id`);
  t.same(rows.map((x) => x.payload.kind), ['unknown', 'unknown', 'text']);
  t.equal(rows[2]!.payload.content, tricky, 'content stored byte for byte');
  const safe = await buildTestApp(t, { encrypt: true });
  const r2 = await safe.sim.text('oU', tricky);
  t.equal(r2.status, 200);
  const [row] = await safe.database.query<{ payload: any }>(sql`SELECT payload FROM interactions`);
  t.equal(row!.payload.content, tricky, 'and in safe mode');
});
