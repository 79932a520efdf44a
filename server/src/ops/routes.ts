import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { CreateUserBodySchema, ErrorResponseSchema, LoginBodySchema, LoginResponseSchema, OpsUserSchema, UpdateUserBodySchema } from '../../../shared/ops.ts';
import { requireLogin, requireRole } from './auth.ts';
import type { OpsService } from './service.ts';

const security = [{ bearerAuth: [] }];
const errors = { 400: ErrorResponseSchema, 401: ErrorResponseSchema, 403: ErrorResponseSchema };

export const opsRoutes: FastifyPluginAsyncTypebox<{ ops: OpsService }> = async (app, { ops }) => {
  app.post('/login', {
    schema: { tags: ['ops'], summary: 'Log in; returns a bearer token', body: LoginBodySchema, response: { 200: LoginResponseSchema, ...errors } },
  }, async (req) => ops.login(req.body.username, req.body.password));

  app.post('/logout', { schema: { tags: ['ops'], security, response: { 204: Type.Null(), ...errors } }, preHandler: requireLogin }, async (req, reply) => {
    await ops.logout(req.headers.authorization!.slice(7).trim());
    return reply.status(204).send(null);
  });

  app.get('/me', { schema: { tags: ['ops'], security, response: { 200: Type.Object({ id: Type.Union([Type.Integer(), Type.Null()]), username: Type.String(), role: Type.String() }), ...errors } }, preHandler: requireLogin }, async (req) => req.actor!);

  app.get('/users', { schema: { tags: ['ops'], security, response: { 200: Type.Array(OpsUserSchema), ...errors } }, preHandler: requireRole() }, async () => ops.listUsers());

  app.post('/users', {
    schema: { tags: ['ops'], security, body: CreateUserBodySchema, response: { 201: OpsUserSchema, 409: ErrorResponseSchema, ...errors } },
    preHandler: requireRole(),
    config: { audit: { action: 'ops_user.create', targetType: 'ops_user' } },
  }, async (req, reply) => reply.status(201).send(await ops.createUser(req.body)));

  app.patch('/users/:id', {
    schema: { tags: ['ops'], security, params: Type.Object({ id: Type.Integer() }), body: UpdateUserBodySchema, response: { 200: OpsUserSchema, 404: ErrorResponseSchema, ...errors } },
    preHandler: requireRole(),
    config: { audit: { action: 'ops_user.update', targetType: 'ops_user' } },
  }, async (req) => ops.updateUser(req.params.id, req.body));

  app.get('/audit', {
    schema: {
      tags: ['ops'], security,
      querystring: Type.Object({ targetType: Type.Optional(Type.String({ maxLength: 64 })), limit: Type.Integer({ minimum: 1, maximum: 500, default: 100 }) }),
      response: { 200: Type.Array(Type.Object({
        id: Type.Integer(), actorId: Type.Union([Type.Integer(), Type.Null()]), actorName: Type.String(), action: Type.String(), targetType: Type.String(),
        targetId: Type.Union([Type.String(), Type.Null()]), detail: Type.Unknown(), requestId: Type.Union([Type.String(), Type.Null()]), ip: Type.Union([Type.String(), Type.Null()]), at: Type.String(),
      })), ...errors },
    },
    preHandler: requireRole('analyst'),
  }, async (req) => ops.listAudit({ limit: req.query.limit, ...(req.query.targetType ? { targetType: req.query.targetType } : {}) }));
};
