/**
 * Ops accounts, bearer sessions and the audit log.
 */
import { createHash, randomBytes, scrypt as scryptCb, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';
import { and, desc, eq, gt, lt } from 'drizzle-orm';
import type { Db, Tx } from '../db/client.ts';
import type { Clock } from '../platform/clock.ts';
import { AppError } from '../platform/errors.ts';
import { auditLog, opsSessions, opsUsers } from './tables.ts';

const scrypt = promisify(scryptCb) as (pw: string, salt: Buffer, len: number) => Promise<Buffer>;

export const ROLES = ['admin', 'operator', 'reviewer', 'analyst'] as const;
export type Role = (typeof ROLES)[number];

export interface Actor {
  id: number | null;
  username: string;
  role: Role;
}

export interface AuditEntry {
  action: string;
  targetType: string;
  targetId?: string | number | null;
  detail?: unknown;
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const hash = await scrypt(password, salt, 32);
  return `scrypt$${salt.toString('base64')}$${hash.toString('base64')}`;
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [scheme, salt, hash] = stored.split('$');
  if (scheme !== 'scrypt' || !salt || !hash) return false;
  const expected = Buffer.from(hash, 'base64');
  const got = await scrypt(password, Buffer.from(salt, 'base64'), expected.length);
  return timingSafeEqual(got, expected);
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

export function createOpsService(deps: { db: Db; clock: Clock; tokenTtlS: number }) {
  const { db, clock } = deps;

  const publicUser = (u: typeof opsUsers.$inferSelect) => ({ id: u.id, username: u.username, role: u.role, disabled: u.disabled, createdAt: u.createdAt.toISOString() });

  return {
    /** The first admin, created once; its password comes from OPS_ADMIN_PASSWORD. */
    async ensureAdmin(password: string) {
      const [existing] = await db.select().from(opsUsers).where(eq(opsUsers.username, 'admin'));
      if (existing) return false;
      await db.insert(opsUsers).values({ username: 'admin', passwordHash: await hashPassword(password), role: 'admin' }).onConflictDoNothing();
      return true;
    },

    async login(username: string, password: string) {
      const [user] = await db.select().from(opsUsers).where(eq(opsUsers.username, username));
      // Same work whether or not the user exists, so timing does not reveal usernames.
      const ok = await verifyPassword(password, user?.passwordHash ?? 'scrypt$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=');
      if (!user || !ok || user.disabled) throw new AppError('BAD_CREDENTIALS');
      const token = randomBytes(32).toString('base64url');
      const expiresAt = new Date(clock.now().getTime() + deps.tokenTtlS * 1000);
      await db.insert(opsSessions).values({ tokenHash: sha256(token), userId: user.id, expiresAt });
      await db.delete(opsSessions).where(lt(opsSessions.expiresAt, clock.now()));
      return { token, expiresAt: expiresAt.toISOString(), user: publicUser(user) };
    },

    async authenticate(token: string): Promise<Actor | undefined> {
      const [row] = await db
        .select({ id: opsUsers.id, username: opsUsers.username, role: opsUsers.role, disabled: opsUsers.disabled })
        .from(opsSessions)
        .innerJoin(opsUsers, eq(opsUsers.id, opsSessions.userId))
        .where(and(eq(opsSessions.tokenHash, sha256(token)), gt(opsSessions.expiresAt, clock.now())));
      if (!row || row.disabled) return undefined;
      return { id: row.id, username: row.username, role: row.role };
    },

    async logout(token: string) {
      await db.delete(opsSessions).where(eq(opsSessions.tokenHash, sha256(token)));
    },

    listUsers: async () => (await db.select().from(opsUsers).orderBy(opsUsers.id)).map(publicUser),

    async createUser(input: { username: string; password: string; role: Role }) {
      const [row] = await db.insert(opsUsers).values({ username: input.username, passwordHash: await hashPassword(input.password), role: input.role }).onConflictDoNothing().returning();
      if (!row) throw new AppError('CONFLICT', `user ${input.username} exists`);
      return publicUser(row);
    },

    async updateUser(id: number, input: { role?: Role; disabled?: boolean; password?: string }) {
      const set: Partial<typeof opsUsers.$inferInsert> = {};
      if (input.role) set.role = input.role;
      if (input.disabled !== undefined) set.disabled = input.disabled;
      if (input.password) set.passwordHash = await hashPassword(input.password);
      const [row] = await db.update(opsUsers).set(set).where(eq(opsUsers.id, id)).returning();
      if (!row) throw new AppError('NOT_FOUND', `user ${id} not found`);
      if (input.disabled || input.password) await db.delete(opsSessions).where(eq(opsSessions.userId, id));
      return publicUser(row);
    },

    async audit(actor: Actor, entry: AuditEntry, ctx: { requestId?: string; ip?: string } = {}, tx: Tx = db) {
      await tx.insert(auditLog).values({
        actorId: actor.id, actorName: actor.username, action: entry.action, targetType: entry.targetType,
        targetId: entry.targetId === undefined || entry.targetId === null ? null : String(entry.targetId),
        detail: entry.detail ?? null, requestId: ctx.requestId ?? null, ip: ctx.ip ?? null, at: clock.now(),
      });
    },

    async listAudit(filter: { targetType?: string; limit: number }) {
      const rows = await db.select().from(auditLog)
        .where(filter.targetType ? eq(auditLog.targetType, filter.targetType) : undefined)
        .orderBy(desc(auditLog.id)).limit(filter.limit);
      return rows.map((r) => ({ ...r, at: r.at.toISOString() }));
    },
  };
}
export type OpsService = ReturnType<typeof createOpsService>;
