ALTER TABLE "fraud_user_state" ADD COLUMN "shared_name" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "fraud_user_state" ADD COLUMN "shared_name_answers" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
CREATE INDEX "fraud_identifier_accounts_name_idx" ON "fraud_identifier_accounts" USING btree ("value_hash","first_at") WHERE "fraud_identifier_accounts"."kind" = 'name';--> statement-breakpoint
CREATE INDEX "fraud_identifier_accounts_name_at_idx" ON "fraud_identifier_accounts" USING btree ("first_at") WHERE "fraud_identifier_accounts"."kind" = 'name';