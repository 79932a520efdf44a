/**
 * The redemption and draw statements (SQL only). Both are set-based: concurrent chat messages share one statement
 * and one commit (see platform/batcher.ts), and every rule that must hold under concurrency is a condition of the
 * statement itself — the code is taken by a conditional update, the per-user limits by a conditional upsert, the
 * draw by a conditional update of its redemption, stock by a conditional decrement of one shard.
 */
import { sql, type SQL } from 'drizzle-orm';
import type { Database, Tx } from '../db/client.ts';
import { retryOnDeadlock, rowsOf } from '../db/retry.ts';

/** `$n` placeholders → a drizzle SQL with bound parameters (to run a statement inside a transaction). */
function bind(text: string, values: unknown[]): SQL {
  const parts = text.split(/\$(\d+)/);
  const chunks: SQL[] = [];
  parts.forEach((p, i) => chunks.push(i % 2 === 0 ? sql.raw(p) : sql`${values[Number(p) - 1]}`));
  return sql.join(chunks, sql.raw(''));
}


/*
 * DAY_RULE — daily counters are (day, count) pairs: the per-user daily redemption count (campaign_user_counters
 * day, day_count) and each stock shard's daily issue count (prize_stock_shards day, issued_today). The day a request
 * carries (Asia/Shanghai) is fixed when its message arrives, so requests of day D can still arrive after the counter
 * has moved to D+1 (two instances whose clocks differ at midnight, a draw that waited on a lock). The day never
 * moves backwards: for a request of day p,
 *   stored day = p            → count + 1, checked against the cap;
 *   stored day < p (or none)  → count 1, day = p;
 *   stored day > p (late)     → counted into the stored, newer day, checked against that day's cap.
 * The late case is the conservative one: the counter no longer knows day p's count, and resetting it to (p, 1)
 * restarted the newer day's count at 1 on its next request — the daily cap was reset. Counting into the newer day
 * never issues more than a cap per stored day; the late request uses up one of the newer day's units, or is
 * refused (daily limit / out of stock) when the newer day has none left. The cap check reads exactly the count the
 * update increments: CASE WHEN day >= p THEN count ELSE 0 END. greatest() ignores a NULL day.
 */

export interface RedeemInput {
  /** Lookup key (hex of the 16-byte HMAC). */
  key: string;
  openid: string;
  at: Date;
  /** Campaign-local day for the daily limit. */
  day: string;
  /** Pre-drawn results by campaign id, used when the profile already unlocks the draw (see REDEEM_SQL). */
  fuse: Record<string, FusedDraw> | null;
}

/** A draw decided before the redemption, for one campaign the code may belong to. */
export interface FusedDraw {
  keys: string[];
  required: string[];
  min: number;
  eligible: Array<[number, number]>;
  roll: number;
  drawn_prize_id: number | null;
  prize_id: number | null;
  outcome: 'won' | 'lost';
  f_kind: string | null;
  f_amount: number;
  points: number;
  /** A prize with limited stock: the statement takes one unit from a shard (the preferred one first). */
  limited: boolean;
  shard: number;
  /** Consolation points when the limited prize turns out to be gone. */
  loss_points: number;
}

export interface RedeemRow {
  ord: number;
  redemption_id: string | null;
  /** Set when the draw happened in the same statement. */
  draw_id: string | null;
  /** The draw's outcome then (a pre-drawn limited prize may have been out of stock). */
  fused_outcome: 'won' | 'lost' | 'out_of_stock' | null;
  balance: string | number | null;
  campaign_id: number | null;
  /** The code's batch and print position (anti-fraud: codes of one multipack are print neighbours). */
  batch_id: number | null;
  code_seq: number | null;
  batch_status: string | null;
  campaign_status: string | null;
  starts_at: Date | string | null;
  ends_at: Date | string | null;
  redeemed_by: string | null;
  redeemed_at: Date | string | null;
  counted: boolean;
  candidate: boolean;
  c_day: string | null;
  day_count: number | null;
  total: number | null;
  per_day: number | null;
  per_campaign: number | null;
  deck_prize_id: number | null;
  answered: string[];
}

export interface DrawInput {
  redemptionId: string;
  mode: 'dynamic' | 'deck';
  eligible: Array<[number, number]>;
  roll: number | null;
  drawnPrizeId: number | null;
  /** What is issued (null = thanks). */
  prizeId: number | null;
  outcome: 'won' | 'lost' | 'out_of_stock';
  at: Date;
  /** Fulfilment of the prize (null for thanks). Points are credited in the statement itself, without a job. */
  fulfilKind: 'points' | 'coupon' | 'topup' | 'cash' | 'physical' | null;
  fulfilAmount: number;
  /** Points credited now: the prize's points when won, consolation points when lost. */
  points: number;
}

export interface DrawRow {
  ord: number;
  draw_id: string | null;
  balance: string | number | null;
}

// Draws, set-based. The redemption's status flips redeemed → drawn exactly once (the gate); only gated rows get a
// draw, a ledger entry (points prizes and consolation points: fulfilled here, no job) and a fulfilment job (others). Points (prize or consolation) are credited in the same statement:
// balance and ledger row change together, keyed `draw:<id>` / `consolation:<id>` (the ledger's idempotency keys).
/**
 * What every draw writes after its draw row, from a CTE `g` with columns openid, campaign_id, prize_id, outcome, at,
 * f_kind, f_amount, points, draw_id, points_key: points credited (balance and ledger row together) and the
 * fulfilment job for prizes that are not points.
 */
const DRAW_TAIL = `), acct AS (
  INSERT INTO points_accounts (openid, balance, updated_at)
  SELECT openid, points, at FROM g WHERE points > 0 ORDER BY openid
  ON CONFLICT (openid) DO UPDATE SET balance = points_accounts.balance + EXCLUDED.balance, updated_at = EXCLUDED.updated_at
  RETURNING openid, balance
), led AS (
  INSERT INTO points_ledger (openid, delta, balance_after, idempotency_key, reason, detail, created_at)
  SELECT g.openid, g.points, acct.balance, g.points_key, CASE WHEN g.outcome = 'won' THEN 'lottery_prize' ELSE 'lottery_consolation' END,
         jsonb_build_object('drawId', g.draw_id, 'campaignId', g.campaign_id), g.at
  FROM g JOIN acct ON acct.openid = g.openid WHERE g.points > 0
  RETURNING 1
), f AS (
  -- Points are fulfilled above (the ledger row is their record); other prizes get a fulfilment job.
  INSERT INTO fulfilments (source_key, draw_id, campaign_id, openid, prize_id, kind, amount, state, next_attempt_at, out_no, created_at, updated_at)
  SELECT 'draw:' || g.draw_id, g.draw_id, g.campaign_id, g.openid, g.prize_id, g.f_kind, g.f_amount, 'pending', g.at, 'D' || g.draw_id, g.at, g.at
  FROM g WHERE g.outcome = 'won' AND g.f_kind IS NOT NULL AND g.f_kind <> 'points'
  RETURNING 1
)`;

const DRAW_SQL = `
WITH input AS (
  SELECT * FROM jsonb_to_recordset($1::jsonb) AS t(ord int, redemption_id bigint, mode text, eligible jsonb, roll bigint,
    drawn_prize_id int, prize_id int, outcome text, at timestamptz, f_kind text, f_amount int, points int)
), gate AS (
  UPDATE redemptions r SET status = 'drawn', drawn_at = i.at FROM input i
  WHERE r.id = ANY(ARRAY(SELECT redemption_id FROM input)) AND r.id = i.redemption_id AND r.status = 'redeemed'
  RETURNING r.id, r.campaign_id, r.openid, i.ord, i.mode, i.eligible, i.roll, i.drawn_prize_id, i.prize_id, i.outcome, i.at, i.f_kind, i.f_amount, i.points
), d AS (
  INSERT INTO draws (redemption_id, campaign_id, openid, mode, eligible, roll, drawn_prize_id, prize_id, outcome, created_at)
  SELECT id, campaign_id, openid, mode, eligible, roll, drawn_prize_id, prize_id, outcome, at FROM gate ORDER BY id
  RETURNING id, redemption_id
), g AS (
  SELECT gate.*, d.id AS draw_id, CASE WHEN gate.outcome = 'won' THEN 'draw:' ELSE 'consolation:' END || d.id AS points_key
  FROM gate JOIN d ON d.redemption_id = gate.id
${DRAW_TAIL}
SELECT i.ord, g.draw_id::text AS draw_id, acct.balance FROM input i LEFT JOIN g ON g.ord = i.ord LEFT JOIN acct ON acct.openid = g.openid`;

// One row per message. Several messages of one batch may carry the same code: the earliest wins (DISTINCT ON).
// Callers never put two messages of one user in one batch (the ON CONFLICT upsert could not count both).
const REDEEM_SQL = `
WITH input AS (
  SELECT * FROM jsonb_to_recordset($1::jsonb) AS t(ord int, key text, openid text, at timestamptz, day date, fuse jsonb)
), hit AS (
  SELECT c.key, c.batch_id, c.seq, c.prize_id, c.redeemed_by, c.redeemed_at FROM codes c
  WHERE c.key = ANY(ARRAY(SELECT decode(key, 'hex') FROM input))
), info AS (
  SELECT i.ord, i.openid, i.at, i.day, i.fuse, h.key, h.batch_id, h.seq, h.prize_id, h.redeemed_by, h.redeemed_at,
         b.status AS batch_status, b.campaign_id, cp.status AS campaign_status, cp.starts_at, cp.ends_at,
         cp.redemptions_per_day AS per_day, cp.draws_per_campaign AS per_campaign
  FROM input i
  JOIN hit h ON h.key = decode(i.key, 'hex')
  JOIN code_batches b ON b.id = h.batch_id
  JOIN campaigns cp ON cp.id = b.campaign_id
), cand AS (
  SELECT DISTINCT ON (key) * FROM info
  WHERE redeemed_at IS NULL AND batch_status = 'active' AND campaign_status = 'live' AND starts_at <= at AND ends_at > at
  ORDER BY key, ord
), lim AS (
  -- The day never moves backwards (see DAY_RULE): a redemption of an earlier day than the counter's is counted into
  -- the counter's day and checked against that day's limit.
  INSERT INTO campaign_user_counters AS u (campaign_id, openid, day, day_count, total, day_limit, total_limit)
  SELECT campaign_id, openid, day, 1, 1, per_day, per_campaign FROM cand ORDER BY campaign_id, openid
  ON CONFLICT (campaign_id, openid) DO UPDATE SET
    day_count = CASE WHEN u.day >= EXCLUDED.day THEN u.day_count + 1 ELSE 1 END,
    day = greatest(u.day, EXCLUDED.day), total = u.total + 1, day_limit = EXCLUDED.day_limit, total_limit = EXCLUDED.total_limit
  WHERE (u.day < EXCLUDED.day OR EXCLUDED.day_limit IS NULL OR u.day_count < EXCLUDED.day_limit)
    AND (EXCLUDED.total_limit IS NULL OR u.total < EXCLUDED.total_limit)
  RETURNING campaign_id, openid, day, day_count, total
), upd AS (
  -- Counted (lim) as a filter over an array built once: joined to the CTE, the plan (one row guessed per CTE) was a
  -- nested loop that scanned lim once per code, quadratic in the batch.
  UPDATE codes c SET redeemed_by = cand.openid, redeemed_at = cand.at
  FROM cand
  WHERE c.key = ANY(ARRAY(SELECT key FROM cand)) AND c.key = cand.key AND c.redeemed_at IS NULL
    AND (cand.campaign_id || ':' || cand.openid) = ANY(ARRAY(SELECT campaign_id || ':' || openid FROM lim))
  RETURNING cand.ord
), won0 AS MATERIALIZED (
  -- Redeemed now. The caller pre-drew for each campaign the code may belong to (\`fuse\`, keyed by campaign id);
  -- when the profile already unlocks the draw, the draw happens in this same statement (one commit).
  -- MATERIALIZED: inlined, \`fused\` (two profile_answers subqueries) was evaluated once per reference below — four
  -- times per code instead of once.
  SELECT cand.*, pk.pick,
    pk.pick IS NOT NULL
      AND (SELECT count(*) FROM profile_answers pa WHERE pa.openid = cand.openid
             AND pa.question_key = ANY(ARRAY(SELECT jsonb_array_elements_text(pk.pick -> 'keys')))) >= (pk.pick ->> 'min')::int
      AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements_text(pk.pick -> 'required') rk(k)
             WHERE NOT EXISTS (SELECT 1 FROM profile_answers pa WHERE pa.openid = cand.openid AND pa.question_key = rk.k)) AS fused
  FROM cand
  CROSS JOIN LATERAL (SELECT cand.fuse -> cand.campaign_id::text AS pick) pk
  WHERE cand.ord = ANY(ARRAY(SELECT ord FROM upd))
), won AS (
  -- A pre-drawn prize with limited stock takes its unit here (take_prize_stock, migrations 0004 and 0005: the day
  -- rule of DAY_RULE): true = taken,
  -- false = none left (the draw records out_of_stock), NULL = every shard busy: then the code is redeemed but not
  -- drawn, and the caller draws in the stock transaction that may wait. Volatile: evaluated once per row.
  SELECT w.*, s.stock_ok, w.fused AND (s.stock_ok IS NOT NULL OR NOT l.limited) AS drawn
  FROM won0 w
  CROSS JOIN LATERAL (SELECT w.fused AND coalesce((w.pick ->> 'limited')::boolean, false) AND w.pick ->> 'outcome' = 'won' AS limited) l
  CROSS JOIN LATERAL (SELECT CASE WHEN l.limited THEN take_prize_stock((w.pick ->> 'prize_id')::int, (w.pick ->> 'shard')::int, w.day) END AS stock_ok) s
), red AS (
  INSERT INTO redemptions (campaign_id, batch_id, code_key, openid, status, deck_prize_id, redeemed_at, drawn_at)
  SELECT campaign_id, batch_id, key, openid, CASE WHEN drawn THEN 'drawn' ELSE 'redeemed' END, prize_id, at, CASE WHEN drawn THEN at END
  FROM won ORDER BY key
  RETURNING id, code_key
), g0 AS (
  SELECT won.ord, won.openid, won.campaign_id, won.at, won.pick, red.id AS redemption_id,
    CASE WHEN won.stock_ok IS FALSE THEN 'out_of_stock' ELSE won.pick ->> 'outcome' END AS outcome,
    CASE WHEN won.stock_ok IS FALSE THEN NULL ELSE (won.pick ->> 'prize_id')::int END AS prize_id,
    CASE WHEN won.stock_ok IS FALSE THEN NULL ELSE won.pick ->> 'f_kind' END AS f_kind,
    CASE WHEN won.stock_ok IS FALSE THEN 0 ELSE (won.pick ->> 'f_amount')::int END AS f_amount,
    CASE WHEN won.stock_ok IS FALSE THEN (won.pick ->> 'loss_points')::int ELSE (won.pick ->> 'points')::int END AS points
  FROM won JOIN red ON red.code_key = won.key WHERE won.drawn
), d AS (
  INSERT INTO draws (redemption_id, campaign_id, openid, mode, eligible, roll, drawn_prize_id, prize_id, outcome, created_at)
  SELECT redemption_id, campaign_id, openid, 'dynamic', pick -> 'eligible', (pick ->> 'roll')::bigint, (pick ->> 'drawn_prize_id')::int,
         prize_id, outcome, at
  FROM g0 ORDER BY redemption_id
  RETURNING id, redemption_id
), g AS (
  SELECT g0.openid, g0.campaign_id, g0.prize_id, g0.outcome, g0.at, g0.f_kind, g0.f_amount, g0.points,
         d.id AS draw_id, CASE WHEN g0.outcome = 'won' THEN 'draw:' ELSE 'consolation:' END || d.id AS points_key, g0.ord
  FROM g0 JOIN d ON d.redemption_id = g0.redemption_id
${DRAW_TAIL}
SELECT i.ord, red.id::text AS redemption_id, g.draw_id::text AS draw_id, g.outcome AS fused_outcome, acct.balance, info.campaign_id, info.batch_id, info.seq AS code_seq, info.batch_status, info.campaign_status, info.starts_at, info.ends_at,
  info.redeemed_by, info.redeemed_at, (lim.openid IS NOT NULL) AS counted, (cand.ord IS NOT NULL) AS candidate,
  -- Counted now: the counter as this statement left it (lim); refused: as it stood (u2, the statement's snapshot).
  coalesce(lim.day, u2.day)::text AS c_day, coalesce(lim.day_count, u2.day_count) AS day_count, coalesce(lim.total, u2.total) AS total, info.per_day, info.per_campaign, info.prize_id AS deck_prize_id,
  CASE WHEN red.id IS NULL OR g.draw_id IS NOT NULL THEN '[]'::jsonb ELSE
    (SELECT coalesce(jsonb_agg(pa.question_key), '[]'::jsonb) FROM profile_answers pa WHERE pa.openid = i.openid) END AS answered
FROM input i
LEFT JOIN info ON info.ord = i.ord
LEFT JOIN cand ON cand.ord = i.ord
LEFT JOIN lim ON cand.ord IS NOT NULL AND lim.campaign_id = cand.campaign_id AND lim.openid = cand.openid
LEFT JOIN red ON cand.ord IS NOT NULL AND red.code_key = cand.key
LEFT JOIN g ON g.ord = i.ord
LEFT JOIN acct ON acct.openid = g.openid
-- OFFSET 0 keeps this a per-row primary-key lookup: flattened, the generic plan (which guesses 100 input rows)
-- hash-joined a sequential scan of every user's counter on each batch (measured with npm run bench:redeem).
LEFT JOIN LATERAL (SELECT day, day_count, total FROM campaign_user_counters WHERE campaign_id = info.campaign_id AND openid = i.openid OFFSET 0) u2 ON true`;

function drawJson(items: DrawInput[]) {
  return JSON.stringify(items.map((d, ord) => ({
    ord, redemption_id: d.redemptionId, mode: d.mode, eligible: d.eligible, roll: d.roll, drawn_prize_id: d.drawnPrizeId,
    prize_id: d.prizeId, outcome: d.outcome, at: d.at.toISOString(), f_kind: d.fulfilKind, f_amount: d.fulfilAmount, points: d.points,
  })));
}

export function createRedeemRepo(database: Database) {
  const { db } = database;

  async function drawMany(items: DrawInput[], tx: Tx = db): Promise<DrawRow[]> {
    const json = drawJson(items);
    const rows = tx === db
      ? await retryOnDeadlock(() => database.prepared<DrawRow>('campaign_draw_batch', DRAW_SQL, [json], { plan: 'generic' }))
      : rowsOf<DrawRow>(await tx.execute(bind(DRAW_SQL, [json])));
    return rows.sort((a, b) => a.ord - b.ord);
  }

  return {
    async redeemMany(items: RedeemInput[]): Promise<RedeemRow[]> {
      const input = JSON.stringify(items.map((r, ord) => ({ ord, key: r.key, openid: r.openid, at: r.at.toISOString(), day: r.day, fuse: r.fuse })));
      const rows = await retryOnDeadlock(() => database.prepared<RedeemRow>('campaign_redeem_batch_v5', REDEEM_SQL, [input], { plan: 'generic' }));
      return rows.sort((a, b) => a.ord - b.ord);
    },

    /**
     * A user's counter was taken but the code went to a concurrent redeemer: give the count back. `day` is the day
     * the count went into (the statement's `c_day`: for a late request of an earlier day, the newer day it was
     * counted into, DAY_RULE). The day count is given back only while the counter still counts that day: once it has
     * moved on, decrementing would hand the newer day a unit this request never took from it.
     */
    async uncount(campaignId: number, openid: string, day: string) {
      await db.execute(sql`UPDATE campaign_user_counters SET total = greatest(total - 1, 0),
        day_count = CASE WHEN day = ${day} THEN greatest(day_count - 1, 0) ELSE day_count END
        WHERE campaign_id = ${campaignId} AND openid = ${openid}`);
    },

    drawMany,

    /**
     * A draw of a prize with limited stock, in one transaction: lock the redemption, take one unit from a shard
     * (the preferred one, else any with stock; total and daily cap in the same row), record the draw. Returns
     * whether the unit was taken; `null` when the redemption was already drawn.
     */
    async drawWithStock(item: DrawInput, opts: { shard: number; day: string; lossPoints: number }): Promise<{ row: DrawRow; issued: boolean } | null> {
      return db.transaction(async (tx) => {
        const locked = rowsOf<{ id: string }>(await tx.execute(sql`SELECT id FROM redemptions WHERE id = ${item.redemptionId} AND status = 'redeemed' FOR UPDATE`));
        if (locked.length === 0) return null;
        // Shards with stock left (no locks taken), the preferred one first; then one conditional decrement at a
        // time until one succeeds. A transaction holds at most one shard row, so concurrent draws cannot deadlock
        // (locking a randomly ordered set with FOR UPDATE did: tuple-lock queues form cycles).
        // The day rule (DAY_RULE): the count a draw of day p is checked against is the shard's count when the shard
        // counts p or a later day, 0 when it counts an earlier day; the update increments that same count.
        const candidates = rowsOf<{ shard: number }>(await tx.execute(sql`
          SELECT shard FROM prize_stock_shards
          WHERE prize_id = ${item.prizeId} AND remaining > 0
            AND (daily_share IS NULL OR (CASE WHEN day >= ${opts.day}::date THEN issued_today ELSE 0 END) < daily_share)
          ORDER BY shard = ${opts.shard} DESC, shard`));
        let taken = false;
        for (const { shard } of candidates) {
          const r = rowsOf<{ prize_id: number }>(await tx.execute(sql`
            UPDATE prize_stock_shards SET remaining = remaining - 1,
              issued_today = CASE WHEN day >= ${opts.day}::date THEN issued_today + 1 ELSE 1 END, day = greatest(day, ${opts.day}::date)
            WHERE prize_id = ${item.prizeId} AND shard = ${shard} AND remaining > 0
              AND (daily_share IS NULL OR (CASE WHEN day >= ${opts.day}::date THEN issued_today ELSE 0 END) < daily_share)
            RETURNING prize_id`));
          if (r.length > 0) {
            taken = true;
            break;
          }
        }
        const issued = taken;
        const final: DrawInput = issued ? item : { ...item, prizeId: null, outcome: 'out_of_stock', fulfilKind: null, fulfilAmount: 0, points: opts.lossPoints };
        const [row] = await drawMany([final], tx);
        return { row: row!, issued };
      });
    },

    /** The draw of a redemption, if any (retries, "抽奖" again). */
    async drawOf(redemptionId: string) {
      const rows = rowsOf<{ id: string; prize_id: number | null; outcome: string; created_at: Date }>(await db.execute(sql`
        SELECT id::text, prize_id, outcome, created_at FROM draws WHERE redemption_id = ${redemptionId}`));
      return rows[0] ?? null;
    },

    async balance(openid: string): Promise<number> {
      const rows = rowsOf<{ balance: string | number }>(await db.execute(sql`SELECT balance FROM points_accounts WHERE openid = ${openid}`));
      return rows[0] ? Number(rows[0].balance) : 0;
    },

    /**
     * The user's redemptions still waiting for their draw: those of `drawableCampaigns` (the campaigns that can draw
     * now) first, then the others; oldest first within each. A redemption left waiting in a paused or ended campaign
     * never hides a newer one that can be drawn.
     */
    async pendingRedemptions(openid: string, drawableCampaigns: number[]) {
      return rowsOf<{ id: string; campaign_id: number; deck_prize_id: number | null; redeemed_at: Date; drawable: boolean }>(await db.execute(sql`
        SELECT id::text, campaign_id, deck_prize_id, redeemed_at,
          campaign_id = ANY(ARRAY(SELECT jsonb_array_elements_text(${JSON.stringify(drawableCampaigns)}::jsonb)::int)) AS drawable
        FROM redemptions WHERE openid = ${openid} AND status = 'redeemed'
        ORDER BY drawable DESC, id LIMIT 5`));
    },

    /** The user's answered questions and when (a question the campaign re-asks counts only if answered since the redemption). */
    async answers(openid: string): Promise<Array<{ question_key: string; answered_at: Date | string }>> {
      return rowsOf(await db.execute(sql`SELECT question_key, answered_at FROM profile_answers WHERE openid = ${openid}`));
    },

    async saveAnswer(openid: string, questionKey: string, value: unknown, display: string, campaignId: number, at: Date) {
      await db.execute(sql`
        INSERT INTO profile_answers (openid, question_key, value, display, campaign_id, source, answered_at)
        VALUES (${openid}, ${questionKey}, ${JSON.stringify(value)}::jsonb, ${display}, ${campaignId}, 'chat', ${at.toISOString()})
        ON CONFLICT (openid, question_key) DO UPDATE SET value = EXCLUDED.value, display = EXCLUDED.display,
          campaign_id = EXCLUDED.campaign_id, source = EXCLUDED.source, answered_at = EXCLUDED.answered_at`);
    },

    /** Live, paused and upcoming campaigns with their prizes (the service caches them briefly). */
    async activeCampaigns() {
      const campaigns = rowsOf<Record<string, any>>(await db.execute(sql`
        SELECT * FROM campaigns WHERE status IN ('live', 'paused') OR (status = 'ended' AND ends_at > now() - interval '90 days')`));
      const ids = campaigns.map((c) => c.id as number);
      const prizes = ids.length === 0 ? [] : rowsOf<Record<string, any>>(await db.execute(sql`
        SELECT p.*, EXISTS (SELECT 1 FROM prize_stock_shards s WHERE s.prize_id = p.id) AS limited,
          (SELECT count(*) FROM prize_stock_shards s WHERE s.prize_id = p.id)::int AS shards
        FROM campaign_prizes p WHERE p.campaign_id = ANY(ARRAY(SELECT jsonb_array_elements_text(${JSON.stringify(ids)}::jsonb)::int))
        ORDER BY p.campaign_id, p.position, p.id`));
      return { campaigns, prizes };
    },

    /** Prizes whose stock is gone (total, or today's share on every shard): the draw skips the stock statement. */
    async exhaustedPrizes(prizeIds: number[], day: string): Promise<number[]> {
      if (prizeIds.length === 0) return [];
      const rows = rowsOf<{ prize_id: number }>(await db.execute(sql`
        SELECT prize_id FROM prize_stock_shards WHERE prize_id = ANY(ARRAY(SELECT jsonb_array_elements_text(${JSON.stringify(prizeIds)}::jsonb)::int))
        GROUP BY prize_id
        HAVING bool_and(remaining = 0 OR (daily_share IS NOT NULL AND (CASE WHEN day >= ${day}::date THEN issued_today ELSE 0 END) >= daily_share))`));
      return rows.map((r) => r.prize_id);
    },
  };
}
export type RedeemRepo = ReturnType<typeof createRedeemRepo>;
