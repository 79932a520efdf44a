/**
 * How the campaign capability plugs into the bot: code detection in ordinary text and QR scans, the
 * "兑奖" flow (wait for a code), the "抽奖" command and flow (resume a draw), and the question dialog.
 */
import type { BotContext, BotExtensions } from '../bot/router.ts';
import { FLOW_CODE, FLOW_QUESTION, type RedemptionService } from './service.ts';

/** Is one of the campaign's own dialogs open (then a redemption that draws at once ends it; other flows' stay)? */
const ownDialog = (ctx: BotContext) => ctx.dialog?.flow === FLOW_CODE || ctx.dialog?.flow === FLOW_QUESTION;

export function registerCampaignChat(ext: BotExtensions, redemption: RedemptionService) {
  ext.dialogFlows.set(FLOW_CODE, async (ctx) => (ctx.inbound.kind === 'text' ? redemption.onCodeDialog(ctx.openid, ctx.inbound.content, ctx.now) : undefined));
  ext.dialogFlows.set(FLOW_QUESTION, async (ctx, dialog) => (ctx.inbound.kind === 'text' ? redemption.onQuestionDialog(ctx.openid, ctx.inbound.content, dialog, ctx.now) : undefined));
  // A scan from the "扫码兑奖" button carries the code (or a URL with it) in the event itself.
  ext.interceptors.push(async (ctx) => (ctx.inbound.kind === 'scancode' && ctx.inbound.scanResult ? redemption.matchScan(ctx.openid, ctx.inbound.scanResult, ctx.now, ownDialog(ctx)) : undefined));
  ext.textMatchers.push((ctx, text) => redemption.matchText(ctx.openid, text, ctx.now, ownDialog(ctx)));
  ext.commands.set('抽奖', (ctx) => redemption.resume(ctx.openid, ctx.now, ownDialog(ctx)));
  ext.commands.set('兑奖', (ctx) => redemption.startCodeDialog(ctx.openid, ctx.now));
  ext.flows.set('redeem', (ctx) => redemption.startCodeDialog(ctx.openid, ctx.now));
  ext.flows.set('draw', (ctx) => redemption.resume(ctx.openid, ctx.now, ownDialog(ctx)));
}
