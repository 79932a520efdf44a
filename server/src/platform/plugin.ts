/**
 * Cross-cutting HTTP concerns: one error handler (5xx details hidden behind the request id), request
 * metrics, /healthz, /readyz and /metrics.
 */
import type { FastifyError, FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { AppError } from './errors.ts';
import { WeChatApiError, WeChatTransportError } from '../wechat/errors.ts';
import type { Metrics } from './metrics.ts';

export const platformPlugin = fp(async (app: FastifyInstance, opts: { metrics: Metrics; ready: () => Promise<boolean> }) => {
  const { metrics } = opts;

  app.setErrorHandler((err: FastifyError | AppError | WeChatApiError | WeChatTransportError, req, reply) => {
    if (err instanceof AppError) {
      if (err.status >= 500) req.log.error({ err }, err.message);
      return reply.status(err.status).send({ code: err.code, message: err.message, ...(err.details ? { details: err.details } : {}) });
    }
    if (err instanceof WeChatApiError) {
      req.log.warn({ errcode: err.errcode, path: err.path, rid: err.rid }, 'WeChat API error');
      return reply.status(502).send({ code: 'WECHAT_API', message: `WeChat answered ${err.errcode}: ${err.errmsg}`, details: { errcode: err.errcode } });
    }
    if (err instanceof WeChatTransportError) {
      req.log.warn({ path: err.path, err: err.message }, 'WeChat unreachable');
      return reply.status(502).send({ code: 'WECHAT_API', message: `WeChat could not be reached (request ${req.id})` });
    }
    const status = err.statusCode ?? 500;
    if (err.validation) return reply.status(400).send({ code: 'VALIDATION', message: err.message });
    if (status >= 500) {
      req.log.error({ err }, 'unhandled error');
      return reply.status(500).send({ code: 'INTERNAL', message: `Internal error (request ${req.id})` });
    }
    // Fastify's own 4xx: body too large (413), unsupported media type (415), bad JSON (400)…
    const code = status === 413 ? 'PAYLOAD_TOO_LARGE' : status === 415 ? 'UNSUPPORTED_MEDIA_TYPE' : (err.code ?? 'BAD_REQUEST');
    return reply.status(status).send({ code, message: err.message });
  });

  app.setNotFoundHandler((req, reply) => reply.status(404).send({ code: 'NOT_FOUND', message: `No route ${req.method} ${req.url.split('?')[0]}` }));

  app.addHook('onSend', async (req, reply, payload) => {
    reply.header('x-request-id', req.id);
    return payload;
  });

  app.addHook('onResponse', async (req, reply) => {
    metrics.httpRequests.inc({ method: req.method, route: req.routeOptions.url ?? 'unmatched', status: String(reply.statusCode) });
  });

  app.get('/healthz', { schema: { hide: true } }, async () => ({ status: 'ok' }));
  app.get('/readyz', { schema: { hide: true } }, async (_req, reply) => {
    const ok = await opts.ready();
    return reply.status(ok ? 200 : 503).send({ status: ok ? 'ready' : 'database unreachable' });
  });
  app.get('/metrics', { schema: { hide: true } }, async (_req, reply) => reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()));
}, { name: 'platform' });
