/**
 * The points ledger: every balance change is one append-only `points_ledger` row written in the same transaction
 * as the `points_accounts` update, exactly once per idempotency key, and a balance never goes below zero.
 *
 * Concurrency: the account row is locked (`SELECT … FOR UPDATE`) before the key is looked up, so two calls for
 * the same user serialise, and a repeated key always finds the first call's row. The key's unique index backs
 * this up when the same key is (wrongly) used for two users.
 */
import { desc, eq, sql } from 'drizzle-orm';
import type { Db, Tx } from '../db/client.ts';
import { AppError } from '../platform/errors.ts';
import { systemClock, type Clock } from '../platform/clock.ts';
import { pointsAccounts, pointsLedger, type PointsLedgerEntry } from './tables.ts';

export interface LedgerResult extends PointsLedgerEntry {
  /** true when the key had been used before: this is the original entry and nothing changed. */
  duplicate: boolean;
}

const MAX_DELTA = 2_000_000_000;

function rowsOf<T>(res: unknown): T[] {
  return (res as { rows: T[] }).rows;
}

export function createLedger(deps: { db: Db; clock?: Clock }) {
  const { db } = deps;
  const clock = deps.clock ?? systemClock;

  async function apply(tx: Tx, openid: string, delta: number, key: string, reason: string, detail: unknown): Promise<LedgerResult> {
    const now = clock.now();
    // Make sure the account exists, then lock it: everything below runs one at a time per user.
    await tx.insert(pointsAccounts).values({ openid, balance: 0, updatedAt: now }).onConflictDoNothing();
    const [account] = rowsOf<{ balance: string | number }>(await tx.execute(sql`SELECT balance FROM points_accounts WHERE openid = ${openid} FOR UPDATE`));
    const [existing] = await tx.select().from(pointsLedger).where(eq(pointsLedger.idempotencyKey, key));
    if (existing) {
      if (existing.openid !== openid || existing.delta !== delta) {
        throw new AppError('CONFLICT', `Idempotency key ${key} was already used for a different change`, { key, openid: existing.openid, delta: existing.delta });
      }
      return { ...existing, duplicate: true };
    }
    const balance = Number(account!.balance);
    const after = balance + delta;
    if (after < 0) {
      throw new AppError('VALIDATION', `Insufficient points: balance ${balance}, debit ${-delta}`, { reason: 'insufficient_points', balance, requested: -delta });
    }
    await tx.update(pointsAccounts).set({ balance: after, updatedAt: now }).where(eq(pointsAccounts.openid, openid));
    const [entry] = await tx.insert(pointsLedger)
      .values({ openid, delta, balanceAfter: after, idempotencyKey: key, reason, detail: detail ?? null, createdAt: now })
      .onConflictDoNothing()
      .returning();
    // Only reachable when another user's change holds the key: refuse (this rolls the balance change back).
    if (!entry) throw new AppError('CONFLICT', `Idempotency key ${key} was already used for a different change`, { key });
    return { ...entry, duplicate: false };
  }

  function check(openid: string, amount: number, key: string, reason: string) {
    if (typeof openid !== 'string' || openid === '') throw new AppError('VALIDATION', 'openid is required');
    if (!Number.isSafeInteger(amount) || amount <= 0 || amount > MAX_DELTA) throw new AppError('VALIDATION', `Points must be a positive integer (got ${amount})`);
    if (typeof key !== 'string' || key === '' || key.length > 200) throw new AppError('VALIDATION', 'An idempotency key (1–200 characters) is required');
    if (typeof reason !== 'string' || reason === '') throw new AppError('VALIDATION', 'A reason is required');
  }

  function run(openid: string, delta: number, key: string, reason: string, detail: unknown, tx?: Tx): Promise<LedgerResult> {
    // Inside the caller's transaction when given one (their rollback undoes ours), otherwise in our own.
    return tx ? apply(tx, openid, delta, key, reason, detail) : db.transaction((own) => apply(own, openid, delta, key, reason, detail));
  }

  return {
    /** Add points. Repeating a key returns the original entry (`duplicate: true`) and changes nothing. */
    async credit(openid: string, points: number, idempotencyKey: string, reason: string, detail?: unknown, tx?: Tx): Promise<LedgerResult> {
      check(openid, points, idempotencyKey, reason);
      return run(openid, points, idempotencyKey, reason, detail, tx);
    },

    /** Take points; more than the balance → AppError VALIDATION (`details.reason = 'insufficient_points'`). */
    async debit(openid: string, points: number, idempotencyKey: string, reason: string, detail?: unknown, tx?: Tx): Promise<LedgerResult> {
      check(openid, points, idempotencyKey, reason);
      return run(openid, -points, idempotencyKey, reason, detail, tx);
    },

    /**
     * Add points inside `tx` when the caller already holds this user's account row lock (`SELECT … FOR UPDATE` on
     * points_accounts) and found the key unused — the earn path, which must check caps under that lock anyway.
     * The key's unique index still refuses a reuse (CONFLICT, rolled back).
     */
    async creditLocked(tx: Tx, openid: string, points: number, idempotencyKey: string, reason: string, detail?: unknown): Promise<LedgerResult> {
      check(openid, points, idempotencyKey, reason);
      const now = clock.now();
      const [account] = rowsOf<{ balance: string | number }>(await tx.execute(sql`UPDATE points_accounts SET balance = balance + ${points}, updated_at = ${now} WHERE openid = ${openid} RETURNING balance`));
      if (!account) throw new AppError('INTERNAL', `No points account for ${openid}: lock it before creditLocked`);
      const [entry] = await tx.insert(pointsLedger)
        .values({ openid, delta: points, balanceAfter: Number(account.balance), idempotencyKey, reason, detail: detail ?? null, createdAt: now })
        .onConflictDoNothing()
        .returning();
      if (!entry) throw new AppError('CONFLICT', `Idempotency key ${idempotencyKey} was already used`, { key: idempotencyKey });
      return { ...entry, duplicate: false };
    },

    async balance(openid: string, tx: Tx = db): Promise<number> {
      const [row] = await tx.select({ balance: pointsAccounts.balance }).from(pointsAccounts).where(eq(pointsAccounts.openid, openid));
      return Number(row?.balance ?? 0);
    },

    /** Newest first. */
    async entries(openid: string, limit = 50, tx: Tx = db): Promise<PointsLedgerEntry[]> {
      const n = Math.max(1, Math.min(500, Math.floor(limit)));
      return tx.select().from(pointsLedger).where(eq(pointsLedger.openid, openid)).orderBy(desc(pointsLedger.createdAt), desc(pointsLedger.id)).limit(n);
    },

    /** The entry written for a key, if any. */
    async byKey(idempotencyKey: string, tx: Tx = db): Promise<PointsLedgerEntry | undefined> {
      const [row] = await tx.select().from(pointsLedger).where(eq(pointsLedger.idempotencyKey, idempotencyKey));
      return row;
    },
  };
}
export type Ledger = ReturnType<typeof createLedger>;
