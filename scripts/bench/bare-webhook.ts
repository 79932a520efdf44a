/**
 * The "bare route" baseline for `npm run bench:webhook`: a minimal Fastify 5 server whose POST /wechat does
 * the same protocol work as the real webhook (server/src/bot/routes.ts) with the same helpers, and nothing else:
 *
 *   querystring schema → timestamp window + signature check → (aes: msg_signature check + decrypt)
 *   → (aes: extractEncrypt, msg_signature, decrypt) → parseWechatXml + toInbound → text passive reply with buildReplyXml → (aes: encryptReply)
 *
 * No database, no dedup, no logging, no metrics: the ceiling the real route can be compared against.
 * Token, appid and EncodingAESKey come from loadConfig(process.env), exactly as the server gets them.
 *
 * Env: PORT (0 = any free port), HOST (default 127.0.0.1). Prints `BARE_READY <port>` on stdout once listening.
 */
import Fastify from 'fastify';
import { loadConfig } from '../../server/src/config.ts';
import { MsgCrypt, safeEqualHex, wechatSignature } from '../../server/src/wechat/crypto.ts';
import { toInbound } from '../../server/src/wechat/inbound.ts';
import { buildReplyXml, encryptReply } from '../../server/src/wechat/reply.ts';
import { extractEncrypt, parseWechatXml } from '../../server/src/wechat/xml.ts';

/** The same reply text the server's seeded default reply sends, so reply sizes match. */
const REPLY_TEXT = '收到～回复“帮助”查看可以做什么，或点击下方菜单。';

type Query = { signature?: string; timestamp?: string; nonce?: string; openid?: string; encrypt_type?: string; msg_signature?: string };

/** Same limits as the real route's TypeBox schema, so Fastify does the same query validation work. */
const querySchema = {
  type: 'object',
  properties: {
    signature: { type: 'string', maxLength: 64 },
    timestamp: { type: 'string', maxLength: 16 },
    nonce: { type: 'string', maxLength: 64 },
    echostr: { type: 'string', maxLength: 512 },
    openid: { type: 'string', maxLength: 128 },
    encrypt_type: { type: 'string', maxLength: 16 },
    msg_signature: { type: 'string', maxLength: 64 },
  },
} as const;

class BadRequest extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

const config = loadConfig(process.env);
const token = config.wechat.token;
const crypt = config.wechat.encodingAesKey ? new MsgCrypt(config.wechat.encodingAesKey, config.wechat.appId) : undefined;
const windowS = config.webhook.timestampWindowS;

const app = Fastify({ logger: false });
app.addContentTypeParser('text/xml', { parseAs: 'string', bodyLimit: config.webhook.bodyLimit }, (_req, body, done) => done(null, body));
app.setErrorHandler((err: Error & { statusCode?: number; status?: number }, _req, reply) => {
  void reply.status(err instanceof BadRequest ? err.status : (err.statusCode ?? 500)).send({ message: err.message });
});

app.post<{ Querystring: Query; Body: string }>('/wechat', { schema: { querystring: querySchema } }, async (req, reply) => {
  const q = req.query;
  if (typeof req.body !== 'string') throw new BadRequest(415, 'text/xml expected');
  const encrypted = q.encrypt_type === 'aes';

  const ts = Number(q.timestamp);
  if (!/^\d{1,12}$/.test(q.timestamp ?? '') || Math.abs(Date.now() / 1000 - ts) > windowS) throw new BadRequest(401, 'stale timestamp');
  if (!encrypted || q.signature !== undefined) {
    if (!q.signature || !q.timestamp || !q.nonce) throw new BadRequest(401, 'signature, timestamp and nonce are required');
    if (!safeEqualHex(q.signature, wechatSignature(token, q.timestamp, q.nonce))) throw new BadRequest(401, 'bad signature');
  }

  let inboundXml = req.body;
  if (encrypted) {
    if (!crypt) throw new BadRequest(400, 'safe mode not configured');
    let encrypt: string;
    try {
      encrypt = extractEncrypt(req.body);
    } catch {
      throw new BadRequest(400, 'missing <Encrypt>');
    }
    if (!q.msg_signature || !safeEqualHex(q.msg_signature, wechatSignature(token, q.timestamp!, q.nonce!, encrypt))) throw new BadRequest(401, 'msg_signature check failed');
    inboundXml = crypt.decrypt(encrypt);
  }
  const inbound = toInbound(parseWechatXml(inboundXml));

  const xml = buildReplyXml({ type: 'text', content: REPLY_TEXT }, inbound.fromUser, inbound.toUser, Math.floor(Date.now() / 1000));
  const body = encrypted ? encryptReply(crypt!, token, xml, q.timestamp!, q.nonce!) : xml;
  return reply.type('application/xml; charset=utf-8').send(body);
});

const port = Number(process.env.PORT ?? 0);
await app.listen({ port, host: process.env.HOST ?? '127.0.0.1' });
const address = app.server.address();
console.log(`BARE_READY ${typeof address === 'object' && address ? address.port : port}`);

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    void app.close().finally(() => process.exit(0));
  });
}
