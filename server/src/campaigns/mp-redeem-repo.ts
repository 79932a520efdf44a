/**
 * Reads and writes of the mini program's redemption flow that the chat flow does not need (SQL only). The redemption,
 * the draw and stock use the chat's statements in redeem-repo.ts unchanged.
 */
import { sql } from 'drizzle-orm';
import type { Database } from '../db/client.ts';
import { rowsOf } from '../db/retry.ts';

export interface MpRedemptionRow {
  id: string;
  campaign_id: number;
  campaign_name: string;
  status: 'redeemed' | 'drawn';
  redeemed_at: Date | string;
  deck_prize_id: number | null;
  draw_id: string | null;
  prize_id: number | null;
  outcome: 'won' | 'lost' | 'out_of_stock' | null;
  drawn_at: Date | string | null;
  prize_name: string | null;
}

export interface AnswerRow {
  question_key: string;
  display: string;
  answered_at: Date | string;
}

export interface NewAnswer {
  key: string;
  value: unknown;
  display: string;
}

const SELECT_REDEMPTION = sql`
  SELECT r.id::text AS id, r.campaign_id, c.name AS campaign_name, r.status, r.redeemed_at, r.deck_prize_id,
         d.id::text AS draw_id, d.prize_id, d.outcome, d.created_at AS drawn_at, p.name AS prize_name
  FROM redemptions r
  JOIN campaigns c ON c.id = r.campaign_id
  LEFT JOIN draws d ON d.redemption_id = r.id
  LEFT JOIN campaign_prizes p ON p.id = d.prize_id`;

export function createMpRedeemRepo(database: Database) {
  const { db } = database;
  return {
    /** A redemption of this member (someone else's is "not found"). */
    async redemption(openid: string, id: string): Promise<MpRedemptionRow | null> {
      const rows = rowsOf<MpRedemptionRow>(await db.execute(sql`${SELECT_REDEMPTION} WHERE r.id = ${id} AND r.openid = ${openid}`));
      return rows[0] ?? null;
    },

    /** The member's own redemption of a code (a double submit of the same code finds it). */
    async redemptionOfCode(openid: string, keyHex: string): Promise<MpRedemptionRow | null> {
      const rows = rowsOf<MpRedemptionRow>(await db.execute(sql`${SELECT_REDEMPTION} WHERE r.code_key = decode(${keyHex}, 'hex') AND r.openid = ${openid}`));
      return rows[0] ?? null;
    },

    async list(openid: string, limit: number): Promise<MpRedemptionRow[]> {
      return rowsOf<MpRedemptionRow>(await db.execute(sql`${SELECT_REDEMPTION} WHERE r.openid = ${openid} ORDER BY r.id DESC LIMIT ${limit}`));
    },

    async answers(openid: string): Promise<AnswerRow[]> {
      return rowsOf<AnswerRow>(await db.execute(sql`SELECT question_key, display, answered_at FROM profile_answers WHERE openid = ${openid}`));
    },

    /** The form's answers in one statement (all or none), on the profile the chat flow reads too. */
    async saveAnswers(openid: string, campaignId: number, answers: NewAnswer[], at: Date): Promise<void> {
      if (answers.length === 0) return;
      const json = JSON.stringify(answers.map((a) => ({ key: a.key, value: a.value, display: a.display })));
      await db.execute(sql`
        INSERT INTO profile_answers (openid, question_key, value, display, campaign_id, source, answered_at)
        SELECT ${openid}, a.key, a.value, a.display, ${campaignId}, 'mp', ${at.toISOString()}::timestamptz
        FROM jsonb_to_recordset(${json}::jsonb) AS a(key text, value jsonb, display text)
        ON CONFLICT (openid, question_key) DO UPDATE SET value = EXCLUDED.value, display = EXCLUDED.display,
          campaign_id = EXCLUDED.campaign_id, source = EXCLUDED.source, answered_at = EXCLUDED.answered_at`);
    },

    /** The fraud review of a held draw: pending, approved, rejected; null when the draw was never held. */
    async reviewOf(drawId: string): Promise<'pending' | 'approved' | 'rejected' | null> {
      const rows = rowsOf<{ status: 'pending' | 'approved' | 'rejected' }>(await db.execute(sql`SELECT status FROM fraud_reviews WHERE draw_id = ${drawId} ORDER BY id DESC LIMIT 1`));
      return rows[0]?.status ?? null;
    },

    /** Points a draw credited (prize or consolation), read back from its ledger row. */
    async drawPoints(drawId: string): Promise<number> {
      const rows = rowsOf<{ delta: number }>(await db.execute(sql`
        SELECT delta FROM points_ledger WHERE idempotency_key IN (${`draw:${drawId}`}, ${`consolation:${drawId}`},
          -- taken back for a fraud review after the draw (look-back), and credited again on approval
          ${`hold:draw:${drawId}`}, ${`release:draw:${drawId}`})`));
      return rows.reduce((s, r) => s + Number(r.delta), 0);
    },
  };
}
export type MpRedeemRepo = ReturnType<typeof createMpRedeemRepo>;
