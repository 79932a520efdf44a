/**
 * Fulfilment in the chat: the phone-number dialog of top-ups, an interceptor that recognises a phone number from a
 * user whose top-up waits for one (even when another flow owns the dialog slot), and the "领奖" command.
 */
import type { BotContext, BotExtensions, HandlerResult } from '../bot/router.ts';
import { normalisePhone } from '../members/phones.ts';
import { PHONE_DIALOG_FLOW, type FulfilmentService } from './service.ts';

const CLAIM_COMMAND = '领奖';

function textOf(ctx: BotContext): string | undefined {
  const m = ctx.inbound;
  if (m.kind === 'text') return m.content;
  if (m.kind === 'voice' && m.recognition) return m.recognition;
  return undefined;
}

export function registerFulfilmentChat(ext: BotExtensions, fulfilment: FulfilmentService): void {
  // In the phone dialog: digits (with spaces, dashes, +86, brackets) are an attempt at a number (valid → bound, else
  // the format hint); anything else — a pack code with letters, a question — routes normally and the dialog stays.
  ext.dialogFlows.set(PHONE_DIALOG_FLOW, async (ctx): Promise<HandlerResult> => {
    const text = textOf(ctx)?.normalize('NFKC').trim();
    if (text === undefined || !/^[\d\s\-+()]+$/.test(text) || text.replace(/\D/g, '').length < 7) return undefined;
    return fulfilment.phoneFromChat(ctx.openid, text);
  });

  ext.interceptors.push(async (ctx): Promise<HandlerResult> => {
    const text = textOf(ctx);
    // Cheap test first: only a valid mainland number costs a query.
    if (text === undefined || !normalisePhone(text)) return undefined;
    if (!(await fulfilment.waitingForPhone(ctx.openid))) return undefined;
    return fulfilment.phoneFromChat(ctx.openid, text);
  });

  // Another capability may own the command already; never take it over.
  if (!ext.commands.has(CLAIM_COMMAND)) ext.commands.set(CLAIM_COMMAND, (ctx) => fulfilment.claimFromChat(ctx.openid));
}
