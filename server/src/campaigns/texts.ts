/**
 * What the consumer reads in chat (Simplified Chinese). A campaign may override any text by key
 * (campaigns.texts); `{name}` placeholders are filled by render().
 */
export const DEFAULT_TEXTS = {
  askCode: '请发送包装内的兑奖码（字母和数字组合，如 7KQ3-MXW9-HD2R）。发送“取消”退出兑奖。',
  notCode: '这不像是兑奖码哦。兑奖码由{length}位字母和数字组成，印在包装内侧，请核对后重新发送；发送“取消”退出兑奖。',
  typo: '兑奖码“{code}”似乎有字符输错了，请对照包装仔细核对（注意区分 5/S、8/B、2/Z、U/V）后重新发送。',
  unknown: '未找到兑奖码“{code}”，请核对后重新发送。如确认无误，请联系客服。',
  voided: '兑奖码“{code}”所在批次已停用，无法兑奖。如有疑问请联系客服。',
  redeemedBySelf: '您已经兑换过这个兑奖码啦（{time}）。{next}',
  redeemedByOther: '兑奖码“{code}”已被其他用户使用。如果这是您刚购买的产品，请联系客服并保留包装。',
  notStarted: '“{campaign}”活动将于 {start} 开始，届时再来兑奖吧！',
  ended: '“{campaign}”活动已于 {end} 结束，感谢您的关注！',
  paused: '“{campaign}”活动暂停中，请稍后再试。您的兑奖码仍然有效。',
  drawPaused: '“{campaign}”活动暂停中，抽奖暂不可用。您的兑奖记录已保留，活动恢复后发送“抽奖”即可继续。',
  drawEnded: '“{campaign}”活动已于 {end} 结束，抽奖已截止，感谢您的参与！',
  dailyLimit: '您今天已兑换 {limit} 次，达到每日上限，请明天再来。您的兑奖码仍然有效。',
  drawLimit: '您在“{campaign}”活动中的抽奖次数已达上限（{limit} 次），感谢参与！您的兑奖码未被使用。',
  redeemed: '兑奖码验证成功！回答几个小问题即可抽奖（至少回答 {unlock} 题）。',
  question: '第{index}题：{prompt}',
  invalidAnswer: '{reason}\n请重新回答：{prompt}',
  skipHint: '（可回复“跳过”）',
  cannotSkip: '这道题需要回答才能继续哦。',
  notUnlocked: '还需要再回答 {missing} 题才能抽奖。发送“抽奖”继续答题。',
  dialogCancelled: '已退出。兑奖码已为您保留，发送“抽奖”可随时继续。',
  nothingToDraw: '您当前没有待抽奖的兑奖码。发送包装内的兑奖码即可参与活动。',
  win: '🎉 恭喜您抽中【{prize}】！\n{howToClaim}',
  lose: '很遗憾，这次没有中奖，谢谢参与！',
  outOfStock: '很遗憾，本轮奖品已发完，谢谢参与！',
  pointsUpdate: '本次获得 {points} 积分，当前积分 {balance}。',
  recommend: '为您推荐：{title}{description}',
  claimPoints: '积分已存入您的会员账户。',
  claimCoupon: '优惠券已放入您的卡包，请在有效期内到指定门店使用。',
  claimTopup: '话费将充值到您绑定的手机号，通常几分钟内到账。',
  claimCash: '现金红包需要您在小程序中确认收款，稍后会收到确认提醒，请在 {hours} 小时内完成。',
  claimPhysical: '实物奖品将由客服与您联系寄送，请留意消息。',
  rules: '活动规则：{url}',
} as const;

export type TextKey = keyof typeof DEFAULT_TEXTS;

export function render(key: TextKey, overrides: Record<string, string> | undefined, vars: Record<string, string | number> = {}): string {
  const template = overrides?.[key] ?? DEFAULT_TEXTS[key];
  return template.replace(/\{(\w+)\}/g, (m, name: string) => (name in vars ? String(vars[name]) : m));
}

/** Asia/Shanghai wall-clock time, as the consumer reads it: 2026-11-23 20:05. */
export function formatTime(d: Date): string {
  const t = new Date(d.getTime() + 8 * 3_600_000);
  return t.toISOString().slice(0, 16).replace('T', ' ');
}

/** Campaign-local calendar day (Asia/Shanghai), for daily limits and daily stock. */
export function localDay(d: Date): string {
  return new Date(d.getTime() + 8 * 3_600_000).toISOString().slice(0, 10);
}
