/**
 * SQL of the anti-fraud capability. Every per-user counter changes by one upsert whose arithmetic runs in the
 * statement (exact under concurrency and across instances); the decayed rates are `rate·e^(−Δt/τ) + 1`.
 */
import { sql } from 'drizzle-orm';
import type { Db, Tx } from '../db/client.ts';
import { rowsOf } from '../db/retry.ts';
import type { FraudModel } from './scoring.ts';

const iso = (d: Date) => d.toISOString();

export interface StateRow {
  openid: string;
  unknown_codes: number;
  window_start: Date | string | null;
  wrong_rate: number;
  last_wrong_at: Date | string | null;
  cooldown_level: number;
  cooldown_until: Date | string | null;
  blocked_until: Date | string | null;
  redeem_rate: number;
  redeem_total: number;
  redeem_campaign_id: number | null;
  last_redeem_at: Date | string | null;
  shared_phone: number;
  shared_device: number;
  shared_ip: number;
  shared_name: number;
  shared_name_answers: number;
  answer_print: string | null;
  fast_answers: number;
  blacklist_hit: string | null;
  flagged: boolean;
  print_accounts: number | null;
  subscribed_at: Date | string | null;
  first_seen_at: Date | string | null;
}

export interface ReviewRow {
  id: string | number;
  decision_id: string | number;
  openid: string;
  campaign_id: number;
  draw_id: string | number;
  fulfilment_id: string | number;
  prize_id: number | null;
  stock_shard: number | null;
  stock_day: string | null;
  status: 'pending' | 'approved' | 'rejected';
  reviewer_id: number | null;
  reviewer_name: string | null;
  note: string | null;
  blacklisted: boolean;
  created_at: Date | string;
  reviewed_at: Date | string | null;
  score: number;
  reasons: unknown;
  features: unknown;
  model_version: number;
  prize_name: string | null;
  prize_kind: string | null;
  amount: number | null;
  fulfilment_state: string | null;
}

export function createFraudRepo(db: Db) {
  return {
    /* ---- models ---- */
    async latestModel(): Promise<{ version: number; model: FraudModel; note: string | null; created_by: string; created_at: Date | string } | undefined> {
      return rowsOf<any>(await db.execute(sql`SELECT version, model, note, created_by, created_at FROM fraud_models ORDER BY version DESC LIMIT 1`))[0];
    },
    async models() {
      return rowsOf<{ version: number; model: FraudModel; note: string | null; created_by: string; created_at: Date | string }>(await db.execute(sql`
        SELECT version, model, note, created_by, created_at FROM fraud_models ORDER BY version DESC LIMIT 100`));
    },
    /** Version 1 from configuration, once (every instance may try). */
    async seedModel(model: FraudModel, at: Date) {
      await db.execute(sql`INSERT INTO fraud_models (version, model, note, created_by, created_at)
        VALUES (${model.version}, ${JSON.stringify(model)}::jsonb, 'defaults from configuration', 'system', ${iso(at)}) ON CONFLICT (version) DO NOTHING`);
    },
    /** The next version; null when another writer took the same number (the caller retries). */
    /** Saves the next version, made from version `basedOn`, only if that is still the latest (else null). */
    async insertModel(model: Omit<FraudModel, 'version'>, note: string | null, by: string, at: Date, basedOn: number): Promise<number | null> {
      const rows = rowsOf<{ version: number }>(await db.execute(sql`
        INSERT INTO fraud_models (version, model, note, created_by, created_at)
        SELECT coalesce(max(version), 0) + 1, ${JSON.stringify(model)}::jsonb || jsonb_build_object('version', coalesce(max(version), 0) + 1), ${note}, ${by}, ${iso(at)}
        FROM fraud_models
        HAVING coalesce(max(version), 0) = ${basedOn}
        ON CONFLICT (version) DO NOTHING RETURNING version`));
      return rows[0]?.version ?? null;
    },

    /* ---- read-mostly caches ---- */
    /** Changes whenever an entry is added or removed (ids are never reused): the keys are reloaded only then. */
    async blacklistStamp(): Promise<string> {
      const [r] = rowsOf<{ n: number; m: number }>(await db.execute(sql`SELECT count(*)::int AS n, coalesce(max(id), 0)::int AS m FROM fraud_blacklist`));
      return `${r?.n ?? 0}:${r?.m ?? 0}`;
    },
    async blacklistKeys(): Promise<Array<{ kind: string; value_hash: string }>> {
      return rowsOf(await db.execute(sql`SELECT kind, value_hash FROM fraud_blacklist`));
    },
    async flaggedSince(since: Date | null): Promise<Array<{ openid: string; flagged: boolean; updated_at: Date | string }>> {
      return since
        ? rowsOf(await db.execute(sql`SELECT openid, flagged, updated_at FROM fraud_user_state WHERE flagged AND updated_at >= ${iso(since)}`))
        : rowsOf(await db.execute(sql`SELECT openid, flagged, updated_at FROM fraud_user_state WHERE flagged`));
    },

    /** A user's stored signals, with the follower's age and how many accounts share their answers (one round trip). */
    async state(openid: string): Promise<StateRow | undefined> {
      return rowsOf<StateRow>(await db.execute(sql`
        SELECT s.*, p.accounts AS print_accounts, f.subscribed_at, f.first_seen_at
        FROM (SELECT ${openid}::text AS openid) k
        LEFT JOIN fraud_user_state s ON s.openid = k.openid
        LEFT JOIN fraud_answer_prints p ON p.print = s.answer_print
        LEFT JOIN followers f ON f.openid = k.openid`))[0];
    },

    /** The stored signals of several users at once (look-back), each with its openid even when it has no row. */
    async states(openids: string[]): Promise<StateRow[]> {
      if (openids.length === 0) return [];
      return rowsOf<StateRow & { key_openid: string }>(await db.execute(sql`
        SELECT s.*, k.o AS key_openid, p.accounts AS print_accounts, f.subscribed_at, f.first_seen_at
        FROM jsonb_array_elements_text(${JSON.stringify(openids)}::jsonb) AS k(o)
        LEFT JOIN fraud_user_state s ON s.openid = k.o
        LEFT JOIN fraud_answer_prints p ON p.print = s.answer_print
        LEFT JOIN followers f ON f.openid = k.o`)).map(({ key_openid, ...r }) => ({ ...r, openid: key_openid }));
    },

    /**
     * Won draws of these users since `since` that no reviewer has seen: what a look-back may still hold. Points
     * prizes are credited by the draw statement (ledger key `draw:<id>`, no job); other kinds have a job of that key.
     */
    async unreviewedWins(openids: string[], since: Date): Promise<Array<{
      draw_id: string; openid: string; campaign_id: number; redemption_id: string; prize_id: number; prize_kind: string;
      points: number | null; job_id: string | number | null; job_state: string | null; job_detail: unknown;
    }>> {
      if (openids.length === 0) return [];
      return rowsOf(await db.execute(sql`
        SELECT d.id::text AS draw_id, d.openid, d.campaign_id, d.redemption_id::text, d.prize_id, p.kind AS prize_kind,
          l.delta AS points, f.id AS job_id, f.state AS job_state, f.detail AS job_detail
        FROM redemptions r
        JOIN draws d ON d.redemption_id = r.id
        JOIN campaign_prizes p ON p.id = d.prize_id
        LEFT JOIN points_ledger l ON l.idempotency_key = 'draw:' || d.id
        LEFT JOIN fulfilments f ON f.source_key = 'draw:' || d.id
        WHERE r.openid IN (SELECT jsonb_array_elements_text(${JSON.stringify(openids)}::jsonb))
          AND d.created_at >= ${iso(since)} AND d.outcome = 'won'
          AND NOT EXISTS (SELECT 1 FROM fraud_reviews v WHERE v.draw_id = d.id)
        ORDER BY d.id`));
    },

    /** A wrong code: window count, decayed rate. Returns the counts after it. */
    async wrongCode(openid: string, now: Date, windowH: number) {
      return rowsOf<{ unknown_codes: number; cooldown_level: number; wrong_rate: number; cooldown_until: Date | string | null }>(await db.execute(sql`
        INSERT INTO fraud_user_state AS s (openid, unknown_codes, window_start, wrong_rate, last_wrong_at, flagged, updated_at)
        VALUES (${openid}, 1, ${iso(now)}, 1, ${iso(now)}, true, ${iso(now)})
        ON CONFLICT (openid) DO UPDATE SET
          unknown_codes = CASE WHEN s.window_start IS NULL OR s.window_start < ${iso(now)}::timestamptz - make_interval(hours => ${windowH}) THEN 1 ELSE s.unknown_codes + 1 END,
          cooldown_level = CASE WHEN s.window_start IS NULL OR s.window_start < ${iso(now)}::timestamptz - make_interval(hours => ${windowH}) THEN 0 ELSE s.cooldown_level END,
          window_start = CASE WHEN s.window_start IS NULL OR s.window_start < ${iso(now)}::timestamptz - make_interval(hours => ${windowH}) THEN ${iso(now)}::timestamptz ELSE s.window_start END,
          wrong_rate = s.wrong_rate * exp(-greatest(extract(epoch FROM ${iso(now)}::timestamptz - coalesce(s.last_wrong_at, ${iso(now)}::timestamptz)), 0) / 60.0) + 1,
          last_wrong_at = ${iso(now)}, flagged = true, updated_at = ${iso(now)}
        RETURNING unknown_codes, cooldown_level, wrong_rate, cooldown_until`))[0]!;
    },
    async startCooldown(openid: string, until: Date, now: Date) {
      await db.execute(sql`UPDATE fraud_user_state SET cooldown_until = greatest(coalesce(cooldown_until, ${iso(until)}::timestamptz), ${iso(until)}::timestamptz),
        cooldown_level = cooldown_level + 1, updated_at = ${iso(now)} WHERE openid = ${openid}`);
    },

    /** A block decision: code attempts are refused until `until`. */
    async block(openid: string, until: Date, now: Date) {
      await db.execute(sql`
        INSERT INTO fraud_user_state AS s (openid, blocked_until, flagged, updated_at) VALUES (${openid}, ${iso(until)}, true, ${iso(now)})
        ON CONFLICT (openid) DO UPDATE SET blocked_until = greatest(coalesce(s.blocked_until, EXCLUDED.blocked_until), EXCLUDED.blocked_until), flagged = true, updated_at = EXCLUDED.updated_at`);
    },
    /** Redemptions above the allowance: the decayed hourly rate goes to the database so every instance sees it. */
    /**
     * Adds an instance's redemptions since its last write (`delta`, decayed to `now`) to the user's shared hourly
     * rate: with every instance adding its own, the row is the sum over instances.
     */
    async velocity(openid: string, delta: number, total: number, campaignId: number, now: Date) {
      await db.execute(sql`
        INSERT INTO fraud_user_state AS s (openid, redeem_rate, redeem_total, redeem_campaign_id, last_redeem_at, flagged, updated_at)
        VALUES (${openid}, ${delta}, ${total}, ${campaignId}, ${iso(now)}, true, ${iso(now)})
        ON CONFLICT (openid) DO UPDATE SET
          redeem_rate = s.redeem_rate * exp(-greatest(extract(epoch FROM ${iso(now)}::timestamptz - coalesce(s.last_redeem_at, ${iso(now)}::timestamptz)), 0) / 3600.0) + ${delta},
          -- The campaign's count (from its counter); another campaign's count is replaced, not carried over.
          redeem_total = CASE WHEN s.redeem_campaign_id IS NOT DISTINCT FROM EXCLUDED.redeem_campaign_id
            THEN greatest(s.redeem_total, EXCLUDED.redeem_total) ELSE EXCLUDED.redeem_total END,
          redeem_campaign_id = EXCLUDED.redeem_campaign_id,
          last_redeem_at = greatest(coalesce(s.last_redeem_at, ${iso(now)}::timestamptz), ${iso(now)}::timestamptz), flagged = true, updated_at = ${iso(now)}`);
    },

    /**
     * One golden answer: merged into the user's answers; returns them and the previous fingerprint. With `name` (the
     * name question, a counted name's keyed hash) the same statement links the account to the name and returns, for
     * each `since` (a window start, shortest window first), how many *other* accounts not yet flagged for a shared name
     * typed it since then (`name_others`), and how many accounts already flagged for it typed it in the shortest one
     * (`name_flagged`); counted up to 500 rows in all. The insert itself is not visible to the counts.
     */
    async answer(openid: string, key: string, value: string, fast: boolean, now: Date, tx: Tx = db, name?: { hash: string; since: Date[] }) {
      type Row = { answers: Record<string, string>; answer_print: string | null; fast_answers: number; name_others: number[] | null; name_flagged: number | null };
      const upsert = sql`
        INSERT INTO fraud_user_state AS s (openid, answers, fast_answers, flagged, updated_at)
        VALUES (${openid}, jsonb_build_object(${key}::text, ${value}::text), ${fast ? 1 : 0}, ${fast}, ${iso(now)})
        ON CONFLICT (openid) DO UPDATE SET answers = coalesce(s.answers, '{}'::jsonb) || jsonb_build_object(${key}::text, ${value}::text),
          fast_answers = s.fast_answers + ${fast ? 1 : 0}, flagged = s.flagged OR ${fast}, updated_at = ${iso(now)}
        RETURNING answers, answer_print, fast_answers`;
      if (!name || name.since.length === 0) return { ...rowsOf<Row>(await tx.execute(upsert))[0]!, name_others: null, name_flagged: null };
      const earliest = name.since.reduce((a, b) => (a < b ? a : b));
      const counts = sql.join(name.since.map((d) => sql`count(*) FILTER (WHERE x.first_at >= ${iso(d)} AND x.shared_name = 0)::int`), sql`, `);
      return rowsOf<Row>(await tx.execute(sql`
        WITH link AS (
          INSERT INTO fraud_identifier_accounts (kind, value_hash, openid, first_at) VALUES ('name', ${name.hash}, ${openid}, ${iso(now)})
          ON CONFLICT DO NOTHING),
        st AS (${upsert}),
        c AS (
          SELECT ARRAY[${counts}] AS name_others, count(*) FILTER (WHERE x.first_at >= ${iso(name.since[0]!)} AND x.shared_name > 0)::int AS name_flagged
          FROM (SELECT a.first_at, coalesce(u.shared_name, 0) AS shared_name FROM fraud_identifier_accounts a LEFT JOIN fraud_user_state u ON u.openid = a.openid
            WHERE a.kind = 'name' AND a.value_hash = ${name.hash} AND a.first_at >= ${iso(earliest)} AND a.openid <> ${openid} LIMIT 500) x)
        SELECT st.answers, st.answer_print, st.fast_answers, c.name_others, c.name_flagged FROM st, c`))[0]!;
    },
    /** Name answers typed by every account since each window start, each counted up to its `limit` (partial index ranges). */
    async nameAnswersSince(windows: Array<{ since: Date; limit: number }>): Promise<number[]> {
      if (windows.length === 0) return [];
      const counts = sql.join(windows.map((w) => sql`(SELECT count(*)::int FROM (SELECT 1 FROM fraud_identifier_accounts
        WHERE kind = 'name' AND first_at >= ${iso(w.since)} LIMIT ${w.limit}) x)`), sql`, `);
      const [r] = rowsOf<{ n: number[] }>(await db.execute(sql`SELECT ARRAY[${counts}] AS n`));
      return r?.n ?? windows.map(() => 0);
    },
    /**
     * `me` continues a cluster flagged for this name whose latest accounts typed it since `since`: it gets the largest
     * such cluster's size plus one and that cluster's window count, and is flagged. Returns the accounts written.
     */
    async joinSharedName(hash: string, since: Date, me: string, now: Date): Promise<string[]> {
      return rowsOf<{ openid: string }>(await db.execute(sql`
        INSERT INTO fraud_user_state AS s (openid, shared_name, shared_name_answers, flagged, updated_at)
        SELECT ${me}, c.shared_name + 1, c.shared_name_answers, true, ${iso(now)} FROM (
          SELECT u.shared_name, u.shared_name_answers FROM fraud_identifier_accounts a JOIN fraud_user_state u ON u.openid = a.openid
          WHERE a.kind = 'name' AND a.value_hash = ${hash} AND a.first_at >= ${iso(since)} AND a.openid <> ${me} AND u.shared_name > 0
          ORDER BY u.shared_name DESC LIMIT 1) c
        ON CONFLICT (openid) DO UPDATE SET
          shared_name_answers = CASE WHEN EXCLUDED.shared_name >= s.shared_name THEN EXCLUDED.shared_name_answers ELSE s.shared_name_answers END,
          shared_name = greatest(s.shared_name, EXCLUDED.shared_name), flagged = true, updated_at = EXCLUDED.updated_at
        RETURNING openid`)).map((r) => r.openid);
    },
    /**
     * The accounts not yet flagged for a shared name that typed this name since `since`, and `me`, or `only` that one:
     * each gets the cluster's size and the window's name answers and is flagged. Returns the accounts written.
     */
    async flagSharedName(hash: string, since: Date, accounts: number, answers: number, me: string, now: Date, only?: string): Promise<string[]> {
      return rowsOf<{ openid: string }>(await db.execute(sql`
        INSERT INTO fraud_user_state AS s (openid, shared_name, shared_name_answers, flagged, updated_at)
        SELECT a.openid, ${accounts}, ${answers}, true, ${iso(now)} FROM fraud_identifier_accounts a LEFT JOIN fraud_user_state u ON u.openid = a.openid
        WHERE a.kind = 'name' AND a.value_hash = ${hash} AND ((a.first_at >= ${iso(since)} AND coalesce(u.shared_name, 0) = 0) OR a.openid = ${me})
          AND ${only !== undefined ? sql`a.openid = ${only}` : sql`true`}
        ON CONFLICT (openid) DO UPDATE SET
          shared_name_answers = CASE WHEN EXCLUDED.shared_name >= s.shared_name THEN EXCLUDED.shared_name_answers ELSE s.shared_name_answers END,
          shared_name = greatest(s.shared_name, EXCLUDED.shared_name), flagged = true, updated_at = EXCLUDED.updated_at
        RETURNING openid`)).map((r) => r.openid);
    },
    /** Moves the user from the old fingerprint to the new one; returns how many accounts now share the new one. */
    async movePrint(openid: string, from: string | null, to: string, now: Date, tx: Tx = db): Promise<number> {
      if (from) await tx.execute(sql`UPDATE fraud_answer_prints SET accounts = greatest(accounts - 1, 0) WHERE print = ${from}`);
      const [row] = rowsOf<{ accounts: number }>(await tx.execute(sql`
        INSERT INTO fraud_answer_prints AS p (print, accounts, first_at) VALUES (${to}, 1, ${iso(now)})
        ON CONFLICT (print) DO UPDATE SET accounts = p.accounts + 1 RETURNING accounts`));
      await tx.execute(sql`UPDATE fraud_user_state SET answer_print = ${to} WHERE openid = ${openid}`);
      return row!.accounts;
    },
    /** Every account with this fingerprint is read before its next code. */
    async flagPrint(print: string, now: Date): Promise<string[]> {
      return rowsOf<{ openid: string }>(await db.execute(sql`
        UPDATE fraud_user_state SET flagged = true, updated_at = ${iso(now)} WHERE answer_print = ${print} AND NOT flagged RETURNING openid`)).map((r) => r.openid);
    },

    /** Accounts bound to this phone hash (members.phone_hash). */
    async openidsWithPhoneHash(hash: string): Promise<string[]> {
      return rowsOf<{ openid: string }>(await db.execute(sql`SELECT openid FROM members WHERE phone_hash = ${hash}`)).map((r) => r.openid);
    },
    async phoneHashOf(openid: string): Promise<string | null> {
      return rowsOf<{ phone_hash: string | null }>(await db.execute(sql`SELECT phone_hash FROM members WHERE openid = ${openid}`))[0]?.phone_hash ?? null;
    },
    /** Sets how many accounts share the phone on each of them (and flags them when above the allowance). */
    async sharedPhone(openids: string[], n: number, flag: boolean, blacklistHit: string | null, now: Date) {
      await db.execute(sql`
        INSERT INTO fraud_user_state AS s (openid, shared_phone, blacklist_hit, flagged, updated_at)
        SELECT o, ${n}, ${blacklistHit}, ${flag}, ${iso(now)} FROM jsonb_array_elements_text(${JSON.stringify(openids)}::jsonb) AS o
        ON CONFLICT (openid) DO UPDATE SET shared_phone = EXCLUDED.shared_phone, blacklist_hit = coalesce(EXCLUDED.blacklist_hit, s.blacklist_hit),
          flagged = s.flagged OR EXCLUDED.flagged, updated_at = EXCLUDED.updated_at`);
    },
    /** Identifiers seen by the mini program (unionid, device, IP): accounts sharing them and blacklist hits. */
    async sharedDevice(openid: string, n: number, blacklistHit: string | null, flag: boolean, now: Date) {
      await db.execute(sql`
        INSERT INTO fraud_user_state AS s (openid, shared_device, blacklist_hit, flagged, updated_at)
        VALUES (${openid}, ${n}, ${blacklistHit}, ${flag}, ${iso(now)})
        ON CONFLICT (openid) DO UPDATE SET shared_device = greatest(s.shared_device, EXCLUDED.shared_device),
          blacklist_hit = coalesce(EXCLUDED.blacklist_hit, s.blacklist_hit), flagged = s.flagged OR EXCLUDED.flagged, updated_at = EXCLUDED.updated_at`);
    },

    /**
     * Links this account to each identifier (keyed hashes) and returns how many accounts each one has now. One
     * statement: a link already there inserts nothing and adds nothing, so repeats and other instances never
     * double-count; concurrent first links of one identifier serialise on its counter row.
     */
    async linkIdentifiers(openid: string, ids: Array<{ kind: string; hash: string }>, now: Date): Promise<Array<{ kind: string; value_hash: string; accounts: number }>> {
      if (ids.length === 0) return [];
      return rowsOf(await db.execute(sql`
        WITH v AS (SELECT e->>'kind' AS kind, e->>'hash' AS hash FROM jsonb_array_elements(${JSON.stringify(ids)}::jsonb) e),
        ins AS (
          INSERT INTO fraud_identifier_accounts (kind, value_hash, openid, first_at) SELECT kind, hash, ${openid}, ${iso(now)} FROM v
          ON CONFLICT DO NOTHING RETURNING kind, value_hash)
        INSERT INTO fraud_identifiers AS i (kind, value_hash, accounts, first_at)
        SELECT v.kind, v.hash, (SELECT count(*)::int FROM ins WHERE ins.kind = v.kind AND ins.value_hash = v.hash), ${iso(now)} FROM v
        ON CONFLICT (kind, value_hash) DO UPDATE SET accounts = i.accounts + EXCLUDED.accounts
        RETURNING kind, value_hash, accounts`));
    },
    /** Accounts first seen on an identifier since `since`, this one included (counted up to `max`). */
    async arrivalsSince(kind: string, hash: string, since: Date, max = 50): Promise<number> {
      const [r] = rowsOf<{ n: number }>(await db.execute(sql`
        SELECT count(*)::int AS n FROM (SELECT 1 FROM fraud_identifier_accounts WHERE kind = ${kind} AND value_hash = ${hash} AND first_at >= ${iso(since)} LIMIT ${max}) x`));
      return r?.n ?? 0;
    },
    /** Every account seen on this identifier (or `only` that one) gets its account count and is flagged (read before its next code). */
    async flagIdentifierAccounts(kind: string, hash: string, n: number, column: 'shared_device' | 'shared_ip', now: Date, only?: string): Promise<string[]> {
      const col = column === 'shared_ip' ? sql`shared_ip` : sql`shared_device`;
      return rowsOf<{ openid: string }>(await db.execute(sql`
        INSERT INTO fraud_user_state AS s (openid, ${col}, flagged, updated_at)
        SELECT openid, ${n}, true, ${iso(now)} FROM fraud_identifier_accounts WHERE kind = ${kind} AND value_hash = ${hash}
          AND ${only !== undefined ? sql`openid = ${only}` : sql`true`}
        ON CONFLICT (openid) DO UPDATE SET ${col} = greatest(s.${col}, EXCLUDED.${col}), flagged = true, updated_at = EXCLUDED.updated_at
        RETURNING openid`)).map((r) => r.openid);
    },

    /* ---- decisions ---- */
    async recordDecision(d: {
      openid: string; stage: 'code' | 'draw' | 'lookback'; decision: 'allow' | 'hold' | 'block'; score: number; reasons: unknown; features: unknown;
      modelVersion: number; campaignId?: number | null; redemptionId?: string | number | null; drawId?: string | number | null; at: Date;
    }, tx: Tx = db): Promise<number> {
      const rows = rowsOf<{ id: string | number }>(await tx.execute(sql`
        INSERT INTO fraud_decisions (openid, stage, decision, score, reasons, features, model_version, campaign_id, redemption_id, draw_id, created_at)
        VALUES (${d.openid}, ${d.stage}, ${d.decision}, ${d.score}, ${JSON.stringify(d.reasons)}::jsonb, ${JSON.stringify(d.features)}::jsonb, ${d.modelVersion},
          ${d.campaignId ?? null}, ${d.redemptionId ?? null}, ${d.drawId ?? null}, ${iso(d.at)})
        RETURNING id`));
      return Number(rows[0]!.id);
    },
    /** The decision on the redemption row itself (the redemptions export's risk column). */
    async markRedemption(redemptionId: string | number, decision: 'allow' | 'hold' | 'block', v: { score: number; reasons: Array<{ feature: string }>; modelVersion: number }, tx: Tx = db) {
      const risk = { decision, score: Math.round(v.score * 1000) / 1000, reasons: v.reasons.map((r) => r.feature), version: v.modelVersion };
      await tx.execute(sql`UPDATE redemptions SET risk = ${JSON.stringify(risk)}::jsonb WHERE id = ${redemptionId}`);
    },
    async decisionsOf(openid: string, limit = 20) {
      return rowsOf<Record<string, unknown>>(await db.execute(sql`
        SELECT id, stage, decision, score, reasons, model_version, campaign_id, redemption_id::text, draw_id::text, created_at
        FROM fraud_decisions WHERE openid = ${openid} ORDER BY id DESC LIMIT ${limit}`));
    },
    /**
     * The user's history for a reviewer: redemptions, draws and prizes by state. Draws are reached through the
     * user's redemptions (draws has no index by user: a filter on draws.openid scanned every draw of every campaign).
     */
    async historyOf(openid: string) {
      const [row] = rowsOf<Record<string, unknown>>(await db.execute(sql`
        SELECT (SELECT count(*)::int FROM redemptions WHERE openid = ${openid}) AS redemptions,
               (SELECT count(*)::int FROM redemptions r JOIN draws d ON d.redemption_id = r.id WHERE r.openid = ${openid} AND d.outcome = 'won') AS prizes_won,
               (SELECT coalesce(jsonb_object_agg(state, n), '{}'::jsonb) FROM (SELECT state, count(*)::int AS n FROM fulfilments WHERE openid = ${openid} GROUP BY state) x) AS fulfilments,
               (SELECT min(redeemed_at) FROM redemptions WHERE openid = ${openid}) AS first_redemption_at,
               (SELECT subscribed_at FROM followers WHERE openid = ${openid}) AS subscribed_at`));
      return row ?? {};
    },

    /* ---- reviews ---- */
    async insertReview(r: { decisionId: number; openid: string; campaignId: number; drawId: string | number; fulfilmentId: string | number; prizeId: number | null; shard: number | null; day: string | null; at: Date }, tx: Tx) {
      const rows = rowsOf<{ id: string | number }>(await tx.execute(sql`
        INSERT INTO fraud_reviews (decision_id, openid, campaign_id, draw_id, fulfilment_id, prize_id, stock_shard, stock_day, status, created_at)
        VALUES (${r.decisionId}, ${r.openid}, ${r.campaignId}, ${r.drawId}, ${r.fulfilmentId}, ${r.prizeId}, ${r.shard}, ${r.day}, 'pending', ${iso(r.at)})
        ON CONFLICT (draw_id) DO NOTHING RETURNING id`));
      return rows[0] ? Number(rows[0].id) : null;
    },
    async reviews(filter: { status?: string | undefined; beforeId?: number | undefined; limit: number }, id?: number): Promise<ReviewRow[]> {
      return rowsOf<ReviewRow>(await db.execute(sql`
        SELECT r.*, d.score, d.reasons, d.features, d.model_version, p.name AS prize_name, p.kind AS prize_kind, f.amount, f.state AS fulfilment_state
        FROM fraud_reviews r
        JOIN fraud_decisions d ON d.id = r.decision_id
        LEFT JOIN campaign_prizes p ON p.id = r.prize_id
        LEFT JOIN fulfilments f ON f.id = r.fulfilment_id
        WHERE ${id !== undefined ? sql`r.id = ${id}` : sql`true`}
          AND ${filter.status ? sql`r.status = ${filter.status}` : sql`true`}
          AND ${filter.beforeId !== undefined ? sql`r.id < ${filter.beforeId}` : sql`true`}
        ORDER BY r.id DESC LIMIT ${filter.limit}`));
    },
    /** pending → approved | rejected, once: the loser of a double click gets nothing back. */
    async settleReview(id: number, to: 'approved' | 'rejected', by: { id: number | null; name: string }, note: string | null, blacklisted: boolean, at: Date, tx: Tx) {
      return rowsOf<{ id: string | number; openid: string; fulfilment_id: string | number; prize_id: number | null; stock_shard: number | null; stock_day: string | null; draw_id: string | number }>(await tx.execute(sql`
        UPDATE fraud_reviews SET status = ${to}, reviewer_id = ${by.id}, reviewer_name = ${by.name}, note = ${note}, blacklisted = ${blacklisted}, reviewed_at = ${iso(at)}
        WHERE id = ${id} AND status = 'pending'
        RETURNING id, openid, fulfilment_id, prize_id, stock_shard, stock_day, draw_id`))[0];
    },
    /** A rejected prize goes back to stock: the shard it came from (or the first one), today's count too. */
    async returnStock(prizeId: number, shard: number | null, day: string | null, tx: Tx) {
      await tx.execute(sql`
        UPDATE prize_stock_shards SET remaining = remaining + 1,
          issued_today = CASE WHEN ${day}::date IS NOT NULL AND day = ${day}::date THEN greatest(issued_today - 1, 0) ELSE issued_today END
        WHERE prize_id = ${prizeId} AND shard = coalesce(${shard}::smallint, (SELECT min(shard) FROM prize_stock_shards WHERE prize_id = ${prizeId}))`);
    },

    /* ---- blacklist ---- */
    async blacklist(filter: { kind?: string | undefined; beforeId?: number | undefined; limit: number }) {
      return rowsOf<{ id: number; kind: string; hint: string; note: string | null; created_by: string; created_at: Date | string }>(await db.execute(sql`
        SELECT id, kind, hint, note, created_by, created_at FROM fraud_blacklist
        WHERE ${filter.kind ? sql`kind = ${filter.kind}` : sql`true`} AND ${filter.beforeId !== undefined ? sql`id < ${filter.beforeId}` : sql`true`}
        ORDER BY id DESC LIMIT ${filter.limit}`));
    },
    /** Inserts entries not listed yet; returns the ids of the new ones (existing ones are left as they are). */
    async addBlacklist(entries: Array<{ kind: string; hash: string; hint: string; note: string | null }>, by: string, at: Date, tx: Tx = db) {
      if (entries.length === 0) return [] as Array<{ id: number; kind: string; hint: string; note: string | null; created_by: string; created_at: Date | string }>;
      return rowsOf<{ id: number; kind: string; hint: string; note: string | null; created_by: string; created_at: Date | string }>(await tx.execute(sql`
        INSERT INTO fraud_blacklist (kind, value_hash, hint, note, created_by, created_at)
        SELECT e->>'kind', e->>'hash', e->>'hint', e->>'note', ${by}, ${iso(at)} FROM jsonb_array_elements(${JSON.stringify(entries)}::jsonb) e
        ON CONFLICT (kind, value_hash) DO NOTHING
        RETURNING id, kind, hint, note, created_by, created_at`));
    },
    async removeBlacklist(id: number): Promise<boolean> {
      return rowsOf(await db.execute(sql`DELETE FROM fraud_blacklist WHERE id = ${id} RETURNING id`)).length > 0;
    },
  };
}
export type FraudRepo = ReturnType<typeof createFraudRepo>;
