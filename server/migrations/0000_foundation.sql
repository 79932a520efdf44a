CREATE TABLE "followers" (
	"openid" text PRIMARY KEY NOT NULL,
	"unionid" text,
	"subscribed" boolean DEFAULT false NOT NULL,
	"subscribe_scene" text,
	"subscribed_at" timestamp with time zone,
	"unsubscribed_at" timestamp with time zone,
	"subscribe_count" integer DEFAULT 0 NOT NULL,
	"first_seen_at" timestamp with time zone NOT NULL,
	"last_interaction_at" timestamp with time zone NOT NULL,
	"last_message_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "interactions" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"openid" text NOT NULL,
	"msg_type" text NOT NULL,
	"event" text,
	"event_key" text,
	"msg_id" text,
	"sent_at" timestamp with time zone NOT NULL,
	"received_at" timestamp with time zone DEFAULT now() NOT NULL,
	"payload" jsonb NOT NULL
);
--> statement-breakpoint
CREATE TABLE "webhook_dedup" (
	"key" text PRIMARY KEY NOT NULL,
	"status" text DEFAULT 'processing' NOT NULL,
	"reply" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "keyword_rules" (
	"id" serial PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"match_type" text NOT NULL,
	"pattern" text NOT NULL,
	"priority" integer DEFAULT 0 NOT NULL,
	"reply" jsonb NOT NULL,
	"enabled" boolean DEFAULT true NOT NULL,
	"starts_at" timestamp with time zone,
	"ends_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "menu_key_actions" (
	"key" text PRIMARY KEY NOT NULL,
	"action" jsonb NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "menus" (
	"id" serial PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"kind" text NOT NULL,
	"buttons" jsonb NOT NULL,
	"match_rule" jsonb,
	"wechat_menu_id" text,
	"published_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "reply_settings" (
	"name" text PRIMARY KEY NOT NULL,
	"reply" jsonb NOT NULL,
	"enabled" boolean DEFAULT true NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "cs_grants" (
	"openid" text NOT NULL,
	"scene" text NOT NULL,
	"granted_at" timestamp with time zone NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	"quota" integer,
	"used" integer DEFAULT 0 NOT NULL,
	CONSTRAINT "cs_grants_openid_scene_pk" PRIMARY KEY("openid","scene")
);
--> statement-breakpoint
CREATE TABLE "cs_outbox" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"key" text NOT NULL,
	"openid" text NOT NULL,
	"message" jsonb NOT NULL,
	"status" text DEFAULT 'pending' NOT NULL,
	"reason" text,
	"attempts" integer DEFAULT 0 NOT NULL,
	"next_attempt_at" timestamp with time zone DEFAULT now() NOT NULL,
	"not_after" timestamp with time zone NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"sent_at" timestamp with time zone,
	CONSTRAINT "cs_outbox_key_unique" UNIQUE("key")
);
--> statement-breakpoint
CREATE TABLE "wechat_access_tokens" (
	"appid" text PRIMARY KEY NOT NULL,
	"access_token" text,
	"expires_at" timestamp with time zone,
	"lease_owner" text,
	"lease_until" timestamp with time zone,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "audit_log" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"actor_id" integer,
	"actor_name" text NOT NULL,
	"action" text NOT NULL,
	"target_type" text NOT NULL,
	"target_id" text,
	"detail" jsonb,
	"request_id" text,
	"ip" text,
	"at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "ops_sessions" (
	"token_hash" text PRIMARY KEY NOT NULL,
	"user_id" integer NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "ops_users" (
	"id" serial PRIMARY KEY NOT NULL,
	"username" text NOT NULL,
	"password_hash" text NOT NULL,
	"role" text NOT NULL,
	"disabled" boolean DEFAULT false NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "ops_users_username_unique" UNIQUE("username")
);
--> statement-breakpoint
ALTER TABLE "ops_sessions" ADD CONSTRAINT "ops_sessions_user_id_ops_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."ops_users"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "followers_unionid_idx" ON "followers" USING btree ("unionid");--> statement-breakpoint
CREATE INDEX "interactions_openid_idx" ON "interactions" USING btree ("openid","received_at");--> statement-breakpoint
CREATE INDEX "interactions_kind_idx" ON "interactions" USING btree ("msg_type","event","received_at");--> statement-breakpoint
CREATE INDEX "cs_outbox_due_idx" ON "cs_outbox" USING btree ("status","next_attempt_at");--> statement-breakpoint
CREATE INDEX "cs_outbox_openid_idx" ON "cs_outbox" USING btree ("openid","status");--> statement-breakpoint
CREATE INDEX "audit_log_target_idx" ON "audit_log" USING btree ("target_type","target_id");--> statement-breakpoint
CREATE INDEX "audit_log_at_idx" ON "audit_log" USING btree ("at");