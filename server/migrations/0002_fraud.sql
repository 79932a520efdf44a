-- Migration 0002 (issue 4: anti-fraud). Hand-written while issues 4 and 5 are developed side by side; see README "Migrations".
CREATE TABLE "fraud_models" (
	"version" integer PRIMARY KEY NOT NULL,
	"model" jsonb NOT NULL,
	"note" text,
	"created_by" text NOT NULL,
	"created_at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
CREATE TABLE "fraud_user_state" (
	"openid" text PRIMARY KEY NOT NULL,
	"unknown_codes" integer DEFAULT 0 NOT NULL,
	"window_start" timestamp with time zone,
	"wrong_rate" double precision DEFAULT 0 NOT NULL,
	"last_wrong_at" timestamp with time zone,
	"cooldown_level" integer DEFAULT 0 NOT NULL,
	"cooldown_until" timestamp with time zone,
	"blocked_until" timestamp with time zone,
	"redeem_rate" double precision DEFAULT 0 NOT NULL,
	"redeem_total" integer DEFAULT 0 NOT NULL,
	"last_redeem_at" timestamp with time zone,
	"shared_phone" integer DEFAULT 0 NOT NULL,
	"shared_device" integer DEFAULT 0 NOT NULL,
	"answers" jsonb,
	"answer_print" text,
	"fast_answers" integer DEFAULT 0 NOT NULL,
	"blacklist_hit" text,
	"flagged" boolean DEFAULT false NOT NULL,
	"updated_at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
CREATE TABLE "fraud_answer_prints" (
	"print" text PRIMARY KEY NOT NULL,
	"accounts" integer DEFAULT 0 NOT NULL,
	"first_at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
CREATE TABLE "fraud_decisions" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"openid" text NOT NULL,
	"stage" text NOT NULL,
	"decision" text NOT NULL,
	"score" double precision NOT NULL,
	"reasons" jsonb NOT NULL,
	"features" jsonb NOT NULL,
	"model_version" integer NOT NULL,
	"campaign_id" integer,
	"redemption_id" bigint,
	"draw_id" bigint,
	"created_at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
CREATE TABLE "fraud_reviews" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"decision_id" bigint NOT NULL,
	"openid" text NOT NULL,
	"campaign_id" integer NOT NULL,
	"draw_id" bigint NOT NULL,
	"fulfilment_id" bigint NOT NULL,
	"prize_id" integer,
	"stock_shard" smallint,
	"stock_day" text,
	"status" text DEFAULT 'pending' NOT NULL,
	"reviewer_id" integer,
	"reviewer_name" text,
	"note" text,
	"blacklisted" boolean DEFAULT false NOT NULL,
	"created_at" timestamp with time zone NOT NULL,
	"reviewed_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "fraud_blacklist" (
	"id" serial PRIMARY KEY NOT NULL,
	"kind" text NOT NULL,
	"value_hash" text NOT NULL,
	"hint" text NOT NULL,
	"note" text,
	"created_by" text NOT NULL,
	"created_at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
CREATE INDEX "fraud_user_state_flagged_idx" ON "fraud_user_state" USING btree ("updated_at") WHERE "fraud_user_state"."flagged";--> statement-breakpoint
CREATE INDEX "fraud_user_state_print_idx" ON "fraud_user_state" USING btree ("answer_print");--> statement-breakpoint
CREATE INDEX "fraud_decisions_openid_idx" ON "fraud_decisions" USING btree ("openid","created_at");--> statement-breakpoint
CREATE INDEX "fraud_decisions_draw_idx" ON "fraud_decisions" USING btree ("draw_id");--> statement-breakpoint
CREATE UNIQUE INDEX "fraud_reviews_draw_uq" ON "fraud_reviews" USING btree ("draw_id");--> statement-breakpoint
CREATE INDEX "fraud_reviews_status_idx" ON "fraud_reviews" USING btree ("status","id");--> statement-breakpoint
CREATE UNIQUE INDEX "fraud_blacklist_kind_hash_uq" ON "fraud_blacklist" USING btree ("kind","value_hash");
--> statement-breakpoint
ALTER TABLE "fraud_user_state" ADD COLUMN "shared_ip" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
CREATE TABLE "fraud_identifiers" (
	"kind" text NOT NULL,
	"value_hash" text NOT NULL,
	"accounts" integer DEFAULT 0 NOT NULL,
	"first_at" timestamp with time zone NOT NULL,
	CONSTRAINT "fraud_identifiers_kind_value_hash_pk" PRIMARY KEY("kind","value_hash")
);
--> statement-breakpoint
CREATE TABLE "fraud_identifier_accounts" (
	"kind" text NOT NULL,
	"value_hash" text NOT NULL,
	"openid" text NOT NULL,
	"first_at" timestamp with time zone NOT NULL,
	CONSTRAINT "fraud_identifier_accounts_kind_value_hash_openid_pk" PRIMARY KEY("kind","value_hash","openid")
);
