import { lt, sql } from 'drizzle-orm';
import type { Database } from '../db/client.ts';
import { retryOnDeadlock, rowsOf } from '../db/retry.ts';
import { createBatcher, settleIsolated, type Settled } from '../platform/batcher.ts';
import { webhookDedup } from './tables.ts';
import type { ActiveDialog } from './dialogs.ts';

export type CsScene = 'message' | 'menu' | 'follow' | 'scan';

export interface ClaimInput {
  key: string;
  openid: string;
  msgType: string;
  event: string | null;
  eventKey: string | null;
  msgId: string | null;
  sentAt: Date;
  receivedAt: Date;
  payload: unknown;
  /** A user-sent message (opens the 48-hour window). */
  isUserMessage: boolean;
  /** Customer-service quota this inbound grants, per WeChat's rules. */
  grant: { scene: CsScene; quota: number; ttlMs: number } | null;
}

export type ClaimResult =
  | { claimed: true; waitingMessages: number; dialog: ActiveDialog | null }
  | { claimed: false; status: 'processing' | 'replied' | 'deferred'; reply: string | null };

/**
 * How stale a follower's last_interaction_at / last_message_at may be before a message rewrites them. Nothing decides
 * anything on them in real time (the 48-hour customer-service window is cs_grants'); they are for ops and analytics.
 */
export const FOLLOWER_SLACK_S = 60;

/**
 * How much earlier than WeChat's a stored 48-hour grant may end before a message renews it (quota and used unchanged
 * otherwise). Short grants (menu, follow and scan: 1 minute) are always renewed.
 */
export const grantSlackS = (ttlMs: number) => (ttlMs >= 3_600_000 ? 60 : 0);

/*
 * jsonb_to_recordset turns one JSON parameter into the batch (the same on node-postgres and PGlite).
 *
 * The claim commits without waiting for its WAL flush (synchronous_commit off for this statement's own transaction,
 * set by the statement itself: a one-time filter of the final SELECT, reverted at its commit). Nothing is lost by it:
 * - every effect that matters commits synchronously after the claim (a code's redemption, a draw, points, a dialog
 *   step, the stored reply: STORE_SQL, its own statement with a synchronous commit), and a synchronous commit flushes
 *   the WAL up to its own record, the earlier claim's included: once a reply is stored or a reply that depends on a
 *   durable write goes out, the claim is durable too;
 * - a crash in the ≤ 3 × wal_writer_delay after a claim, before anything synchronous followed it, can forget that
 *   claim: WeChat's retry is then answered again, as if it were the first delivery (nothing the first delivery did is
 *   durable either); a forgotten 48-hour grant renewal only makes the stored window shorter or its quota smaller,
 *   never larger;
 * - a crash after the claim is durable but before its reply is stored (the reply is stored after it is sent; the
 *   store's commit takes milliseconds) leaves the key 'processing': a retry arriving once the first delivery's
 *   budget is surely over takes the key over and handles the message again (takeOver; its effects are idempotent:
 *   a code already redeemed by this user is answered as such, an answer is not applied to a dialog that moved);
 * - visibility and the dedup key's uniqueness are unchanged (an async commit is visible at once), so a retry arriving
 *   while the first delivery runs is still refused.
 * It takes the claim's WAL flush (most of its time under load: LWLock:WALWrite and IO:WALSync waits) off the path of
 * every webhook request. Never run this statement inside a transaction that writes anything else.
 */
export const CLAIM_SQL = `
      WITH input AS (
        SELECT DISTINCT ON (key) * FROM jsonb_to_recordset($1::jsonb) AS t(
          ord int, key text, openid text, msg_type text, event text, event_key text, msg_id text, sent_at timestamptz,
          received_at timestamptz, payload jsonb, is_user boolean, g_scene text, g_quota int, g_expires timestamptz, g_slack_s int)
        ORDER BY key, ord
      ), d AS (
        INSERT INTO webhook_dedup (key, status, created_at)
        SELECT key, 'processing', received_at FROM input ORDER BY key
        ON CONFLICT (key) DO NOTHING RETURNING key
      ), c AS (
        SELECT input.* FROM input JOIN d USING (key)
      ), i AS (
        INSERT INTO interactions (openid, msg_type, event, event_key, msg_id, sent_at, received_at, payload)
        SELECT openid, msg_type, event, event_key, msg_id, sent_at, received_at, payload FROM c ORDER BY ord
        RETURNING 1
      ), f AS (
        -- Skipped when the stored times are at most FOLLOWER_SLACK old (see followers/tables.ts): a user sending
        -- several messages a minute costs one follower write, not one per message. A plain read, no row lock.
        -- OFFSET 0 keeps each NOT EXISTS a primary-key probe per row: as an anti-join, the generic plan (100 rows
        -- guessed for the batch) hash-joined a sequential scan of the whole table.
        INSERT INTO followers (openid, subscribed, first_seen_at, last_interaction_at, last_message_at, subscribe_count)
        SELECT x.openid, x.is_user, x.first_at, x.last_at, x.last_msg, 0 FROM (
          SELECT openid, bool_or(is_user) AS is_user, min(received_at) AS first_at, max(received_at) AS last_at,
                 max(received_at) FILTER (WHERE is_user) AS last_msg
          FROM c GROUP BY openid) x
        WHERE NOT EXISTS (SELECT 1 FROM followers fo WHERE fo.openid = x.openid
          AND fo.last_interaction_at >= x.last_at - interval '${FOLLOWER_SLACK_S} seconds'
          AND (x.last_msg IS NULL OR fo.last_message_at >= x.last_msg - interval '${FOLLOWER_SLACK_S} seconds') OFFSET 0)
        ORDER BY x.openid
        ON CONFLICT (openid) DO UPDATE SET
          last_interaction_at = GREATEST(followers.last_interaction_at, EXCLUDED.last_interaction_at),
          last_message_at = COALESCE(GREATEST(followers.last_message_at, EXCLUDED.last_message_at), followers.last_message_at, EXCLUDED.last_message_at)
        RETURNING 1
      ), g AS (
        -- Skipped when the grant is unused, has the same quota and ends at most g_slack_s seconds before the one this
        -- message opens (48-hour grants only; see grantSlackS): the same budget, a window that closes up to a minute
        -- early — never late. A grant with messages used is always renewed (used back to 0).
        INSERT INTO cs_grants (openid, scene, granted_at, expires_at, quota, used)
        SELECT x.openid, x.g_scene, x.granted_at, x.expires_at, x.quota, 0 FROM (
          SELECT openid, g_scene, max(received_at) AS granted_at, max(g_expires) AS expires_at, max(g_quota) AS quota, min(g_slack_s) AS slack_s
          FROM c WHERE g_scene IS NOT NULL GROUP BY openid, g_scene) x
        WHERE NOT EXISTS (SELECT 1 FROM cs_grants cg WHERE cg.openid = x.openid AND cg.scene = x.g_scene AND cg.used = 0
          AND cg.quota IS NOT DISTINCT FROM x.quota AND cg.expires_at >= x.expires_at - make_interval(secs => x.slack_s) OFFSET 0)
        ORDER BY x.openid, x.g_scene
        ON CONFLICT (openid, scene) DO UPDATE SET granted_at = EXCLUDED.granted_at, expires_at = EXCLUDED.expires_at, quota = EXCLUDED.quota, used = 0
        RETURNING 1
      )
      SELECT c.ord,
        CASE WHEN c.g_scene IS NULL THEN 0
             ELSE (SELECT count(*) FROM cs_outbox o WHERE o.openid = c.openid AND o.status = 'waiting') END::int AS waiting,
        -- The user's active dialog (waiting for a code, an answer, a phone number) rides along too.
        (SELECT jsonb_build_object('flow', dl.flow, 'state', dl.state, 'expiresAt', dl.expires_at)
           FROM dialogs dl WHERE dl.openid = c.openid AND dl.expires_at > c.received_at) AS dialog
      FROM c
      -- An uncorrelated subquery: evaluated once, before any row.
      WHERE (SELECT set_config('synchronous_commit', 'off', true)) = 'off'`;

/**
 * Replies, stored for WeChat's retries: {key: reply XML or null}, one statement per batch, committed synchronously
 * (the session default): a retry after a crash finds the reply that was sent, not a key left 'processing'. Off the
 * request path (stored after the reply is sent), so the WAL flush delays no webhook answer. "= ANY(ARRAY(…))" keeps
 * this an index lookup: a join against a set-returning function (estimated at 100 rows) made the planner hash-join a
 * sequential scan of the whole table.
 */
export const STORE_SQL = `
      UPDATE webhook_dedup w SET status = 'replied', reply = $1::jsonb ->> w.key
      WHERE w.key = ANY(ARRAY(SELECT jsonb_object_keys($1::jsonb)))`;

interface StoreInput { key: string; reply: string | null }

/**
 * Errors that are about the statement or the database, not one item in it: splitting the batch cannot help
 * (deadlock or serialization failure after retryOnDeadlock, connection or resource trouble, the statement itself —
 * class 42: an unknown table, a syntax error —, a transaction in a bad state, an internal error, or
 * anything that is not a SQLSTATE: a lost connection, a driver failure).
 */
export function batchWideError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string' || !/^[0-9A-Z]{5}$/.test(code)) return true;
  return ['08', '25', '40', '42', '53', '57', '58', 'XX'].includes(code.slice(0, 2));
}

const unwrap = <O>(r: Settled<O>): O => {
  if (!r.ok) throw r.error;
  return r.value;
};

type ClaimRow = { ord: number; waiting: number; dialog: { flow: string; state: unknown; expiresAt: string } | null };

export function createBotRepo(database: Database) {
  const { db } = database;

  /** The claim statement for some items: what it claimed, by position (undefined: the key was already taken). */
  async function claimStatement(items: ClaimInput[]): Promise<Array<ClaimRow | undefined>> {
    const input = JSON.stringify(items.map((c, ord) => ({
      ord, key: c.key, openid: c.openid, msg_type: c.msgType, event: c.event, event_key: c.eventKey, msg_id: c.msgId,
      sent_at: c.sentAt.toISOString(), received_at: c.receivedAt.toISOString(), payload: c.payload, is_user: c.isUserMessage,
      g_scene: c.grant?.scene ?? null, g_quota: c.grant?.quota ?? null,
      g_expires: c.grant ? new Date(c.receivedAt.getTime() + c.grant.ttlMs).toISOString() : null,
      g_slack_s: c.grant ? grantSlackS(c.grant.ttlMs) : null,
    })));
    const rows = await retryOnDeadlock(() => database.prepared<ClaimRow>('bot_claim_batch_v5', CLAIM_SQL, [input], { plan: 'generic' }));
    const out: Array<ClaimRow | undefined> = new Array(items.length).fill(undefined);
    for (const r of rows) out[Number(r.ord)] = r;
    return out;
  }

  /**
   * One statement for a whole batch of inbound messages: take each dedup key; for the new ones append to
   * the interaction log, touch the follower and open the customer-service grant. A key already taken (a
   * WeChat retry, or a duplicate within the batch) changes nothing. Rows are locked in key/openid order.
   * If the statement fails for something an item may have brought (bad data), the batch is split until only the
   * failing items fail: one bad message never costs the others their claims.
   */
  async function claimMany(items: ClaimInput[]): Promise<Array<Settled<ClaimResult>>> {
    if (items.length === 0) return [];
    const settled = await settleIsolated(items, claimStatement, batchWideError);
    const results: Array<Settled<ClaimResult> | undefined> = settled.map((s) => {
      if (!s.ok) return s;
      if (!s.value) return undefined;
      const r = s.value;
      const dialog = r.dialog ? { flow: r.dialog.flow, state: r.dialog.state, expiresAt: new Date(r.dialog.expiresAt) } : null;
      return { ok: true, value: { claimed: true, waitingMessages: Number(r.waiting), dialog } };
    });
    const taken = items.map((c, i) => (results[i] ? null : c.key)).filter((k): k is string => k !== null);
    if (taken.length > 0) {
      // Retries: what happened to the first attempt?
      const rows = rowsOf<{ key: string; status: 'processing' | 'replied' | 'deferred'; reply: string | null }>(await db.execute(sql`
        SELECT key, status, reply FROM webhook_dedup WHERE key = ANY(ARRAY(SELECT jsonb_array_elements_text(${JSON.stringify(taken)}::jsonb)))`));
      const byKey = new Map(rows.map((r) => [r.key, r]));
      items.forEach((c, i) => {
        if (results[i]) return;
        const row = byKey.get(c.key);
        results[i] = { ok: true, value: { claimed: false, status: row?.status ?? 'processing', reply: row?.reply ?? null } };
      });
    }
    return results as Array<Settled<ClaimResult>>;
  }

  async function storeStatement(stores: StoreInput[]): Promise<undefined[]> {
    // The last reply for a key wins (there is one per key: only the claiming request stores).
    const replyByKey = JSON.stringify(Object.fromEntries(stores.map((r) => [r.key, r.reply])));
    await retryOnDeadlock(() => database.prepared('bot_store_replies_v1', STORE_SQL, [replyByKey], { plan: 'generic' }));
    return stores.map(() => undefined);
  }

  // Concurrent webhook requests share statements and commits. Stores have their own batches (synchronous commits,
  // off the request path) and their own in-flight limit, so they never hold up a claim.
  const claims = createBatcher((items: ClaimInput[]) => claimMany(items), { maxBatch: 200, maxInflight: 4 });
  const stores = createBatcher((items: StoreInput[]) => settleIsolated(items, storeStatement, batchWideError), { maxBatch: 200, maxInflight: 2 });

  return {
    claim: async (claim: ClaimInput): Promise<ClaimResult> => unwrap(await claims(claim)),
    storeReply: async (key: string, reply: string | null): Promise<void> => {
      unwrap(await stores({ key, reply }));
    },

    /**
     * A retry takes over a key its first delivery left 'processing' (the process died after the claim, or its reply
     * store failed): only once the key is older than `staleBefore` (the first delivery's budget and a margin: a live
     * process has stored its reply or marked it deferred by then), and only while the user's dialog has not moved
     * since the first delivery arrived (if it moved, that delivery, or a later message, may have consumed this
     * one: an answer is never applied twice). Compare-and-set on the key's time: of several retries, one takes over.
     * Returns the user's dialog (like the claim), or undefined when the key is not taken over.
     */
    async takeOver(key: string, openid: string, staleBefore: Date, now: Date): Promise<{ dialog: ActiveDialog | null } | undefined> {
      const [row] = rowsOf<{ dialog: { flow: string; state: unknown; expiresAt: string } | null }>(await db.execute(sql`
        WITH dl AS (SELECT flow, state, expires_at, updated_at FROM dialogs WHERE openid = ${openid}),
        t AS (
          UPDATE webhook_dedup w SET created_at = ${now.toISOString()}
          WHERE w.key = ${key} AND w.status = 'processing' AND w.created_at < ${staleBefore.toISOString()}
            AND NOT EXISTS (SELECT 1 FROM dl WHERE dl.updated_at >= w.created_at)
          RETURNING key)
        SELECT (SELECT jsonb_build_object('flow', flow, 'state', state, 'expiresAt', expires_at) FROM dl WHERE dl.expires_at > ${now.toISOString()}) AS dialog
        FROM t`));
      if (!row) return undefined;
      return { dialog: row.dialog ? { flow: row.dialog.flow, state: row.dialog.state, expiresAt: new Date(row.dialog.expiresAt) } : null };
    },

    /** A key's status and stored reply (a retry waiting for another delivery re-reads it). */
    async keyState(key: string): Promise<{ status: 'processing' | 'replied' | 'deferred'; reply: string | null } | undefined> {
      const [row] = rowsOf<{ status: 'processing' | 'replied' | 'deferred'; reply: string | null }>(await db.execute(sql`
        SELECT status, reply FROM webhook_dedup WHERE key = ${key}`));
      return row;
    },

    async markDeferred(key: string) {
      await db.execute(sql`UPDATE webhook_dedup SET status = 'deferred' WHERE key = ${key}`);
    },

    /** Retries come within ~15 s; a day of keys is plenty. */
    async pruneDedup(before: Date) {
      await db.delete(webhookDedup).where(lt(webhookDedup.createdAt, before));
    },
  };
}
export type BotRepo = ReturnType<typeof createBotRepo>;
