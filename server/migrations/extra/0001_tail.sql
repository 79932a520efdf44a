--> statement-breakpoint
-- Storage settings drizzle-kit does not model (appended by scripts/db-regen.sh).
-- Codes and redemptions are updated once after insert (redeemed; drawn): free space in each page lets those updates
-- be HOT (no new index entries).
ALTER TABLE "codes" SET (fillfactor = 90);--> statement-breakpoint
ALTER TABLE "redemptions" SET (fillfactor = 85);
