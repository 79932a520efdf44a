/**
 * The /api/mp auth contract: every route in the scope needs `Authorization: Bearer <session token>` and gets
 * `request.member`, except routes declared with `config: { mpPublic: true }` (login, refresh, the HMAC-token
 * transfer page). Missing, expired or forged tokens → 401 { code: 'UNAUTHENTICATED', message }.
 */
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import fp from 'fastify-plugin';
import { AppError } from '../platform/errors.ts';
import type { SessionService } from './sessions.ts';

export interface MpMember {
  /** Stable id of the person (one person, one member). */
  memberId: number;
  /**
   * The key of this person's points ledger (points_accounts / points_ledger), coupons (user_coupons) and chat
   * redemptions: the official-account openid when linked by unionid, otherwise the mini-program openid.
   */
  openid: string;
  /** The mini-program openid (WeChat Pay JSAPI payer.openid, subscribe messages). */
  mpOpenid: string;
  unionid: string | null;
}

declare module 'fastify' {
  interface FastifyRequest {
    member: MpMember;
  }
  interface FastifyContextConfig {
    /** /api/mp route reachable without a session token. */
    mpPublic?: boolean;
  }
}

export const mpAuthPlugin: FastifyPluginAsync<{ sessions: SessionService }> = fp(async (app: FastifyInstance, opts: { sessions: SessionService }) => {
  app.decorateRequest('member', null as unknown as MpMember);
  app.addHook('onRequest', async (req) => {
    if (req.routeOptions.config?.mpPublic) return;
    // Unknown URLs fall through to the 404 handler rather than a 401 that hides the typo.
    if (!req.routeOptions.url) return;
    const header = req.headers.authorization;
    if (!header?.startsWith('Bearer ')) throw new AppError('UNAUTHENTICATED', '请先登录');
    const member = await opts.sessions.authenticate(header.slice(7).trim());
    if (!member) throw new AppError('UNAUTHENTICATED', '登录已失效，请重新登录');
    req.member = member;
  });
}, { name: 'mp-auth' });
