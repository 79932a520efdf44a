/** DTOs of the ops endpoints for keyword rules, fixed replies, menu keys and menus. */
import { Type, type Static } from 'typebox';
import { ReplyMessageSchema } from './replies.ts';
import { MenuButtonSchema, MenuMatchRuleSchema } from './menus.ts';

const Nullable = <T extends ReturnType<typeof Type.String>>(t: T) => Type.Union([t, Type.Null()]);

export const KeywordRuleBodySchema = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 64 }),
  matchType: Type.Union([Type.Literal('exact'), Type.Literal('contains'), Type.Literal('regex')]),
  pattern: Type.String({ minLength: 1, maxLength: 256 }),
  priority: Type.Optional(Type.Integer({ minimum: -1000, maximum: 1000 })),
  reply: ReplyMessageSchema,
  enabled: Type.Optional(Type.Boolean()),
  startsAt: Type.Optional(Nullable(Type.String({ format: 'date-time' }))),
  endsAt: Type.Optional(Nullable(Type.String({ format: 'date-time' }))),
}, { additionalProperties: false });
export const KeywordRulePatchSchema = Type.Partial(KeywordRuleBodySchema, { additionalProperties: false, minProperties: 1 });

export const KeywordRuleSchema = Type.Object({
  id: Type.Integer(), name: Type.String(), matchType: Type.String(), pattern: Type.String(), priority: Type.Integer(),
  reply: ReplyMessageSchema, enabled: Type.Boolean(),
  startsAt: Type.Union([Type.String(), Type.Null()]), endsAt: Type.Union([Type.String(), Type.Null()]),
  createdAt: Type.String(), updatedAt: Type.String(),
});

export const ReplySettingBodySchema = Type.Object({ reply: ReplyMessageSchema, enabled: Type.Optional(Type.Boolean()) }, { additionalProperties: false });
export const ReplySettingSchema = Type.Object({ name: Type.String(), reply: ReplyMessageSchema, enabled: Type.Boolean(), updatedAt: Type.String() });

export const KeyActionSchema = Type.Union([
  Type.Object({ type: Type.Literal('reply'), reply: ReplyMessageSchema }, { additionalProperties: false }),
  Type.Object({ type: Type.Literal('flow'), flow: Type.String({ minLength: 1, maxLength: 64 }) }, { additionalProperties: false }),
]);
export const MenuKeyBodySchema = Type.Object({ action: KeyActionSchema }, { additionalProperties: false });
export const MenuKeySchema = Type.Object({ key: Type.String(), action: KeyActionSchema, updatedAt: Type.String() });

export const MenuBodySchema = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 64 }),
  kind: Type.Union([Type.Literal('default'), Type.Literal('conditional')]),
  buttons: Type.Array(MenuButtonSchema, { minItems: 1, maxItems: 3 }),
  matchRule: Type.Optional(MenuMatchRuleSchema),
}, { additionalProperties: false });
export const MenuPatchSchema = Type.Object({
  name: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
  buttons: Type.Optional(Type.Array(MenuButtonSchema, { minItems: 1, maxItems: 3 })),
  matchRule: Type.Optional(MenuMatchRuleSchema),
}, { additionalProperties: false, minProperties: 1 });
export const MenuSchema = Type.Object({
  id: Type.Integer(), name: Type.String(), kind: Type.String(), buttons: Type.Array(MenuButtonSchema),
  matchRule: Type.Union([MenuMatchRuleSchema, Type.Null()]), wechatMenuId: Type.Union([Type.String(), Type.Null()]),
  publishedAt: Type.Union([Type.String(), Type.Null()]), createdAt: Type.String(), updatedAt: Type.String(),
});
export const PublishResultSchema = Type.Object({
  defaultMenuId: Type.Integer(), conditional: Type.Array(Type.Object({ id: Type.Integer(), menuid: Type.String() })), publishedAt: Type.String(),
});

export type KeywordRuleBody = Static<typeof KeywordRuleBodySchema>;
