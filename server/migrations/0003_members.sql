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
