/**
 * Who answers an inbound message: an active dialog first (capabilities register interceptors), then
 * events (follow, menu keys), then keywords, then matchers such as code detection, then the default reply.
 */
import type { FastifyBaseLogger } from 'fastify';
import type { ReplyMessage } from '../../../shared/replies.ts';
import type { Inbound } from '../wechat/inbound.ts';
import type { RepliesService } from '../replies/service.ts';
import type { FollowersService } from '../followers/service.ts';
import type { ActiveDialog } from './dialogs.ts';

export interface BotContext {
  inbound: Inbound;
  openid: string;
  now: Date;
  log: FastifyBaseLogger;
  /** The user's active dialog, read with the dedup claim (null when none or expired). */
  dialog: ActiveDialog | null;
}

/** A reply, `null` for "handled, no reply", `undefined` for "not mine, ask the next one". */
export type HandlerResult = ReplyMessage | null | undefined;

export interface BotExtensions {
  /** Handlers of active dialogs by flow name; `undefined` lets the message route normally (the dialog stays). */
  dialogFlows: Map<string, (ctx: BotContext, dialog: ActiveDialog) => Promise<HandlerResult>>;
  /** Exact text commands (trimmed, e.g. "抽奖", "领奖"), checked before keyword rules. */
  commands: Map<string, (ctx: BotContext) => Promise<HandlerResult>>;
  /** Checked before anything else (e.g. a dialog waiting for this user's answer). */
  interceptors: Array<(ctx: BotContext) => Promise<HandlerResult>>;
  /** Checked for text after keyword rules (e.g. something that looks like a pack code). */
  textMatchers: Array<(ctx: BotContext, text: string) => Promise<HandlerResult>>;
  /** Named flows a menu key can start. */
  flows: Map<string, (ctx: BotContext) => Promise<ReplyMessage | null>>;
}

export function createExtensions(): BotExtensions {
  return { dialogFlows: new Map(), commands: new Map(), interceptors: [], textMatchers: [], flows: new Map() };
}

export function createRouter(deps: { replies: RepliesService; followers: FollowersService; ext: BotExtensions }) {
  const { replies, followers, ext } = deps;

  async function onKey(ctx: BotContext, key: string): Promise<ReplyMessage | null> {
    const action = await replies.keyAction(key);
    if (!action) return null;
    if (action.type === 'reply') return action.reply;
    const flow = ext.flows.get(action.flow);
    if (!flow) {
      ctx.log.warn({ key, flow: action.flow }, 'menu key maps to an unknown flow');
      return (await replies.fallback()) ?? null;
    }
    return flow(ctx);
  }

  async function onText(ctx: BotContext, text: string): Promise<ReplyMessage | null> {
    const command = ext.commands.get(text.trim());
    if (command) {
      const r = await command(ctx);
      if (r !== undefined) return r;
    }
    const keyword = await replies.matchKeyword(text);
    if (keyword) return keyword;
    for (const m of ext.textMatchers) {
      const r = await m(ctx, text);
      if (r !== undefined) return r;
    }
    return (await replies.fallback()) ?? null;
  }

  return async function route(ctx: BotContext): Promise<ReplyMessage | null> {
    if (ctx.dialog) {
      const handler = ext.dialogFlows.get(ctx.dialog.flow);
      if (handler) {
        const r = await handler(ctx, ctx.dialog);
        if (r !== undefined) return r;
      }
    }
    for (const i of ext.interceptors) {
      const r = await i(ctx);
      if (r !== undefined) return r;
    }
    const m = ctx.inbound;
    switch (m.kind) {
      case 'subscribe':
        await followers.subscribed(m.fromUser, ctx.now, m.scene ?? null);
        return (await replies.welcome()) ?? null;
      case 'unsubscribe':
        await followers.unsubscribed(m.fromUser, ctx.now);
        return null;
      case 'click':
        return onKey(ctx, m.eventKey);
      case 'scancode':
        return onKey(ctx, m.eventKey);
      case 'text':
        return onText(ctx, m.content);
      case 'voice':
        // With speech recognition on, a voice message is answered like the text it says.
        return m.recognition ? onText(ctx, m.recognition) : ((await replies.fallback()) ?? null);
      case 'image':
      case 'video':
      case 'shortvideo':
      case 'location':
      case 'link':
        return (await replies.fallback()) ?? null;
      default:
        return null;
    }
  };
}
export type Router = ReturnType<typeof createRouter>;
