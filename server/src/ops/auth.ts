/**
 * Bearer-token auth for /api/ops, role checks, and the audit log: every successful write through a route
 * that declares `config.audit` is recorded with the actor, the target and the request body.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { AppError } from '../platform/errors.ts';
import type { Actor, OpsService, Role } from './service.ts';

declare module 'fastify' {
  interface FastifyRequest {
    actor: Actor | null;
  }
  interface FastifyContextConfig {
    /** Audit this write: action name and target type; the target id comes from params.id/key/name or the response. */
    audit?: { action: string; targetType: string };
  }
}

const SECRET_FIELDS = new Set(['password', 'secret', 'token']);

function redact(body: unknown): unknown {
  if (!body || typeof body !== 'object' || Array.isArray(body)) return body ?? null;
  return Object.fromEntries(Object.entries(body as Record<string, unknown>).map(([k, v]) => [k, SECRET_FIELDS.has(k) ? '***' : v]));
}

export function requireRole(...roles: Role[]) {
  return async (req: FastifyRequest) => {
    if (!req.actor) throw new AppError('UNAUTHENTICATED');
    if (req.actor.role !== 'admin' && !roles.includes(req.actor.role)) throw new AppError('FORBIDDEN', `requires role ${['admin', ...roles].join(' or ')}`);
  };
}

/** Any logged-in ops user may read. */
export const requireLogin = requireRole('operator', 'reviewer', 'analyst');

export const opsAuthPlugin = fp(async (app: FastifyInstance, opts: { ops: OpsService }) => {
  app.decorateRequest('actor', null);

  app.addHook('onRequest', async (req) => {
    const header = req.headers.authorization;
    if (!header?.startsWith('Bearer ')) return;
    req.actor = (await opts.ops.authenticate(header.slice(7).trim())) ?? null;
  });

  app.addHook('onSend', async (req: FastifyRequest, reply: FastifyReply, payload) => {
    const audit = req.routeOptions.config?.audit;
    if (!audit || !req.actor || reply.statusCode >= 400) return payload;
    const params = (req.params ?? {}) as Record<string, string>;
    let targetId: string | null = params.id ?? params.key ?? params.name ?? null;
    if (!targetId && typeof payload === 'string') {
      try {
        const parsed = JSON.parse(payload) as { id?: unknown };
        if (parsed && (typeof parsed.id === 'number' || typeof parsed.id === 'string')) targetId = String(parsed.id);
      } catch {
        // not JSON: no id to record
      }
    }
    await opts.ops.audit(
      req.actor,
      { action: audit.action, targetType: audit.targetType, targetId, detail: redact(req.body) },
      { requestId: req.id, ip: req.ip },
    );
    return payload;
  });
}, { name: 'ops-auth' });
