/**
 * Redemption in chat: a code → redeemed once → golden questions → draw → the result, and "抽奖" to resume.
 * The hot path (a code from a user whose profile already unlocks the draw) is two batched statements:
 * redeem (code + per-user limits + redemption + the user's answered questions) and draw (gate + draw record +
 * points + fulfilment job). Messages of one user are serialised in-process so a batch never holds two of them.
 */
import type { FastifyBaseLogger } from 'fastify';
import type { ReplyMessage } from '../../../shared/replies.ts';
import type { Database } from '../db/client.ts';
import type { Clock } from '../platform/clock.ts';
import { createBatcher } from '../platform/batcher.ts';
import { createKeyedSerial } from '../platform/keyed-serial.ts';
import type { DialogStore, ActiveDialog } from '../bot/dialogs.ts';
import { classifyCode, createLookupKeyer } from './codes.ts';
import { weightedPick, type Pick as LotteryPick, type RandomInt } from './lottery.ts';
import { promptOf, readAnswer, type QuestionStep } from './questions.ts';
import { createRedeemRepo, type DrawInput, type FusedDraw, type RedeemRow } from './redeem-repo.ts';
import { createMpRedeemRepo } from './mp-redeem-repo.ts';
import { countedQuestions, createLiveCampaigns, drawClosed, drawResultLines, reasks, type LiveCampaign, type LivePrize } from './live-campaigns.ts';
import { formatTime, localDay, render, type TextKey } from './texts.ts';
import { FRAUD_TEXTS, type FraudService } from '../fraud/service.ts';

export const FLOW_CODE = 'campaign.code';
export const FLOW_QUESTION = 'campaign.question';
/** The campaign's own dialogs: a redemption that draws ends them, never another flow's (a top-up's phone dialog). */
const OWN_FLOWS = [FLOW_CODE, FLOW_QUESTION] as const;
const CANCEL_WORDS = new Set(['取消', '退出', '算了', 'q', 'quit']);

type CachedPrize = LivePrize;
type CachedCampaign = LiveCampaign;

interface QuestionState {
  redemptionId: string;
  campaignId: number;
  /** Keys still to ask, in order. */
  queue: string[];
  pos: number;
  step: QuestionStep;
  /** When the open question (or its step) was last put to the user: typing speed counts from here (anti-fraud). */
  askedAt?: string;
}

const text = (content: string): ReplyMessage => ({ type: 'text', content });

export interface RedemptionServiceDeps {
  database: Database;
  clock: Clock;
  log: FastifyBaseLogger;
  codeKey: Buffer;
  dialogs: DialogStore;
  cacheTtlMs: number;
  /** Called after draws that created fulfilment jobs (the fulfilment worker's kick). */
  onFulfilmentQueued?: () => void;
  /** After a code is redeemed (not awaited: it runs beside the reply; members credit their `redemption` earn rule). */
  onRedeemed?: (openid: string, redemptionId: string, campaignId: number) => void;
  /** The rules page users can read (link in replies); `{id}` is the campaign id. */
  rulesUrl?: string;
  random?: RandomInt;
  /** Anti-fraud hooks (fraud/service.ts): gate before a code lookup, signals, hold before a prize is issued. */
  fraud?: Pick<FraudService, 'beforeCode' | 'onTypo' | 'onWrongCode' | 'afterRedeem' | 'atDraw' | 'recordAllow' | 'heldDraw' | 'onAnswer'>;
}

export function createRedemptionService(deps: RedemptionServiceDeps) {
  const { database, clock, log, dialogs } = deps;
  const repo = createRedeemRepo(database);
  /** Reads of one redemption (by id, or by code) that the mini program's flow shares. */
  const lookups = createMpRedeemRepo(database);
  const keyer = createLookupKeyer(deps.codeKey);
  /** The shard a limited prize's unit is taken from first (spreads concurrent draws over the shards). */
  const randomShard = (shards: number) => (deps.random ?? ((n: number) => Math.floor(Math.random() * n)))(Math.max(shards, 1));

  /* ---- campaign snapshot ---- */
  const live = createLiveCampaigns(repo, deps.cacheTtlMs, (err) => log.warn({ err }, 'reloading the campaign snapshot failed'));
  const campaigns = live.snapshot;
  const campaign = live.get;
  const say = (c: CachedCampaign | undefined, key: TextKey, vars: Record<string, string | number> = {}) => render(key, c?.texts, vars);

  /* ---- per-user serialisation (a batch never holds two messages of one user) ---- */
  const forUser = createKeyedSerial();

  const redeemBatch = createBatcher(repo.redeemMany, { maxBatch: 200, maxInflight: 4 });
  const drawBatch = createBatcher((items: DrawInput[]) => repo.drawMany(items), { maxBatch: 200, maxInflight: 4 });

  /* ---- golden questions ---- */
  /** `answered`: the questions that count for this redemption (countedQuestions). */
  function questionPlan(c: CachedCampaign, answered: Set<string>) {
    const counted = c.questions.filter((q) => answered.has(q.key)).length;
    const requiredMissing = c.questions.filter((q) => q.required && !answered.has(q.key)).length;
    const queue = c.questions.filter((q) => !answered.has(q.key)).map((q) => q.key);
    const unlocked = counted >= Math.min(c.unlockMin, c.questions.length) && requiredMissing === 0;
    return { counted, unlocked, queue };
  }
  const missingFor = (c: CachedCampaign, answered: Set<string>) => Math.max(Math.min(c.unlockMin, c.questions.length) - c.questions.filter((q) => answered.has(q.key)).length, 0);

  function askText(c: CachedCampaign, state: QuestionState): string {
    const q = c.questions.find((x) => x.key === state.queue[state.pos])!;
    const body = say(c, 'question', { index: state.pos + 1, prompt: promptOf(q, state.step) });
    return q.required ? body : `${body}\n${say(c, 'skipHint')}`;
  }
  const dialogExpiry = (c: CachedCampaign, now: Date) => new Date(now.getTime() + c.dialogIdleMinutes * 60_000);

  /* ---- the draw ---- */
  function fulfilmentOf(p: CachedPrize | undefined): Pick<DrawInput, 'fulfilKind' | 'fulfilAmount' | 'points'> {
    if (!p || p.kind === 'thanks') return { fulfilKind: null, fulfilAmount: 0, points: 0 };
    if (p.kind === 'points') return { fulfilKind: 'points', fulfilAmount: p.value, points: p.value };
    return { fulfilKind: p.kind, fulfilAmount: p.value, points: 0 };
  }

  function resultText(c: CachedCampaign, prize: CachedPrize | undefined, outcome: string, points: number, balance: number | null): string {
    const lines = drawResultLines(c, prize, outcome, points, balance);
    if (outcome !== 'won' && c.recommendation) {
      const r = c.recommendation;
      const title = r.url ? `<a href="${r.url}">${r.title}</a>` : r.title;
      lines.push(say(c, 'recommend', { title, description: r.description ? `——${r.description}` : '' }));
    }
    return lines.join('\n');
  }

  async function draw(openid: string, redemptionId: string, c: CachedCampaign, deckPrizeId: number | null, now: Date, prePick?: LotteryPick): Promise<string> {
    // Paused: the redemption stays pending ("抽奖" after the campaign resumes); ended (past the grace): no draw.
    const closed = drawClosed(c, now);
    if (closed) return closed.text;
    let input: DrawInput;
    let prize: CachedPrize | undefined;
    if (c.prizeMode === 'deck') {
      prize = c.prizes.find((p) => p.id === deckPrizeId);
      const won = !!prize && prize.kind !== 'thanks';
      input = { redemptionId, mode: 'deck', eligible: [], roll: null, drawnPrizeId: deckPrizeId, prizeId: won ? prize!.id : null, outcome: won ? 'won' : 'lost', at: now, ...fulfilmentOf(prize) };
      if (!won) input.points = c.lossPoints;
    } else {
      // A pick made before the redemption must be honoured whatever it drew: picking again only when the first
      // pick was a limited prize would lower that prize's odds.
      const pick = prePick ?? weightedPick(c.prizes, deps.random);
      prize = c.prizes.find((p) => p.id === pick.prizeId);
      const won = !!prize && prize.kind !== 'thanks';
      input = { redemptionId, mode: 'dynamic', eligible: pick.eligible, roll: pick.roll, drawnPrizeId: pick.prizeId, prizeId: won ? prize!.id : null, outcome: won ? 'won' : 'lost', at: now, ...fulfilmentOf(prize) };
      if (!won) input.points = c.lossPoints;
    }

    if (deps.fraud) {
      // The prize is known here: a hold keeps it (stock taken) but its fulfilment and points wait for review.
      const verdict = await deps.fraud.atDraw(openid, c.id, input.outcome === 'won' ? prize?.kind ?? null : null, now, redemptionId);
      if (verdict.decision === 'block') return FRAUD_TEXTS.blocked;
      if (verdict.decision === 'hold') {
        const shard = (deps.random ?? ((n: number) => Math.floor(Math.random() * n)))(Math.max(prize?.shards ?? 1, 1));
        const held = await deps.fraud.heldDraw({
          openid, campaignId: c.id, input, limited: input.outcome === 'won' && !!prize?.limited && c.prizeMode === 'dynamic', shard, day: localDay(now), lossPoints: c.lossPoints, verdict,
        });
        if (!held) return previousResult(openid, redemptionId, c);
        if (held.outcome === 'won' && prize) return say(c, 'win', { prize: prize.name, howToClaim: FRAUD_TEXTS.held }).trimEnd();
        const lost = resultText(c, undefined, held.outcome, 0, null);
        return held.heldPoints > 0 ? `${lost}\n${FRAUD_TEXTS.heldPoints.replace('{points}', String(held.heldPoints))}` : lost;
      }
      await deps.fraud.recordAllow(openid, verdict, c.id, redemptionId, now);
    }
    let drawId: string | null;
    let balance: number | null = null;
    let outcome = input.outcome;
    if (input.outcome === 'won' && prize?.limited && c.prizeMode === 'dynamic') {
      const shard = (deps.random ?? ((n: number) => Math.floor(Math.random() * n)))(Math.max(prize.shards, 1));
      const r = await repo.drawWithStock(input, { shard, day: localDay(now), lossPoints: c.lossPoints });
      drawId = r?.row.draw_id ?? null;
      balance = r?.row.balance != null ? Number(r.row.balance) : null;
      if (r && !r.issued) {
        outcome = 'out_of_stock';
        input = { ...input, points: c.lossPoints };
      }
    } else {
      const row = await drawBatch(input);
      drawId = row.draw_id;
      balance = row.balance != null ? Number(row.balance) : null;
    }
    if (!drawId) return previousResult(openid, redemptionId, c);
    if (outcome === 'won' && input.fulfilKind && input.fulfilKind !== 'points') deps.onFulfilmentQueued?.();
    return resultText(c, outcome === 'won' ? prize : undefined, outcome, outcome === 'won' ? input.points : input.points, balance);
  }

  /** The result of a draw that already happened (a retry, a double tap). */
  async function previousResult(openid: string, redemptionId: string, c: CachedCampaign): Promise<string> {
    const d = await repo.drawOf(redemptionId);
    if (!d) return say(c, 'nothingToDraw');
    const prize = c.prizes.find((p) => p.id === d.prize_id);
    const balance = await repo.balance(openid);
    return resultText(c, prize, d.outcome, 0, balance);
  }

  /** After a redemption (or "抽奖"): ask what is missing, or draw now. */
  async function proceed(openid: string, redemptionId: string, c: CachedCampaign, deckPrizeId: number | null, answered: Set<string>, now: Date, intro: boolean, dialogOpen: boolean, prePick?: LotteryPick): Promise<ReplyMessage> {
    const plan = questionPlan(c, answered);
    if (plan.unlocked) {
      if (dialogOpen) await dialogs.clear(openid, OWN_FLOWS); // our code/question dialog; no round trip when none is open
      return text(await draw(openid, redemptionId, c, deckPrizeId, now, prePick));
    }
    const queue = plan.queue.length > 0 ? plan.queue : c.questions.map((q) => q.key);
    const state: QuestionState = { redemptionId, campaignId: c.id, queue, pos: 0, step: {}, askedAt: now.toISOString() };
    await dialogs.set(openid, FLOW_QUESTION, state, dialogExpiry(c, now), now);
    const head = intro ? `${say(c, 'redeemed', { unlock: Math.min(c.unlockMin, c.questions.length) })}\n` : '';
    return text(head + askText(c, state));
  }

  /* ---- redemption ---- */
  /** Pending redemptions, those whose campaign can draw now (drawClosed) first (see pendingRedemptions). */
  async function pendingOf(openid: string, now: Date) {
    const drawable = [...(await campaigns()).byId.values()].filter((c) => !drawClosed(c, now)).map((c) => c.id);
    return repo.pendingRedemptions(openid, drawable);
  }

  async function redeemedBySelf(c: CachedCampaign | undefined, openid: string, redeemedAt: Date | string, now: Date): Promise<ReplyMessage> {
    const pending = (await pendingOf(openid, now))[0]?.drawable === true;
    return text(say(c, 'redeemedBySelf', { time: formatTime(new Date(redeemedAt)), next: pending ? '发送“抽奖”继续抽奖。' : '' }).trimEnd());
  }

  async function failureReply(row: RedeemRow, code: string, key: string, openid: string, now: Date, day: string): Promise<ReplyMessage> {
    if (row.campaign_id === null || row.batch_status === 'loading') return text(render('unknown', undefined, { code }));
    const c = await campaign(row.campaign_id);
    if (row.batch_status === 'voided') return text(say(c, 'voided', { code }));
    if (row.redeemed_at) {
      if (row.redeemed_by !== openid) return text(say(c, 'redeemedByOther', { code }));
      return redeemedBySelf(c, openid, row.redeemed_at, now);
    }
    const name = c?.name ?? '';
    const startsAt = new Date(row.starts_at!);
    const endsAt = new Date(row.ends_at!);
    if (row.campaign_status === 'ended' || now >= endsAt) return text(say(c, 'ended', { campaign: name, end: formatTime(endsAt) }));
    if (row.campaign_status === 'paused') return text(say(c, 'paused', { campaign: name }));
    if (row.campaign_status === 'draft' || now < startsAt) return text(say(c, 'notStarted', { campaign: name, start: formatTime(startsAt) }));
    if (row.candidate && !row.counted) {
      if (row.per_campaign !== null && (row.total ?? 0) >= row.per_campaign) return text(say(c, 'drawLimit', { campaign: name, limit: row.per_campaign }));
      return text(say(c, 'dailyLimit', { limit: row.per_day ?? 0 }));
    }
    if (row.counted) await repo.uncount(row.campaign_id, openid, row.c_day ?? day); // lost a race for the code: back into the day it was counted in
    // The race may have been against this user's own double send (a double scan, a retry on another instance).
    const mine = await lookups.redemptionOfCode(openid, key);
    if (mine) return redeemedBySelf(c, openid, mine.redeemed_at, now);
    return text(say(c, 'redeemedByOther', { code }));
  }

  /**
   * Draws decided ahead for each live campaign with this code length, so that a user whose profile already unlocks
   * the draw gets it in the redemption statement itself, a limited prize's unit of stock included. Not for deck mode
   * or campaigns that re-ask answered questions (those draw in a second step).
   */
  function predraw(all: Map<number, CachedCampaign>, codeLength: number, now: Date): { fuse: Record<string, FusedDraw> | null; picks: Map<number, LotteryPick> } {
    let out: Record<string, FusedDraw> | null = null;
    const picks = new Map<number, LotteryPick>();
    for (const c of all.values()) {
      if (c.status !== 'live' || c.prizeMode !== 'dynamic' || c.questions.some((q) => reasks(c, q)) || c.codeLength !== codeLength || now < c.startsAt || now >= c.endsAt) continue;
      const pick = weightedPick(c.prizes, deps.random);
      picks.set(c.id, pick);
      const prize = c.prizes.find((p) => p.id === pick.prizeId);
      const won = !!prize && prize.kind !== 'thanks';
      const f = fulfilmentOf(won ? prize : undefined);
      (out ??= {})[String(c.id)] = {
        keys: c.questions.map((q) => q.key), required: c.questions.filter((q) => q.required).map((q) => q.key), min: Math.min(c.unlockMin, c.questions.length),
        eligible: pick.eligible, roll: pick.roll, drawn_prize_id: pick.prizeId, prize_id: won ? prize!.id : null, outcome: won ? 'won' : 'lost',
        f_kind: f.fulfilKind, f_amount: f.fulfilAmount, points: won ? f.points : c.lossPoints,
        // A limited prize takes its unit in the redemption statement (or, with every shard busy, in the stock transaction).
        limited: won && prize!.limited, shard: won && prize!.limited ? randomShard(prize!.shards) : 0, loss_points: c.lossPoints,
      };
    }
    return { fuse: out, picks };
  }

  async function redeemCode(openid: string, code: string, now: Date, dialogOpen: boolean): Promise<ReplyMessage> {
    const key = keyer.key(code).toString('hex');
    const day = localDay(now);
    // Refused (cool-down, block) before the lookup: a guessing script learns nothing about the code, which stays unused.
    const gate = deps.fraud ? await deps.fraud.beforeCode(openid, now) : undefined;
    if (gate?.refuse) return text(gate.refuse);
    const { fuse, picks } = predraw((await campaigns()).byId, code.length - 1, now);
    const row = await redeemBatch({ key, openid, at: now, day, fuse: gate?.noFuse ? null : fuse });
    if (!row.redemption_id) {
      const reply = await failureReply(row, code, key, openid, now, day);
      // Unknown, voided or someone else's code: what guessing and bought-code lists produce. A code someone else
      // redeemed moments ago is a race (two people, one pack), not a guess.
      const wrong = row.campaign_id === null || row.batch_status === 'loading' || row.batch_status === 'voided'
        || (!!row.redeemed_at && row.redeemed_by !== openid && now.getTime() - new Date(row.redeemed_at).getTime() > 60_000);
      const notice = deps.fraud && wrong ? await deps.fraud.onWrongCode(openid, now) : undefined;
      return notice && reply.type === 'text' ? text(`${reply.content}\n${notice}`) : reply;
    }
    const c = await campaign(row.campaign_id!);
    if (!c) throw new Error(`campaign ${row.campaign_id} vanished`);
    await deps.fraud?.afterRedeem(openid, c.id, row.day_count, now, row.total, { batchId: row.batch_id, seq: row.code_seq });
    deps.onRedeemed?.(openid, row.redemption_id, c.id);
    if (row.draw_id) {
      // Drawn in the same statement.
      const pick = fuse![String(c.id)]!;
      const outcome = row.fused_outcome ?? pick.outcome;
      if (dialogOpen) await dialogs.clear(openid, OWN_FLOWS);
      if (outcome === 'won' && pick.f_kind && pick.f_kind !== 'points') deps.onFulfilmentQueued?.();
      const prize = outcome === 'won' ? c.prizes.find((p) => p.id === pick.prize_id) : undefined;
      const points = outcome === 'out_of_stock' ? pick.loss_points : pick.points;
      return text(resultText(c, prize, outcome, points, row.balance != null ? Number(row.balance) : null));
    }
    // Redeemed just now: an answer to a question the campaign re-asks predates it and does not count.
    const answered = new Set((row.answered ?? []).filter((k) => !c.questions.some((q) => q.key === k && reasks(c, q))));
    return proceed(openid, row.redemption_id, c, row.deck_prize_id, answered, now, true, dialogOpen, picks.get(c.id));
  }

  /** A message that may be a code: typo → ask to re-check; code → redeem; otherwise not ours. */
  async function onText(openid: string, input: string, now: Date, inCodeDialog: boolean, dialogOpen: boolean): Promise<ReplyMessage | undefined> {
    const { lengths } = await campaigns();
    let typo: string | undefined;
    for (const length of lengths) {
      const r = classifyCode(input, { length });
      if (r.kind === 'code') return forUser(openid, () => redeemCode(openid, r.code, now, dialogOpen || inCodeDialog));
      if (r.kind === 'typo') typo = r.code;
    }
    if (typo) return text(deps.fraud?.onTypo(openid, now) ?? render('typo', undefined, { code: typo }));
    if (inCodeDialog) return text(render('notCode', undefined, { length: lengths[0]! + 1 }));
    return undefined;
  }

  /** A scanned QR code's content: the code itself, or a URL whose last path segment or `c`/`code` parameter is. */
  function codeFromScan(scan: string): string {
    try {
      const u = new URL(scan);
      return u.searchParams.get('c') ?? u.searchParams.get('code') ?? u.pathname.split('/').filter(Boolean).pop() ?? scan;
    } catch {
      return scan;
    }
  }

  return {
    /** Code detection for ordinary text (router text matcher). */
    matchText: (openid: string, input: string, now: Date, dialogOpen: boolean) => onText(openid, input, now, false, dialogOpen),

    /** A QR scan from a scancode menu button. */
    matchScan: (openid: string, scanResult: string, now: Date, dialogOpen: boolean) => onText(openid, codeFromScan(scanResult), now, false, dialogOpen),

    /** The "兑奖" menu: wait for a code. */
    async startCodeDialog(openid: string, now: Date): Promise<ReplyMessage> {
      await dialogs.set(openid, FLOW_CODE, {}, new Date(now.getTime() + 10 * 60_000), now);
      return text(render('askCode', undefined));
    },

    /** The user's answer while waiting for a code. */
    async onCodeDialog(openid: string, input: string, now: Date): Promise<ReplyMessage | undefined> {
      if (CANCEL_WORDS.has(input.trim().toLowerCase())) {
        await dialogs.clear(openid, FLOW_CODE);
        return text('已退出兑奖。');
      }
      return onText(openid, input, now, true, true);
    },

    /** The user's answer to a golden question (the dialog read with the claim only routed it here: it is read again). */
    async onQuestionDialog(openid: string, input: string, _claimed: ActiveDialog, now: Date): Promise<ReplyMessage | undefined> {
      const trimmed = input.trim();
      if (CANCEL_WORDS.has(trimmed.toLowerCase())) {
        await dialogs.clear(openid, FLOW_QUESTION);
        return text(render('dialogCancelled', undefined));
      }
      // A new code in the middle of the questions is a new redemption (the pending one stays claimable).
      if (classifyCode(trimmed).kind !== 'not_code' || (await campaigns()).lengths.some((length) => classifyCode(trimmed, { length }).kind !== 'not_code')) return undefined;
      if (trimmed === '抽奖') return undefined;
      return forUser(openid, async () => {
        // The dialog read with the webhook's claim may be stale: an earlier message of this user (claimed in the same
        // batch, or handled on another instance) may have answered since. Read it again here, and move it on only by
        // compare-and-set, before the answer is stored: a message that loses reads it again and answers the question
        // asked now. An answer is never stored under a question that was already answered.
        for (let attempt = 0; attempt < 5; attempt++) {
          const current = await dialogs.get(openid, now);
          if (!current || current.flow !== FLOW_QUESTION) return undefined; // ended meanwhile: an ordinary message now
          const state = current.state as QuestionState;
          const c = await campaign(state.campaignId);
          const q = c?.questions.find((x) => x.key === state.queue[state.pos]);
          if (!c || !q) {
            await dialogs.clear(openid, FLOW_QUESTION);
            return text(render('dialogCancelled', undefined));
          }
          const r = readAnswer(q, input, state.step);
          if (r.kind === 'invalid') {
            if (!(await dialogs.swap(openid, FLOW_QUESTION, state, { ...state, askedAt: now.toISOString() }, dialogExpiry(c, now), now))) continue;
            return text(say(c, 'invalidAnswer', { reason: r.reason, prompt: promptOf(q, state.step) }));
          }
          if (r.kind === 'next') {
            const next = { ...state, step: r.step, askedAt: now.toISOString() };
            if (!(await dialogs.swap(openid, FLOW_QUESTION, state, next, dialogExpiry(c, now), now))) continue;
            return text(r.prompt);
          }
          // The dialog's own redemption, by id (the user may have more pending ones than a list of them holds).
          const own = await lookups.redemption(openid, state.redemptionId);
          const answered = countedQuestions(c, await repo.answers(openid), own ? new Date(own.redeemed_at) : now);
          if (r.kind === 'answer') answered.add(q.key);
          const plan = questionPlan(c, answered);
          const next: QuestionState = { ...state, pos: state.pos + 1, step: {}, askedAt: now.toISOString() };
          const ends = plan.unlocked || next.pos >= next.queue.length;
          if (!(await dialogs.swap(openid, FLOW_QUESTION, state, ends ? null : next, dialogExpiry(c, now), now))) continue;
          if (r.kind === 'answer') {
            try {
              await repo.saveAnswer(openid, q.key, r.value, r.display, c.id, now);
            } catch (err) {
              // Not stored: ask this question again next time (an ended dialog resumes with "抽奖", which re-asks).
              if (!ends) await dialogs.swap(openid, FLOW_QUESTION, next, state, current.expiresAt, now).catch(() => false);
              throw err;
            }
            // When the question was asked (a dialog stored before askedAt existed: its expiry minus the idle time).
            const askedAt = state.askedAt ? new Date(state.askedAt) : new Date(current.expiresAt.getTime() - c.dialogIdleMinutes * 60_000);
            await deps.fraud?.onAnswer(openid, q.key, r.display, askedAt, now);
          }
          if (plan.unlocked) {
            if (!own || own.status !== 'redeemed') return text(await previousResult(openid, state.redemptionId, c));
            return text(await draw(openid, state.redemptionId, c, own.deck_prize_id, now));
          }
          if (!ends) return text(askText(c, next));
          return text(say(c, 'notUnlocked', { missing: Math.max(missingFor(c, answered), 1) }));
        }
        // Moved on by other messages five times in a row: ask the question that is open now.
        const current = await dialogs.get(openid, now);
        if (!current || current.flow !== FLOW_QUESTION) return undefined;
        const state = current.state as QuestionState;
        const c = await campaign(state.campaignId);
        if (!c || !c.questions.some((x) => x.key === state.queue[state.pos])) return undefined;
        return text(askText(c, state));
      });
    },

    /** "抽奖": resume the oldest redemption still waiting for its draw whose campaign can draw now (else the oldest). */
    async resume(openid: string, now: Date, dialogOpen: boolean): Promise<ReplyMessage> {
      return forUser(openid, async () => {
        const [pending] = await pendingOf(openid, now);
        if (!pending) return text(render('nothingToDraw', undefined));
        const c = await campaign(pending.campaign_id);
        if (!c) return text(render('nothingToDraw', undefined));
        const answered = countedQuestions(c, await repo.answers(openid), new Date(pending.redeemed_at));
        return proceed(openid, pending.id, c, pending.deck_prize_id, answered, now, false, dialogOpen);
      });
    },

    /** Drop cached campaigns (after ops changes in this process). */
    invalidate: live.invalidate,
    now: () => clock.now(),
    log,
  };
}
export type RedemptionService = ReturnType<typeof createRedemptionService>;
