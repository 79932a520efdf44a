-- Migration 0003 (issue 5: members). Hand-written while issues 4 and 5 are developed side by side; see README "Migrations".
-- members core (login, sessions, phone, membership, consent, tiers, points, invites)
ALTER TABLE "members" ADD COLUMN "id" bigserial NOT NULL;
--> statement-breakpoint
ALTER TABLE "members" ADD CONSTRAINT "members_id_unique" UNIQUE("id");
--> statement-breakpoint
ALTER TABLE "members" ADD COLUMN "mp_openid" text;
--> statement-breakpoint
ALTER TABLE "members" ADD CONSTRAINT "members_mp_openid_unique" UNIQUE("mp_openid");
--> statement-breakpoint
ALTER TABLE "members" ADD COLUMN "unionid" text;
--> statement-breakpoint
ALTER TABLE "members" ADD CONSTRAINT "members_unionid_unique" UNIQUE("unionid");
--> statement-breakpoint
ALTER TABLE "members" ADD COLUMN "phone_verified" boolean DEFAULT false NOT NULL;
--> statement-breakpoint
ALTER TABLE "members" ADD COLUMN "is_member" boolean DEFAULT false NOT NULL;
--> statement-breakpoint
ALTER TABLE "members" ADD COLUMN "member_since" timestamp with time zone;
--> statement-breakpoint
ALTER TABLE "members" ADD COLUMN "consent_version" text;
--> statement-breakpoint
ALTER TABLE "members" ADD COLUMN "consent_at" timestamp with time zone;
--> statement-breakpoint
ALTER TABLE "members" ADD COLUMN "invite_code" text;
--> statement-breakpoint
ALTER TABLE "members" ADD CONSTRAINT "members_invite_code_unique" UNIQUE("invite_code");
--> statement-breakpoint
ALTER TABLE "members" ADD COLUMN "invited_by" bigint;
--> statement-breakpoint
ALTER TABLE "members" ADD COLUMN "tier" text DEFAULT 'normal' NOT NULL;
--> statement-breakpoint
ALTER TABLE "members" ADD COLUMN "tier_updated_at" timestamp with time zone;
--> statement-breakpoint
ALTER TABLE "members" ADD COLUMN "deleted_at" timestamp with time zone;
--> statement-breakpoint
CREATE UNIQUE INDEX "members_phone_verified_unique" ON "members" USING btree ("phone_hash") WHERE "members"."phone_verified";
--> statement-breakpoint
CREATE TABLE "mp_sessions" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"member_id" bigint NOT NULL,
	"mp_openid" text NOT NULL,
	"token_hash" text NOT NULL,
	"refresh_hash" text NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	"refresh_expires_at" timestamp with time zone NOT NULL,
	"created_at" timestamp with time zone NOT NULL,
	"revoked_at" timestamp with time zone,
	CONSTRAINT "mp_sessions_token_hash_unique" UNIQUE("token_hash"),
	CONSTRAINT "mp_sessions_refresh_hash_unique" UNIQUE("refresh_hash")
);
--> statement-breakpoint
CREATE INDEX "mp_sessions_member_idx" ON "mp_sessions" USING btree ("member_id");
--> statement-breakpoint
CREATE TABLE "member_events" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"member_id" bigint NOT NULL,
	"kind" text NOT NULL,
	"detail" jsonb,
	"created_at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
CREATE INDEX "member_events_member_idx" ON "member_events" USING btree ("member_id","created_at");
--> statement-breakpoint
-- commerce (mall, orders, coupons, recommendations)
CREATE TABLE "mall_items" (
	"id" serial PRIMARY KEY NOT NULL,
	"kind" text NOT NULL,
	"title" text NOT NULL,
	"description" text DEFAULT '' NOT NULL,
	"image_url" text,
	"points" integer NOT NULL,
	"cash_fen" integer DEFAULT 0 NOT NULL,
	"stock" integer NOT NULL,
	"sold" integer DEFAULT 0 NOT NULL,
	"per_member_limit" integer,
	"min_tier" text,
	"coupon" jsonb,
	"status" text DEFAULT 'draft' NOT NULL,
	"position" integer DEFAULT 0 NOT NULL,
	"created_at" timestamp with time zone NOT NULL,
	"updated_at" timestamp with time zone NOT NULL,
	CONSTRAINT "mall_items_stock" CHECK ("mall_items"."stock" >= 0),
	CONSTRAINT "mall_items_price" CHECK ("mall_items"."points" >= 0 AND "mall_items"."cash_fen" >= 0)
);
--> statement-breakpoint
CREATE TABLE "mall_orders" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"openid" text NOT NULL,
	"member_id" bigint,
	"mp_openid" text,
	"client_key" text NOT NULL,
	"item_id" integer NOT NULL,
	"kind" text NOT NULL,
	"title" text NOT NULL,
	"quantity" integer NOT NULL,
	"points" integer NOT NULL,
	"cash_fen" integer DEFAULT 0 NOT NULL,
	"state" text NOT NULL,
	"address_sealed" text,
	"out_trade_no" text,
	"prepay_id" text,
	"prepay_at" timestamp with time zone,
	"transaction_id" text,
	"pay_expires_at" timestamp with time zone,
	"paid_at" timestamp with time zone,
	"coupon_id" bigint,
	"shipping" jsonb,
	"note" text,
	"created_at" timestamp with time zone NOT NULL,
	"updated_at" timestamp with time zone NOT NULL,
	CONSTRAINT "mall_orders_out_trade_no_unique" UNIQUE("out_trade_no")
);
--> statement-breakpoint
CREATE UNIQUE INDEX "mall_orders_client_key_uq" ON "mall_orders" USING btree ("openid","client_key");
--> statement-breakpoint
CREATE INDEX "mall_orders_openid_idx" ON "mall_orders" USING btree ("openid","id");
--> statement-breakpoint
CREATE INDEX "mall_orders_state_idx" ON "mall_orders" USING btree ("state","pay_expires_at");
--> statement-breakpoint
CREATE TABLE "mall_order_events" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"order_id" bigint NOT NULL,
	"from_state" text,
	"to_state" text NOT NULL,
	"note" text,
	"at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
CREATE INDEX "mall_order_events_order_idx" ON "mall_order_events" USING btree ("order_id");
--> statement-breakpoint
CREATE TABLE "mall_member_counts" (
	"openid" text NOT NULL,
	"item_id" integer NOT NULL,
	"quantity" integer DEFAULT 0 NOT NULL,
	CONSTRAINT "mall_member_counts_openid_item_id_pk" PRIMARY KEY("openid","item_id"),
	CONSTRAINT "mall_member_counts_quantity" CHECK ("mall_member_counts"."quantity" >= 0)
);
--> statement-breakpoint
CREATE TABLE "stores" (
	"id" text PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"city" text,
	"address" text,
	"active" boolean DEFAULT true NOT NULL,
	"created_at" timestamp with time zone NOT NULL,
	"updated_at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
CREATE TABLE "store_staff" (
	"id" serial PRIMARY KEY NOT NULL,
	"store_id" text NOT NULL,
	"name" text NOT NULL,
	"token_hash" text NOT NULL,
	"created_at" timestamp with time zone NOT NULL,
	"revoked_at" timestamp with time zone,
	"last_used_at" timestamp with time zone,
	CONSTRAINT "store_staff_token_hash_unique" UNIQUE("token_hash")
);
--> statement-breakpoint
CREATE INDEX "store_staff_store_idx" ON "store_staff" USING btree ("store_id");
--> statement-breakpoint
CREATE TABLE "coupon_redemptions" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"coupon_id" bigint,
	"store_id" text NOT NULL,
	"staff_id" integer NOT NULL,
	"outcome" text NOT NULL,
	"at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
CREATE INDEX "coupon_redemptions_store_idx" ON "coupon_redemptions" USING btree ("store_id","at");
--> statement-breakpoint
CREATE UNIQUE INDEX "coupon_redemptions_once_uq" ON "coupon_redemptions" USING btree ("coupon_id") WHERE "coupon_redemptions"."outcome" = 'redeemed';
--> statement-breakpoint
CREATE TABLE "rec_items" (
	"id" serial PRIMARY KEY NOT NULL,
	"key" text NOT NULL,
	"kind" text NOT NULL,
	"title" text NOT NULL,
	"description" text DEFAULT '' NOT NULL,
	"image_url" text,
	"link" text,
	"city" text,
	"starts_at" timestamp with time zone,
	"ends_at" timestamp with time zone,
	"active" boolean DEFAULT true NOT NULL,
	"created_at" timestamp with time zone NOT NULL,
	"updated_at" timestamp with time zone NOT NULL,
	CONSTRAINT "rec_items_key_unique" UNIQUE("key")
);
--> statement-breakpoint
CREATE TABLE "rec_rules" (
	"id" serial PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"priority" integer DEFAULT 0 NOT NULL,
	"conditions" jsonb NOT NULL,
	"item_keys" jsonb NOT NULL,
	"reason" text NOT NULL,
	"active" boolean DEFAULT true NOT NULL,
	"created_at" timestamp with time zone NOT NULL,
	"updated_at" timestamp with time zone NOT NULL,
	CONSTRAINT "rec_rules_name_unique" UNIQUE("name")
);
--> statement-breakpoint
CREATE TABLE "member_tags" (
	"openid" text NOT NULL,
	"tag" text NOT NULL,
	"source" text NOT NULL,
	"weight" integer DEFAULT 1 NOT NULL,
	"updated_at" timestamp with time zone NOT NULL,
	CONSTRAINT "member_tags_openid_tag_pk" PRIMARY KEY("openid","tag")
);
--> statement-breakpoint
CREATE TABLE "rec_events" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"openid" text NOT NULL,
	"item_id" integer NOT NULL,
	"rule_id" integer,
	"kind" text NOT NULL,
	"detail" jsonb,
	"at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
CREATE INDEX "rec_events_item_idx" ON "rec_events" USING btree ("item_id","kind","at");
--> statement-breakpoint
CREATE INDEX "rec_events_openid_idx" ON "rec_events" USING btree ("openid","at");
