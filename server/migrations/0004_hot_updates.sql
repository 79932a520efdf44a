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
