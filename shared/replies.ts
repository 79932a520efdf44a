/**
 * Reply messages ops can configure, and customer-service messages we send.
 * TypeBox schemas (JSON Schema at runtime, validated by ajv) with their static types.
 */
import { Type, type Static } from 'typebox';

const MediaId = Type.String({ minLength: 1, maxLength: 256 });

export const NewsArticleSchema = Type.Object({
  title: Type.String({ minLength: 1, maxLength: 128 }),
  description: Type.Optional(Type.String({ maxLength: 512 })),
  picUrl: Type.Optional(Type.String({ maxLength: 1024 })),
  url: Type.Optional(Type.String({ maxLength: 1024 })),
}, { additionalProperties: false });

export const ReplyMessageSchema = Type.Union([
  Type.Object({ type: Type.Literal('text'), content: Type.String({ minLength: 1, maxLength: 2048 }) }, { additionalProperties: false }),
  Type.Object({ type: Type.Literal('image'), mediaId: MediaId }, { additionalProperties: false }),
  Type.Object({ type: Type.Literal('voice'), mediaId: MediaId }, { additionalProperties: false }),
  Type.Object({
    type: Type.Literal('video'), mediaId: MediaId,
    title: Type.Optional(Type.String({ maxLength: 128 })), description: Type.Optional(Type.String({ maxLength: 512 })),
  }, { additionalProperties: false }),
  Type.Object({
    type: Type.Literal('music'), thumbMediaId: MediaId,
    title: Type.Optional(Type.String({ maxLength: 128 })), description: Type.Optional(Type.String({ maxLength: 512 })),
    musicUrl: Type.Optional(Type.String({ maxLength: 1024 })), hqMusicUrl: Type.Optional(Type.String({ maxLength: 1024 })),
  }, { additionalProperties: false }),
  // WeChat allows one article in reply to a user message and up to 8 otherwise.
  Type.Object({ type: Type.Literal('news'), articles: Type.Array(NewsArticleSchema, { minItems: 1, maxItems: 8 }) }, { additionalProperties: false }),
], { $id: 'ReplyMessage' });

export type ReplyMessage = Static<typeof ReplyMessageSchema>;
export type NewsArticle = Static<typeof NewsArticleSchema>;

/** Customer-service messages are the same kinds (the API also has mpnews, msgmenu, miniprogrampage). */
export const CustomerMessageSchema = Type.Union([
  ReplyMessageSchema,
  Type.Object({
    type: Type.Literal('miniprogrampage'), title: Type.String({ maxLength: 64 }), appid: Type.String(),
    pagepath: Type.String(), thumbMediaId: MediaId,
  }, { additionalProperties: false }),
]);
export type CustomerMessage = Static<typeof CustomerMessageSchema>;
