/**
 * Campaign administration for ops: create and edit campaigns with their prize table, move them through their
 * status machine, publish them (legal checks, rules text, stock shards), read live counters and export redemptions.
 * No Fastify here: routes hold schemas, roles and audit.
 *
 * Status machine (anything else is CONFLICT):
 *
 *   draft ──publish──▶ live ◀──resume── paused
 *                       │  ──pause──▶    │
 *                       └──end──▶ ended ◀┘        (ended is final; the deck seed is revealed)
 *
 * What may change when (`update`):
 * - draft: everything; `prizes`, when given, replaces the whole prize table. Exception: once a code batch exists
 *   (loading or active), a deck campaign's prizes and any campaign's prize mode are frozen (codes carry the deck).
 * - live / paused: only LIVE_EDITABLE fields, and only in ways that do not make announced terms worse for consumers:
 *   per-user limits may be raised or removed, never tightened; endsAt may be extended, never brought forward (to stop
 *   early, end the campaign). Prizes, odds, questions, mode, window start and consolation are locked. The rules text
 *   is regenerated after every such change.
 * - ended: nothing.
 *
 * Deck mode commit–reveal: `deck_seed` = 32 random bytes as hex, `deck_seed_hash` = sha256 hex of that string (UTF-8),
 * both set when the campaign becomes a deck campaign (creation, or a draft switched to deck; the code-batch service may
 * also set them lazily with the same rule, see newDeckSeed). Ops and the public see the hash; the seed only once the
 * campaign has ended (deck_seed_revealed_at).
 */
import { createHash, randomBytes } from 'node:crypto';
import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { stringify } from 'csv-stringify';
import type { CampaignBody, CampaignCounters, CampaignDto, CampaignPatch, CampaignRules, PrizeBody, PrizeDto } from '../../../shared/campaigns.ts';
import type { Db } from '../db/client.ts';
import type { Actor } from '../ops/service.ts';
import type { Clock } from '../platform/clock.ts';
import { AppError } from '../platform/errors.ts';
import { buildRulesText, publishProblems, shapeProblems, shardStock, type CampaignState } from './admin-rules.ts';
import { createCampaignAdminRepo, type CampaignInsert, type PrizeInsert, type RedemptionExportRow } from './admin-repo.ts';
import { defaultGoldenQuestions } from './questions-defaults.ts';
import type { Campaign, CampaignPrize } from './tables.ts';

export { shardStock, PRIZE_VALUE_CAP_FEN, CASH_MIN_FEN, TOPUP_DENOMINATIONS_FEN } from './admin-rules.ts';

type Status = Campaign['status'];

/** The status machine: each action, the statuses it may start from, and where it leads. */
export const TRANSITIONS = {
  publish: { from: ['draft'], to: 'live' },
  pause: { from: ['live'], to: 'paused' },
  resume: { from: ['paused'], to: 'live' },
  end: { from: ['live', 'paused'], to: 'ended' },
} as const satisfies Record<string, { from: readonly Status[]; to: Status }>;
export type CampaignAction = keyof typeof TRANSITIONS;

/** Fields a published (live or paused) campaign may still change. */
export const LIVE_EDITABLE: ReadonlySet<keyof CampaignPatch> = new Set<keyof CampaignPatch>([
  'name', 'texts', 'recommendation', 'redemptionsPerDay', 'drawsPerCampaign', 'endsAt', 'dialogIdleMinutes',
]);

/** sha256 hex of the seed string (UTF-8): the published commitment of a deck campaign. */
export const deckSeedHash = (seed: string) => createHash('sha256').update(seed, 'utf8').digest('hex');
/** A fresh deck seed: 32 random bytes as lowercase hex, and its hash. */
export function newDeckSeed(): { deckSeed: string; deckSeedHash: string } {
  const seed = randomBytes(32).toString('hex');
  return { deckSeed: seed, deckSeedHash: deckSeedHash(seed) };
}

/** Campaign-local (Asia/Shanghai, UTC+8, no DST) calendar date. */
export const shanghaiDate = (d: Date) => new Date(d.getTime() + 8 * 3_600_000).toISOString().slice(0, 10);
/** ISO 8601 with the +08:00 offset, to the second. */
export const shanghaiIso = (ms: number) => new Date(ms + 8 * 3_600_000).toISOString().replace(/\.\d{3}Z$/, '+08:00');

const STATUS_HINT: Record<CampaignAction, Partial<Record<Status, string>>> = {
  publish: { live: 'it is already live', paused: 'it is paused; use resume to go live again', ended: 'it has ended; an ended campaign cannot go live again' },
  pause: { draft: 'it is a draft; publish it first', paused: 'it is already paused', ended: 'it has ended' },
  resume: { draft: 'it is a draft; publish it first', live: 'it is already live', ended: 'it has ended; an ended campaign cannot go live again' },
  end: { draft: 'it is a draft and was never published (edit it instead)', ended: 'it has already ended' },
};

function illegal(id: number, action: CampaignAction, status: Status): AppError {
  const from = TRANSITIONS[action].from.join(' or ');
  return new AppError('CONFLICT', `cannot ${action} campaign ${id}: ${STATUS_HINT[action][status] ?? `it is ${status}`} (${action} needs a ${from} campaign)`, { status, action });
}

const invalid = (problems: string[], lead: string) => new AppError('VALIDATION', `${lead}: ${problems.join('; ')}`, { problems });

function prizeRow(p: PrizeBody): PrizeInsert {
  return { name: p.name, kind: p.kind, value: p.value ?? 0, coupon: p.coupon ?? null, weight: p.weight, totalStock: p.totalStock ?? null, dailyStock: p.dailyStock ?? null };
}

/** The columns a body or patch sets (only the keys present). */
function columns(body: CampaignPatch): Partial<CampaignInsert> {
  const out: Partial<CampaignInsert> = {};
  for (const [k, v] of Object.entries(body) as Array<[keyof CampaignPatch, unknown]>) {
    if (v === undefined || k === 'prizes') continue;
    if (k === 'startsAt' || k === 'endsAt') out[k] = new Date(v as string);
    else (out as Record<string, unknown>)[k] = v;
  }
  return out;
}

const iso = (d: Date | null) => (d ? d.toISOString() : null);

function prizeDto(p: CampaignPrize): PrizeDto {
  return { id: p.id, name: p.name, kind: p.kind, value: p.value, coupon: p.coupon, weight: p.weight, totalStock: p.totalStock, dailyStock: p.dailyStock, position: p.position };
}

/** A campaign as ops see it: the seed stays hidden until revealed at the end. */
export function campaignDto(c: Campaign, prizes: CampaignPrize[]): CampaignDto {
  return {
    id: c.id, name: c.name, status: c.status, startsAt: c.startsAt.toISOString(), endsAt: c.endsAt.toISOString(), skus: c.skus, texts: c.texts,
    questions: c.questions, unlockMin: c.unlockMin, reaskAnswered: c.reaskAnswered, redemptionsPerDay: c.redemptionsPerDay, drawsPerCampaign: c.drawsPerCampaign,
    prizeMode: c.prizeMode, lossPoints: c.lossPoints, recommendation: c.recommendation ?? null, dialogIdleMinutes: c.dialogIdleMinutes,
    cashConfirmHours: c.cashConfirmHours, unclaimedCash: c.unclaimedCash, codeLength: c.codeLength,
    deckSeedHash: c.deckSeedHash, deckSeed: c.deckSeedRevealedAt ? c.deckSeed : null, deckSeedRevealedAt: iso(c.deckSeedRevealedAt),
    rulesText: c.rulesText, publishedAt: iso(c.publishedAt), createdAt: c.createdAt.toISOString(), updatedAt: c.updatedAt.toISOString(),
    prizes: prizes.map(prizeDto),
  };
}

export interface CampaignAdminDeps {
  db: Db;
  clock: Clock;
  /** Market value of one point in fen, for the legal prize cap (default 1: 100 points = ¥1). */
  pointValueFen?: number;
  /** Rows per keyset page of the redemptions export. */
  exportPageSize?: number;
}

export function createCampaignAdmin(deps: CampaignAdminDeps) {
  const { db, clock } = deps;
  const pointValueFen = deps.pointValueFen ?? 1;
  const pageSize = deps.exportPageSize ?? 1000;
  const repo = createCampaignAdminRepo(db);

  const notFound = (id: number) => new AppError('NOT_FOUND', `campaign ${id} not found`);

  async function load(id: number) {
    const c = await repo.get(db, id);
    if (!c) throw notFound(id);
    return { c, prizes: await repo.prizesOf(db, [id]) };
  }

  function rulesOf(c: Campaign, prizes: CampaignPrize[]): CampaignRules {
    const draft = c.status === 'draft';
    return {
      campaignId: c.id, name: c.name, status: c.status, preview: draft,
      rulesText: (!draft && c.rulesText) || buildRulesText(c, prizes),
      publishedAt: iso(c.publishedAt), deckSeedHash: c.deckSeedHash, deckSeed: c.deckSeedRevealedAt ? c.deckSeed : null,
    };
  }

  /** pause / resume / end: lock the row, check the machine, apply. */
  async function move(id: number, action: Exclude<CampaignAction, 'publish'>, _actor: Actor | null): Promise<CampaignDto> {
    return db.transaction(async (tx) => {
      const c = await repo.get(tx, id, true);
      if (!c) throw notFound(id);
      if (!(TRANSITIONS[action].from as readonly Status[]).includes(c.status)) throw illegal(id, action, c.status);
      const now = clock.now();
      if (action === 'resume' && c.endsAt <= now) {
        throw new AppError('CONFLICT', `cannot resume campaign ${id}: its window closed at ${c.endsAt.toISOString()}; end it instead (or extend endsAt first)`, { status: c.status, action });
      }
      const values: Partial<CampaignInsert> = { status: TRANSITIONS[action].to, updatedAt: now };
      if (action === 'end' && c.deckSeed) {
        values.deckSeedRevealedAt = now;
        values.rulesText = buildRulesText({ ...c, deckSeedRevealedAt: now }, await repo.prizesOf(tx, [id]));
      }
      const row = await repo.update(tx, id, values);
      return campaignDto(row, await repo.prizesOf(tx, [id]));
    });
  }

  return {
    /** Create a draft with its prizes (position = index). Questions default to DEFAULT_GOLDEN_QUESTIONS when omitted. */
    async create(body: CampaignBody, _actor: Actor | null = null): Promise<CampaignDto> {
      const values: CampaignInsert = {
        ...(columns(body) as CampaignInsert),
        status: 'draft',
        questions: body.questions ?? defaultGoldenQuestions(),
        ...(body.prizeMode === 'deck' ? newDeckSeed() : {}),
      };
      const problems = shapeProblems({ startsAt: values.startsAt, endsAt: values.endsAt, questions: values.questions! });
      if (problems.length) throw invalid(problems, 'invalid campaign');
      return db.transaction(async (tx) => {
        const row = await repo.insert(tx, values);
        await repo.replacePrizes(tx, row.id, (body.prizes ?? []).map(prizeRow));
        return campaignDto(row, await repo.prizesOf(tx, [row.id]));
      });
    },

    async get(id: number): Promise<CampaignDto> {
      const { c, prizes } = await load(id);
      return campaignDto(c, prizes);
    },

    async list(): Promise<CampaignDto[]> {
      const rows = await repo.list();
      const prizes = await repo.prizesOf(db, rows.map((r) => r.id));
      return rows.map((c) => campaignDto(c, prizes.filter((p) => p.campaignId === c.id)));
    },

    /** Change a campaign within the rules of its status (see the header). */
    async update(id: number, patch: CampaignPatch, _actor: Actor | null = null): Promise<CampaignDto> {
      return db.transaction(async (tx) => {
        const c = await repo.get(tx, id, true);
        if (!c) throw notFound(id);
        const now = clock.now();
        const keys = (Object.keys(patch) as Array<keyof CampaignPatch>).filter((k) => patch[k] !== undefined);
        if (c.status === 'ended') throw new AppError('CONFLICT', `campaign ${id} has ended; it can no longer change`, { status: c.status });

        if (c.status !== 'draft') {
          const locked = keys.filter((k) => !LIVE_EDITABLE.has(k));
          if (locked.length) {
            throw new AppError('CONFLICT', `campaign ${id} is ${c.status}: ${locked.join(', ')} cannot change once published (only ${[...LIVE_EDITABLE].join(', ')} may)`, { status: c.status, locked });
          }
          for (const k of ['redemptionsPerDay', 'drawsPerCampaign'] as const) {
            if (!(k in patch)) continue;
            const next = patch[k] ?? null;
            const cur = c[k];
            if (next !== null && (cur === null || next < cur)) {
              throw new AppError('CONFLICT', `campaign ${id} is ${c.status}: ${k} may only be raised or removed (announced limits cannot get stricter), currently ${cur ?? 'unlimited'}`, { status: c.status });
            }
          }
          if (patch.endsAt !== undefined) {
            const ends = new Date(patch.endsAt);
            if (ends < c.endsAt) throw new AppError('CONFLICT', `campaign ${id} is ${c.status}: endsAt can only be extended (currently ${c.endsAt.toISOString()}); end the campaign to stop early`, { status: c.status });
            if (ends <= now) throw invalid([`endsAt ${ends.toISOString()} is already over`], 'invalid campaign');
          }
        } else if ((patch.prizes !== undefined && c.prizeMode === 'deck') || (patch.prizeMode !== undefined && patch.prizeMode !== c.prizeMode)) {
          const batches = await repo.liveBatchCount(tx, id);
          if (batches > 0) {
            throw new AppError('CONFLICT', `campaign ${id} already has ${batches} code batch(es): ${patch.prizes !== undefined && c.prizeMode === 'deck' ? 'the deck prizes' : 'the prize mode'} can no longer change (void the batches first)`, { status: c.status });
          }
        }

        const values: Partial<CampaignInsert> = { ...columns(patch), updatedAt: now };
        const merged: Campaign = { ...c, ...values } as Campaign;
        const problems = shapeProblems(merged);
        if (problems.length) throw invalid(problems, 'invalid campaign');
        if (merged.prizeMode === 'deck' && !merged.deckSeed) Object.assign(values, newDeckSeed());
        if (merged.prizeMode === 'dynamic' && c.prizeMode === 'deck') Object.assign(values, { deckSeed: null, deckSeedHash: null });

        if (patch.prizes !== undefined) await repo.replacePrizes(tx, id, patch.prizes.map(prizeRow));
        if (c.status !== 'draft') values.rulesText = buildRulesText({ ...merged, ...values } as Campaign, await repo.prizesOf(tx, [id]));
        const row = await repo.update(tx, id, values);
        return campaignDto(row, await repo.prizesOf(tx, [id]));
      });
    },

    /**
     * draft → live, after the legal and completeness checks (VALIDATION with `details.problems`). Generates the rules
     * text, sets published_at, and in dynamic mode initialises the stock shards of every prize with a total or daily
     * stock (never again: shards that exist are kept).
     */
    async publish(id: number, _actor: Actor | null = null): Promise<CampaignDto> {
      return db.transaction(async (tx) => {
        const c = await repo.get(tx, id, true);
        if (!c) throw notFound(id);
        if (c.status !== 'draft') throw illegal(id, 'publish', c.status);
        const now = clock.now();
        const prizes = await repo.prizesOf(tx, [id]);
        const seed = c.prizeMode === 'deck' && !c.deckSeed ? newDeckSeed() : {};
        const state: CampaignState = { ...c, ...seed, status: 'live' };
        const problems = publishProblems(state, prizes, { now, pointValueFen });
        if (problems.length) throw invalid(problems, `campaign ${id} cannot be published`);
        if (c.prizeMode === 'dynamic') {
          for (const p of prizes) await repo.insertShards(tx, p.id, shardStock(p.totalStock, p.dailyStock));
        }
        const row = await repo.update(tx, id, { ...seed, status: 'live', publishedAt: now, rulesText: buildRulesText(state, prizes), updatedAt: now });
        return campaignDto(row, prizes);
      });
    },

    pause: (id: number, actor: Actor | null = null) => move(id, 'pause', actor),
    resume: (id: number, actor: Actor | null = null) => move(id, 'resume', actor),
    /** live | paused → ended; reveals the deck seed and adds it to the rules text. */
    end: (id: number, actor: Actor | null = null) => move(id, 'end', actor),

    /** The rules text: stored at publish; for a draft, a preview generated now. */
    async rules(id: number): Promise<CampaignRules> {
      const { c, prizes } = await load(id);
      return rulesOf(c, prizes);
    },

    /** The rules for consumers: published campaigns only (a draft is NOT_FOUND). */
    async publicRules(id: number): Promise<CampaignRules> {
      const { c, prizes } = await load(id);
      if (c.status === 'draft' || !c.rulesText) throw notFound(id);
      return rulesOf(c, prizes);
    },

    /**
     * Live counters from indexed aggregates. Codes printed = Σ count of active batches, voided = Σ of voided batches;
     * questionsCompleted = draws (the questions gate the draw); wins = draws that issued a prize other than thanks.
     */
    async counters(id: number): Promise<CampaignCounters> {
      const { c, prizes } = await load(id);
      const now = clock.now();
      const [batches, redeemed, drawRows, fulRows, stock] = await Promise.all([
        repo.batchTotals(id), repo.redemptionCount(id), repo.drawsByPrize(id), repo.fulfilmentsByPrize(id),
        repo.stockByPrize(prizes.map((p) => p.id), shanghaiDate(now)),
      ]);
      const batch = (s: string) => batches.find((b) => b.status === s) ?? { batches: 0, codes: 0 };
      const wonOf = (prizeId: number) => drawRows.find((d) => d.prizeId === prizeId)?.n ?? 0;
      const states = (prizeId: number | null) => Object.fromEntries(fulRows.filter((f) => f.prizeId === prizeId).map((f) => [f.state, f.n]));
      // Points (prizes and consolation) are credited to the ledger by the draw itself: no job, fulfilled when drawn.
      const pointsKind = new Set(prizes.filter((p) => p.kind === 'points').map((p) => p.id));
      const draws = drawRows.reduce((s, d) => s + d.n, 0);

      const perPrize = prizes.map((p) => {
        const won = wonOf(p.id);
        const shards = stock.find((s) => s.prizeId === p.id);
        const stockRemaining = p.totalStock === null ? null
          : c.prizeMode === 'deck' ? Math.max(0, p.totalStock - won)
          : shards ? shards.remaining : p.totalStock;
        return {
          prizeId: p.id, name: p.name, kind: p.kind, won, stockRemaining,
          dailyCap: shards?.dailyCap ?? p.dailyStock, issuedToday: shards?.issuedToday ?? 0,
          fulfilment: pointsKind.has(p.id) ? (won > 0 ? { succeeded: won } : {}) : states(p.id),
        };
      });
      const wins = perPrize.filter((p) => p.kind !== 'thanks').reduce((s, p) => s + p.won, 0);
      const byKind = [...new Set(prizes.map((p) => p.kind))].map((kind) => {
        const of = perPrize.filter((p) => p.kind === kind);
        const fulfilment: Record<string, number> = {};
        for (const p of of) for (const [s, n] of Object.entries(p.fulfilment)) fulfilment[s] = (fulfilment[s] ?? 0) + n;
        return { kind, won: of.reduce((s, p) => s + p.won, 0), fulfilment };
      });
      return {
        campaignId: id, status: c.status, asOf: now.toISOString(),
        codes: { printed: batch('active').codes, voided: batch('voided').codes, activeBatches: batch('active').batches, voidedBatches: batch('voided').batches },
        redeemed, questionsCompleted: draws, pendingDraws: Math.max(0, redeemed - draws), draws, wins, losses: draws - wins,
        prizes: perPrize, byKind, consolation: c.lossPoints > 0 && draws - wins > 0 ? { succeeded: draws - wins } : {},
      };
    },

    /**
     * Stream the campaign's redemptions as CSV (UTF-8 with a BOM so Excel reads the Chinese; formula-like cells are
     * escaped) into `out`, keyset-paged by redemption id, never holding more than one page. Resolves with the row count
     * once `out` has finished; rejects (and destroys `out`) on a database or stream error.
     */
    async redemptionsCsv(id: number, out: Writable): Promise<{ rows: number }> {
      if (!(await repo.get(db, id))) throw notFound(id);
      let rows = 0;
      async function* records() {
        let after = 0;
        for (;;) {
          const page = await repo.redemptionsPage(id, after, pageSize);
          for (const r of page) {
            rows++;
            yield csvRecord(r);
          }
          if (page.length < pageSize) return;
          after = page[page.length - 1]!.id;
        }
      }
      await pipeline(Readable.from(records()), stringify({ header: true, bom: true, escape_formulas: true, columns: CSV_COLUMNS }), out);
      return { rows };
    },
  };
}
export type CampaignAdmin = ReturnType<typeof createCampaignAdmin>;

export const CSV_COLUMNS = [
  'openid', 'batch_id', 'batch_name', 'redeemed_at', 'answers_completed', 'draw_result', 'draw_outcome', 'prize_kind', 'fulfilment_state', 'risk_decision',
] as const;

function csvRecord(r: RedemptionExportRow): Record<(typeof CSV_COLUMNS)[number], string | number> {
  const drawResult = r.outcome === null ? '未抽奖' : r.outcome === 'won' && r.prizeName ? r.prizeName : '谢谢参与';
  return {
    openid: r.openid,
    batch_id: r.batchId,
    batch_name: r.batchName ?? '',
    redeemed_at: shanghaiIso(r.redeemedMs),
    answers_completed: r.answers,
    draw_result: drawResult,
    draw_outcome: r.outcome ?? '',
    prize_kind: r.outcome === 'won' ? (r.prizeKind ?? '') : '',
    fulfilment_state: r.fulfilmentState ?? '',
    risk_decision: r.riskDecision ?? '',
  };
}
