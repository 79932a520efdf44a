/**
 * Ops API of anti-fraud (HTTP only): the review queue (reviewers), the blacklist (operators and reviewers) and the
 * model versions (admin edits, analysts read). Approve and reject write their own audit entry inside their
 * transaction, so a double click records exactly one.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { ErrorResponseSchema } from '../../../shared/ops.ts';
import {
  ApproveBodySchema, BlacklistAddBodySchema, BlacklistEntrySchema, BlacklistImportBodySchema, BlacklistImportResultSchema, BlacklistQuerySchema,
  FraudModelPatchSchema, FraudModelVersionSchema, FraudReviewDetailSchema, FraudReviewSchema, RejectBodySchema, ReviewListQuerySchema,
} from '../../../shared/fraud.ts';
import { requireRole } from '../ops/auth.ts';
import { validateModelPatch, type FraudModel } from './scoring.ts';
import type { FraudService } from './service.ts';

const security = [{ bearerAuth: [] }];
const errors = { 400: ErrorResponseSchema, 401: ErrorResponseSchema, 403: ErrorResponseSchema, 404: ErrorResponseSchema, 409: ErrorResponseSchema, 422: ErrorResponseSchema };
const IdParams = Type.Object({ id: Type.Integer({ minimum: 1 }) });
const review = requireRole('reviewer');
const blacklistWrite = requireRole('operator', 'reviewer');
const read = requireRole('reviewer', 'analyst', 'operator');

export const fraudRoutes: FastifyPluginAsyncTypebox<{ fraud: FraudService }> = async (app, { fraud }) => {
  const ctx = (req: { id: string; ip: string }) => ({ requestId: req.id, ip: req.ip });

  app.get('/fraud/reviews', {
    schema: { tags: ['fraud'], security, summary: 'Held prizes waiting for review (newest first)', querystring: ReviewListQuerySchema, response: { 200: Type.Array(FraudReviewSchema), ...errors } },
    preHandler: read,
  }, async (req) => fraud.listReviews(req.query) as never);

  app.get('/fraud/reviews/:id', {
    schema: { tags: ['fraud'], security, summary: "A held prize with its reasons and the user's history", params: IdParams, response: { 200: FraudReviewDetailSchema, ...errors } },
    preHandler: read,
  }, async (req) => fraud.getReview(req.params.id) as never);

  app.post('/fraud/reviews/:id/approve', {
    schema: { tags: ['fraud'], security, summary: 'Approve: the fulfilment proceeds (exactly once)', params: IdParams, body: ApproveBodySchema, response: { 200: FraudReviewSchema, ...errors } },
    preHandler: review,
  }, async (req) => fraud.approve(req.params.id, req.actor!, req.body?.note ?? null, ctx(req)) as never);

  app.post('/fraud/reviews/:id/reject', {
    schema: { tags: ['fraud'], security, summary: 'Reject: the prize returns to stock, optionally blacklist the user (exactly once)', params: IdParams, body: RejectBodySchema, response: { 200: FraudReviewSchema, ...errors } },
    preHandler: review,
  }, async (req) => fraud.reject(req.params.id, req.actor!, req.body?.note ?? null, req.body?.blacklist ?? false, ctx(req)) as never);

  app.get('/fraud/blacklist', {
    schema: { tags: ['fraud'], security, summary: 'Blacklist entries (hashed; a masked hint only)', querystring: BlacklistQuerySchema, response: { 200: Type.Array(BlacklistEntrySchema), ...errors } },
    preHandler: read,
  }, async (req) => fraud.listBlacklist(req.query));

  app.post('/fraud/blacklist', {
    schema: { tags: ['fraud'], security, summary: 'Blacklist an openid, unionid, phone, IP or device', body: BlacklistAddBodySchema, response: { 201: BlacklistEntrySchema, ...errors } },
    preHandler: blacklistWrite,
    config: { audit: { action: 'fraud_blacklist.add', targetType: 'fraud_blacklist' } },
  }, async (req, reply) => reply.status(201).send(await fraud.addToBlacklist(req.body, req.actor!)));

  app.post('/fraud/blacklist/import', {
    schema: { tags: ['fraud'], security, summary: 'Import many entries: all valid or nothing written', body: BlacklistImportBodySchema, response: { 200: BlacklistImportResultSchema, ...errors } },
    preHandler: blacklistWrite,
    bodyLimit: 2_000_000,
    config: { audit: { action: 'fraud_blacklist.import', targetType: 'fraud_blacklist' } },
  }, async (req) => fraud.importBlacklist(req.body.entries, req.actor!));

  app.delete('/fraud/blacklist/:id', {
    schema: { tags: ['fraud'], security, summary: 'Remove a blacklist entry', params: IdParams, response: { 204: Type.Null(), ...errors } },
    preHandler: blacklistWrite,
    config: { audit: { action: 'fraud_blacklist.remove', targetType: 'fraud_blacklist' } },
  }, async (req, reply) => {
    await fraud.removeFromBlacklist(req.params.id);
    return reply.status(204).send(null);
  });

  app.get('/fraud/model', {
    schema: { tags: ['fraud'], security, summary: 'The scoring model version in force', response: { 200: FraudModelVersionSchema, ...errors } },
    preHandler: read,
  }, async () => fraud.currentModel());

  app.get('/fraud/models', {
    schema: { tags: ['fraud'], security, summary: 'Model versions, newest first', response: { 200: Type.Array(FraudModelVersionSchema), ...errors } },
    preHandler: read,
  }, async () => fraud.listModels());

  app.post('/fraud/models', {
    schema: { tags: ['fraud'], security, summary: 'Save an edit of the weights / thresholds as the next version', body: FraudModelPatchSchema, response: { 201: FraudModelVersionSchema, ...errors } },
    preHandler: requireRole(),
    config: { audit: { action: 'fraud_model.create', targetType: 'fraud_model' } },
  }, async (req, reply) => {
    const { note, ...patch } = req.body;
    // Keys and ranges of the edit itself (unknown weights / allowances / prize kinds, out-of-range values): a 400
    // naming the field, like the schema's own. Rules across fields of the merged model (hold ≤ block) are the
    // service's (422).
    const problem = validateModelPatch(patch);
    if (problem) return reply.status(400).send({ code: 'VALIDATION', message: problem });
    return reply.status(201).send(await fraud.createModel(patch as Partial<Omit<FraudModel, 'version'>>, note ?? null, req.actor!));
  });
};
