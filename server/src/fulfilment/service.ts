/**
 * Fulfilment of won prizes as durable jobs (state machine in ./tables.ts). A job is claimed with a lease, does its
 * one provider operation, and records the outcome with a conditional update; a worker that dies leaves a running
 * job whose lease runs out, and whoever reclaims it asks the provider first (query by out_no), so every prize is
 * paid at most once — and, once the provider answers, exactly once.
 *
 * Kinds:
 * - points   → ledger credit keyed by source_key (the draw usually credits in its own statement: then a no-op).
 * - coupon   → a user_coupons row keyed by source_key, random code, expiry from the prize's coupon.validDays.
 * - topup    → needs a bound phone (else waiting_phone + a chat question); recharge with outNo = out_no; a timeout is
 *              `unknown` and the next step is a query; provider failures retry with backoff, then `failed`.
 * - cash     → WeChat Pay transfer bill (out_bill_no = out_no) → WAIT_USER_CONFIRM: waiting_user with package_info,
 *              the user confirms in the mini program; SUCCESS/FAIL/CANCELLED from the notification, a query, or a poll.
 * - physical → `held` for ops (ship it, then POST /api/ops/fulfilments/:id/complete); shipping addresses are out of scope.
 *
 * Rules worth knowing:
 * - "Query first": a job that ever reached its provider (attempts > 0) queries by out_no before any new call.
 * - A cash bill gets a NEW out_no only when the current one is confirmed CANCELLED or FAIL by a verified WeChat Pay
 *   answer (query right before re-keying), and only on request: the user's "领奖" after an expired bill
 *   (campaign.unclaimed_cash = 'reclaim'; within 25 days, as WeChat Pay answers queries of bills ≤ 30 days old), or
 *   an ops retry. Expired bills of 'forfeit' campaigns are final.
 * - A bill FAIL is `failed` (no automatic re-key); ops retry re-keys it.
 * - Customer-service messages are sent after the state change they announce, each under its own key (at most once).
 */
import { createHmac, randomInt, timingSafeEqual } from 'node:crypto';
import type { MpTransferView } from '../../../shared/transfers.ts';
import { eq, sql } from 'drizzle-orm';
import type { FastifyBaseLogger } from 'fastify';
import type { ReplyMessage } from '../../../shared/replies.ts';
import type { Database, Tx } from '../db/client.ts';
import { rowsOf } from '../db/retry.ts';
import type { Clock } from '../platform/clock.ts';
import { AppError } from '../platform/errors.ts';
import type { MessagingService } from '../messaging/service.ts';
import type { DialogStore } from '../bot/dialogs.ts';
import type { Ledger } from '../members/ledger.ts';
import { maskPhone, normalisePhone, type Phones } from '../members/phones.ts';
import { campaignPrizes, campaigns } from '../campaigns/tables.ts';
import { userCoupons } from '../members/tables.ts';
import {
  PayApiError,
  PayNotificationError,
  PayUnknownError,
  type CreateTransferBillInput,
  type PayClient,
  type TransferBillCreated,
  type TransferBillNotification,
  type TransferBillState,
} from '../wechat/pay/client.ts';
import { isTopupFaceValue, TopupUnknownError, type TopupProvider, type TopupResult } from './topup.ts';
import { createFulfilmentRepo, type FulfilmentEvent, type FulfilmentPatch, type FulfilmentState, type ListFilter } from './repo.ts';
import { fulfilments, type Fulfilment } from './tables.ts';

export const PHONE_DIALOG_FLOW = 'fulfilment.phone';

export interface FulfilmentConfig {
  /** Keys the mini program link tokens (HMAC). */
  piiKey: Buffer;
  /** The mini program holding pages/prize/confirm; without it the chat message carries no link. */
  miniprogramAppId?: string | undefined;
  /** href of the chat link for clients that cannot open mini programs. */
  linkHref?: string | undefined;
  /** Merchant transfer settings (from config.wechatPay). */
  notifyUrl?: string | undefined;
  transfer: { sceneId: string; activityName?: string | undefined; rewardDesc?: string | undefined; remark: string };
  /** How long a claimed job is ours (ms): longer than a job's provider calls (wiring.ts fulfilmentLeaseMs). Default 60 s. */
  leaseMs?: number;
  /** Provider attempts before a job is `failed` (ops retry gives it a new budget). Default 5. */
  maxAttempts?: number;
  /** Backoff after a failed attempt: base · 2^(n−1), capped. Defaults 30 s and 30 min. */
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** When to ask the provider again about an `unknown` outcome. Default 30 s. */
  unknownRetryMs?: number;
  /** Poll interval of bills waiting for the user (notifications can be lost). Default 30 min. */
  pollMs?: number;
  /** Jobs worked on at once per tick. Default 4. */
  concurrency?: number;
  /** How long the "reply with your phone number" dialog stays open. Default 24 h. */
  phoneDialogMs?: number;
}

export interface FulfilmentFaults {
  /**
   * Called right after a provider call returned, before anything is recorded. Returning true abandons the job on
   * the spot, as if the process had died there (tests of crash recovery).
   */
  afterProviderCall?: (job: Fulfilment, op: 'recharge' | 'create_bill' | 'cancel_bill') => boolean;
}

export interface FulfilmentDeps {
  database: Database;
  clock: Clock;
  log: FastifyBaseLogger;
  ledger: Ledger;
  phones: Phones;
  /** null: WeChat Pay not configured (cash jobs fail visibly). */
  pay: PayClient | null;
  /** null: no top-up provider (top-up jobs fail visibly). */
  topup: TopupProvider | null;
  messaging: Pick<MessagingService, 'send'>;
  dialogs?: DialogStore | undefined;
  config: FulfilmentConfig;
  faults?: FulfilmentFaults;
  /** Anti-fraud: a phone shared by an account farm (or blacklisted) sends the waiting prizes to review instead. */
  fraud?: { onPhoneBound(openid: string, phone: string, now: Date): Promise<boolean>; holdWaitingJobs(openid: string, now: Date): Promise<number> } | undefined;
}

export type { MpTransferView };

export interface NotificationOutcome {
  /** HTTP status to answer WeChat Pay with: 200 handled (or nothing to do), 4xx/5xx to make it retry. */
  status: number;
  code: 'SUCCESS' | 'FAIL';
  message: string;
}

/** Thrown inside a transaction when our lease is gone: roll back, someone else owns the job. */
class LostLease extends Error {}

const RETRYABLE_PAY_CODES = new Set(['NOT_ENOUGH', 'SYSTEM_ERROR', 'FREQUENCY_LIMITED', 'QUOTA_EXCEED', 'PROCESSING']);
/** How long after an expired transfer the user may still claim it again ("领奖"). */
const RECLAIM_WINDOW_MS = 25 * 86_400_000;
const COUPON_ALPHABET = '23456789ABCDEFGHJKLMNPQRSTUVWXYZ';

type Detail = Record<string, unknown>;
const detailOf = (job: Fulfilment): Detail => (job.detail && typeof job.detail === 'object' && !Array.isArray(job.detail) ? { ...(job.detail as Detail) } : {});

/** 888 → "8.88", 2000 → "20", 1050 → "10.5" */
export function yuan(fen: number): string {
  return (fen / 100).toFixed(2).replace(/\.?0+$/, '');
}

export function createFulfilmentService(deps: FulfilmentDeps) {
  const { database, clock, log, ledger, phones, pay, topup, messaging, dialogs, config } = deps;
  const { db } = database;
  const repo = createFulfilmentRepo(db);
  const faults = deps.faults ?? {};
  const leaseMs = config.leaseMs ?? 60_000;
  const maxAttempts = config.maxAttempts ?? 5;
  const retryBaseMs = config.retryBaseMs ?? 30_000;
  const retryMaxMs = config.retryMaxMs ?? 30 * 60_000;
  const unknownRetryMs = config.unknownRetryMs ?? 30_000;
  const pollMs = config.pollMs ?? 30 * 60_000;
  const concurrency = Math.max(1, config.concurrency ?? 4);
  const phoneDialogMs = config.phoneDialogMs ?? 24 * 3_600_000;

  const later = (ms: number) => new Date(clock.now().getTime() + ms);
  const backoff = (n: number) => Math.min(retryBaseMs * 2 ** Math.max(0, n - 1), retryMaxMs);
  /** Provider attempts since the last ops retry / re-key. */
  const used = (job: Fulfilment) => job.attempts - Number(detailOf(job).attemptBase ?? 0);

  // ---- ops actions: decided on the job's row, locked ------------------------------------------------------------

  /**
   * An ops action's transaction. Afterwards (refused or not) a kick: while we held the job's row lock a concurrent
   * claim skipped it (SKIP LOCKED), and a due job must not wait for the next scheduled tick because of that.
   */
  async function opsTransaction<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
    try {
      return await db.transaction(fn);
    } finally {
      kick();
    }
  }

  /** The job's row, locked until the transaction ends: an ops action decides on this, not on an earlier read. */
  async function lockForOps(id: number, tx: Tx): Promise<Fulfilment> {
    const [job] = await tx.select().from(fulfilments).where(eq(fulfilments.id, id)).for('update');
    if (!job) throw new AppError('NOT_FOUND', `No fulfilment ${id}`);
    return job;
  }

  /**
   * A job held by anti-fraud (a pending fraud_reviews row for its draw and this job) leaves `held` only through the
   * review's approve or reject: those also settle the review and, on reject, return the stock. Other holds (a
   * physical prize waiting to be shipped, a transfer notification that did not match) stay ops' to resolve.
   * Called with the job's row locked (lockForOps) and in a statement of its own, so it reads the committed state: a
   * concurrent approve/reject settles the review and moves the job in one transaction that needs this same row lock,
   * so either it committed before (the review is no longer pending, the job no longer held) or it waits for us.
   */
  async function refuseUnderReview(job: Fulfilment, what: string, tx: Tx): Promise<void> {
    if (job.drawId === null) return; // reviews always name their draw
    const [review] = rowsOf<{ id: string | number }>(await tx.execute(sql`SELECT id FROM fraud_reviews WHERE draw_id = ${job.drawId} AND fulfilment_id = ${job.id} AND status = 'pending' LIMIT 1`));
    if (!review) return;
    throw new AppError('CONFLICT',
      `Fulfilment ${job.id} is held for anti-fraud review ${review.id} and cannot be ${what} here: approve or reject it in the fraud review queue`,
      { reviewId: Number(review.id) });
  }

  // ---- messages (Simplified Chinese) --------------------------------------------------------------------------

  async function tell(job: Fulfilment, what: string, content: string) {
    try {
      await messaging.send(job.openid, { type: 'text', content }, `fulfilment:${job.id}:${what}`);
    } catch (err) {
      // A message never fails a prize.
      log.warn({ err, fulfilmentId: job.id, what }, 'fulfilment message could not be queued');
    }
  }

  function linkToken(id: number, openid: string): string {
    return createHmac('sha256', config.piiKey).update(`transfer:${id}:${openid}`).digest('base64url');
  }

  function confirmLink(job: Fulfilment, text: string): string {
    if (!config.miniprogramAppId) return '';
    const path = `pages/prize/confirm?f=${job.id}&t=${linkToken(job.id, job.openid)}`;
    const href = config.linkHref ?? 'https://mp.weixin.qq.com/';
    return `<a href="${href}" data-miniprogram-appid="${config.miniprogramAppId}" data-miniprogram-path="${path}">${text}</a>`;
  }

  function confirmText(job: Fulfilment): string {
    const hours = job.expiresAt ? Math.max(1, Math.ceil((job.expiresAt.getTime() - clock.now().getTime()) / 3_600_000)) : 24;
    const link = confirmLink(job, '点击这里');
    return link
      ? `恭喜您获得现金红包 ${yuan(job.amount)} 元！请在 ${hours} 小时内${link}进入小程序确认收款，逾期未确认将自动撤回。`
      : `恭喜您获得现金红包 ${yuan(job.amount)} 元！请在 ${hours} 小时内打开本品牌小程序确认收款，逾期未确认将自动撤回。`;
  }

  const PHONE_QUESTION = (job: Fulfilment) => `恭喜您获得 ${yuan(job.amount)} 元话费充值！请直接回复您要充值的11位中国大陆手机号（例如 13800138000）。`;
  const PHONE_INVALID = '手机号格式不正确，请回复11位中国大陆手机号（例如 13800138000）。';

  // ---- recording outcomes -------------------------------------------------------------------------------------

  /** A claimed job's outcome; undefined (and a log line) when the lease was lost meanwhile. */
  async function finish(job: Fulfilment, lease: Date, to: FulfilmentState, patch: FulfilmentPatch, note: string | null, tx?: Tx): Promise<Fulfilment | undefined> {
    const row = await repo.transition(job.id, { from: 'running', lease }, to, patch, note, clock.now(), tx);
    if (!row) log.warn({ fulfilmentId: job.id, to }, 'fulfilment lease lost before recording the outcome; the new owner will query first');
    return row;
  }

  /** The provider's outcome is unknown: query before anything else, soon. */
  const toUnknown = (job: Fulfilment, lease: Date, why: string, patch: FulfilmentPatch = {}) =>
    finish(job, lease, 'unknown', { nextAttemptAt: later(unknownRetryMs), lastError: why, ...patch }, why);

  /** A failed attempt: again after a backoff while the budget lasts, then `failed` (visible to ops). */
  async function toRetryOrFailed(job: Fulfilment, lease: Date, why: string, permanent: boolean, failedText?: string): Promise<void> {
    if (!permanent && used(job) < maxAttempts) {
      await finish(job, lease, 'pending', { nextAttemptAt: later(backoff(used(job))), lastError: why }, `retry in ${Math.round(backoff(used(job)) / 1000)} s: ${why}`);
      return;
    }
    const row = await finish(job, lease, 'failed', { lastError: why }, permanent ? why : `gave up after ${used(job)} attempts: ${why}`);
    if (row && failedText) await tell(row, 'failed', failedText);
  }

  /** Count a provider attempt durably before making it (the crash rule keys off attempts > 0). */
  async function bumpAttempt(job: Fulfilment, lease: Date, patch: FulfilmentPatch = {}): Promise<Fulfilment | undefined> {
    const row = await repo.touch(job.id, lease, { attempts: job.attempts + 1, ...patch }, clock.now());
    if (!row) log.warn({ fulfilmentId: job.id }, 'fulfilment lease lost before the provider call; skipped');
    return row;
  }

  // ---- kinds ----------------------------------------------------------------------------------------------------

  async function doPoints(job: Fulfilment, lease: Date) {
    if (!(job.amount > 0)) return void (await finish(job, lease, 'failed', { lastError: 'points amount must be positive' }, 'points amount must be positive'));
    // `release:<key>`: points a fraud look-back took back, credited again once a reviewer approved (fraud/service.ts).
    const reason = job.sourceKey.replace(/^release:/, '').startsWith('consolation:') ? 'lottery_consolation' : 'lottery_prize';
    try {
      await db.transaction(async (tx) => {
        const entry = await ledger.credit(job.openid, job.amount, job.sourceKey, reason, { fulfilmentId: job.id, drawId: job.drawId, campaignId: job.campaignId }, tx);
        const row = await finish(job, lease, 'succeeded', { detail: { ...detailOf(job), ledgerKey: job.sourceKey, ledgerEntryId: entry.id }, lastError: null },
          entry.duplicate ? 'points already credited (same key)' : `credited ${job.amount} points`, tx);
        if (!row) throw new LostLease();
      });
    } catch (err) {
      if (err instanceof LostLease) return;
      if (err instanceof AppError && (err.code === 'CONFLICT' || err.code === 'VALIDATION')) return void (await finish(job, lease, 'failed', { lastError: err.message }, err.message));
      throw err;
    }
  }

  async function doCoupon(job: Fulfilment, lease: Date) {
    const [prize] = job.prizeId !== null ? await db.select().from(campaignPrizes).where(eq(campaignPrizes.id, job.prizeId)) : [];
    const coupon = prize?.coupon;
    if (!coupon || !(coupon.validDays > 0)) {
      return void (await finish(job, lease, 'failed', { lastError: 'the prize has no coupon settings (title, validDays)' }, 'the prize has no coupon settings'));
    }
    const now = clock.now();
    let issued: typeof userCoupons.$inferSelect | undefined;
    try {
      await db.transaction(async (tx) => {
        // Idempotent by source_key; a (very unlikely) code collision just draws another code.
        for (let i = 0; i < 5 && !issued; i++) {
          const code = Array.from({ length: 12 }, () => COUPON_ALPHABET[randomInt(COUPON_ALPHABET.length)]).join('');
          await tx.insert(userCoupons).values({
            openid: job.openid, sourceKey: job.sourceKey, couponCode: code, title: coupon.title, valueFen: job.amount,
            storeIds: coupon.storeIds && coupon.storeIds.length > 0 ? coupon.storeIds : null,
            status: 'issued', issuedAt: now, expiresAt: new Date(now.getTime() + coupon.validDays * 86_400_000),
          }).onConflictDoNothing();
          [issued] = await tx.select().from(userCoupons).where(eq(userCoupons.sourceKey, job.sourceKey));
        }
        if (!issued) throw new Error('could not issue a unique coupon code');
        const row = await finish(job, lease, 'succeeded', { providerRef: issued.couponCode, lastError: null, detail: { ...detailOf(job), couponId: issued.id } },
          `coupon ${issued.id} issued`, tx);
        if (!row) throw new LostLease();
      });
    } catch (err) {
      if (err instanceof LostLease) return;
      throw err;
    }
    const expires = new Date(issued!.expiresAt.getTime() + 8 * 3_600_000).toISOString().slice(0, 10);
    await tell(job, 'coupon', `恭喜您获得优惠券「${issued!.title}」，券码 ${issued!.couponCode}，有效期至 ${expires}。结账时向店员出示券码即可使用。`);
  }

  async function doPhysical(job: Fulfilment, lease: Date) {
    const [prize] = job.prizeId !== null ? await db.select({ name: campaignPrizes.name }).from(campaignPrizes).where(eq(campaignPrizes.id, job.prizeId)) : [];
    const row = await finish(job, lease, 'held', { detail: { ...detailOf(job), manual: true }, lastError: null }, 'physical prize: ops ship it, then mark it complete');
    if (row) await tell(row, 'physical', `恭喜您获得实物奖品「${prize?.name ?? '奖品'}」！工作人员会尽快与您联系安排寄送。`);
  }

  async function askPhone(job: Fulfilment) {
    await tell(job, 'ask-phone', PHONE_QUESTION(job));
    if (!dialogs) return;
    try {
      const now = clock.now();
      const current = await dialogs.get(job.openid, now);
      // Never take over another flow's conversation; the interceptor still recognises a phone number.
      if (!current || current.flow === PHONE_DIALOG_FLOW) await dialogs.set(job.openid, PHONE_DIALOG_FLOW, { fulfilmentId: job.id }, new Date(now.getTime() + phoneDialogMs), now);
    } catch (err) {
      log.warn({ err, fulfilmentId: job.id }, 'could not open the phone dialog');
    }
  }

  async function topupSucceeded(job: Fulfilment, lease: Date, r: TopupResult, phone: string | null) {
    const row = await finish(job, lease, 'succeeded', { providerRef: r.providerRef ?? job.providerRef, lastError: null }, 'top-up succeeded');
    if (row) await tell(row, 'done', `话费充值成功：已为 ${phone ? maskPhone(phone) : '您的手机'} 充值 ${yuan(job.amount)} 元，请留意运营商短信。`);
  }

  const TOPUP_FAILED_TEXT = '很抱歉，您的话费充值暂时未能成功，工作人员会尽快为您处理。';

  async function doTopup(job: Fulfilment, lease: Date) {
    if (!isTopupFaceValue(job.amount)) {
      const why = `unsupported top-up face value ${job.amount} fen (allowed: 10, 20, 30, 50, 100 yuan)`;
      return void (await finish(job, lease, 'failed', { lastError: why }, why));
    }
    if (!topup) return void (await finish(job, lease, 'failed', { lastError: 'no top-up provider configured (TOPUP_API_BASE)' }, 'no top-up provider configured'));
    const phone = await phones.get(job.openid);

    // Query first whenever an earlier attempt may have reached the provider.
    if (job.attempts > 0) {
      let q: TopupResult | null;
      try {
        q = await topup.query(job.outNo);
      } catch (err) {
        if (err instanceof TopupUnknownError) return void (await toUnknown(job, lease, `query: ${err.message}`));
        throw err;
      }
      if (q?.status === 'success') return topupSucceeded(job, lease, q, phone);
      if (q?.status === 'pending') return void (await toUnknown(job, lease, 'provider still processing', q.providerRef ? { providerRef: q.providerRef } : {}));
      // No order, or a failed one: a new attempt (same outNo) is safe — if the budget allows.
      if (used(job) >= maxAttempts) {
        const why = q ? `provider: ${q.reason ?? 'failed'}` : 'no order at the provider';
        return void (await toRetryOrFailed(job, lease, why, true, TOPUP_FAILED_TEXT));
      }
    }

    if (!phone) {
      const row = await finish(job, lease, 'waiting_phone', { lastError: null }, 'no bound phone: asked the user');
      if (row) await askPhone(row);
      return;
    }

    const bumped = await bumpAttempt(job, lease, { detail: { ...detailOf(job), phone: maskPhone(phone) } });
    if (!bumped) return;
    let r: TopupResult;
    try {
      r = await topup.recharge({ outNo: job.outNo, phone, amountFen: job.amount });
    } catch (err) {
      if (err instanceof TopupUnknownError) return void (await toUnknown(bumped, lease, `recharge: ${err.message}`));
      throw err;
    }
    if (faults.afterProviderCall?.(bumped, 'recharge')) return;
    if (r.status === 'success') return topupSucceeded(bumped, lease, r, phone);
    if (r.status === 'pending') return void (await toUnknown(bumped, lease, 'provider accepted, result pending', r.providerRef ? { providerRef: r.providerRef } : {}));
    await toRetryOrFailed(bumped, lease, `provider: ${r.reason ?? 'failed'}`, r.permanent === true, TOPUP_FAILED_TEXT);
  }

  // ---- cash -----------------------------------------------------------------------------------------------------

  async function campaignOf(job: Fulfilment) {
    if (job.campaignId === null) return undefined;
    const [c] = await db.select({ name: campaigns.name, cashConfirmHours: campaigns.cashConfirmHours, unclaimedCash: campaigns.unclaimedCash })
      .from(campaigns).where(eq(campaigns.id, job.campaignId));
    return c;
  }

  async function transferRequest(job: Fulfilment): Promise<CreateTransferBillInput> {
    const stored = detailOf(job).transferRequest as CreateTransferBillInput | undefined;
    // Re-sent byte for byte: WeChat Pay answers a repeated out_bill_no only when every parameter is the same.
    if (stored && stored.out_bill_no === job.outNo) return stored;
    const campaign = await campaignOf(job);
    const t = config.transfer;
    return {
      out_bill_no: job.outNo,
      transfer_scene_id: t.sceneId,
      openid: job.openid,
      transfer_amount: job.amount,
      transfer_remark: [...t.remark].slice(0, 32).join(''),
      ...(config.notifyUrl ? { notify_url: config.notifyUrl } : {}),
      transfer_scene_report_infos: [
        { info_type: '活动名称', info_content: [...(t.activityName ?? campaign?.name ?? '扫码抽奖')].slice(0, 32).join('') },
        { info_type: '奖励说明', info_content: t.rewardDesc ?? `现金红包${yuan(job.amount)}元` },
      ],
    };
  }

  const CASH_FAILED_TEXT = '很抱歉，您的现金红包暂时未能发放成功，工作人员会尽快为您处理。';

  /**
   * Apply a bill state WeChat Pay told us (create answer, query, notification) to a job in one of `from`.
   * Returns the updated job, or undefined when the job had moved on.
   */
  async function applyBill(
    job: Fulfilment,
    guard: { from: FulfilmentState[]; lease?: Date },
    bill: { state: TransferBillState; transfer_bill_no?: string; fail_reason?: string; package_info?: string },
    source: string,
  ): Promise<Fulfilment | undefined> {
    const now = clock.now();
    // A settled bill (or one the user can confirm again) ends any cancel in progress; an unsettled one keeps it.
    const pendingDetail = { ...detailOf(job), billState: bill.state };
    const detail = { ...pendingDetail, cancelling: undefined };
    const ref = bill.transfer_bill_no ?? job.providerRef;
    switch (bill.state) {
      case 'SUCCESS': {
        const row = await repo.transition(job.id, guard, 'succeeded', { providerRef: ref, detail, lastError: null, packageInfo: null }, `${source}: SUCCESS`, now);
        if (row) await tell(row, `${row.outNo}:done`, `现金红包 ${yuan(row.amount)} 元已转入您的微信零钱，请注意查收。`);
        return row;
      }
      case 'FAIL': {
        const why = `bill FAIL: ${bill.fail_reason ?? 'unknown reason'}`;
        const row = await repo.transition(job.id, guard, 'failed', { providerRef: ref, detail, lastError: why, packageInfo: null }, `${source}: ${why}`, now);
        if (row) await tell(row, `${row.outNo}:failed`, CASH_FAILED_TEXT);
        return row;
      }
      case 'CANCELLED':
        return cancelled(job, guard, { ...detail }, ref, source);
      case 'WAIT_USER_CONFIRM': {
        if (!bill.package_info && !job.packageInfo) break;
        const campaign = await campaignOf(job);
        // Same bill as before: keep its deadline (a re-created answer must not extend it).
        const expiresAt = job.expiresAt && job.providerRef === ref ? job.expiresAt : new Date(now.getTime() + (campaign?.cashConfirmHours ?? 24) * 3_600_000);
        const row = await repo.transition(job.id, guard, 'waiting_user', {
          providerRef: ref, packageInfo: bill.package_info ?? job.packageInfo, expiresAt, nextAttemptAt: later(pollMs), detail, lastError: null,
        }, `${source}: WAIT_USER_CONFIRM until ${expiresAt.toISOString()}`, now);
        if (row) await tell(row, `${row.outNo}:confirm`, confirmText(row));
        return row;
      }
      default:
        break;
    }
    // ACCEPTED / PROCESSING / TRANSFERING / CANCELING, or WAIT_USER_CONFIRM without package_info: ask again soon.
    return repo.transition(job.id, guard, 'unknown', { providerRef: ref, detail: pendingDetail, nextAttemptAt: later(unknownRetryMs), lastError: `bill ${bill.state}` },
      `${source}: ${bill.state}`, now);
  }

  /** A bill is CANCELLED (expired, cancelled by ops, or by WeChat Pay): final, or reclaimable by the user. */
  async function cancelled(job: Fulfilment, guard: { from: FulfilmentState[]; lease?: Date }, detail: Detail, ref: string | null, source: string) {
    const byOps = detail.opsCancel === true;
    const campaign = byOps ? undefined : await campaignOf(job);
    const reclaim = !byOps && (campaign?.unclaimedCash ?? 'reclaim') === 'reclaim';
    const note = byOps ? `${source}: CANCELLED (ops)` : reclaim ? `${source}: CANCELLED unconfirmed; the user may claim again ("领奖")` : `${source}: CANCELLED unconfirmed; forfeited (campaign rule)`;
    const row = await repo.transition(job.id, guard, 'cancelled', {
      providerRef: ref, packageInfo: null, lastError: null, detail: { ...detail, reclaimable: reclaim, ...(reclaim || byOps ? {} : { forfeited: true }) },
    }, note, clock.now());
    if (row && !byOps) {
      await tell(row, `${row.outNo}:expired`, reclaim
        ? `您的现金红包 ${yuan(row.amount)} 元因超时未确认已被撤回。如需重新领取，请回复“领奖”。`
        : `您的现金红包 ${yuan(row.amount)} 元因超时未确认，已按活动规则失效。`);
    }
    return row;
  }

  async function doCash(job: Fulfilment, lease: Date) {
    if (!pay) return void (await finish(job, lease, 'failed', { lastError: 'WeChat Pay is not configured (WECHATPAY_MCHID)' }, 'WeChat Pay is not configured'));
    if (job.amount < 10) return void (await finish(job, lease, 'failed', { lastError: 'a transfer is at least 0.1 yuan' }, 'amount below 0.1 yuan'));
    if (job.amount >= 200_000) {
      const why = 'transfers of 2000 yuan or more need the real name (user_name), which is not collected';
      return void (await finish(job, lease, 'failed', { lastError: why }, why));
    }
    const guard = { from: ['running' as FulfilmentState], lease };

    if (job.attempts > 0) {
      let bill;
      try {
        bill = await pay.queryTransferBillByOutNo(job.outNo);
      } catch (err) {
        if (err instanceof PayUnknownError || err instanceof PayApiError) return void (await toUnknown(job, lease, `query: ${err.message}`));
        throw err;
      }
      if (bill) {
        const d = detailOf(job);
        if ((bill.state === 'CANCELLED' || bill.state === 'FAIL') && d.rekey === true) {
          // Confirmed CANCELLED/FAIL just now by a verified answer: only now may a new out_bill_no be used.
          const base = typeof d.baseOutNo === 'string' ? d.baseOutNo : job.outNo;
          const rekeys = Number(d.rekeys ?? 0) + 1;
          const outNo = `${base}R${rekeys}`;
          const previous = Array.isArray(d.previousOutNos) ? d.previousOutNos : [];
          const rekeyed = await finish(job, lease, 'running', {
            outNo, providerRef: null, packageInfo: null, expiresAt: null,
            detail: { ...d, baseOutNo: base, rekeys, previousOutNos: [...previous, job.outNo], rekey: false, transferRequest: undefined, billState: undefined, attemptBase: job.attempts, reclaimable: false },
          }, `new out_bill_no ${outNo}: ${job.outNo} is ${bill.state}`);
          if (!rekeyed) return;
          return createBill(rekeyed, lease);
        }
        if (bill.state === 'WAIT_USER_CONFIRM' || bill.state === 'ACCEPTED') {
          // The bill exists but its package_info may be lost (crash after create): the same request returns it again.
          if (job.packageInfo && bill.state === 'WAIT_USER_CONFIRM') return void (await applyBill(job, guard, bill, 'query'));
          return createBill(job, lease);
        }
        return void (await applyBill(job, guard, bill, 'query'));
      }
      if (detailOf(job).rekey === true) {
        // Nothing exists under this out_bill_no: it can be used as it is.
        const cleared = await finish(job, lease, 'running', { detail: { ...detailOf(job), rekey: false } }, `${job.outNo} does not exist at WeChat Pay: reused`);
        if (!cleared) return;
        job = cleared;
      }
      if (used(job) >= maxAttempts) return void (await toRetryOrFailed(job, lease, 'no bill after repeated unknown outcomes', true, CASH_FAILED_TEXT));
    }
    return createBill(job, lease);
  }

  async function createBill(job: Fulfilment, lease: Date) {
    const request = await transferRequest(job);
    const bumped = await bumpAttempt(job, lease, { detail: { ...detailOf(job), transferRequest: request } });
    if (!bumped) return;
    let res: TransferBillCreated;
    try {
      res = await pay!.createTransferBill(request);
    } catch (err) {
      if (err instanceof PayUnknownError) return void (await toUnknown(bumped, lease, `create: ${err.message}`));
      if (err instanceof PayApiError) {
        // Refused: no bill was created. Retry what can pass later; configuration problems wait for ops.
        return toRetryOrFailed(bumped, lease, err.message, !RETRYABLE_PAY_CODES.has(err.code), CASH_FAILED_TEXT);
      }
      throw err;
    }
    if (faults.afterProviderCall?.(bumped, 'create_bill')) return;
    await applyBill(bumped, { from: ['running'], lease }, res, 'create');
  }

  /** Cancel an unconfirmed bill at WeChat Pay, then record what a query says. `job` is claimed (running). */
  async function cancelBill(job: Fulfilment, lease: Date) {
    if (!pay) return void (await toUnknown(job, lease, 'WeChat Pay is not configured'));
    try {
      await pay.cancelTransferBill(job.outNo);
    } catch (err) {
      // Not cancellable any more (already final) or unknown: the query below tells what is true.
      if (!(err instanceof PayApiError || err instanceof PayUnknownError)) throw err;
      log.info({ fulfilmentId: job.id, err: (err as Error).message }, 'transfer cancel refused or unknown; querying');
    }
    if (faults.afterProviderCall?.(job, 'cancel_bill')) return;
    let bill;
    try {
      bill = await pay.queryTransferBillByOutNo(job.outNo);
    } catch (err) {
      if (err instanceof PayUnknownError || err instanceof PayApiError) return void (await toUnknown(job, lease, `query after cancel: ${err.message}`));
      throw err;
    }
    const guard = { from: ['running' as FulfilmentState], lease };
    // No bill under this out_bill_no (e.g. a restarted sandbox): nothing can be paid with it; treat as cancelled.
    if (!bill) return void (await cancelled(job, guard, { ...detailOf(job), billState: 'NOT_FOUND' }, job.providerRef, 'cancel'));
    if (bill.state === 'WAIT_USER_CONFIRM' || bill.state === 'ACCEPTED') return void (await toUnknown(job, lease, `cancel did not take (bill ${bill.state})`));
    await applyBill(job, guard, bill, 'cancel');
  }

  // ---- the loop -------------------------------------------------------------------------------------------------

  async function work(job: Fulfilment, lease: Date) {
    try {
      // An expired bill whose cancel was interrupted continues as a cancel.
      if (job.kind === 'cash' && detailOf(job).cancelling === true) return await cancelBill(job, lease);
      switch (job.kind) {
        case 'points': return await doPoints(job, lease);
        case 'coupon': return await doCoupon(job, lease);
        case 'topup': return await doTopup(job, lease);
        case 'cash': return await doCash(job, lease);
        case 'physical': return await doPhysical(job, lease);
      }
    } catch (err) {
      log.error({ err, fulfilmentId: job.id, kind: job.kind }, 'fulfilment step failed');
      const why = `internal: ${(err as Error).message}`.slice(0, 500);
      try {
        // It may have reached the provider: the next run queries first (attempts > 0) after a backoff.
        const current = await repo.get(job.id);
        if (current) await finish(current, lease, job.attempts > 0 || current.attempts > 0 ? 'unknown' : 'pending', { nextAttemptAt: later(backoff(Math.max(1, used(current)))), lastError: why }, why);
      } catch (e) {
        log.error({ err: e, fulfilmentId: job.id }, 'could not record the failure; the lease will expire');
      }
    }
  }

  async function pool<T>(items: T[], fn: (x: T) => Promise<void>) {
    let i = 0;
    await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (i < items.length) await fn(items[i++]!);
    }));
  }

  async function pollWaiting(limit: number) {
    if (!pay) return;
    const jobs = await repo.claimPolls(clock.now(), later(pollMs), limit);
    await pool(jobs, async (job) => {
      try {
        const bill = await pay.queryTransferBillByOutNo(job.outNo);
        if (bill && bill.state !== 'WAIT_USER_CONFIRM' && bill.state !== 'ACCEPTED') await applyBill(job, { from: ['waiting_user'] }, bill, 'poll');
      } catch (err) {
        log.warn({ fulfilmentId: job.id, err: (err as Error).message }, 'transfer poll failed; next poll later');
      }
    });
  }

  /**
   * A batch's jobs share the lease they were claimed with, and wait for the ones before them (slow providers, a
   * backlog). Whenever a job's turn comes with half the lease spent, the lease of every job of the batch not started
   * yet is renewed in one statement, so the queue keeps its claim while it waits; a job another instance reclaimed
   * meanwhile is left to it. A job keeps the lease it started with (its transitions are guarded by it).
   * `take(job)`: the lease to work the job under, or null.
   */
  function batchLeases(jobs: Fulfilment[], lease: Date, claimedAt: number) {
    let current = lease;
    let renewedAt = claimedAt;
    const queued = new Set(jobs.map((j) => j.id));
    const lost = new Set<number>();
    let renewing: Promise<void> | undefined;
    async function renew() {
      const now = clock.now();
      const next = new Date(now.getTime() + leaseMs);
      const ids = [...queued];
      const kept = new Set(await repo.renewLeases(ids, current, next, now));
      for (const id of ids) if (!kept.has(id)) lost.add(id);
      current = next;
      renewedAt = now.getTime();
    }
    return async function take(job: Fulfilment): Promise<Date | null> {
      if (clock.now().getTime() - renewedAt >= leaseMs / 2) {
        renewing ??= renew().finally(() => (renewing = undefined));
        await renewing;
      }
      queued.delete(job.id);
      return lost.has(job.id) ? null : current;
    };
  }

  async function runDue(limit = 50): Promise<number> {
    const now = clock.now();
    const lease = new Date(now.getTime() + leaseMs);
    const jobs = await repo.claimDue(now, lease, limit);
    const take = batchLeases(jobs, lease, now.getTime());
    await pool(jobs, async (job) => {
      const l = await take(job);
      if (l) await work(job, l);
    });
    await pollWaiting(limit);
    return jobs.length;
  }

  async function expireUnconfirmed(limit = 50): Promise<number> {
    const now = clock.now();
    const lease = new Date(now.getTime() + leaseMs);
    const jobs = await repo.claimExpired(now, lease, limit);
    const take = batchLeases(jobs, lease, now.getTime());
    await pool(jobs, async (job) => {
      const l = await take(job);
      if (!l) return;
      // Mark the intent first: a crash mid-cancel resumes as a cancel.
      const marked = await repo.touch(job.id, l, { detail: { ...detailOf(job), cancelling: true } }, clock.now());
      if (marked) await work(marked, l);
    });
    return jobs.length;
  }

  // kick(): run due work soon, in this process, without blocking the caller; calls while a run is on coalesce.
  let running: Promise<void> | null = null;
  let again = false;
  let closed = false;
  function kick(): void {
    if (closed) return;
    if (running) {
      again = true;
      return;
    }
    running = new Promise<void>((resolve) => setImmediate(resolve))
      .then(async () => {
        do {
          again = false;
          await runDue();
        } while (again && !closed);
      })
      .catch((err) => log.error({ err }, 'fulfilment kick failed'))
      .finally(() => {
        running = null;
        // A kick that came after the loop's last check (while this promise settled) would otherwise be lost.
        if (again) kick();
      });
  }

  // ---- chat and mini program entry points ------------------------------------------------------------------------

  /** Returns how many top-ups resumed; negative: that many went to fraud review instead. */
  async function phoneProvided(openid: string, phone?: string): Promise<number> {
    if (phone !== undefined) {
      const bound = await phones.bind(openid, phone);
      if (deps.fraud && (await deps.fraud.onPhoneBound(openid, bound.phone, clock.now()))) {
        const held = await deps.fraud.holdWaitingJobs(openid, clock.now());
        if (dialogs) await dialogs.clear(openid, PHONE_DIALOG_FLOW).catch(() => undefined);
        return held > 0 ? -held : 0;
      }
    }
    const resumed = await repo.resumeWaitingPhone(openid, clock.now());
    if (dialogs) await dialogs.clear(openid, PHONE_DIALOG_FLOW).catch(() => undefined);
    if (resumed.length > 0) kick();
    return resumed.length;
  }

  function verifyToken(job: Fulfilment | undefined, token: string | undefined): job is Fulfilment {
    if (!job || job.kind !== 'cash' || typeof token !== 'string') return false;
    const want = Buffer.from(linkToken(job.id, job.openid));
    const got = Buffer.from(token);
    return want.length === got.length && timingSafeEqual(want, got);
  }

  function mpView(job: Fulfilment): MpTransferView {
    const view: MpTransferView = { id: job.id, state: job.state, amountFen: job.amount, expiresAt: job.expiresAt?.toISOString() ?? null };
    if (job.state === 'waiting_user' && job.packageInfo && pay) {
      Object.assign(view, { mchId: pay.mchid, appId: pay.appId, package: job.packageInfo, openId: job.openid });
    }
    return view;
  }

  async function mpJob(id: number, token: string | undefined): Promise<Fulfilment> {
    const job = await repo.get(id);
    // One answer for "no such job" and "wrong token": ids are not enumerable.
    if (!verifyToken(job, token)) throw new AppError('FORBIDDEN', '链接无效或已过期');
    return job;
  }

  return {
    runDue,
    kick,
    expireUnconfirmed,

    /** Resolves when the kicked work in this process is done (tests, shutdown). */
    async idle(): Promise<void> {
      while (running) await running;
    },

    /** Stop kicking and wait for the run in flight. */
    async close(): Promise<void> {
      closed = true;
      while (running) await running;
    },

    get: (id: number) => repo.get(id),
    events: (id: number): Promise<FulfilmentEvent[]> => repo.events(id),
    list: (filter: ListFilter = {}) => repo.list(filter),

    /** The member gave a phone number (chat or mini program): bind it when given, resume their waiting top-ups. */
    phoneProvided,

    /** A text message while top-ups wait for a phone (or the phone dialog is open): the reply to send. */
    async phoneFromChat(openid: string, text: string): Promise<ReplyMessage> {
      const phone = normalisePhone(text);
      if (!phone) return { type: 'text', content: PHONE_INVALID };
      const resumed = await phoneProvided(openid, phone);
      return {
        type: 'text',
        content: resumed > 0 ? `已收到手机号 ${maskPhone(phone)}，话费正在充值中，到账后会通知您。`
          : resumed < 0 ? `已收到手机号 ${maskPhone(phone)}。您的奖品正在审核中，审核通过后将自动发放，请耐心等待。` : `已保存手机号 ${maskPhone(phone)}。`,
      };
    },

    /** Whether the user has top-ups waiting for a phone number. */
    async waitingForPhone(openid: string): Promise<boolean> {
      return (await repo.byOpenid(openid, ['waiting_phone'], 'topup')).length > 0;
    },

    /**
     * "领奖" in chat: re-issue cash prizes whose bill expired unconfirmed (reclaim campaigns), resend the links of
     * bills waiting for confirmation, or ask again for the phone number of waiting top-ups.
     */
    async claimFromChat(openid: string): Promise<ReplyMessage> {
      const now = clock.now();
      const jobs = await repo.byOpenid(openid, ['cancelled', 'waiting_user', 'waiting_phone']);
      const lines: string[] = [];
      let reclaimed = 0;
      for (const job of jobs) {
        const d = detailOf(job);
        // WeChat Pay answers queries of bills up to 30 days old; re-keying needs that answer, so reclaims stop earlier.
        if (job.state === 'cancelled' && job.kind === 'cash' && d.reclaimable === true && now.getTime() - job.updatedAt.getTime() <= RECLAIM_WINDOW_MS) {
          const row = await repo.transition(job.id, { from: 'cancelled' }, 'pending', {
            nextAttemptAt: now, lastError: null, detail: { ...d, reclaimable: false, rekey: true },
          }, 'the user claimed again ("领奖")', now);
          if (row) {
            reclaimed++;
            lines.push(`正在为您重新发放现金红包 ${yuan(row.amount)} 元，请留意稍后的消息并在小程序中确认收款。`);
          }
        } else if (job.state === 'waiting_user' && job.kind === 'cash') {
          const link = confirmLink(job, '点击这里确认收款');
          lines.push(link ? `您有一笔待确认的现金红包 ${yuan(job.amount)} 元：${link}` : `您有一笔待确认的现金红包 ${yuan(job.amount)} 元，请打开本品牌小程序确认收款。`);
        } else if (job.state === 'waiting_phone') {
          await askPhone(job);
          lines.push(`您有 ${yuan(job.amount)} 元话费待充值，请直接回复您的11位手机号。`);
        }
      }
      if (reclaimed > 0) kick();
      return { type: 'text', content: lines.length > 0 ? lines.join('\n') : '您当前没有待领取的奖励。' };
    },

    /** The chat link's token for a cash job (mini program page parameter `t`). */
    linkToken,

    /** GET /api/mp/transfers/:id — the wx.requestMerchantTransfer parameters while the bill waits for the user. */
    async mpTransfer(id: number, token: string | undefined): Promise<MpTransferView> {
      return mpView(await mpJob(id, token));
    },

    /** POST /api/mp/transfers/:id/confirmed — the user says they confirmed: ask WeChat Pay now. */
    async mpConfirmed(id: number, token: string | undefined): Promise<MpTransferView> {
      const job = await mpJob(id, token);
      if (!pay || (job.state !== 'waiting_user' && job.state !== 'unknown')) return mpView(job);
      try {
        const bill = await pay.queryTransferBillByOutNo(job.outNo);
        if (bill && bill.state !== 'WAIT_USER_CONFIRM' && bill.state !== 'ACCEPTED') {
          const row = await applyBill(job, { from: [job.state] }, bill, 'mini program');
          if (row) return mpView(row);
        }
      } catch (err) {
        log.warn({ fulfilmentId: id, err: (err as Error).message }, 'transfer query after mini program confirmation failed');
      }
      return mpView((await repo.get(id)) ?? job);
    },

    /**
     * POST /pay/notify/transfer: verify (signature, timestamp), decrypt (GCM tag), apply. Idempotent: a replay, or a
     * notification about a job that has moved on, changes nothing.
     */
    async handleTransferNotification(headers: Record<string, string | string[] | undefined>, rawBody: string): Promise<NotificationOutcome> {
      if (!pay) return { status: 500, code: 'FAIL', message: 'not configured' };
      let n;
      try {
        n = pay.parseNotification(headers, rawBody);
      } catch (err) {
        if (err instanceof PayNotificationError) {
          log.warn({ reason: err.reason }, 'WeChat Pay notification rejected');
          return { status: err.reason === 'bad_input' || err.reason === 'auth_failed' ? 400 : 401, code: 'FAIL', message: '验签或解密失败' };
        }
        throw err;
      }
      if (n.eventType !== 'MCHTRANSFER.BILL.FINISHED') {
        log.info({ eventType: n.eventType, id: n.id }, 'WeChat Pay notification of another kind ignored');
        return { status: 200, code: 'SUCCESS', message: '成功' };
      }
      const r = n.resource as Partial<TransferBillNotification>;
      if (typeof r?.out_bill_no !== 'string' || typeof r.state !== 'string') return { status: 400, code: 'FAIL', message: '通知内容不完整' };
      if (r.mch_id !== pay.mchid) {
        log.error({ mchId: r.mch_id, outBillNo: r.out_bill_no }, 'WeChat Pay notification for another merchant ignored');
        return { status: 200, code: 'SUCCESS', message: '成功' };
      }
      const job = await repo.getByOutNo(r.out_bill_no);
      if (!job || job.kind !== 'cash') {
        // e.g. the CANCELLED notification of a bill we have since re-keyed.
        log.info({ outBillNo: r.out_bill_no, state: r.state }, 'transfer notification for no current job');
        return { status: 200, code: 'SUCCESS', message: '成功' };
      }
      if ((r.openid !== undefined && r.openid !== job.openid) || (r.transfer_amount !== undefined && r.transfer_amount !== job.amount)) {
        log.error({ fulfilmentId: job.id, outBillNo: r.out_bill_no }, 'transfer notification does not match the job');
        await repo.transition(job.id, { from: ['waiting_user', 'unknown', 'pending'] }, 'held', { lastError: 'notification does not match the job (openid/amount)' },
          'notification mismatch: held for review', clock.now());
        return { status: 200, code: 'SUCCESS', message: '成功' };
      }
      if (job.state === 'running') return { status: 503, code: 'FAIL', message: '处理中，请稍后重试' };
      if (r.state === 'SUCCESS' && (job.state === 'cancelled' || job.state === 'failed' || job.state === 'held')) {
        // The money left although this job had been given up or held: the user confirmed a bill still open at WeChat
        // Pay. The record says what happened, and ops are told.
        log.error({ fulfilmentId: job.id, outBillNo: r.out_bill_no, state: job.state }, 'a transfer bill succeeded for a job that was not waiting for it');
        await repo.transition(job.id, { from: [job.state] }, 'succeeded', { lastError: `paid while ${job.state}: the user confirmed a bill that was still open`, detail: { ...detailOf(job), billState: 'SUCCESS' } },
          `WeChat Pay: SUCCESS while ${job.state} (the user confirmed the open bill)`, clock.now());
        return { status: 200, code: 'SUCCESS', message: '成功' };
      }
      if (job.state !== 'waiting_user' && job.state !== 'unknown' && job.state !== 'pending') return { status: 200, code: 'SUCCESS', message: '成功' };
      // Already known (a late resend), or the job is about to re-key away from this settled bill: nothing to do.
      const d = detailOf(job);
      if (d.billState === r.state || (job.state === 'pending' && d.rekey === true)) return { status: 200, code: 'SUCCESS', message: '成功' };
      const row = await applyBill(job, { from: [job.state] }, { state: r.state, ...(r.transfer_bill_no ? { transfer_bill_no: r.transfer_bill_no } : {}), ...(r.fail_reason ? { fail_reason: r.fail_reason } : {}) }, 'notification');
      if (!row) {
        const now = await repo.get(job.id);
        if (now?.state === 'running') return { status: 503, code: 'FAIL', message: '处理中，请稍后重试' };
      }
      return { status: 200, code: 'SUCCESS', message: '成功' };
    },

    /**
     * Ops: run a failed / held / cancelled / pending / unknown job again now, with a fresh attempt budget. Not a job
     * a fraud review still holds: only the review's approve releases it.
     */
    async retry(id: number): Promise<Fulfilment> {
      return opsTransaction(async (tx) => {
        const job = await lockForOps(id, tx);
        const allowed: FulfilmentState[] = ['failed', 'held', 'cancelled', 'pending', 'unknown'];
        if (!allowed.includes(job.state)) throw new AppError('CONFLICT', `A ${job.state} fulfilment cannot be retried`);
        await refuseUnderReview(job, 'retried', tx);
        const d = detailOf(job);
        const billDone = d.billState === 'FAIL' || d.billState === 'CANCELLED' || d.billState === 'NOT_FOUND';
        const moved = await repo.transition(id, { from: job.state }, 'pending', {
          nextAttemptAt: clock.now(), lastError: null,
          detail: { ...d, attemptBase: job.attempts, opsCancel: false, cancelling: undefined, ...(job.kind === 'cash' && billDone ? { rekey: true, reclaimable: false } : {}) },
        }, 'ops retry', clock.now(), tx);
        if (!moved) throw new AppError('CONFLICT', 'The fulfilment changed meanwhile; reload and try again');
        return moved;
      });
    },

    /**
     * Ops: give up on a job. A bill waiting for the user (or held with its bill still open) is cancelled at WeChat
     * Pay first; a job whose outcome is unknown, running or done cannot be cancelled, nor a job a fraud review holds
     * (the review's reject cancels it and returns the stock).
     */
    async cancel(id: number, note = 'cancelled by ops'): Promise<Fulfilment> {
      const now = clock.now();
      const simple: FulfilmentState[] = ['pending', 'waiting_phone', 'failed', 'held'];
      // A cash job held with a bill WeChat Pay may still have open (held for a notification that did not match it):
      // the user could still confirm that bill, so it is cancelled there first, like a bill waiting for the user.
      // The same for a pending one that had a bill (an ops retry of a job whose cancel or query had failed): until the
      // next attempt settles it, that bill may still be waiting for the user.
      const openBill = (j: Fulfilment) => j.kind === 'cash' && (j.state === 'waiting_user'
        || ((j.state === 'held' || (j.state === 'pending' && detailOf(j).rekey !== true)) && j.attempts > 0
          && !['FAIL', 'CANCELLED', 'NOT_FOUND'].includes(String(detailOf(j).billState ?? ''))));
      const local = await opsTransaction(async (tx) => {
        const job = await lockForOps(id, tx);
        if (!simple.includes(job.state)) return { job, row: undefined };
        if (job.state === 'held') await refuseUnderReview(job, 'cancelled', tx);
        if (openBill(job)) return { job, row: undefined };
        const row = await repo.transition(id, { from: job.state }, 'cancelled', { detail: { ...detailOf(job), opsCancel: true, reclaimable: false } }, note, now, tx);
        if (!row) throw new AppError('CONFLICT', 'The fulfilment changed meanwhile; reload and try again');
        return { job, row };
      });
      const { job } = local;
      if (local.row) {
        if (job.state === 'waiting_phone' && dialogs) await dialogs.clear(job.openid, PHONE_DIALOG_FLOW).catch(() => undefined);
        return local.row;
      }
      if (openBill(job)) {
        const lease = new Date(now.getTime() + leaseMs);
        const claimed = await repo.transition(id, { from: job.state }, 'running', { leaseUntil: lease, detail: { ...detailOf(job), cancelling: true, opsCancel: true } }, note, now);
        if (!claimed) throw new AppError('CONFLICT', 'The fulfilment changed meanwhile; reload and try again');
        await work(claimed, lease);
        const after = (await repo.get(id))!;
        if (after.state === 'succeeded') throw new AppError('CONFLICT', 'The user had already received the transfer');
        return after;
      }
      throw new AppError('CONFLICT', `A ${job.state} fulfilment cannot be cancelled${job.state === 'unknown' ? ' until its outcome is known' : ''}`);
    },

    /** Ops: a manual (physical) prize was delivered. Not one a fraud review still holds (it is not shipped yet). */
    async complete(id: number, note = 'delivered (ops)'): Promise<Fulfilment> {
      return opsTransaction(async (tx) => {
        const job = await lockForOps(id, tx);
        if (job.state !== 'held' || job.kind !== 'physical') throw new AppError('CONFLICT', 'Only held physical prizes are completed by hand');
        await refuseUnderReview(job, 'completed', tx);
        const row = await repo.transition(id, { from: 'held' }, 'succeeded', { lastError: null }, note, clock.now(), tx);
        if (!row) throw new AppError('CONFLICT', 'The fulfilment changed meanwhile; reload and try again');
        return row;
      });
    },
  };
}
export type FulfilmentService = ReturnType<typeof createFulfilmentService>;
