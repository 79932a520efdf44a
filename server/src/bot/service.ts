/**
 * One inbound message, end to end: dedup claim (+ log, follower touch, customer-service grant) in one
 * round trip, route within the reply budget, store the reply for WeChat's retries. The budget counts from the
 * request's arrival (time spent in the claim's batch included): a handler that overruns what is left of it gets
 * `success` now and its answer later through the customer-service API.
 */
import type { FastifyBaseLogger } from 'fastify';
import type { ReplyMessage } from '../../../shared/replies.ts';
import type { Database } from '../db/client.ts';
import type { Clock } from '../platform/clock.ts';
import { CHAT_TEXT } from '../platform/errors.ts';
import { dedupKeyOf, eventKeyOf, eventNameOf, msgIdOf, type Inbound } from '../wechat/inbound.ts';
import { buildReplyXml } from '../wechat/reply.ts';
import type { MessagingService } from '../messaging/service.ts';
import { createBotRepo, type ClaimInput } from './repo.ts';
import type { Router } from './router.ts';
import type { ActiveDialog } from './dialogs.ts';

const HOUR = 3_600_000;
/**
 * A key still 'processing' this long after its first delivery's budget ended was left by a process that died: a live
 * one has stored the reply or marked it deferred within the budget (plus a store's commit).
 */
export const STALE_MARGIN_MS = 4_000;
const USER_MESSAGES = new Set(['text', 'image', 'voice', 'video', 'shortvideo', 'location', 'link']);
/** How often a retry re-reads a key that another delivery holds (see waitForKey). */
export const KEY_POLL_MS = 200;

/** The customer-service quota an inbound grants (§5.8); menu grants only for click and scancode menus. */
function grantFor(m: Inbound): ClaimInput['grant'] {
  if (USER_MESSAGES.has(m.kind)) return { scene: 'message', quota: 5, ttlMs: 48 * HOUR };
  if (m.kind === 'click' || m.kind === 'scancode') return { scene: 'menu', quota: 3, ttlMs: 60_000 };
  if (m.kind === 'subscribe') return { scene: 'follow', quota: 3, ttlMs: 60_000 };
  if (m.kind === 'scan') return { scene: 'scan', quota: 3, ttlMs: 60_000 };
  return null;
}

export interface HandleResult {
  /** Plaintext reply XML, or null to answer `success`. */
  xml: string | null;
  outcome: 'replied' | 'no_reply' | 'deferred' | 'retry_replayed' | 'retry_in_progress';
}

export function createBotService(deps: {
  database: Database;
  clock: Clock;
  log: FastifyBaseLogger;
  router: Router;
  messaging: MessagingService;
  replyBudgetMs: number;
  /** Milliseconds on a monotonic scale (performance.now by default): what arrival times are measured in. */
  monotonicMs?: () => number;
}) {
  const { database, clock, log, router, messaging, replyBudgetMs } = deps;
  const monotonicMs = deps.monotonicMs ?? (() => performance.now());
  const repo = createBotRepo(database);
  const background = new Set<Promise<unknown>>();
  /** Replies being produced in this process, by dedup key: a retry that lands here while one runs waits for it. */
  const pending = new Map<string, Promise<string | null>>();

  const track = (p: Promise<unknown>) => {
    background.add(p);
    p.finally(() => background.delete(p)).catch(() => undefined);
  };

  function toXml(m: Inbound, reply: ReplyMessage): string {
    // One article at most in answer to a user message (WeChat's rule for passive news replies).
    const r = reply.type === 'news' && USER_MESSAGES.has(m.kind) && reply.articles.length > 1 ? { ...reply, articles: reply.articles.slice(0, 1) } : reply;
    return buildReplyXml(r, m.fromUser, m.toUser, Math.floor(clock.now().getTime() / 1000));
  }

  /**
   * Route within what is left of the budget (`deadline`, on the monotonic scale). The reply is stored for retries
   * after it is sent: WeChat retries only after 5 s.
   */
  async function answer(m: Inbound, key: string, waitingMessages: number, dialog: ActiveDialog | null, now: Date, deadline: number): Promise<HandleResult> {
    if (waitingMessages > 0) track(messaging.flushWaiting(m.fromUser).catch((err) => log.error({ err }, 'flushing waiting messages failed')));
    if (m.kind === 'unknown') log.warn({ msgType: m.msgType, event: m.event }, 'unknown inbound kind, answered success');

    const work = router({ inbound: m, openid: m.fromUser, now, log, dialog }).catch((err: unknown) => {
      log.error({ err, openid: m.fromUser, kind: m.kind }, 'handler failed');
      return { type: 'text', content: CHAT_TEXT.busy } as ReplyMessage;
    });
    let timer: NodeJS.Timeout | undefined;
    const overran = Symbol('overran');
    // Nothing left (the claim waited that long): no race, the handler's answer goes out as a customer-service message.
    const left = deadline - monotonicMs();
    const first = left <= 0 ? overran : await Promise.race([work, new Promise<typeof overran>((r) => (timer = setTimeout(() => r(overran), left)))]);
    clearTimeout(timer);

    if (first === overran || deadline - monotonicMs() <= 0) {
      await repo.markDeferred(key);
      track(work.then(async (reply) => {
        if (reply) await messaging.send(m.fromUser, reply, `reply:${key}`);
      }).catch((err) => log.error({ err }, 'deferred reply failed')));
      log.warn({ openid: m.fromUser, kind: m.kind, budgetMs: replyBudgetMs, leftMs: Math.round(left) }, 'handler overran the reply budget; answering by customer-service message');
      return { xml: null, outcome: 'deferred' };
    }
    const xml = first ? toXml(m, first) : null;
    // Until the stored reply is committed, a retry landing in this process is answered from `pending`.
    track(repo.storeReply(key, xml)
      .catch((err) => log.error({ err, key }, 'storing the reply for retries failed'))
      .finally(() => pending.delete(key)));
    return { xml, outcome: xml ? 'replied' : 'no_reply' };
  }

  /**
   * A retry of a key another delivery holds ('processing', not in this process): re-read the key until that delivery
   * answers (its stored reply is this retry's answer; deferred: `success`, the answer goes by customer service) or
   * the key is old enough to have been left by a process that died — then take it over (a compare-and-set: of
   * several retries, one) and handle the message here — within this retry's own budget.
   * Answering `success` at once would lose the message after a crash: WeChat's first retry comes about 5 s after
   * the push, before a key can be taken over (budget + STALE_MARGIN_MS), and `success` ends WeChat's retries.
   * The key can be taken over within the retry's budget because the margin (4 s) is shorter than WeChat's interval
   * between attempts (5 s).
   */
  async function waitForKey(key: string, openid: string, deadline: number): Promise<
    { kind: 'taken'; dialog: ActiveDialog | null } | { kind: 'replied'; xml: string | null } | { kind: 'deferred' } | { kind: 'timeout' }> {
    for (;;) {
      const now = clock.now();
      const taken = await repo.takeOver(key, openid, new Date(now.getTime() - replyBudgetMs - STALE_MARGIN_MS), now);
      if (taken) return { kind: 'taken', dialog: taken.dialog };
      const state = await repo.keyState(key);
      if (state?.status === 'replied') return { kind: 'replied', xml: state.reply };
      if (state?.status === 'deferred') return { kind: 'deferred' };
      // Taken over (and refreshed) by another retry, or not yet stale: look again unless this retry's time is up.
      if (!state || deadline - monotonicMs() < 2 * KEY_POLL_MS) return { kind: 'timeout' };
      await new Promise((r) => setTimeout(r, KEY_POLL_MS));
    }
  }

  return {
    /**
     * `arrivedAt`: when the request arrived, on the monotonic scale (monotonicMs; the route passes it); the budget
     * counts from there. Default: now.
     */
    async handle(m: Inbound, opts: { arrivedAt?: number } = {}): Promise<HandleResult> {
      const deadline = (opts.arrivedAt ?? monotonicMs()) + replyBudgetMs;
      const now = clock.now();
      const key = dedupKeyOf(m);
      const claim = await repo.claim({
        key,
        openid: m.fromUser,
        msgType: m.kind === 'unknown' ? m.msgType : USER_MESSAGES.has(m.kind) ? m.kind : 'event',
        event: eventNameOf(m) ?? null,
        eventKey: eventKeyOf(m) ?? null,
        msgId: msgIdOf(m) ?? null,
        sentAt: new Date(Number(m.createTime) * 1000),
        receivedAt: now,
        payload: m,
        isUserMessage: USER_MESSAGES.has(m.kind),
        grant: grantFor(m),
      });
      let waiting = 0;
      let dialog: ActiveDialog | null = null;
      if (!claim.claimed) {
        // A retry: the same answer if there is one; `success` once the first attempt answered by customer service.
        if (claim.status === 'replied') return { xml: claim.reply, outcome: 'retry_replayed' };
        if (claim.status === 'deferred') return { xml: null, outcome: 'retry_in_progress' };
        const running = pending.get(key);
        if (running) {
          const xml = await running;
          return xml ? { xml, outcome: 'retry_replayed' } : { xml: null, outcome: 'retry_in_progress' };
        }
        const held = await waitForKey(key, m.fromUser, deadline);
        if (held.kind === 'replied') return held.xml ? { xml: held.xml, outcome: 'retry_replayed' } : { xml: null, outcome: 'retry_in_progress' };
        if (held.kind !== 'taken') return { xml: null, outcome: 'retry_in_progress' };
        log.warn({ key, openid: m.fromUser, kind: m.kind }, 'took over a message its first delivery left unanswered');
        dialog = held.dialog;
      } else {
        waiting = claim.waitingMessages;
        dialog = claim.dialog;
      }
      const result = answer(m, key, waiting, dialog, now, deadline);
      pending.set(key, result.then((r) => r.xml, () => null));
      return result.then(
        (r) => {
          if (r.outcome === 'deferred') pending.delete(key);
          return r;
        },
        (err: unknown) => {
          pending.delete(key);
          throw err;
        },
      );
    },

    /** Wait for deferred replies and flushes in flight (graceful shutdown, tests). */
    async drain() {
      while (background.size > 0) await Promise.allSettled([...background]);
    },

    pruneDedup: () => repo.pruneDedup(new Date(clock.now().getTime() - 24 * HOUR)),
  };
}
export type BotService = ReturnType<typeof createBotService>;
