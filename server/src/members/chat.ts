/**
 * The members capability in the chat: points for following and for menu interactions (never in the way of the
 * reply — a failed earn is logged, the message routes on), and the points-expiry reminder's delivery.
 */
import type { FastifyBaseLogger } from 'fastify';
import type { BotExtensions } from '../bot/router.ts';
import type { MessagingService } from '../messaging/service.ts';
import { WeChatApiError } from '../wechat/errors.ts';
import type { MinaClient } from '../wechat/mina-client.ts';
import type { Earn, ReminderSender } from './earn.ts';

export function registerMemberChat(ext: BotExtensions, earn: Earn, log: FastifyBaseLogger) {
  ext.interceptors.push(async (ctx) => {
    const m = ctx.inbound;
    try {
      // Once per follower ever (an unfollow and re-follow earns nothing more).
      if (m.kind === 'subscribe') await earn.earn(ctx.openid, 'follow', ctx.openid);
      // Menu clicks are the interactions we reward (capped per day by the rule); text is left alone: it is the
      // redemption hot path, and a pack code is already rewarded by its draw.
      else if (m.kind === 'click') await earn.earn(ctx.openid, 'interaction', `click:${ctx.openid}:${m.createTime}:${m.eventKey}`);
    } catch (err) {
      log.warn({ err, openid: ctx.openid }, 'members: earning for a chat event failed');
    }
    return undefined;
  });
}

/**
 * Subscribe message to the mini-program openid when a template is configured and the member accepted it (one send
 * per acceptance, §5.9); otherwise a customer-service message to the official-account openid, which the outbox
 * holds until the member opens the 48-hour window (§5.8).
 */
export function createReminderSender(deps: { messaging: MessagingService; mina: MinaClient | undefined; templateId: string | undefined; log: FastifyBaseLogger }): ReminderSender {
  return async ({ openid, mpOpenid, points, expiresOn, key }) => {
    if (deps.mina && deps.templateId && mpOpenid) {
      try {
        await deps.mina.subscribeSend({
          touser: mpOpenid, template_id: deps.templateId, page: 'pages/member/points',
          data: { thing1: { value: '您的积分即将过期' }, number2: { value: String(points) }, date3: { value: expiresOn } },
        });
        return 'subscribe';
      } catch (err) {
        if (!(err instanceof WeChatApiError)) deps.log.warn({ err }, 'members: expiry subscribe message failed');
      }
    }
    // The ledger key is the official-account openid only when it is not the mini-program one.
    if (openid !== mpOpenid) {
      const outcome = await deps.messaging.send(openid, { type: 'text', content: `您有${points}积分将于${expiresOn}过期，请尽快在小程序积分商城使用。` }, key);
      return `cs:${outcome}`;
    }
    return null;
  };
}
