import { and, eq, inArray, lt, sql } from 'drizzle-orm';
import type { Tx } from '../db/client.ts';
import type { CustomerMessage } from '../../../shared/replies.ts';
import { csOutbox } from './tables.ts';

export type OutboxRow = typeof csOutbox.$inferSelect;

export function createMessagingRepo(db: Tx) {
  return {
    /** Insert once per key; returns the row (existing or new) and whether it is new. */
    async enqueue(key: string, openid: string, message: CustomerMessage, notAfter: Date, now: Date) {
      const [row] = await db.insert(csOutbox).values({ key, openid, message, notAfter, createdAt: now, nextAttemptAt: now }).onConflictDoNothing().returning();
      if (row) return { row, created: true };
      const [existing] = await db.select().from(csOutbox).where(eq(csOutbox.key, key));
      return { row: existing!, created: false };
    },

    /** Take the row for one send attempt; null when another worker has it or it is finished. */
    async claim(id: number, now: Date): Promise<OutboxRow | undefined> {
      const [row] = await db
        .update(csOutbox)
        .set({ status: 'sending', attempts: sql`${csOutbox.attempts} + 1`, nextAttemptAt: now }) // while sending: when it was taken
        .where(and(eq(csOutbox.id, id), inArray(csOutbox.status, ['pending', 'waiting', 'failed'])))
        .returning();
      return row;
    },

    async finish(id: number, status: OutboxRow['status'], reason: string | null, extra: { sentAt?: Date; nextAttemptAt?: Date } = {}) {
      await db.update(csOutbox).set({ status, reason, ...extra }).where(eq(csOutbox.id, id));
    },

    /**
     * Use one message of the user's customer-service budget: the open grant that expires first.
     * Row-locked, so concurrent senders never overspend.
     */
    async consumeGrant(openid: string, now: Date): Promise<string | null> {
      const rows = await db.execute(sql`
        UPDATE cs_grants g SET used = g.used + 1
        FROM (SELECT scene FROM cs_grants
              WHERE openid = ${openid} AND expires_at > ${now.toISOString()}::timestamptz AND (quota IS NULL OR used < quota)
              ORDER BY expires_at LIMIT 1 FOR UPDATE) s
        WHERE g.openid = ${openid} AND g.scene = s.scene AND (g.quota IS NULL OR g.used < g.quota)
        RETURNING g.scene`);
      return ((rows as unknown as { rows: Array<{ scene: string }> }).rows[0]?.scene) ?? null;
    },

    /** Give back a unit taken by consumeGrant for a message WeChat refused (nothing was delivered). */
    async refundGrant(openid: string, scene: string): Promise<void> {
      await db.execute(sql`UPDATE cs_grants SET used = greatest(used - 1, 0) WHERE openid = ${openid} AND scene = ${scene}`);
    },

    /** Open (or renew) a grant outside the webhook path, e.g. after a WeChat Pay payment. */
    async grant(openid: string, scene: 'payment', now: Date, ttlMs: number, quota: number | null) {
      await db.execute(sql`
        INSERT INTO cs_grants (openid, scene, granted_at, expires_at, quota, used)
        VALUES (${openid}, ${scene}, ${now.toISOString()}::timestamptz, ${new Date(now.getTime() + ttlMs).toISOString()}::timestamptz, ${quota}, 0)
        ON CONFLICT (openid, scene) DO UPDATE SET granted_at = EXCLUDED.granted_at, expires_at = EXCLUDED.expires_at, quota = EXCLUDED.quota, used = 0`);
    },

    async hasOpenWindow(openid: string, now: Date): Promise<boolean> {
      const rows = await db.execute(sql`SELECT 1 FROM cs_grants WHERE openid = ${openid} AND expires_at > ${now.toISOString()}::timestamptz LIMIT 1`);
      return (rows as unknown as { rows: unknown[] }).rows.length > 0;
    },

    async waitingIds(openid: string): Promise<number[]> {
      const rows = await db.select({ id: csOutbox.id }).from(csOutbox).where(and(eq(csOutbox.openid, openid), eq(csOutbox.status, 'waiting'))).orderBy(csOutbox.id);
      return rows.map((r) => r.id);
    },

    /** Due retries, skipping rows another instance is looking at. */
    async dueIds(now: Date, limit: number): Promise<number[]> {
      const rows = await db.execute(sql`
        SELECT id FROM cs_outbox WHERE status IN ('pending', 'failed') AND next_attempt_at <= ${now.toISOString()}::timestamptz
        ORDER BY next_attempt_at LIMIT ${limit} FOR UPDATE SKIP LOCKED`);
      return (rows as unknown as { rows: Array<{ id: string | number }> }).rows.map((r) => Number(r.id));
    },

    /** A send interrupted by a crash may or may not have reached WeChat: never resend it (at most once). */
    async abandonStuck(olderThan: Date) {
      await db.update(csOutbox).set({ status: 'dropped', reason: 'interrupted' }).where(and(eq(csOutbox.status, 'sending'), lt(csOutbox.nextAttemptAt, olderThan)));
    },

    async dropExpiredWaiting(now: Date) {
      await db.update(csOutbox).set({ status: 'dropped', reason: 'expired' }).where(and(eq(csOutbox.status, 'waiting'), lt(csOutbox.notAfter, now)));
    },

    listForOpenid: (openid: string) => db.select().from(csOutbox).where(eq(csOutbox.openid, openid)).orderBy(csOutbox.id),
  };
}
