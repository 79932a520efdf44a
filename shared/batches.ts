/** DTOs of the ops endpoints for code batches (print runs of on-pack codes). */
import { Type, type Static } from 'typebox';

/** Largest batch generated over HTTP; larger print runs go through the CLI (`npm run codes -- generate`). */
export const HTTP_MAX_BATCH_CODES = 2_000_000;

export const CodeBatchSchema = Type.Object({
  id: Type.Integer(),
  campaignId: Type.Integer(),
  name: Type.String(),
  source: Type.Union([Type.Literal('generated'), Type.Literal('imported')]),
  sku: Type.Union([Type.String(), Type.Null()]),
  count: Type.Integer(),
  /** loading → active; voided codes cannot be redeemed. */
  status: Type.Union([Type.Literal('loading'), Type.Literal('active'), Type.Literal('voided')]),
  codeLength: Type.Integer(),
  createdAt: Type.String(),
  voidedAt: Type.Union([Type.String(), Type.Null()]),
  createdBy: Type.Union([Type.String(), Type.Null()]),
});

/** Deck campaigns: prize id → number of codes carrying it (default: the prize's remaining total stock). */
export const DeckUnitsSchema = Type.Record(Type.String({ pattern: '^[1-9][0-9]{0,9}$' }), Type.Integer({ minimum: 0 }));

export const GenerateBatchBodySchema = Type.Object({
  count: Type.Integer({ minimum: 1, maximum: HTTP_MAX_BATCH_CODES }),
  name: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
  sku: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
  deck: Type.Optional(DeckUnitsSchema),
}, { additionalProperties: false });

/** POST …/batches/import?name=…&sku=… with the printer's CSV as a text/csv body. */
export const ImportBatchQuerySchema = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 100 }),
  sku: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
}, { additionalProperties: false });

export type CodeBatchDto = Static<typeof CodeBatchSchema>;
export type GenerateBatchBody = Static<typeof GenerateBatchBodySchema>;
export type ImportBatchQuery = Static<typeof ImportBatchQuerySchema>;
