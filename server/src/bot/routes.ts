/**
 * The WeChat webhook: GET /wechat (URL verification) and POST /wechat (messages and events) in plaintext,
 * compatible and safe mode. HTTP only: verification, decoding and encoding; the bot service does the rest.
 * @see https://developers.weixin.qq.com/doc/offiaccount/Basic_Information/Access_Overview.html
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import type { Config } from '../config.ts';
import { AppError } from '../platform/errors.ts';
import { MsgCrypt, MsgCryptError, safeEqualHex, wechatSignature } from '../wechat/crypto.ts';
import { InboundError, toInbound } from '../wechat/inbound.ts';
import { encryptReply, SUCCESS } from '../wechat/reply.ts';
import { extractEncrypt, parseWechatXml, XmlError } from '../wechat/xml.ts';
import type { Metrics } from '../platform/metrics.ts';
import type { BotService } from './service.ts';

const Query = Type.Object({
  signature: Type.Optional(Type.String({ maxLength: 64 })),
  timestamp: Type.Optional(Type.String({ maxLength: 16 })),
  nonce: Type.Optional(Type.String({ maxLength: 64 })),
  echostr: Type.Optional(Type.String({ maxLength: 512 })),
  openid: Type.Optional(Type.String({ maxLength: 128 })),
  encrypt_type: Type.Optional(Type.String({ maxLength: 16 })),
  msg_signature: Type.Optional(Type.String({ maxLength: 64 })),
});
type QueryT = { signature?: string; timestamp?: string; nonce?: string; echostr?: string; openid?: string; encrypt_type?: string; msg_signature?: string };

const XML_TYPES = ['text/xml', 'application/xml', 'text/plain'];

export async function webhookRoutes(app: FastifyInstance, opts: { config: Config; bot: BotService; metrics: Metrics; now: () => Date }) {
  const { config, bot, metrics } = opts;
  const token = config.wechat.token;
  const crypt = config.wechat.encodingAesKey ? new MsgCrypt(config.wechat.encodingAesKey, config.wechat.appId) : undefined;

  // The raw body as a string: signatures and decryption work on exactly what WeChat sent.
  for (const type of XML_TYPES) {
    app.addContentTypeParser(type, { parseAs: 'string', bodyLimit: config.webhook.bodyLimit }, (_req, body, done) => done(null, body));
  }

  /** signature = sha1(sort(token, timestamp, nonce)), and the timestamp within the configured window. */
  function verifyPlainSignature(q: QueryT) {
    if (!q.signature || !q.timestamp || !q.nonce) throw new AppError('BAD_SIGNATURE', 'signature, timestamp and nonce are required');
    if (!safeEqualHex(q.signature, wechatSignature(token, q.timestamp, q.nonce))) throw new AppError('BAD_SIGNATURE');
  }

  function verifyTimestamp(q: QueryT) {
    const ts = Number(q.timestamp);
    // WeChat signs the timestamp but enforces no window; we do, so a captured request cannot be replayed later.
    if (!/^\d{1,12}$/.test(q.timestamp ?? '') || Math.abs(opts.now().getTime() / 1000 - ts) > config.webhook.timestampWindowS) {
      throw new AppError('STALE_TIMESTAMP');
    }
  }

  app.get('/wechat', { schema: { querystring: Query, hide: true } }, async (req: FastifyRequest<{ Querystring: QueryT }>, reply: FastifyReply) => {
    verifyPlainSignature(req.query);
    if (req.query.echostr === undefined) throw new AppError('BAD_REQUEST', 'echostr is required');
    // Return echostr verbatim: no quotes, no XML.
    return reply.type('text/plain; charset=utf-8').send(req.query.echostr);
  });

  // Per-request info logs would dominate at WeChat's volume: this route logs warnings and errors only
  // (counts and latency are in /metrics).
  // The reply budget counts from the request's arrival (onRequest runs before the body is read), not from the handler:
  // WeChat's 5 s run from when it sent the request.
  const arrivals = new WeakMap<object, number>();
  const onRequest = (req: object, _reply: unknown, done: () => void) => {
    arrivals.set(req, performance.now());
    done();
  };
  app.post('/wechat', { schema: { querystring: Query, hide: true }, bodyLimit: config.webhook.bodyLimit, logLevel: 'warn', onRequest }, async (req: FastifyRequest<{ Querystring: QueryT }>, reply: FastifyReply) => {
    const started = process.hrtime.bigint();
    const arrivedAt = arrivals.get(req) ?? performance.now();
    const q = req.query;
    if (typeof req.body !== 'string') throw new AppError('UNSUPPORTED_MEDIA_TYPE', 'WeChat pushes are XML (text/xml)');
    const encrypted = q.encrypt_type === 'aes';
    if (q.encrypt_type !== undefined && q.encrypt_type !== 'aes' && q.encrypt_type !== 'raw') throw new AppError('BAD_REQUEST', 'encrypt_type must be aes or raw');

    // Safe mode only (WEBHOOK_REQUIRE_ENCRYPTION): a plaintext push's signature does not cover its body.
    if (!encrypted && config.webhook.requireEncryption) throw new AppError('BAD_SIGNATURE', 'encrypted pushes only (encrypt_type=aes): this server runs in safe mode');
    verifyTimestamp(q);
    if (!encrypted || q.signature !== undefined) verifyPlainSignature(q);

    let inboundXml = req.body;
    if (encrypted) {
      if (!crypt) throw new AppError('BAD_REQUEST', 'safe mode is not configured (WECHAT_ENCODING_AES_KEY)');
      let encrypt: string;
      try {
        encrypt = extractEncrypt(req.body);
      } catch (err) {
        if (err instanceof XmlError) throw new AppError('MALFORMED_XML', err.message);
        throw err;
      }
      // msg_signature = sha1(sort(token, timestamp, nonce, Encrypt)): check before decrypting.
      if (!q.msg_signature || !safeEqualHex(q.msg_signature, wechatSignature(token, q.timestamp!, q.nonce!, encrypt))) throw new AppError('BAD_SIGNATURE', 'msg_signature check failed');
      try {
        inboundXml = crypt.decrypt(encrypt);
      } catch (err) {
        if (err instanceof MsgCryptError) throw new AppError(err.code === -40005 ? 'BAD_SIGNATURE' : 'BAD_REQUEST', `cannot decrypt (${err.code})`);
        throw err;
      }
    }
    let inbound;
    try {
      inbound = toInbound(parseOrThrow(inboundXml));
    } catch (err) {
      if (err instanceof InboundError) throw new AppError('MALFORMED_XML', err.message);
      throw err;
    }
    req.log.debug({ openid: inbound.fromUser, kind: inbound.kind }, 'inbound');

    const result = await bot.handle(inbound, { arrivedAt });
    metrics.webhookInbound.inc({ kind: inbound.kind, outcome: result.outcome });
    let body = result.xml ?? SUCCESS;
    if (encrypted && result.xml) body = encryptReply(crypt!, token, result.xml, q.timestamp!, q.nonce!);
    metrics.webhookLatency.observe({ mode: encrypted ? 'aes' : 'plain' }, Number(process.hrtime.bigint() - started) / 1e9);
    return reply.type(result.xml ? 'application/xml; charset=utf-8' : 'text/plain; charset=utf-8').send(body);
  });
}

function parseOrThrow(body: string) {
  try {
    return parseWechatXml(body);
  } catch (err) {
    if (err instanceof XmlError) throw new AppError('MALFORMED_XML', err.message);
    throw err;
  }
}
