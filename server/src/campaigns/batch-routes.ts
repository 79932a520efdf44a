/**
 * Ops API of code batches (mounted under /api/ops). Generation over HTTP is capped at HTTP_MAX_BATCH_CODES; larger print
 * runs use the CLI (scripts/codes.ts). The code export reveals usable codes: admin only, and audited.
 */
import { PassThrough } from 'node:stream';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { ErrorResponseSchema } from '../../../shared/ops.ts';
import { CodeBatchSchema, GenerateBatchBodySchema, ImportBatchQuerySchema } from '../../../shared/batches.ts';
import { requireLogin, requireRole } from '../ops/auth.ts';
import type { BatchInfo, CodeBatchService } from './batches.ts';

const security = [{ bearerAuth: [] }];
const errors = { 400: ErrorResponseSchema, 401: ErrorResponseSchema, 403: ErrorResponseSchema, 404: ErrorResponseSchema, 409: ErrorResponseSchema, 422: ErrorResponseSchema };
const IdParams = Type.Object({ id: Type.Integer({ minimum: 1 }) });
const write = requireRole('operator');
/** A printer's CSV: ≈ 15 bytes per code, so ≈ 4 million codes. */
const IMPORT_BODY_LIMIT = 64 * 1024 * 1024;

const dto = (b: BatchInfo) => ({ ...b, createdAt: b.createdAt.toISOString(), voidedAt: b.voidedAt ? b.voidedAt.toISOString() : null });

export const batchRoutes: FastifyPluginAsyncTypebox<{ batches: CodeBatchService }> = async (app, { batches }) => {
  const tags = ['code batches'];

  app.addContentTypeParser('text/csv', { parseAs: 'string', bodyLimit: IMPORT_BODY_LIMIT }, (_req, body, done) => done(null, body));

  app.get('/campaigns/:id/batches', {
    schema: { tags, security, params: IdParams, response: { 200: Type.Array(CodeBatchSchema), ...errors } }, preHandler: requireLogin,
  }, async (req) => (await batches.list(req.params.id)).map(dto));

  app.post('/campaigns/:id/batches', {
    schema: { tags, security, summary: 'Generate a batch of codes (export them with GET /batches/:id/codes.csv)', params: IdParams, body: GenerateBatchBodySchema, response: { 201: CodeBatchSchema, ...errors } },
    preHandler: write,
    config: { audit: { action: 'code_batch.generate', targetType: 'campaign' } },
  }, async (req, reply) => {
    const deck = req.body.deck ? Object.fromEntries(Object.entries(req.body.deck).map(([k, v]) => [Number(k), v])) : undefined;
    const batch = await batches.generate({ campaignId: req.params.id, count: req.body.count, name: req.body.name, sku: req.body.sku, deck, createdBy: req.actor!.username });
    return reply.status(201).send(dto(batch));
  });

  app.post('/campaigns/:id/batches/import', {
    schema: {
      tags, security, summary: "Import a printer's CSV (text/csv; codes in the `code` column or the first column)",
      params: IdParams, querystring: ImportBatchQuerySchema, body: Type.String(), response: { 201: CodeBatchSchema, ...errors },
    },
    preHandler: write,
    config: { audit: { action: 'code_batch.import', targetType: 'campaign' } },
  }, async (req, reply) => {
    const csv = req.body;
    const batch = await batches.importCsv({ campaignId: req.params.id, name: req.query.name, sku: req.query.sku, input: csv, createdBy: req.actor!.username });
    // The audit log records the request body: record a summary, never the codes.
    (req as { body: unknown }).body = { name: req.query.name, sku: req.query.sku ?? null, bytes: Buffer.byteLength(csv), batchId: batch.id, count: batch.count };
    return reply.status(201).send(dto(batch));
  });

  app.get('/batches/:id/codes.csv', {
    schema: { tags, security, summary: 'Export the codes of a generated batch as the printer CSV (admin only; audited)', params: IdParams, produces: ['text/csv'], response: { 200: Type.String({ description: 'text/csv, header code,batch,seq' }), ...errors } },
    preHandler: requireRole(),
    config: { audit: { action: 'code_batch.export', targetType: 'code_batch' } },
  }, async (req, reply) => {
    const exp = await batches.openExport(req.params.id);
    const body = new PassThrough();
    exp.write(body).catch((err) => {
      req.log.error({ err, batchId: req.params.id }, 'code export failed');
      body.destroy(err);
    });
    return reply
      .type('text/csv; charset=utf-8')
      .header('content-disposition', `attachment; filename="batch-${exp.batch.id}-codes.csv"`)
      .header('cache-control', 'no-store')
      .send(body as never);
  });

  app.post('/batches/:id/void', {
    schema: { tags, security, summary: 'Void a batch: its codes can no longer be redeemed', params: IdParams, response: { 200: CodeBatchSchema, ...errors } },
    preHandler: write,
    config: { audit: { action: 'code_batch.void', targetType: 'code_batch' } },
  }, async (req) => dto(await batches.voidBatch(req.params.id, req.actor!.username)));
};
