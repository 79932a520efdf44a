/**
 * HTTP doors of fulfilment:
 * - ops (register inside /api/ops, after opsAuthPlugin): list, detail with events, retry, cancel, complete — writes audited;
 * - WeChat Pay's transfer notification (POST /pay/notify/transfer, raw body: the signature covers the exact bytes);
 * - the mini program's confirm page (/api/mp/transfers/:id?t=…, protected by the HMAC token of the chat link until
 *   member login exists).
 */
import type { FastifyPluginAsync } from 'fastify';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { ErrorResponseSchema } from '../../../shared/ops.ts';
import { requireLogin, requireRole } from '../ops/auth.ts';
import type { FulfilmentService, MpTransferView } from './service.ts';
import type { FulfilmentEvent } from './repo.ts';
import type { Fulfilment } from './tables.ts';

const security = [{ bearerAuth: [] }];
const errors = { 400: ErrorResponseSchema, 401: ErrorResponseSchema, 403: ErrorResponseSchema, 404: ErrorResponseSchema, 409: ErrorResponseSchema };
const write = requireRole('operator');

const StateSchema = Type.Union([
  Type.Literal('pending'), Type.Literal('running'), Type.Literal('waiting_phone'), Type.Literal('waiting_user'), Type.Literal('unknown'),
  Type.Literal('succeeded'), Type.Literal('failed'), Type.Literal('cancelled'), Type.Literal('held'),
]);
const KindSchema = Type.Union([Type.Literal('points'), Type.Literal('coupon'), Type.Literal('topup'), Type.Literal('cash'), Type.Literal('physical')]);
const NullableString = Type.Union([Type.String(), Type.Null()]);
const NullableInt = Type.Union([Type.Integer(), Type.Null()]);

export const FulfilmentSchema = Type.Object({
  id: Type.Integer(),
  sourceKey: Type.String(),
  drawId: NullableInt,
  campaignId: NullableInt,
  openid: Type.String(),
  prizeId: NullableInt,
  kind: KindSchema,
  amount: Type.Integer(),
  state: StateSchema,
  attempts: Type.Integer(),
  nextAttemptAt: Type.String(),
  leaseUntil: NullableString,
  outNo: Type.String(),
  providerRef: NullableString,
  /** package_info itself is for the user only. */
  hasPackage: Type.Boolean(),
  expiresAt: NullableString,
  lastError: NullableString,
  detail: Type.Unknown(),
  createdAt: Type.String(),
  updatedAt: Type.String(),
});

const EventSchema = Type.Object({ id: Type.Integer(), fromState: NullableString, toState: Type.String(), note: NullableString, at: Type.String() });

const iso = (d: Date | null) => (d ? d.toISOString() : null);

export function opsView(f: Fulfilment) {
  return {
    id: f.id, sourceKey: f.sourceKey, drawId: f.drawId, campaignId: f.campaignId, openid: f.openid, prizeId: f.prizeId, kind: f.kind,
    amount: f.amount, state: f.state, attempts: f.attempts, nextAttemptAt: f.nextAttemptAt.toISOString(), leaseUntil: iso(f.leaseUntil),
    outNo: f.outNo, providerRef: f.providerRef, hasPackage: !!f.packageInfo, expiresAt: iso(f.expiresAt), lastError: f.lastError,
    detail: f.detail ?? null, createdAt: f.createdAt.toISOString(), updatedAt: f.updatedAt.toISOString(),
  };
}

const eventView = (e: FulfilmentEvent) => ({ id: e.id, fromState: e.fromState, toState: e.toState, note: e.note, at: e.at.toISOString() });

const IdParams = Type.Object({ id: Type.Integer({ minimum: 1 }) });
const NoteBody = Type.Optional(Type.Object({ note: Type.Optional(Type.String({ maxLength: 500 })) }, { additionalProperties: false }));

export const fulfilmentOpsRoutes: FastifyPluginAsyncTypebox<{ fulfilment: FulfilmentService }> = async (app, { fulfilment }) => {
  app.get('/fulfilments', {
    schema: {
      tags: ['fulfilment'], security, summary: 'Prize fulfilment jobs, newest first',
      querystring: Type.Object({
        state: Type.Optional(StateSchema),
        campaignId: Type.Optional(Type.Integer()),
        kind: Type.Optional(KindSchema),
        openid: Type.Optional(Type.String({ maxLength: 128 })),
        beforeId: Type.Optional(Type.Integer()),
        limit: Type.Integer({ minimum: 1, maximum: 500, default: 100 }),
      }),
      response: { 200: Type.Array(FulfilmentSchema), ...errors },
    },
    preHandler: requireLogin,
  }, async (req) => (await fulfilment.list(req.query)).map(opsView));

  app.get('/fulfilments/:id', {
    schema: { tags: ['fulfilment'], security, params: IdParams, response: { 200: Type.Object({ ...FulfilmentSchema.properties, events: Type.Array(EventSchema) }), ...errors } },
    preHandler: requireLogin,
  }, async (req, reply) => {
    const job = await fulfilment.get(req.params.id);
    if (!job) return reply.status(404).send({ code: 'NOT_FOUND', message: `No fulfilment ${req.params.id}` });
    return { ...opsView(job), events: (await fulfilment.events(job.id)).map(eventView) };
  });

  app.post('/fulfilments/:id/retry', {
    schema: { tags: ['fulfilment'], security, summary: 'Run a failed, held, cancelled or waiting job again now', description: 'A prize held for anti-fraud review is refused (409): approve or reject it in the fraud review queue.', params: IdParams, body: NoteBody, response: { 200: FulfilmentSchema, ...errors } },
    preHandler: write,
    config: { audit: { action: 'fulfilment.retry', targetType: 'fulfilment' } },
  }, async (req) => opsView(await fulfilment.retry(req.params.id)));

  app.post('/fulfilments/:id/cancel', {
    schema: { tags: ['fulfilment'], security, summary: 'Give up on a job (an unconfirmed transfer is cancelled at WeChat Pay first)', description: 'A prize held for anti-fraud review is refused (409): reject it in the fraud review queue (which also returns the stock).', params: IdParams, body: NoteBody, response: { 200: FulfilmentSchema, ...errors } },
    preHandler: write,
    config: { audit: { action: 'fulfilment.cancel', targetType: 'fulfilment' } },
  }, async (req) => opsView(await fulfilment.cancel(req.params.id, req.body?.note ? `cancelled by ops: ${req.body.note}` : undefined)));

  app.post('/fulfilments/:id/complete', {
    schema: { tags: ['fulfilment'], security, summary: 'Mark a held physical prize as delivered', description: 'A prize held for anti-fraud review is refused (409) until its review is approved.', params: IdParams, body: NoteBody, response: { 200: FulfilmentSchema, ...errors } },
    preHandler: write,
    config: { audit: { action: 'fulfilment.complete', targetType: 'fulfilment' } },
  }, async (req) => opsView(await fulfilment.complete(req.params.id, req.body?.note ? `delivered (ops): ${req.body.note}` : undefined)));
};

/** POST /pay/notify/transfer — register with prefix '/pay/notify'. Encapsulated: its raw-body parser stays here. */
export const payNotifyRoutes: FastifyPluginAsync<{ fulfilment: FulfilmentService }> = async (app, { fulfilment }) => {
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => done(null, String(body)));

  app.post('/transfer', { schema: { hide: true } }, async (req, reply) => {
    const raw = typeof req.body === 'string' ? req.body : '';
    const outcome = await fulfilment.handleTransferNotification(req.headers as Record<string, string | string[] | undefined>, raw);
    return reply.status(outcome.status).send({ code: outcome.code, message: outcome.message });
  });
};

const MpTransferSchema = Type.Object({
  id: Type.Integer(),
  state: StateSchema,
  amountFen: Type.Integer(),
  expiresAt: NullableString,
  mchId: Type.Optional(Type.String()),
  appId: Type.Optional(Type.String()),
  package: Type.Optional(Type.String()),
  openId: Type.Optional(Type.String()),
});
const TokenQuery = Type.Object({ t: Type.String({ minLength: 1, maxLength: 128 }) });

/** /api/mp/transfers — register with prefix '/api/mp'. */
export const fulfilmentMpRoutes: FastifyPluginAsyncTypebox<{ fulfilment: FulfilmentService }> = async (app, { fulfilment }) => {
  app.get('/transfers/:id', {
    config: { mpPublic: true }, // the chat link's HMAC token is the credential, not a mini-program session
    schema: { tags: ['mini program'], summary: 'Parameters for wx.requestMerchantTransfer (while the transfer waits for the user)', params: IdParams, querystring: TokenQuery, response: { 200: MpTransferSchema, 403: ErrorResponseSchema } },
  }, async (req): Promise<MpTransferView> => fulfilment.mpTransfer(req.params.id, req.query.t));

  app.post('/transfers/:id/confirmed', {
    config: { mpPublic: true },
    schema: { tags: ['mini program'], summary: 'The user confirmed in WeChat: query the transfer now', params: IdParams, querystring: TokenQuery, response: { 200: MpTransferSchema, 403: ErrorResponseSchema } },
  }, async (req): Promise<MpTransferView> => fulfilment.mpConfirmed(req.params.id, req.query.t));
};
