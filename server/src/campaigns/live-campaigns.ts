/**
 * Live, paused and recently ended campaigns with their prizes, as the redemption doors (chat and mini program) read
 * them on every code: a snapshot kept for `ttlMs` (RULES_CACHE_TTL_MS) and refreshed ahead of its expiry, reloaded
 * once when a campaign is not in it.
 * The database conditions of the redemption statement stay authoritative; this only shapes replies and draws.
 */
import type { GoldenQuestion } from '../../../shared/campaigns.ts';
import { DEFAULT_CODE_LENGTH } from './codes.ts';
import { formatTime, render } from './texts.ts';
import type { RedeemRepo } from './redeem-repo.ts';
import { createRefreshing } from '../platform/refreshing.ts';

export interface LivePrize {
  id: number;
  name: string;
  kind: 'points' | 'coupon' | 'topup' | 'cash' | 'physical' | 'thanks';
  value: number;
  weight: number;
  limited: boolean;
  shards: number;
}

export interface LiveCampaign {
  id: number;
  name: string;
  status: string;
  startsAt: Date;
  endsAt: Date;
  texts: Record<string, string>;
  questions: GoldenQuestion[];
  unlockMin: number;
  reaskAnswered: boolean;
  prizeMode: 'dynamic' | 'deck';
  lossPoints: number;
  recommendation: { title: string; description?: string; url?: string } | null;
  dialogIdleMinutes: number;
  cashConfirmHours: number;
  codeLength: number;
  prizes: LivePrize[];
}

export interface LiveSnapshot {
  byId: Map<number, LiveCampaign>;
  /** The code lengths in use (the classifier tries each). */
  lengths: number[];
}

/** The campaign asks this question again even when the profile has an answer (`reask`, `reaskAnswered`). */
export const reasks = (c: Pick<LiveCampaign, 'reaskAnswered'>, q: Pick<GoldenQuestion, 'reask'>) => !!q.reask || c.reaskAnswered;

/**
 * The campaign's questions that count for a redemption made at `redeemedAt` (chat and mini program alike): answered,
 * and for a question the campaign re-asks, answered since that redemption.
 */
export function countedQuestions(c: Pick<LiveCampaign, 'questions' | 'reaskAnswered'>, answers: ReadonlyArray<{ question_key: string; answered_at: Date | string }>, redeemedAt: Date): Set<string> {
  const at = new Map(answers.map((a) => [a.question_key, new Date(a.answered_at).getTime()]));
  const out = new Set<string>();
  for (const q of c.questions) {
    const t = at.get(q.key);
    if (t !== undefined && (!reasks(c, q) || t >= redeemedAt.getTime())) out.add(q.key);
  }
  return out;
}

/**
 * A code redeemed while the campaign was live keeps its draw for DRAW_GRACE_MS after the campaign's end (a consumer
 * who redeemed at 23:58 may answer the questions after midnight); after that, or once ops end the campaign, no draw.
 */
export const DRAW_GRACE_MS = 24 * 3_600_000;

/** Why a redemption of this campaign cannot be drawn now (the consumer's text), or null. Paused: later, ended: never. */
export function drawClosed(c: Pick<LiveCampaign, 'name' | 'status' | 'endsAt' | 'texts'>, now: Date): { reason: 'paused' | 'ended'; text: string } | null {
  if (c.status === 'paused') return { reason: 'paused', text: render('drawPaused', c.texts, { campaign: c.name }) };
  if (c.status === 'ended' || c.status === 'draft' || now.getTime() >= c.endsAt.getTime() + DRAW_GRACE_MS) {
    return { reason: 'ended', text: render('drawEnded', c.texts, { campaign: c.name, end: formatTime(c.endsAt) }) };
  }
  return null;
}

export function createLiveCampaigns(repo: Pick<RedeemRepo, 'activeCampaigns'>, ttlMs: number, onBackgroundError?: (err: unknown) => void) {
  async function load(): Promise<LiveSnapshot> {
    const { campaigns, prizes } = await repo.activeCampaigns();
    const byId = new Map<number, LiveCampaign>();
    for (const c of campaigns) {
      byId.set(c.id, {
        id: c.id, name: c.name, status: c.status, startsAt: new Date(c.starts_at), endsAt: new Date(c.ends_at), texts: c.texts ?? {},
        questions: c.questions ?? [], unlockMin: c.unlock_min, reaskAnswered: c.reask_answered, prizeMode: c.prize_mode,
        lossPoints: c.loss_points, recommendation: c.recommendation, dialogIdleMinutes: c.dialog_idle_minutes,
        cashConfirmHours: c.cash_confirm_hours, codeLength: c.code_length, prizes: [],
      });
    }
    for (const p of prizes) {
      byId.get(p.campaign_id)?.prizes.push({ id: p.id, name: p.name, kind: p.kind, value: p.value, weight: p.weight, limited: p.limited, shards: p.shards });
    }
    const lengths = [...new Set([...byId.values()].map((c) => c.codeLength))];
    if (lengths.length === 0) lengths.push(DEFAULT_CODE_LENGTH);
    return { byId, lengths };
  }

  // Refreshed ahead of expiry: no code waits for a reload under steady traffic (platform/refreshing.ts).
  const cache = createRefreshing(load, { ttlMs, onBackgroundError });
  const snapshot = (fresh = false): Promise<LiveSnapshot> => cache.get({ fresh });

  return {
    snapshot,
    /** Forget the snapshot (after ops changes in this process). */
    invalidate: () => cache.invalidate(),
    /** One campaign; a miss reloads once (a campaign published since the snapshot). */
    async get(id: number): Promise<LiveCampaign | undefined> {
      return (await snapshot()).byId.get(id) ?? (await snapshot(true)).byId.get(id);
    },
  };
}
export type LiveCampaigns = ReturnType<typeof createLiveCampaigns>;

/**
 * What a draw's result says, in the campaign's own texts (chat and mini program alike): the prize and how to claim
 * it, or the loss (or that the prize is gone), then the points update when points were credited.
 */
export function drawResultLines(c: LiveCampaign, prize: LivePrize | undefined, outcome: string, points: number, balance: number | null): string[] {
  const say = (key: Parameters<typeof render>[0], vars: Record<string, string | number> = {}) => render(key, c.texts, vars);
  const lines: string[] = [];
  if (outcome === 'won' && prize) {
    const how: Record<string, string> = {
      points: say('claimPoints'), coupon: say('claimCoupon'), topup: say('claimTopup'),
      cash: say('claimCash', { hours: c.cashConfirmHours }), physical: say('claimPhysical'),
    };
    lines.push(say('win', { prize: prize.name, howToClaim: how[prize.kind] ?? '' }).trimEnd());
  } else {
    lines.push(say(outcome === 'out_of_stock' ? 'outOfStock' : 'lose'));
  }
  if (points > 0 && balance !== null) lines.push(say('pointsUpdate', { points, balance }));
  return lines;
}
