/**
 * Redemption for the mini program: the chat flow's rules with structured results. A code (typed or scanned) is taken by
 * the same exactly-once statement as in chat (redeem-repo.ts: code, per-user limits, redemption), the golden questions
 * come back as form fields and are answered in one submit (validated by the chat's readAnswer, stored on the same
 * profile), and the draw uses the chat's draw statements (gate on the redemption, stock shards, points, fulfilment job).
 *
 * Decisions:
 * - The code is never drawn in the redemption statement (`fuse: null`) even when the profile unlocks the draw: in the
 *   mini program the member taps "抽奖" and sees the draw happen.
 * - A question the campaign re-asks (`reask`, `reaskAnswered`) counts only when answered since this redemption.
 * - Refusals are errors with `details.reason` (see shared/mp-redeem.ts) and the chat's Chinese text as message; a
 *   double submit of one's own code returns that redemption again; a second draw returns the first one's result.
 * - The fraud hooks run where the chat runs them (a cool-down or block refuses before the lookup, wrong codes and
 *   answers are signals, the draw may be held for review or blocked): the mini program is no way around them.
 */
import type { FastifyBaseLogger } from 'fastify';
import type { GoldenQuestion } from '../../../shared/campaigns.ts';
import type { MpAnswerValue, MpDrawResult, MpLiveCampaigns, MpNextStep, MpQuestion, MpRedeemRefusal, MpRedemption, MpRedemptionList } from '../../../shared/mp-redeem.ts';
import type { Database } from '../db/client.ts';
import type { Clock } from '../platform/clock.ts';
import { AppError, type ErrorCode } from '../platform/errors.ts';
import { FRAUD_TEXTS, type FraudService } from '../fraud/service.ts';
import { createKeyedSerial } from '../platform/keyed-serial.ts';
import { classifyCode, createLookupKeyer } from './codes.ts';
import { weightedPick, type RandomInt } from './lottery.ts';
import { readAnswer } from './questions.ts';
import { createRedeemRepo, type DrawInput, type RedeemRow } from './redeem-repo.ts';
import { createMpRedeemRepo, type MpRedemptionRow, type NewAnswer } from './mp-redeem-repo.ts';
import { PROVINCES } from './regions.ts';
import { countedQuestions, createLiveCampaigns, drawClosed, drawResultLines, type LiveCampaign, type LivePrize } from './live-campaigns.ts';
import { formatTime, localDay, render, type TextKey } from './texts.ts';

type Prize = LivePrize;
type Campaign = LiveCampaign;

export interface MpRedeemDeps {
  database: Database;
  clock: Clock;
  codeKey: Buffer;
  cacheTtlMs: number;
  /** Where a failed background reload of the campaign snapshot is reported. */
  log?: Pick<FastifyBaseLogger, 'warn'>;
  /** Called after a draw that created a fulfilment job (the fulfilment worker's kick). */
  onFulfilmentQueued?: () => void;
  random?: RandomInt;
  /** After a code is redeemed (not awaited), as in chat: members credit their `redemption` earn rule. */
  onRedeemed?: (openid: string, redemptionId: string, campaignId: number) => void;
  /** The chat's anti-fraud hooks, at the same places: gate before the lookup, signals, hold or block at the draw. */
  fraud?: Pick<FraudService, 'beforeCode' | 'onTypo' | 'onWrongCode' | 'afterRedeem' | 'atDraw' | 'recordAllow' | 'heldDraw' | 'onAnswer' | 'onIdentifiers'>;
}

/** The province → city cascade of region questions (the same list the chat reads answers against). */
const CASCADE = PROVINCES.map((p) => ({ code: p.code, name: p.name, cities: p.cities.map((c) => ({ code: c.code, name: c.name })) }));

const refuse = (code: ErrorCode, reason: MpRedeemRefusal, message: string, extra: Record<string, unknown> = {}) =>
  new AppError(code, message, { reason, ...extra });

const iso = (d: Date | string) => new Date(d).toISOString();

/** A scanned QR code's content: the code itself, or a URL whose `c`/`code` parameter or last path segment is (as in chat). */
function codeFromScan(scan: string): string {
  try {
    const u = new URL(scan);
    return u.searchParams.get('c') ?? u.searchParams.get('code') ?? u.pathname.split('/').filter(Boolean).pop() ?? scan;
  } catch {
    return scan;
  }
}

const NEXT_BY_KIND: Record<Exclude<Prize['kind'], 'thanks'>, MpNextStep> = {
  points: 'points_credited', coupon: 'coupon_issued', topup: 'topup_pending', cash: 'cash_confirm', physical: 'physical_contact',
};

export function createMpRedeemService(deps: MpRedeemDeps) {
  const { database, clock } = deps;
  const repo = createRedeemRepo(database);
  const mpRepo = createMpRedeemRepo(database);
  const keyer = createLookupKeyer(deps.codeKey);
  /**
   * One member's code attempts one after another (in this process): the fraud gate reads the wrong-code count and
   * cool-down the previous attempt wrote; in parallel, every attempt would pass the gate before any was counted.
   */
  const perMember = createKeyedSerial();

  /* ---- campaigns (the same snapshot as the chat's) ---- */
  const live = createLiveCampaigns(repo, deps.cacheTtlMs, (err) => deps.log?.warn({ err }, 'reloading the campaign snapshot failed'));
  const campaigns = live.snapshot;
  async function campaign(id: number): Promise<Campaign> {
    const c = await live.get(id);
    // Campaigns ended long ago are not loaded: their redemptions can no longer be answered or drawn.
    if (!c) throw refuse('CONFLICT', 'ended', '该活动已结束，感谢您的关注！');
    return c;
  }
  const say = (c: Campaign | undefined, key: TextKey, vars: Record<string, string | number> = {}) => render(key, c?.texts, vars);

  /* ---- golden questions ---- */
  /** Which of the campaign's questions count for this redemption, what is missing, and the form to show. */
  async function plan(openid: string, c: Campaign, redeemedAt: Date) {
    const rows = await mpRepo.answers(openid);
    const answers = new Map(rows.map((a) => [a.question_key, a]));
    const countedKeys = countedQuestions(c, rows, redeemedAt);
    const counts = (q: GoldenQuestion) => countedKeys.has(q.key);
    const min = Math.min(c.unlockMin, c.questions.length);
    const counted = c.questions.filter(counts).length;
    const requiredMissing = c.questions.filter((q) => q.required && !counts(q)).length;
    const needed = Math.max(min - counted, requiredMissing, 0);
    const form: MpQuestion[] = c.questions.filter((q) => !counts(q)).map((q) => field(q, answers.get(q.key)?.display));
    return { counted, min, needed, unlocked: needed === 0, form };
  }

  function field(q: GoldenQuestion, answered: string | undefined): MpQuestion {
    const f: MpQuestion = { key: q.key, kind: q.kind, prompt: q.prompt, required: !!q.required };
    if (q.kind === 'choice') f.options = [...(q.options ?? [])];
    if (q.kind === 'range') f.options = (q.ranges ?? []).map((r) => r.label);
    if (q.kind === 'text') {
      f.minLength = q.minLength ?? 1;
      f.maxLength = q.maxLength ?? 50;
      if (q.pattern) f.pattern = q.pattern;
      if (q.patternHint) f.patternHint = q.patternHint;
    }
    if (q.kind === 'number') {
      if (q.min !== undefined) f.min = q.min;
      if (q.max !== undefined) f.max = q.max;
    }
    if (q.kind === 'region') f.provinces = CASCADE;
    if (answered !== undefined) f.answered = answered;
    return f;
  }

  /** One form value → what the profile stores, by the chat's own rules (readAnswer); a string is the error. */
  function readValue(q: GoldenQuestion, v: MpAnswerValue): NewAnswer | 'skip' | { error: string } {
    if (v === '') return q.required ? { error: '这道题是必答题，不能跳过哦。' } : 'skip';
    if (q.kind === 'region') {
      if (typeof v !== 'object') return { error: '请选择省份和城市。' };
      const p = PROVINCES.find((x) => x.code === v.provinceCode);
      const city = p?.cities.find((x) => x.code === v.cityCode);
      if (!p || !city) return { error: '请从列表中选择省份和城市。' };
      const r = readAnswer(q, city.name, { provinceCode: p.code });
      return r.kind === 'answer' ? { key: q.key, value: r.value, display: r.display } : { error: '请从列表中选择省份和城市。' };
    }
    if (typeof v === 'object') return { error: '回答的格式不正确。' };
    if (q.kind === 'choice') {
      // The form sends the option itself: a number here is not read as a menu number as it is in chat.
      const option = (q.options ?? []).find((o) => o === String(v));
      return option ? { key: q.key, value: option, display: option } : { error: '请从选项中选择。' };
    }
    if (q.kind === 'range') {
      const ranges = q.ranges ?? [];
      const byLabel = ranges.find((r) => r.label === String(v));
      if (byLabel) return { key: q.key, value: { label: byLabel.label, min: byLabel.min ?? null, max: byLabel.max ?? null }, display: byLabel.label };
      // An amount in 元 (the schema may hand a number over as a string).
      const n = typeof v === 'number' ? v : /^\d+(\.\d+)?$/.test(v.trim()) ? Number(v.trim()) : Number.NaN;
      const r = Number.isFinite(n) ? ranges.find((x) => (x.min === undefined || n >= x.min) && (x.max === undefined || n < x.max)) : undefined;
      return r ? { key: q.key, value: { label: r.label, min: r.min ?? null, max: r.max ?? null, amount: n }, display: r.label } : { error: '请从选项中选择。' };
    }
    const r = readAnswer(q, String(v));
    if (r.kind === 'answer') return { key: q.key, value: r.value, display: r.display };
    if (r.kind === 'invalid') return { error: r.reason };
    return r.kind === 'skip' ? 'skip' : { error: '回答的格式不正确。' };
  }

  /* ---- views ---- */
  function drawMessage(c: Campaign, prize: Prize | undefined, outcome: string, points: number, balance: number): string {
    const lines = drawResultLines(c, prize, outcome, points, balance);
    return lines.join('\n');
  }

  async function drawView(openid: string, c: Campaign, row: MpRedemptionRow, fresh?: { points: number; balance: number | null }): Promise<MpDrawResult> {
    const prize = row.outcome === 'won' ? c.prizes.find((p) => p.id === row.prize_id) : undefined;
    const review = await mpRepo.reviewOf(row.draw_id!);
    const points = fresh && review === null ? fresh.points : await mpRepo.drawPoints(row.draw_id!);
    const balance = (review === null ? fresh?.balance : null) ?? (await repo.balance(openid));
    let next: MpNextStep = prize && prize.kind !== 'thanks' ? NEXT_BY_KIND[prize.kind] : points > 0 ? 'points_credited' : 'none';
    let message = drawMessage(c, prize, row.outcome!, points, balance);
    if (review === 'pending') {
      // Held for review: the prize (or consolation points) is kept, and issued when ops approve.
      next = 'under_review';
      message = prize ? say(c, 'win', { prize: prize.name, howToClaim: FRAUD_TEXTS.held }).trimEnd() : `${drawMessage(c, undefined, row.outcome!, 0, balance)}\n${FRAUD_TEXTS.held}`;
    } else if (review === 'rejected') {
      next = 'none';
      message = '经审核，本次奖品未能发放。如有疑问，请联系客服。';
    }
    return {
      drawId: row.draw_id!,
      outcome: row.outcome!,
      prize: prize ? { id: prize.id, name: prize.name, kind: prize.kind, value: prize.value } : null,
      points,
      balance,
      next,
      review,
      message,
      recommendation: row.outcome !== 'won' && c.recommendation ? { ...c.recommendation } : null,
      drawnAt: iso(row.drawn_at!),
    };
  }

  async function view(openid: string, row: MpRedemptionRow, fresh?: { points: number; balance: number | null }): Promise<MpRedemption> {
    const c = (await campaigns()).byId.get(row.campaign_id) ?? (await campaigns(true)).byId.get(row.campaign_id);
    const base = { id: row.id, campaign: { id: row.campaign_id, name: row.campaign_name }, status: row.status, redeemedAt: iso(row.redeemed_at) };
    if (!c) {
      return { ...base, questions: [], answeredCount: 0, unlockMin: 0, needed: 0, unlocked: false, draw: null, message: '该活动已结束，感谢您的关注！' };
    }
    if (row.status === 'drawn' && row.draw_id) {
      const draw = await drawView(openid, c, row, fresh);
      return { ...base, questions: [], answeredCount: 0, unlockMin: Math.min(c.unlockMin, c.questions.length), needed: 0, unlocked: true, draw, message: draw.message };
    }
    const p = await plan(openid, c, new Date(row.redeemed_at));
    return {
      ...base,
      questions: p.unlocked ? [] : p.form,
      answeredCount: p.counted,
      unlockMin: p.min,
      needed: p.needed,
      unlocked: p.unlocked,
      draw: null,
      message: p.unlocked ? '答题完成，点击“立即抽奖”看看您的运气吧！' : say(c, 'redeemed', { unlock: p.min }),
    };
  }

  async function own(openid: string, id: string): Promise<MpRedemptionRow> {
    const row = /^\d{1,18}$/.test(id) ? await mpRepo.redemption(openid, id) : null;
    if (!row) throw new AppError('NOT_FOUND', '没有找到这次兑奖记录。');
    return row;
  }

  /* ---- refusals of a code, by the redemption statement's answer ---- */
  async function refusal(row: RedeemRow, code: string, openid: string, keyHex: string, now: Date, day: string): Promise<MpRedemption> {
    if (row.campaign_id === null || row.batch_status === 'loading') throw refuse('NOT_FOUND', 'unknown', render('unknown', undefined, { code }));
    const c = (await campaigns()).byId.get(row.campaign_id) ?? (await campaigns(true)).byId.get(row.campaign_id);
    if (row.batch_status === 'voided') throw refuse('CONFLICT', 'voided', say(c, 'voided', { code }));
    if (row.redeemed_at) {
      if (row.redeemed_by === openid) {
        const mine = await mpRepo.redemptionOfCode(openid, keyHex);
        if (mine) return view(openid, mine); // a double submit: the same redemption
      }
      throw refuse('CONFLICT', 'taken', say(c, 'redeemedByOther', { code }));
    }
    const name = c?.name ?? '';
    const startsAt = new Date(row.starts_at!);
    const endsAt = new Date(row.ends_at!);
    if (row.campaign_status === 'ended' || now >= endsAt) throw refuse('CONFLICT', 'ended', say(c, 'ended', { campaign: name, end: formatTime(endsAt) }));
    if (row.campaign_status === 'paused') throw refuse('CONFLICT', 'paused', say(c, 'paused', { campaign: name }));
    if (row.campaign_status === 'draft' || now < startsAt) throw refuse('CONFLICT', 'not_started', say(c, 'notStarted', { campaign: name, start: formatTime(startsAt) }));
    if (row.candidate && !row.counted) {
      if (row.per_campaign !== null && (row.total ?? 0) >= row.per_campaign) throw refuse('CONFLICT', 'campaign_limit', say(c, 'drawLimit', { campaign: name, limit: row.per_campaign }));
      throw refuse('CONFLICT', 'daily_limit', say(c, 'dailyLimit', { limit: row.per_day ?? 0 }));
    }
    if (row.counted) await repo.uncount(row.campaign_id, openid, row.c_day ?? day); // lost a race for the code: back into the day it was counted in
    // The race may have been against this member's own double submit.
    const mine = await mpRepo.redemptionOfCode(openid, keyHex);
    if (mine) return view(openid, mine);
    throw refuse('CONFLICT', 'taken', say(c, 'redeemedByOther', { code }));
  }

  /* ---- the draw (the chat's rules: service.ts draw()) ---- */
  function fulfilmentOf(p: Prize | undefined): Pick<DrawInput, 'fulfilKind' | 'fulfilAmount' | 'points'> {
    if (!p || p.kind === 'thanks') return { fulfilKind: null, fulfilAmount: 0, points: 0 };
    if (p.kind === 'points') return { fulfilKind: 'points', fulfilAmount: p.value, points: p.value };
    return { fulfilKind: p.kind, fulfilAmount: p.value, points: 0 };
  }

  async function drawNow(openid: string, c: Campaign, row: MpRedemptionRow, now: Date): Promise<{ drawn: boolean; points: number; balance: number | null }> {
    let prize: Prize | undefined;
    let input: DrawInput;
    if (c.prizeMode === 'deck') {
      prize = c.prizes.find((p) => p.id === row.deck_prize_id);
      const won = !!prize && prize.kind !== 'thanks';
      input = { redemptionId: row.id, mode: 'deck', eligible: [], roll: null, drawnPrizeId: row.deck_prize_id, prizeId: won ? prize!.id : null, outcome: won ? 'won' : 'lost', at: now, ...fulfilmentOf(prize) };
    } else {
      const pick = weightedPick(c.prizes, deps.random);
      prize = c.prizes.find((p) => p.id === pick.prizeId);
      const won = !!prize && prize.kind !== 'thanks';
      input = { redemptionId: row.id, mode: 'dynamic', eligible: pick.eligible, roll: pick.roll, drawnPrizeId: pick.prizeId, prizeId: won ? prize!.id : null, outcome: won ? 'won' : 'lost', at: now, ...fulfilmentOf(prize) };
    }
    if (input.outcome !== 'won') input.points = c.lossPoints;
    const randomShard = (n: number) => (deps.random ?? ((k: number) => Math.floor(Math.random() * k)))(Math.max(n, 1));

    if (deps.fraud) {
      // As in chat: the prize is known here; a hold keeps it (stock taken) while its payout waits for review.
      const verdict = await deps.fraud.atDraw(openid, c.id, input.outcome === 'won' ? prize?.kind ?? null : null, now, row.id);
      if (verdict.decision === 'block') throw refuse('FORBIDDEN', 'blocked', FRAUD_TEXTS.blocked);
      if (verdict.decision === 'hold') {
        const held = await deps.fraud.heldDraw({
          openid, campaignId: c.id, input, limited: input.outcome === 'won' && !!prize?.limited && c.prizeMode === 'dynamic',
          shard: randomShard(prize?.shards ?? 1), day: localDay(now), lossPoints: c.lossPoints, verdict,
        });
        return { drawn: !!held, points: 0, balance: null };
      }
      await deps.fraud.recordAllow(openid, verdict, c.id, row.id, now);
    }

    if (input.outcome === 'won' && prize?.limited && c.prizeMode === 'dynamic') {
      const r = await repo.drawWithStock(input, { shard: randomShard(prize.shards), day: localDay(now), lossPoints: c.lossPoints });
      if (!r || !r.row.draw_id) return { drawn: false, points: 0, balance: null };
      if (r.issued) deps.onFulfilmentQueued?.();
      return { drawn: true, points: r.issued ? input.points : c.lossPoints, balance: r.row.balance != null ? Number(r.row.balance) : null };
    }
    const [d] = await repo.drawMany([input]);
    if (!d?.draw_id) return { drawn: false, points: 0, balance: null };
    if (input.outcome === 'won' && input.fulfilKind && input.fulfilKind !== 'points') deps.onFulfilmentQueued?.();
    return { drawn: true, points: input.points, balance: d.balance != null ? Number(d.balance) : null };
  }

  return {
    /**
     * POST /redemptions: take a code (typed or scanned) for this member. `ids` are what the mini program's request
     * tells about the person (IP, unionid, the device description it sends): accounts sharing them are a fraud signal.
     */
    async redeem(openid: string, input: string, ids: { ip?: string; unionid?: string | null; device?: string } = {}): Promise<MpRedemption> {
      const now = clock.now();
      const { lengths } = await campaigns();
      const raw = codeFromScan(input.trim());
      let code: string | undefined;
      let typo: string | undefined;
      for (const length of lengths) {
        const r = classifyCode(raw, { length });
        if (r.kind === 'code') code = r.code;
        else if (r.kind === 'typo') typo = r.code;
        if (code) break;
      }
      if (!code) {
        if (typo) throw refuse('VALIDATION', 'typo', deps.fraud?.onTypo(openid, now) ?? render('typo', undefined, { code: typo }));
        throw refuse('VALIDATION', 'not_code', render('notCode', undefined, { length: lengths[0]! + 1 }).replace(/；?发送“取消”退出兑奖。?/, '。'));
      }
      const found = code; // (narrowed to a string: the closure below would widen the `let` again)
      return perMember(openid, async () => {
        const code = found;
        const now = clock.now(); // after the member's previous attempt: its time, not the arrival's
        if (deps.fraud && (ids.ip || ids.unionid || ids.device)) {
          await deps.fraud.onIdentifiers(openid, {
            ...(ids.ip ? { ip: ids.ip } : {}), ...(ids.unionid ? { unionid: ids.unionid } : {}), ...(ids.device ? { device: ids.device } : {}),
          }, now);
        }
        // Refused (cool-down, block) before the lookup: a guessing script learns nothing, and the code stays unused.
        const gate = deps.fraud ? await deps.fraud.beforeCode(openid, now) : undefined;
        if (gate?.refuse) throw refuse('FORBIDDEN', 'refused', gate.refuse);
        const key = keyer.key(code).toString('hex');
        const day = localDay(now);
        const [row] = await repo.redeemMany([{ key, openid, at: now, day, fuse: null }]);
        if (!row!.redemption_id) {
          const r = row!;
          // Unknown, voided or someone else's code: what guessing and bought-code lists produce. A code someone else
          // redeemed moments ago is a race (two people, one pack), not a guess — as in chat.
          const wrong = r.campaign_id === null || r.batch_status === 'loading' || r.batch_status === 'voided'
            || (!!r.redeemed_at && r.redeemed_by !== openid && now.getTime() - new Date(r.redeemed_at).getTime() > 60_000);
          try {
            return await refusal(r, code, openid, key, now, day);
          } catch (err) {
            if (deps.fraud && wrong && err instanceof AppError) {
              const notice = await deps.fraud.onWrongCode(openid, now);
              if (notice) throw new AppError(err.code, `${err.message}\n${notice}`, err.details);
            }
            throw err;
          }
        }
        await deps.fraud?.afterRedeem(openid, row!.campaign_id!, row!.day_count, now, row!.total, { batchId: row!.batch_id, seq: row!.code_seq });
        deps.onRedeemed?.(openid, row!.redemption_id, row!.campaign_id!);
        return view(openid, await own(openid, row!.redemption_id));
      });
    },

    /** GET /redemptions/:id */
    async get(openid: string, id: string): Promise<MpRedemption> {
      return view(openid, await own(openid, id));
    },

    /** POST /redemptions/:id/answers: the form. All answers are checked first; one wrong answer saves nothing. */
    async answer(openid: string, id: string, answers: Record<string, MpAnswerValue>): Promise<MpRedemption> {
      const now = clock.now();
      const row = await own(openid, id);
      if (row.status === 'drawn') throw refuse('CONFLICT', 'already_drawn', '这次兑奖已经抽过奖了。');
      const c = await campaign(row.campaign_id);
      const fields: Record<string, string> = {};
      const save: NewAnswer[] = [];
      for (const [key, value] of Object.entries(answers)) {
        const q = c.questions.find((x) => x.key === key);
        if (!q) {
          fields[key] = '本次活动没有这道题。';
          continue;
        }
        const r = readValue(q, value);
        if (r === 'skip') continue;
        if ('error' in r) fields[key] = r.error;
        else save.push(r);
      }
      if (Object.keys(fields).length > 0) throw refuse('VALIDATION', 'invalid_answers', '有的回答需要修改，请检查后再提交。', { fields });
      await mpRepo.saveAnswers(openid, c.id, save, now);
      // The form was shown when the code was redeemed: answers within seconds of it are a script's.
      for (const a of save) await deps.fraud?.onAnswer(openid, a.key, a.display, new Date(row.redeemed_at), now);
      return view(openid, row);
    },

    /** POST /redemptions/:id/draw: once unlocked; a second call returns the first draw's result. */
    async draw(openid: string, id: string): Promise<MpRedemption> {
      const now = clock.now();
      const row = await own(openid, id);
      if (row.status === 'drawn') return view(openid, row);
      const c = await campaign(row.campaign_id);
      // Paused: the redemption stays pending (drawn after the campaign resumes); ended (past the grace): no draw.
      const closed = drawClosed(c, now);
      if (closed) throw refuse('CONFLICT', closed.reason, closed.text);
      const p = await plan(openid, c, new Date(row.redeemed_at));
      if (!p.unlocked) throw refuse('CONFLICT', 'locked', `还需要再回答 ${p.needed} 题才能抽奖。`, { needed: p.needed });
      const r = await drawNow(openid, c, row, now);
      // Not drawn here: a concurrent call drew first — its result is the result.
      return view(openid, (await mpRepo.redemption(openid, id))!, r.drawn ? { points: r.points, balance: r.balance } : undefined);
    },

    /** GET /redemptions: my redemptions, newest first. */
    async list(openid: string, limit = 50): Promise<MpRedemptionList> {
      return (await mpRepo.list(openid, limit)).map((r) => ({
        id: r.id, campaign: { id: r.campaign_id, name: r.campaign_name }, status: r.status, redeemedAt: iso(r.redeemed_at),
        outcome: r.outcome, prizeName: r.prize_name,
      }));
    },

    /** GET /campaigns: what is live now (the home page's banner). */
    async live(): Promise<MpLiveCampaigns> {
      const now = clock.now();
      return [...(await campaigns()).byId.values()]
        .filter((c) => c.status === 'live' && c.startsAt <= now && now < c.endsAt)
        .sort((a, b) => a.endsAt.getTime() - b.endsAt.getTime())
        .map((c) => ({ id: c.id, name: c.name, endsAt: c.endsAt.toISOString(), prizes: c.prizes.filter((p) => p.kind !== 'thanks').map((p) => p.name) }));
    },

    invalidate: live.invalidate,
  };
}
export type MpRedeemService = ReturnType<typeof createMpRedeemService>;
