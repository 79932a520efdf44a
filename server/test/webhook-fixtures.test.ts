/**
 * Every official sample XML of the protocol reference through the real webhook, in plaintext and in
 * safe mode: the parsed result lands in the interaction log as the right kind, and the reply is right.
 */
import t from 'tap';
import { readdirSync } from 'node:fs';
import { sql } from 'drizzle-orm';
import { buildTestApp, count, fixture, fixtureJson, FIXTURES } from './helpers.ts';

const WELCOME = /欢迎关注/;
const DEFAULT = /回复“帮助”/;

/** fixture → [parsed kind, expected passive reply (regex on text content) or null for `success`] */
const EXPECTED: Record<string, [string, RegExp | null]> = {
  'mp-text.xml': ['text', DEFAULT],
  'mp-text-with-msgdataid.xml': ['text', DEFAULT],
  'mp-image.xml': ['image', DEFAULT],
  'mp-voice.xml': ['voice', DEFAULT],
  'mp-voice-recognition.xml': ['voice', DEFAULT],
  'mp-video.xml': ['video', DEFAULT],
  'mp-shortvideo.xml': ['shortvideo', DEFAULT],
  'mp-location.xml': ['location', DEFAULT],
  'mp-link.xml': ['link', DEFAULT],
  'mp-event-subscribe.xml': ['subscribe', WELCOME],
  'mp-event-subscribe-qrscene.xml': ['subscribe', WELCOME],
  'mp-event-unsubscribe.xml': ['unsubscribe', null],
  'mp-event-scan.xml': ['scan', null],
  'mp-event-location.xml': ['location_report', null],
  'mp-event-click.xml': ['click', null],
  'mp-event-view.xml': ['view', null],
  'mp-event-scancode-push.xml': ['scancode', null],
  'mp-event-scancode-waitmsg.xml': ['scancode', null],
  'mp-event-pic-sysphoto.xml': ['pics', null],
  'mp-event-pic-photo-or-album.xml': ['pics', null],
  'mp-event-pic-weixin.xml': ['pics', null],
  'mp-event-location-select.xml': ['location_select', null],
  'mp-event-view-miniprogram.xml': ['view_miniprogram', null],
  'mp-event-templatesendjobfinish-success.xml': ['template_send_finished', null],
  'mp-event-templatesendjobfinish-userblock.xml': ['template_send_finished', null],
  'mp-event-templatesendjobfinish-systemfailed.xml': ['template_send_finished', null],
  'mp-event-masssendjobfinish.xml': ['mass_send_finished', null],
  'mp-event-subscribe-msg-popup.xml': ['subscribe_msg_popup', null],
  'mp-event-subscribe-msg-change.xml': ['subscribe_msg_change', null],
  'mp-event-subscribe-msg-sent.xml': ['subscribe_msg_sent', null],
};

t.test('every inbound sample in the fixtures is covered', async (t) => {
  const inbound = readdirSync(FIXTURES).filter((f) => /^mp-.*\.xml$/.test(f) && !f.startsWith('mp-reply') && !f.startsWith('mp-encrypted'));
  t.same(inbound.sort(), Object.keys(EXPECTED).sort());
});

for (const mode of ['plaintext', 'safe', 'compatible'] as const) {
  t.test(`fixtures › ${mode} mode`, async (t) => {
    const { simulator, database } = await buildTestApp(t);
    const sim = simulator(mode !== 'plaintext', mode === 'compatible');
    let n = 0;
    for (const [file, [kind, reply]] of Object.entries(EXPECTED)) {
      // The official samples share MsgId 1234567890123456 from the same user: give each its own id, or
      // the dedup (rightly) treats them as retries of one message.
      const r = await sim.push(fixture(file).replace(/<MsgId>(\d+)<\/MsgId>/, (_m, id: string) => `<MsgId>${BigInt(id) + BigInt(++n)}</MsgId>`));
      t.equal(r.status, 200, `${file}: 200`);
      if (reply) {
        t.equal(r.msgType, 'text', `${file}: text reply`);
        t.match(r.content, reply, `${file}: reply content`);
        if (mode !== 'plaintext') t.match(r.raw, /<Encrypt><!\[CDATA\[/, `${file}: reply is encrypted`);
      } else {
        t.equal(r.raw, 'success', `${file}: answered success`);
      }
      const [row] = await database.query<{ payload: { kind: string } }>(sql`SELECT payload FROM interactions ORDER BY id DESC LIMIT 1`);
      t.equal(row?.payload.kind, kind, `${file}: parsed as ${kind}`);
    }
    t.equal(await count(database, 'interactions'), Object.keys(EXPECTED).length, 'one log row per sample');

    // Spot-check parsed fields from the log.
    const q = async (where: string) => (await database.query<{ payload: any }>(sql.raw(`SELECT payload FROM interactions WHERE ${where} ORDER BY id DESC LIMIT 1`)))[0]!.payload;
    t.equal((await q(`payload->>'kind' = 'subscribe' AND payload->>'scene' IS NOT NULL`)).scene, '123123', 'qrscene_ prefix stripped');
    t.equal((await q(`payload->>'kind' = 'voice' AND payload ? 'recognition'`)).recognition, '腾讯微信团队');
    t.equal((await q(`payload->>'kind' = 'mass_send_finished'`)).copyrightCheck.results.length, 2);
    t.equal((await q(`payload->>'kind' = 'pics' AND payload->>'event' = 'pic_sysphoto'`)).picMd5Sums[0], '1b5f7c23b5bf75682a53e7b6d163e185');
    const follower = await database.query<{ subscribed: boolean; subscribe_scene: string | null }>(sql`SELECT subscribed, subscribe_scene FROM followers WHERE openid = 'FromUser'`);
    t.ok(follower.length === 1, 'the follower of the QR sample is recorded');
  });
}

t.test('fixtures › the official compatible-mode sample decrypts through the webhook with its own signature', async (t) => {
  const v = fixtureJson('crypto-vector-1.json');
  const { app, database } = await buildTestApp(t, {
    // The official sample's timestamp is from 2014: widen the window for this one test.
    env: { WECHAT_TOKEN: v.token, WECHAT_APPID: v.appid, WECHAT_ENCODING_AES_KEY: v.encodingAESKey, WEBHOOK_TIMESTAMP_WINDOW_S: String(2 ** 31) },
  });
  const qs = new URLSearchParams({ signature: '', timestamp: v.timestamp, nonce: v.nonce, encrypt_type: 'aes', msg_signature: v.msg_signature });
  qs.delete('signature');
  const res = await app.inject({ method: 'POST', url: `/wechat?${qs}`, payload: fixture(v.body_fixture), headers: { 'content-type': 'text/xml' } });
  t.equal(res.statusCode, 200);
  t.match(res.body, /<Encrypt>/, 'reply encrypted because the request was');
  const [row] = await database.query<{ payload: any; msg_id: string }>(sql`SELECT payload, msg_id FROM interactions`);
  t.equal(row?.payload.content, 'abcdteT');
  t.equal(row?.msg_id, '6054768590064713728');

  const bad = await app.inject({ method: 'POST', url: `/wechat?${qs.toString().replace(v.msg_signature, '0'.repeat(40))}`, payload: fixture(v.body_fixture), headers: { 'content-type': 'text/xml' } });
  t.equal(bad.statusCode, 401, 'a wrong msg_signature is refused');
});
