/**
 * SQL of campaign administration. Every function takes the database or a transaction.
 * Counters read only indexed, narrow data: batch counts (code_batches, a few rows), redemptions and draws through
 * their campaign indexes, fulfilments through fulfilments_campaign_idx, stock through the shards' primary key;
 * the 10M-row `codes` table is never scanned.
 */
import { and, asc, desc, eq, inArray, sql } from 'drizzle-orm';
import type { Db, Tx } from '../db/client.ts';
import { fulfilments } from '../fulfilment/tables.ts';
import type { ShardStock } from './admin-rules.ts';
import { campaignPrizes, campaigns, codeBatches, draws, prizeStockShards, redemptions, type Campaign, type CampaignPrize } from './tables.ts';

export type CampaignInsert = typeof campaigns.$inferInsert;
export type PrizeInsert = Omit<typeof campaignPrizes.$inferInsert, 'id' | 'campaignId' | 'position'>;
type Status = Campaign['status'];

/** One row of the redemptions export, before formatting. */
export interface RedemptionExportRow {
  id: number;
  openid: string;
  batchId: number;
  batchName: string | null;
  redeemedMs: number;
  answers: number;
  outcome: 'won' | 'lost' | 'out_of_stock' | null;
  prizeName: string | null;
  prizeKind: string | null;
  fulfilmentState: string | null;
  riskDecision: string | null;
}

const num = (v: unknown) => Number(v ?? 0);

export function createCampaignAdminRepo(db: Db) {
  return {
    async get(tx: Tx, id: number, lock = false): Promise<Campaign | undefined> {
      const q = tx.select().from(campaigns).where(eq(campaigns.id, id));
      const [row] = lock ? await q.for('update') : await q;
      return row;
    },

    list: () => db.select().from(campaigns).orderBy(desc(campaigns.id)),

    async prizesOf(tx: Tx, ids: number[]): Promise<CampaignPrize[]> {
      if (ids.length === 0) return [];
      return tx.select().from(campaignPrizes).where(inArray(campaignPrizes.campaignId, ids)).orderBy(asc(campaignPrizes.campaignId), asc(campaignPrizes.position), asc(campaignPrizes.id));
    },

    async insert(tx: Tx, values: CampaignInsert): Promise<Campaign> {
      const [row] = await tx.insert(campaigns).values(values).returning();
      return row!;
    },

    async update(tx: Tx, id: number, values: Partial<CampaignInsert>): Promise<Campaign> {
      const [row] = await tx.update(campaigns).set(values).where(eq(campaigns.id, id)).returning();
      return row!;
    },

    /** The status change happens only from one of `from`; undefined when the campaign is elsewhere (or missing). */
    async transition(tx: Tx, id: number, from: Status[], values: Partial<CampaignInsert> & { status: Status }): Promise<Campaign | undefined> {
      const [row] = await tx.update(campaigns).set(values).where(and(eq(campaigns.id, id), inArray(campaigns.status, from))).returning();
      return row;
    },

    /** Replace the prize table as a whole (draft only: nothing references the old rows yet). */
    async replacePrizes(tx: Tx, campaignId: number, prizes: PrizeInsert[]): Promise<void> {
      await tx.delete(campaignPrizes).where(eq(campaignPrizes.campaignId, campaignId));
      if (prizes.length) await tx.insert(campaignPrizes).values(prizes.map((p, position) => ({ ...p, campaignId, position })));
    },

    /** Batches that are not voided: once any exists, a deck is laid out (or codes are printed). */
    async liveBatchCount(tx: Tx, campaignId: number): Promise<number> {
      const [row] = await tx.select({ n: sql<number>`count(*)::int` }).from(codeBatches)
        .where(and(eq(codeBatches.campaignId, campaignId), inArray(codeBatches.status, ['loading', 'active'])));
      return num(row?.n);
    },

    /** Initialise the shards of a prize; existing shards are left alone (publishing twice never refills stock). */
    async insertShards(tx: Tx, prizeId: number, shards: ShardStock[]): Promise<void> {
      if (!shards.length) return;
      await tx.insert(prizeStockShards)
        .values(shards.map((s) => ({ prizeId, shard: s.shard, remaining: s.remaining, dailyShare: s.dailyShare, day: null, issuedToday: 0 })))
        .onConflictDoNothing();
    },

    // ---- Counters ----

    async batchTotals(campaignId: number) {
      const rows = await db.select({ status: codeBatches.status, batches: sql<number>`count(*)::int`, codes: sql<string>`coalesce(sum(${codeBatches.count}), 0)::bigint` })
        .from(codeBatches).where(eq(codeBatches.campaignId, campaignId)).groupBy(codeBatches.status);
      return rows.map((r) => ({ status: r.status, batches: num(r.batches), codes: num(r.codes) }));
    },

    async redemptionCount(campaignId: number): Promise<number> {
      const [row] = await db.select({ n: sql<string>`count(*)` }).from(redemptions).where(eq(redemptions.campaignId, campaignId));
      return num(row?.n);
    },

    /** Draws by issued prize (null = thanks), index-only on draws_campaign_idx. */
    async drawsByPrize(campaignId: number) {
      const rows = await db.select({ prizeId: draws.prizeId, n: sql<string>`count(*)` }).from(draws).where(eq(draws.campaignId, campaignId)).groupBy(draws.prizeId);
      return rows.map((r) => ({ prizeId: r.prizeId, n: num(r.n) }));
    },

    /** Fulfilments by prize (null = consolation points) and state. */
    async fulfilmentsByPrize(campaignId: number) {
      const rows = await db.select({ prizeId: fulfilments.prizeId, state: fulfilments.state, n: sql<string>`count(*)` })
        .from(fulfilments).where(eq(fulfilments.campaignId, campaignId)).groupBy(fulfilments.prizeId, fulfilments.state);
      return rows.map((r) => ({ prizeId: r.prizeId, state: r.state, n: num(r.n) }));
    },

    /** Σ shard stock per prize; `today` is the campaign-local date the daily counters are compared with. */
    async stockByPrize(prizeIds: number[], today: string) {
      if (prizeIds.length === 0) return [];
      const rows = await db.select({
        prizeId: prizeStockShards.prizeId,
        remaining: sql<string>`sum(${prizeStockShards.remaining})::bigint`,
        dailyCap: sql<string | null>`sum(${prizeStockShards.dailyShare})::bigint`,
        issuedToday: sql<string>`coalesce(sum(${prizeStockShards.issuedToday}) filter (where ${prizeStockShards.day} = ${today}::date), 0)::bigint`,
      }).from(prizeStockShards).where(inArray(prizeStockShards.prizeId, prizeIds)).groupBy(prizeStockShards.prizeId);
      return rows.map((r) => ({ prizeId: r.prizeId, remaining: num(r.remaining), dailyCap: r.dailyCap === null ? null : num(r.dailyCap), issuedToday: num(r.issuedToday) }));
    },

    // ---- Export ----

    /** One keyset page of a campaign's redemptions (by id), with batch, answers, draw, prize, fulfilment and risk. */
    async redemptionsPage(campaignId: number, afterId: number, limit: number): Promise<RedemptionExportRow[]> {
      const res = await db.execute(sql`
        SELECT r.id::float8 AS id, r.openid, r.batch_id, b.name AS batch_name,
               (extract(epoch FROM r.redeemed_at) * 1000)::float8 AS redeemed_ms,
               (SELECT count(*) FROM profile_answers pa WHERE pa.openid = r.openid)::int AS answers,
               d.outcome, p.name AS prize_name, p.kind AS prize_kind, coalesce(f.state, CASE WHEN p.kind = 'points' THEN 'succeeded' END) AS fulfilment_state,
               -- fraud: a hold shows its review's outcome (hold:pending / hold:approved / hold:rejected)
               CASE WHEN r.risk ->> 'decision' = 'hold' THEN 'hold' || coalesce(':' || (SELECT fr.status FROM fraud_reviews fr WHERE fr.draw_id = d.id), '')
                    ELSE r.risk ->> 'decision' END AS risk_decision
        FROM redemptions r
        LEFT JOIN code_batches b ON b.id = r.batch_id
        LEFT JOIN draws d ON d.redemption_id = r.id
        LEFT JOIN campaign_prizes p ON p.id = d.prize_id
        LEFT JOIN LATERAL (
          SELECT f.state FROM fulfilments f WHERE f.draw_id = d.id ORDER BY f.id DESC LIMIT 1
        ) f ON true
        WHERE r.campaign_id = ${campaignId} AND r.id > ${afterId}
        ORDER BY r.id
        LIMIT ${limit}`);
      const rows = (res as unknown as { rows: Array<Record<string, unknown>> }).rows;
      return rows.map((r) => ({
        id: num(r.id),
        openid: String(r.openid),
        batchId: num(r.batch_id),
        batchName: (r.batch_name as string | null) ?? null,
        redeemedMs: num(r.redeemed_ms),
        answers: num(r.answers),
        outcome: (r.outcome as RedemptionExportRow['outcome']) ?? null,
        prizeName: (r.prize_name as string | null) ?? null,
        prizeKind: (r.prize_kind as string | null) ?? null,
        fulfilmentState: (r.fulfilment_state as string | null) ?? null,
        riskDecision: (r.risk_decision as string | null) ?? null,
      }));
    },
  };
}
export type CampaignAdminRepo = ReturnType<typeof createCampaignAdminRepo>;
