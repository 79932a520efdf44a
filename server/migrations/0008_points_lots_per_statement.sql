-- Points lots for credits, one INSERT per ledger statement instead of one trigger call per row.
-- The row trigger of 0003 ran its INSERT through PL/pgSQL once per ledger row: a batched draw statement crediting n
-- users paid n function calls and n single-row executor runs (about a sixth of the redemption statement's time,
-- measured with EXPLAIN ANALYZE in a npm run bench:redeem database, docs/BENCHMARKS.md). Credits now get their lots from one statement-level
-- trigger over the statement's new rows (a transition table), set-based; debits keep the row trigger, because each
-- takes from the user's open lots in FIFO order, which depends on the debits before it.
-- What a ledger row gets is unchanged: a credit a lot of its points (validity from detail.validityDays, else 365 days),
-- a debit its points taken from the oldest open lots first. No ledger statement mixes credits and debits of one user
-- (a statement's row triggers fire before its statement trigger, so a debit would not see a lot created by the same
-- statement); every statement that writes the ledger either credits (the draw batch, a single credit) or debits
-- (a single debit).
CREATE FUNCTION "points_lots_earn"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO points_lots (openid, ledger_id, points, remaining, earned_at, expires_at)
	SELECT a.openid, a.id, a.delta, a.delta, a.created_at,
		a.created_at + make_interval(days => COALESCE(CASE WHEN jsonb_typeof(a.detail) = 'object' AND (a.detail->>'validityDays') ~ '^[0-9]{1,5}$' THEN (a.detail->>'validityDays')::int END, 365))
	FROM added a WHERE a.delta > 0 ORDER BY a.id;
	RETURN NULL;
END $$;
--> statement-breakpoint
DROP TRIGGER "points_ledger_lots" ON "points_ledger";
--> statement-breakpoint
CREATE TRIGGER "points_ledger_lots_spend" AFTER INSERT ON "points_ledger" FOR EACH ROW WHEN (NEW.delta < 0) EXECUTE FUNCTION "points_lots_apply"();
--> statement-breakpoint
CREATE TRIGGER "points_ledger_lots_earn" AFTER INSERT ON "points_ledger" REFERENCING NEW TABLE AS "added" FOR EACH STATEMENT EXECUTE FUNCTION "points_lots_earn"();
