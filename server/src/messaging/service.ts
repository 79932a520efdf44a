/**
 * Customer-service messages (客服消息) under WeChat's per-user budget (§5.8). Every send asks the budget
 * first; what cannot go now waits for the user's next interaction (or is dropped when stale), and is
 * never retried into 45015/45047. Each message has a key, so it is sent at most once across instances.
 */
import type { FastifyBaseLogger } from 'fastify';
import type { CustomerMessage } from '../../../shared/replies.ts';
import type { Db } from '../db/client.ts';
import type { Clock } from '../platform/clock.ts';
import { CS_WINDOW_ERRCODES } from '../wechat/constants.ts';
import { WeChatApiError } from '../wechat/errors.ts';
import type { WeChatApiClient } from '../wechat/api-client.ts';
import { createMessagingRepo } from './repo.ts';

export type SendOutcome = 'sent' | 'waiting' | 'failed' | 'dropped' | 'duplicate' | 'busy';

const DEFAULT_TTL_MS = 48 * 3_600_000;
const MAX_ATTEMPTS = 5;
/** Errors that mean "this user cannot be messaged": drop, never retry. */
const UNDELIVERABLE = new Set([40003, 43004, 48002, 50002]);
/**
 * Errors that mean "WeChat will never take this message" (a malformed or oversized body, an unknown media id):
 * sending it again cannot succeed, so it is dropped at once instead of spending the user's quota on retries.
 * 40007 invalid media_id, 40008 invalid message type, 44002 empty body, 45002 content too long,
 * 45008 too many articles, 47001 malformed body.
 */
const REJECTED = new Set([40007, 40008, 44002, 45002, 45008, 47001]);

/** A customer-service news message carries one article (WeChat's rule since 2018; a passive reply's list is cut the same way). */
function forCustomerService(message: CustomerMessage): CustomerMessage {
  return message.type === 'news' && message.articles.length > 1 ? { ...message, articles: message.articles.slice(0, 1) } : message;
}

export function createMessagingService(deps: { db: Db; wechat: WeChatApiClient; clock: Clock; log: FastifyBaseLogger }) {
  const { db, wechat, clock, log } = deps;
  const repo = createMessagingRepo(db);

  async function attempt(id: number): Promise<SendOutcome> {
    const now = clock.now();
    const row = await repo.claim(id, now);
    if (!row) return 'busy';
    if (row.notAfter < now) {
      await repo.finish(id, 'dropped', 'expired');
      return 'dropped';
    }
    const scene = await repo.consumeGrant(row.openid, now);
    if (!scene) {
      const reason = (await repo.hasOpenWindow(row.openid, now)) ? 'quota_exhausted' : 'no_window';
      await repo.finish(id, 'waiting', reason);
      log.info({ openid: row.openid, outboxId: id, reason }, 'customer-service message waits for the user');
      return 'waiting';
    }
    try {
      // Outbound HTTP runs outside any transaction.
      await wechat.sendCustomerMessage(row.openid, forCustomerService(row.message));
      await repo.finish(id, 'sent', null, { sentAt: clock.now() });
      return 'sent';
    } catch (err) {
      // WeChat answered with an error: nothing was delivered, so the unit of the user's budget taken above goes back
      // (45015/45047 excepted: there WeChat says the window or its quota is used up, and the grant must not offer it).
      // Best effort: a failed refund leaves the budget one short, and never stops the message's own outcome below.
      if (err instanceof WeChatApiError && !CS_WINDOW_ERRCODES.has(err.errcode)) {
        await repo.refundGrant(row.openid, scene).catch((e: unknown) => log.warn({ err: e, openid: row.openid }, 'could not give back a customer-service budget unit'));
      }
      if (err instanceof WeChatApiError && CS_WINDOW_ERRCODES.has(err.errcode)) {
        await repo.finish(id, 'waiting', `wechat_${err.errcode}`);
        return 'waiting';
      }
      if (err instanceof WeChatApiError && UNDELIVERABLE.has(err.errcode)) {
        await repo.finish(id, 'dropped', `wechat_${err.errcode}`);
        return 'dropped';
      }
      if (err instanceof WeChatApiError && REJECTED.has(err.errcode)) {
        await repo.finish(id, 'dropped', `rejected:wechat_${err.errcode}`);
        log.warn({ openid: row.openid, outboxId: id, errcode: err.errcode }, 'WeChat rejected a customer-service message; dropped');
        return 'dropped';
      }
      const reason = err instanceof WeChatApiError ? `wechat_${err.errcode}` : 'transport';
      if (row.attempts >= MAX_ATTEMPTS) {
        await repo.finish(id, 'dropped', `gave_up:${reason}`);
        return 'dropped';
      }
      const backoff = 2 ** row.attempts * 5_000;
      await repo.finish(id, 'failed', reason, { nextAttemptAt: new Date(clock.now().getTime() + backoff) });
      log.warn({ openid: row.openid, outboxId: id, err: (err as Error).message }, 'customer-service send failed; will retry');
      return 'failed';
    }
  }

  return {
    /** Send (or queue) a message; the key makes repeated calls for the same business event a no-op. */
    async send(openid: string, message: CustomerMessage, key: string, ttlMs = DEFAULT_TTL_MS): Promise<SendOutcome> {
      const now = clock.now();
      const { row, created } = await repo.enqueue(key, openid, message, new Date(now.getTime() + ttlMs), now);
      if (!created) return 'duplicate';
      return attempt(row.id);
    },

    /** The user just opened a window: send what was waiting, oldest first, while the budget lasts. */
    async flushWaiting(openid: string): Promise<number> {
      let sent = 0;
      for (const id of await repo.waitingIds(openid)) {
        const outcome = await attempt(id);
        if (outcome === 'sent') sent++;
        if (outcome === 'waiting') break;
      }
      return sent;
    },

    /** Worker tick: retries that are due, stale waiting messages, interrupted sends. */
    async runDue(limit = 100): Promise<void> {
      const now = clock.now();
      await repo.dropExpiredWaiting(now);
      await repo.abandonStuck(new Date(now.getTime() - 120_000));
      const ids = await db.transaction(async (tx) => createMessagingRepo(tx).dueIds(now, limit));
      for (const id of ids) await attempt(id);
    },

    /** A WeChat Pay payment by this user: unlimited customer-service messages for 48 h (§5.8). */
    async paymentSucceeded(openid: string): Promise<number> {
      await repo.grant(openid, 'payment', clock.now(), DEFAULT_TTL_MS, null);
      return this.flushWaiting(openid);
    },

    list: (openid: string) => repo.listForOpenid(openid),
  };
}
export type MessagingService = ReturnType<typeof createMessagingService>;
