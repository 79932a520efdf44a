/**
 * SQL of the fulfilment jobs. Claims take rows with `FOR UPDATE SKIP LOCKED` inside one statement, so any number of
 * instances can tick; every state change is a conditional update (expected state, and for a running job its lease)
 * written together with its fulfilment_events row.
 */
import { and, desc, eq, inArray, lt, sql, type SQL } from 'drizzle-orm';
import type { Db, Tx } from '../db/client.ts';
import { fulfilmentEvents, fulfilments, type Fulfilment } from './tables.ts';

export type FulfilmentState = Fulfilment['state'];
export type FulfilmentKind = Fulfilment['kind'];
export type FulfilmentEvent = typeof fulfilmentEvents.$inferSelect;

/** Columns a transition may set besides state. */
export type FulfilmentPatch = Partial<Pick<Fulfilment, 'attempts' | 'nextAttemptAt' | 'leaseUntil' | 'outNo' | 'providerRef' | 'packageInfo' | 'expiresAt' | 'lastError' | 'detail'>>;

export interface ListFilter {
  state?: FulfilmentState | undefined;
  campaignId?: number | undefined;
  kind?: FulfilmentKind | undefined;
  openid?: string | undefined;
  /** Only ids below this (paging, newest first). */
  beforeId?: number | undefined;
  limit?: number | undefined;
}

const iso = (d: Date) => d.toISOString();
const rowsOf = <T>(res: unknown): T[] => (res as { rows: T[] }).rows;

export function createFulfilmentRepo(db: Db) {
  async function insertEvents(tx: Tx, rows: Array<{ id: number; from: FulfilmentState | null; to: FulfilmentState; note: string | null }>, at: Date) {
    if (rows.length === 0) return;
    await tx.insert(fulfilmentEvents).values(rows.map((r) => ({ fulfilmentId: r.id, fromState: r.from, toState: r.to, note: r.note, at })));
  }

  /** Claim rows picked by `where` (a condition on alias f): set state 'running' and a lease; returns the claimed jobs. */
  async function claim(where: SQL, order: SQL, now: Date, leaseUntil: Date, limit: number, note: (prev: FulfilmentState) => string | null): Promise<Fulfilment[]> {
    return db.transaction(async (tx) => {
      const claimed = rowsOf<{ id: string | number; prev_state: FulfilmentState }>(await tx.execute(sql`
        UPDATE fulfilments j SET state = 'running', lease_until = ${iso(leaseUntil)}::timestamptz, updated_at = ${iso(now)}::timestamptz
        FROM (SELECT f.id, f.state FROM fulfilments f WHERE ${where} ORDER BY ${order} LIMIT ${limit} FOR UPDATE SKIP LOCKED) s
        WHERE j.id = s.id
        RETURNING j.id, s.state AS prev_state`));
      if (claimed.length === 0) return [];
      const ids = claimed.map((c) => Number(c.id));
      await insertEvents(tx, claimed.map((c) => ({ id: Number(c.id), from: c.prev_state, to: 'running' as const, note: note(c.prev_state) })), now);
      return tx.select().from(fulfilments).where(inArray(fulfilments.id, ids)).orderBy(fulfilments.id);
    });
  }

  return {
    async get(id: number, tx: Tx = db): Promise<Fulfilment | undefined> {
      const [row] = await tx.select().from(fulfilments).where(eq(fulfilments.id, id));
      return row;
    },

    async getByOutNo(outNo: string): Promise<Fulfilment | undefined> {
      const [row] = await db.select().from(fulfilments).where(eq(fulfilments.outNo, outNo));
      return row;
    },

    async list(filter: ListFilter): Promise<Fulfilment[]> {
      const conds: SQL[] = [];
      if (filter.state) conds.push(eq(fulfilments.state, filter.state));
      if (filter.campaignId !== undefined) conds.push(eq(fulfilments.campaignId, filter.campaignId));
      if (filter.kind) conds.push(eq(fulfilments.kind, filter.kind));
      if (filter.openid) conds.push(eq(fulfilments.openid, filter.openid));
      if (filter.beforeId !== undefined) conds.push(lt(fulfilments.id, filter.beforeId));
      const limit = Math.max(1, Math.min(500, filter.limit ?? 100));
      return db.select().from(fulfilments).where(conds.length ? and(...conds) : undefined).orderBy(desc(fulfilments.id)).limit(limit);
    },

    async byOpenid(openid: string, states: FulfilmentState[], kind?: FulfilmentKind): Promise<Fulfilment[]> {
      return db.select().from(fulfilments)
        .where(and(eq(fulfilments.openid, openid), inArray(fulfilments.state, states), kind ? eq(fulfilments.kind, kind) : undefined))
        .orderBy(fulfilments.id);
    },

    async events(id: number): Promise<FulfilmentEvent[]> {
      return db.select().from(fulfilmentEvents).where(eq(fulfilmentEvents.fulfilmentId, id)).orderBy(fulfilmentEvents.at, fulfilmentEvents.id);
    },

    /**
     * Due work: pending or unknown jobs whose time has come, and running jobs whose lease ran out (their worker died:
     * crash recovery). Oldest first.
     */
    claimDue(now: Date, leaseUntil: Date, limit: number): Promise<Fulfilment[]> {
      return claim(
        sql`(f.state IN ('pending', 'unknown') AND f.next_attempt_at <= ${iso(now)}::timestamptz) OR (f.state = 'running' AND f.lease_until < ${iso(now)}::timestamptz)`,
        sql`f.next_attempt_at`,
        now, leaseUntil, limit,
        (prev) => (prev === 'running' ? 'lease expired: reclaimed' : null),
      );
    },

    /** Cash bills whose confirmation window is over. */
    claimExpired(now: Date, leaseUntil: Date, limit: number): Promise<Fulfilment[]> {
      return claim(
        sql`f.state = 'waiting_user' AND f.expires_at <= ${iso(now)}::timestamptz`,
        sql`f.expires_at`,
        now, leaseUntil, limit,
        () => 'confirmation window over: cancelling the transfer',
      );
    },

    /**
     * Bills waiting for the user that are due for a status poll (notifications can be lost): pushes their next poll
     * time forward and returns them, without a state change.
     */
    async claimPolls(now: Date, nextPoll: Date, limit: number): Promise<Fulfilment[]> {
      const rows = rowsOf<{ id: string | number }>(await db.execute(sql`
        UPDATE fulfilments j SET next_attempt_at = ${iso(nextPoll)}::timestamptz
        FROM (SELECT f.id FROM fulfilments f
              WHERE f.state = 'waiting_user' AND f.next_attempt_at <= ${iso(now)}::timestamptz
                AND (f.expires_at IS NULL OR f.expires_at > ${iso(now)}::timestamptz)
              ORDER BY f.next_attempt_at LIMIT ${limit} FOR UPDATE SKIP LOCKED) s
        WHERE j.id = s.id RETURNING j.id`));
      if (rows.length === 0) return [];
      return db.select().from(fulfilments).where(inArray(fulfilments.id, rows.map((r) => Number(r.id)))).orderBy(fulfilments.id);
    },

    /**
     * Move a job from one of `from` to `to` (or stay, with `to` equal to the current state, to record a note), setting
     * `patch`; with `lease`, only while that lease is still ours. Writes the event row in the same transaction.
     * undefined when the job was not in an expected state (someone else moved it).
     */
    async transition(
      id: number,
      guard: { from: FulfilmentState | FulfilmentState[]; lease?: Date | null | undefined },
      to: FulfilmentState,
      patch: FulfilmentPatch,
      note: string | null,
      now: Date,
      tx?: Tx,
    ): Promise<Fulfilment | undefined> {
      const from = Array.isArray(guard.from) ? guard.from : [guard.from];
      const run = async (t: Tx) => {
        const leaseCond = guard.lease ? sql`${fulfilments.leaseUntil} = ${iso(guard.lease)}::timestamptz` : undefined;
        const [before] = await t.select({ state: fulfilments.state }).from(fulfilments)
          .where(and(eq(fulfilments.id, id), inArray(fulfilments.state, from), leaseCond)).for('update');
        if (!before) return undefined;
        const leaving = to !== 'running';
        const [row] = await t.update(fulfilments)
          .set({ ...patch, state: to, ...(leaving && patch.leaseUntil === undefined ? { leaseUntil: null } : {}), updatedAt: now })
          .where(eq(fulfilments.id, id))
          .returning();
        await insertEvents(t, [{ id, from: before.state, to, note }], now);
        return row;
      };
      return tx ? run(tx) : db.transaction(run);
    },

    /** While holding the lease: set columns without a state change and without an event (attempt counters, request bodies). */
    /** A batch's jobs still on lease `from` get lease `to` (one statement); returns the ids renewed. */
    async renewLeases(ids: number[], from: Date, to: Date, now: Date): Promise<number[]> {
      if (ids.length === 0) return [];
      const rows = rowsOf<{ id: string | number }>(await db.execute(sql`
        UPDATE fulfilments SET lease_until = ${iso(to)}::timestamptz, updated_at = ${iso(now)}::timestamptz
        WHERE id = ANY(${`{${ids.join(',')}}`}::bigint[]) AND state = 'running' AND lease_until = ${iso(from)}::timestamptz
        RETURNING id`));
      return rows.map((r) => Number(r.id));
    },

    async touch(id: number, lease: Date, patch: FulfilmentPatch, now: Date): Promise<Fulfilment | undefined> {
      const [row] = await db.update(fulfilments)
        .set({ ...patch, updatedAt: now })
        .where(and(eq(fulfilments.id, id), eq(fulfilments.state, 'running'), sql`${fulfilments.leaseUntil} = ${iso(lease)}::timestamptz`))
        .returning();
      return row;
    },

    /** Every job of the user waiting for a phone → pending, due now. Returns them. */
    async resumeWaitingPhone(openid: string, now: Date): Promise<Fulfilment[]> {
      return db.transaction(async (tx) => {
        const rows = await tx.update(fulfilments)
          .set({ state: 'pending', nextAttemptAt: now, updatedAt: now })
          .where(and(eq(fulfilments.openid, openid), eq(fulfilments.state, 'waiting_phone')))
          .returning();
        await insertEvents(tx, rows.map((r) => ({ id: r.id, from: 'waiting_phone' as const, to: 'pending' as const, note: 'phone provided' })), now);
        return rows;
      });
    },
  };
}
export type FulfilmentRepo = ReturnType<typeof createFulfilmentRepo>;
