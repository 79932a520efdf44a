/**
 * Mini-program sessions: random opaque tokens (32 bytes, base64url), stored only as SHA-256 hashes, so a database
 * leak yields no usable token and a session can be revoked at once (logout, account deletion). Each login or
 * refresh issues a pair: a short-lived session token for `Authorization: Bearer`, and a refresh token that is
 * single-use (rotated by a conditional UPDATE, so a replayed refresh token gets nothing).
 */
import { createHash, randomBytes } from 'node:crypto';
import { and, eq, gt, isNull, lt, or } from 'drizzle-orm';
import type { Db, Tx } from '../db/client.ts';
import { AppError } from '../platform/errors.ts';
import type { Clock } from '../platform/clock.ts';
import { members, mpSessions } from './tables.ts';
import type { MpMember } from './auth.ts';

export interface IssuedSession {
  token: string;
  expiresAt: Date;
  refreshToken: string;
  refreshExpiresAt: Date;
}

const hash = (token: string) => createHash('sha256').update(token, 'utf8').digest('hex');
const mint = (prefix: string) => `${prefix}${randomBytes(32).toString('base64url')}`;
// Cheap shape check before touching the database: anything else is forged.
const SHAPE = /^mp[sr]_[A-Za-z0-9_-]{43}$/;

export function createSessionService(deps: { db: Db; clock: Clock; ttlS: number; refreshTtlS: number }) {
  const { db, clock } = deps;

  async function issue(memberId: number, mpOpenid: string, tx: Tx = db): Promise<IssuedSession> {
    const now = clock.now();
    const s = {
      token: mint('mps_'), expiresAt: new Date(now.getTime() + deps.ttlS * 1000),
      refreshToken: mint('mpr_'), refreshExpiresAt: new Date(now.getTime() + deps.refreshTtlS * 1000),
    };
    await tx.insert(mpSessions).values({
      memberId, mpOpenid, tokenHash: hash(s.token), refreshHash: hash(s.refreshToken), expiresAt: s.expiresAt, refreshExpiresAt: s.refreshExpiresAt, createdAt: now,
    });
    return s;
  }

  return {
    issue,

    /** The member behind a session token, or null (unknown, expired, revoked, or the account was deleted). */
    async authenticate(token: string): Promise<MpMember | null> {
      if (typeof token !== 'string' || !SHAPE.test(token) || !token.startsWith('mps_')) return null;
      const [row] = await db
        .select({ memberId: members.id, openid: members.openid, mpOpenid: mpSessions.mpOpenid, unionid: members.unionid })
        .from(mpSessions)
        .innerJoin(members, eq(members.id, mpSessions.memberId))
        .where(and(eq(mpSessions.tokenHash, hash(token)), isNull(mpSessions.revokedAt), gt(mpSessions.expiresAt, clock.now()), isNull(members.deletedAt)));
      return row ?? null;
    },

    /** Swap a refresh token for a new pair; the old pair stops working. */
    async refresh(refreshToken: string): Promise<IssuedSession> {
      if (typeof refreshToken !== 'string' || !SHAPE.test(refreshToken) || !refreshToken.startsWith('mpr_')) throw new AppError('UNAUTHENTICATED', '登录已失效，请重新登录', { reason: 'invalid_refresh_token' });
      return db.transaction(async (tx) => {
        const now = clock.now();
        const [old] = await tx.update(mpSessions).set({ revokedAt: now })
          .where(and(eq(mpSessions.refreshHash, hash(refreshToken)), isNull(mpSessions.revokedAt), gt(mpSessions.refreshExpiresAt, now)))
          .returning();
        if (!old) throw new AppError('UNAUTHENTICATED', '登录已失效，请重新登录', { reason: 'invalid_refresh_token' });
        const [m] = await tx.select({ deletedAt: members.deletedAt }).from(members).where(eq(members.id, old.memberId));
        if (!m || m.deletedAt) throw new AppError('UNAUTHENTICATED', '账号已注销', { reason: 'account_deleted' });
        return issue(old.memberId, old.mpOpenid, tx);
      });
    },

    /** Log out everywhere (account deletion). */
    async revokeMember(memberId: number, tx: Tx = db): Promise<void> {
      await tx.update(mpSessions).set({ revokedAt: clock.now() }).where(and(eq(mpSessions.memberId, memberId), isNull(mpSessions.revokedAt)));
    },

    /** Hourly: drop sessions whose refresh token expired, or that were revoked, more than a day ago. */
    async prune(): Promise<number> {
      const cutoff = new Date(clock.now().getTime() - 86_400_000);
      const gone = await db.delete(mpSessions).where(or(lt(mpSessions.refreshExpiresAt, cutoff), lt(mpSessions.revokedAt, cutoff))).returning({ id: mpSessions.id });
      return gone.length;
    },

    async revoke(token: string): Promise<void> {
      await db.update(mpSessions).set({ revokedAt: clock.now() }).where(and(eq(mpSessions.tokenHash, hash(token)), isNull(mpSessions.revokedAt)));
    },
  };
}
export type SessionService = ReturnType<typeof createSessionService>;
