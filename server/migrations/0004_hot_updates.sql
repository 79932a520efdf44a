-- Storage settings for the rows every webhook message updates (drizzle-kit does not model fillfactor).
-- Free space in each page lets these updates be HOT: the new row version stays on its page and no index gets a
-- new entry, which is most of the write cost of a message (measured with npm run bench:redeem, docs/BENCHMARKS.md).
-- webhook_dedup: processing → replied, once per message. followers, cs_grants: every message of the user.
-- campaign_user_counters, points_accounts: every redemption / points change of the user.
ALTER TABLE "webhook_dedup" SET (fillfactor = 80);--> statement-breakpoint
ALTER TABLE "followers" SET (fillfactor = 70);--> statement-breakpoint
ALTER TABLE "cs_grants" SET (fillfactor = 70);--> statement-breakpoint
ALTER TABLE "campaign_user_counters" SET (fillfactor = 70);--> statement-breakpoint
ALTER TABLE "points_accounts" SET (fillfactor = 70);
--> statement-breakpoint
-- Nothing reads the interaction log by kind through a b-tree; a BRIN index on the arrival time serves time-window
-- scans (dashboards by kind and day) at a fraction of the write cost of a b-tree entry per message.
DROP INDEX IF EXISTS "interactions_kind_idx";--> statement-breakpoint
CREATE INDEX IF NOT EXISTS "interactions_received_brin" ON "interactions" USING brin ("received_at");
--> statement-breakpoint
-- One unit of a limited prize, taken inside the redemption statement itself (a pre-drawn limited prize then costs no
-- second transaction). Tries the preferred shard first, then any with stock (total and today's share), one
-- conditional decrement at a time, and never waits for a shard another transaction holds: a statement that already
-- holds shards must not wait for more (that is how concurrent batches would deadlock). Returns true when a unit was
-- taken, false when none is left, and NULL when every shard with stock was busy — the caller then draws in its own
-- transaction (campaigns/redeem-repo.ts drawWithStock), which may wait.
CREATE OR REPLACE FUNCTION take_prize_stock(p_prize integer, p_shard integer, p_day date) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  s smallint;
  busy boolean := false;
BEGIN
  FOR s IN
    SELECT shard FROM prize_stock_shards
    WHERE prize_id = p_prize AND remaining > 0
      AND (daily_share IS NULL OR (CASE WHEN day = p_day THEN issued_today ELSE 0 END) < daily_share)
    ORDER BY shard = p_shard DESC, shard
  LOOP
    PERFORM 1 FROM prize_stock_shards
    WHERE prize_id = p_prize AND shard = s AND remaining > 0
      AND (daily_share IS NULL OR (CASE WHEN day = p_day THEN issued_today ELSE 0 END) < daily_share)
    FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
      busy := true; -- held by another transaction (or emptied since the scan): not a verdict on the stock
      CONTINUE;
    END IF;
    UPDATE prize_stock_shards SET remaining = remaining - 1,
      issued_today = CASE WHEN day = p_day THEN issued_today + 1 ELSE 1 END, day = p_day
    WHERE prize_id = p_prize AND shard = s;
    RETURN true;
  END LOOP;
  IF busy THEN RETURN NULL; END IF;
  RETURN false;
END $$;
