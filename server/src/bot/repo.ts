import { eq, lt, sql } from 'drizzle-orm';
import type { Tx } from '../db/client.ts';
import { webhookDedup } from './tables.ts';

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
  | { claimed: true; waitingMessages: number }
  | { claimed: false; status: 'processing' | 'replied' | 'deferred'; reply: string | null };

export function createBotRepo(db: Tx) {
  return {
    /**
     * One round trip: take the dedup key; when it is new, append to the interaction log, touch the follower
     * and open the customer-service grant. A retry (key taken) changes nothing.
     */
    async claim(c: ClaimInput): Promise<ClaimResult> {
      const at = c.receivedAt.toISOString();
      const grant = c.grant
        ? sql`, g AS (
            INSERT INTO cs_grants (openid, scene, granted_at, expires_at, quota, used)
            SELECT ${c.openid}, ${c.grant.scene}, ${at}::timestamptz, ${new Date(c.receivedAt.getTime() + c.grant.ttlMs).toISOString()}::timestamptz, ${c.grant.quota}, 0
            FROM d
            ON CONFLICT (openid, scene) DO UPDATE SET granted_at = EXCLUDED.granted_at, expires_at = EXCLUDED.expires_at, quota = EXCLUDED.quota, used = 0
            RETURNING 1)`
        : sql``;
      const rows = await db.execute(sql`
        WITH d AS (
          INSERT INTO webhook_dedup (key, status, created_at) VALUES (${c.key}, 'processing', ${at}::timestamptz)
          ON CONFLICT (key) DO NOTHING RETURNING key
        ), i AS (
          INSERT INTO interactions (openid, msg_type, event, event_key, msg_id, sent_at, received_at, payload)
          SELECT ${c.openid}, ${c.msgType}, ${c.event}, ${c.eventKey}, ${c.msgId}, ${c.sentAt.toISOString()}::timestamptz, ${at}::timestamptz, ${JSON.stringify(c.payload)}::jsonb
          FROM d RETURNING 1
        ), f AS (
          INSERT INTO followers (openid, subscribed, first_seen_at, last_interaction_at, last_message_at, subscribe_count)
          SELECT ${c.openid}, ${c.isUserMessage}, ${at}::timestamptz, ${at}::timestamptz, ${c.isUserMessage ? at : null}::timestamptz, 0
          FROM d
          ON CONFLICT (openid) DO UPDATE SET
            last_interaction_at = GREATEST(followers.last_interaction_at, EXCLUDED.last_interaction_at),
            last_message_at = COALESCE(GREATEST(followers.last_message_at, EXCLUDED.last_message_at), followers.last_message_at, EXCLUDED.last_message_at)
          RETURNING 1
        )${grant}
        SELECT (SELECT count(*) FROM d)::int AS claimed${c.grant ? sql`, (SELECT count(*) FROM cs_outbox WHERE openid = ${c.openid} AND status = 'waiting')::int AS waiting` : sql`, 0 AS waiting`}`);
      const row = (rows as unknown as { rows: Array<{ claimed: number; waiting: number }> }).rows[0];
      if (row?.claimed === 1) return { claimed: true, waitingMessages: Number(row.waiting) };
      const [existing] = await db.select().from(webhookDedup).where(eq(webhookDedup.key, c.key));
      return { claimed: false, status: existing?.status ?? 'processing', reply: existing?.reply ?? null };
    },

    async storeReply(key: string, reply: string | null) {
      await db.update(webhookDedup).set({ status: 'replied', reply }).where(eq(webhookDedup.key, key));
    },

    async markDeferred(key: string) {
      await db.update(webhookDedup).set({ status: 'deferred' }).where(eq(webhookDedup.key, key));
    },

    /** Retries come within ~15 s; a day of keys is plenty. */
    async pruneDedup(before: Date) {
      await db.delete(webhookDedup).where(lt(webhookDedup.createdAt, before));
    },
  };
}
export type BotRepo = ReturnType<typeof createBotRepo>;
