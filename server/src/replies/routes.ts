import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { ErrorResponseSchema } from '../../../shared/ops.ts';
import {
  KeywordRuleBodySchema, KeywordRulePatchSchema, KeywordRuleSchema, MenuBodySchema, MenuKeyBodySchema, MenuKeySchema, MenuPatchSchema,
  MenuSchema, PublishResultSchema, ReplySettingBodySchema, ReplySettingSchema,
} from '../../../shared/replies-ops.ts';
import { requireLogin, requireRole } from '../ops/auth.ts';
import type { RepliesService } from './service.ts';

const security = [{ bearerAuth: [] }];
const errors = { 400: ErrorResponseSchema, 401: ErrorResponseSchema, 403: ErrorResponseSchema, 404: ErrorResponseSchema, 422: ErrorResponseSchema };
const IdParams = Type.Object({ id: Type.Integer({ minimum: 1 }) });
const write = requireRole('operator');

/** Dates out as ISO strings (JSON schema serialisation wants strings). */
const iso = <T extends Record<string, unknown>>(row: T) =>
  Object.fromEntries(Object.entries(row).map(([k, v]) => [k, v instanceof Date ? v.toISOString() : v])) as { [K in keyof T]: T[K] extends Date ? string : T[K] extends Date | null ? string | null : T[K] };

export const repliesRoutes: FastifyPluginAsyncTypebox<{ replies: RepliesService }> = async (app, { replies }) => {
  const tags = ['replies'];

  app.get('/keyword-rules', { schema: { tags, security, response: { 200: Type.Array(KeywordRuleSchema), ...errors } }, preHandler: requireLogin },
    async () => (await replies.listRules()).map(iso));
  app.post('/keyword-rules', {
    schema: { tags, security, body: KeywordRuleBodySchema, response: { 201: KeywordRuleSchema, ...errors } }, preHandler: write,
    config: { audit: { action: 'keyword_rule.create', targetType: 'keyword_rule' } },
  }, async (req, reply) => reply.status(201).send(iso(await replies.createRule(req.body))));
  app.patch('/keyword-rules/:id', {
    schema: { tags, security, params: IdParams, body: KeywordRulePatchSchema, response: { 200: KeywordRuleSchema, ...errors } }, preHandler: write,
    config: { audit: { action: 'keyword_rule.update', targetType: 'keyword_rule' } },
  }, async (req) => iso(await replies.updateRule(req.params.id, req.body)));
  app.delete('/keyword-rules/:id', {
    schema: { tags, security, params: IdParams, response: { 204: Type.Null(), ...errors } }, preHandler: write,
    config: { audit: { action: 'keyword_rule.delete', targetType: 'keyword_rule' } },
  }, async (req, reply) => {
    await replies.deleteRule(req.params.id);
    return reply.status(204).send(null);
  });

  app.get('/replies', { schema: { tags, security, response: { 200: Type.Array(ReplySettingSchema), ...errors } }, preHandler: requireLogin },
    async () => (await replies.listSettings()).map(iso));
  app.put('/replies/:name', {
    schema: { tags, security, summary: 'Set the welcome (on follow) or default (nothing matched) reply', params: Type.Object({ name: Type.Union([Type.Literal('welcome'), Type.Literal('default')]) }), body: ReplySettingBodySchema, response: { 200: ReplySettingSchema, ...errors } },
    preHandler: write, config: { audit: { action: 'reply_setting.set', targetType: 'reply_setting' } },
  }, async (req) => iso(await replies.setReply(req.params.name, req.body.reply, req.body.enabled ?? true)));

  app.get('/menu-keys', { schema: { tags, security, response: { 200: Type.Array(MenuKeySchema), ...errors } }, preHandler: requireLogin },
    async () => (await replies.listKeyActions()).map(iso));
  app.put('/menu-keys/:key', {
    schema: { tags, security, summary: 'Map a menu CLICK/scancode key to a reply or a flow', params: Type.Object({ key: Type.String({ minLength: 1, maxLength: 128 }) }), body: MenuKeyBodySchema, response: { 200: MenuKeySchema, ...errors } },
    preHandler: write, config: { audit: { action: 'menu_key.set', targetType: 'menu_key' } },
  }, async (req) => iso(await replies.setKeyAction(req.params.key, req.body.action)));
  app.delete('/menu-keys/:key', {
    schema: { tags, security, params: Type.Object({ key: Type.String({ minLength: 1, maxLength: 128 }) }), response: { 204: Type.Null(), ...errors } },
    preHandler: write, config: { audit: { action: 'menu_key.delete', targetType: 'menu_key' } },
  }, async (req, reply) => {
    await replies.deleteKeyAction(req.params.key);
    return reply.status(204).send(null);
  });

  app.get('/menus', { schema: { tags, security, response: { 200: Type.Array(MenuSchema), ...errors } }, preHandler: requireLogin },
    async () => (await replies.listMenus()).map(iso));
  app.post('/menus', {
    schema: { tags, security, body: MenuBodySchema, response: { 201: MenuSchema, ...errors } }, preHandler: write,
    config: { audit: { action: 'menu.create', targetType: 'menu' } },
  }, async (req, reply) => reply.status(201).send(iso(await replies.createMenu(req.body))));
  app.patch('/menus/:id', {
    schema: { tags, security, params: IdParams, body: MenuPatchSchema, response: { 200: MenuSchema, ...errors } }, preHandler: write,
    config: { audit: { action: 'menu.update', targetType: 'menu' } },
  }, async (req) => iso(await replies.updateMenu(req.params.id, req.body)));
  app.delete('/menus/:id', {
    schema: { tags, security, params: IdParams, response: { 204: Type.Null(), ...errors } }, preHandler: write,
    config: { audit: { action: 'menu.delete', targetType: 'menu' } },
  }, async (req, reply) => {
    await replies.deleteMenu(req.params.id);
    return reply.status(204).send(null);
  });
  app.post('/menus/publish', {
    schema: { tags, security, summary: 'Publish the default and conditional menus to WeChat', response: { 200: PublishResultSchema, 502: ErrorResponseSchema, ...errors } },
    preHandler: write, config: { audit: { action: 'menu.publish', targetType: 'menu' } },
  }, async () => replies.publishMenus());
};
