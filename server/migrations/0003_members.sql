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
CREATE TABLE "earn_rules" (
	"key" text PRIMARY KEY NOT NULL,
	"points" integer NOT NULL,
	"enabled" boolean DEFAULT true NOT NULL,
	"daily_cap" integer,
	"tier_multiplier" boolean DEFAULT true NOT NULL,
	"validity_days" integer DEFAULT 365 NOT NULL,
	"description" text DEFAULT '' NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "earn_rules_points" CHECK ("earn_rules"."points" >= 0),
	CONSTRAINT "earn_rules_validity" CHECK ("earn_rules"."validity_days" > 0)
);
--> statement-breakpoint
CREATE TABLE "points_lots" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"openid" text NOT NULL,
	"ledger_id" bigint,
	"points" integer NOT NULL,
	"remaining" integer NOT NULL,
	"earned_at" timestamp with time zone NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	CONSTRAINT "points_lots_remaining" CHECK ("points_lots"."remaining" >= 0 AND "points_lots"."remaining" <= "points_lots"."points")
);
--> statement-breakpoint
CREATE INDEX "points_lots_open_idx" ON "points_lots" USING btree ("openid","expires_at") WHERE "points_lots"."remaining" > 0;
--> statement-breakpoint
CREATE INDEX "points_lots_due_idx" ON "points_lots" USING btree ("expires_at") WHERE "points_lots"."remaining" > 0;
--> statement-breakpoint
CREATE TABLE "points_expiry_reminders" (
	"openid" text NOT NULL,
	"expires_on" text NOT NULL,
	"points" integer NOT NULL,
	"channel" text NOT NULL,
	"status" text NOT NULL,
	"created_at" timestamp with time zone NOT NULL,
	CONSTRAINT "points_expiry_reminders_openid_expires_on_pk" PRIMARY KEY("openid","expires_on")
);
--> statement-breakpoint
CREATE TABLE "purchase_imports" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"rows" integer NOT NULL,
	"credited" integer NOT NULL,
	"duplicates" integer NOT NULL,
	"rejected" integer NOT NULL,
	"report" jsonb NOT NULL,
	"created_by" text,
	"created_at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
CREATE TABLE "member_tiers" (
	"key" text PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"position" integer NOT NULL,
	"min_points" integer NOT NULL,
	"window_days" integer DEFAULT 365 NOT NULL,
	"multiplier_pct" integer DEFAULT 100 NOT NULL,
	"monthly_coupon" jsonb,
	"reserved_items" boolean DEFAULT false NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "member_tiers_multiplier" CHECK ("member_tiers"."multiplier_pct" >= 100 AND "member_tiers"."multiplier_pct" <= 1000),
	CONSTRAINT "member_tiers_min" CHECK ("member_tiers"."min_points" >= 0)
);
--> statement-breakpoint
-- Lots follow every points_ledger row, whoever writes it (ledger API, draw statements, mall): a credit opens a lot
-- (validity from detail.validityDays, else 365 days), a debit consumes open lots earliest-expiry first. Writers
-- hold the account row lock, so this runs one at a time per user.
CREATE FUNCTION "points_lots_apply"() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
	need integer;
	lot record;
	take integer;
BEGIN
	IF NEW.delta > 0 THEN
		INSERT INTO points_lots (openid, ledger_id, points, remaining, earned_at, expires_at)
		VALUES (NEW.openid, NEW.id, NEW.delta, NEW.delta, NEW.created_at,
			NEW.created_at + make_interval(days => COALESCE(CASE WHEN jsonb_typeof(NEW.detail) = 'object' AND (NEW.detail->>'validityDays') ~ '^[0-9]{1,5}$' THEN (NEW.detail->>'validityDays')::int END, 365)));
	ELSIF NEW.delta < 0 THEN
		need := -NEW.delta;
		FOR lot IN SELECT id, remaining FROM points_lots WHERE openid = NEW.openid AND remaining > 0 ORDER BY expires_at, id FOR UPDATE LOOP
			EXIT WHEN need <= 0;
			take := LEAST(need, lot.remaining);
			UPDATE points_lots SET remaining = remaining - take WHERE id = lot.id;
			need := need - take;
		END LOOP;
	END IF;
	RETURN NULL;
END $$;
--> statement-breakpoint
CREATE TRIGGER "points_ledger_lots" AFTER INSERT ON "points_ledger" FOR EACH ROW EXECUTE FUNCTION "points_lots_apply"();
--> statement-breakpoint
-- Balances from before lots existed: one opening lot each, valid for a year from now.
INSERT INTO "points_lots" ("openid", "ledger_id", "points", "remaining", "earned_at", "expires_at")
SELECT "openid", NULL, "balance"::int, "balance"::int, now(), now() + interval '365 days' FROM "points_accounts" WHERE "balance" > 0;
--> statement-breakpoint
-- `redemption` starts disabled: each campaign's prize table already rewards a redemption (prize or consolation
-- points); ops enable it for points on top of that.
INSERT INTO "earn_rules" ("key", "points", "enabled", "daily_cap", "tier_multiplier", "description") VALUES
	('follow', 50, true, NULL, false, '关注公众号'),
	('bind_phone', 100, true, NULL, false, '绑定手机号'),
	('complete_profile', 50, true, NULL, false, '完善资料'),
	('redemption', 10, false, NULL, true, '扫码兑奖'),
	('daily_checkin', 5, true, 1, true, '每日签到'),
	('interaction', 1, true, 5, true, '互动'),
	('purchase', 1, true, NULL, true, '购买（每元积分）'),
	('invite_reward', 200, true, NULL, false, '邀请好友成为会员')
ON CONFLICT DO NOTHING;
--> statement-breakpoint
INSERT INTO "member_tiers" ("key", "name", "position", "min_points", "multiplier_pct", "monthly_coupon", "reserved_items") VALUES
	('normal', '普通会员', 0, 0, 100, NULL, false),
	('silver', '银卡会员', 1, 1000, 120, '{"title":"银卡月度券","valueFen":500,"validDays":30}', false),
	('gold', '金卡会员', 2, 5000, 150, '{"title":"金卡月度券","valueFen":1000,"validDays":30}', true),
	('diamond', '钻石会员', 3, 20000, 200, '{"title":"钻石月度券","valueFen":2000,"validDays":30}', true)
ON CONFLICT DO NOTHING;
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
