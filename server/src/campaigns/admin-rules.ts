/**
 * The pure side of campaign administration: what makes a campaign publishable (the law and the payment rails),
 * the rules text consumers read, and how prize stock is split into shards. No database, no Fastify.
 *
 * Legal and payment constants
 * - PRIZE_VALUE_CAP_FEN: 《规范促销行为暂行规定》 (SAMR, 2020) caps the top prize of a lottery-type promotion at ¥50,000,
 *   counted per prize at market value (goods, services, virtual items). Points are converted at `pointValueFen` fen per
 *   point (default 1 fen, i.e. 100 points = ¥1, configurable in createCampaignAdmin).
 * - The same rules require prize kinds, amounts, quantities or odds and the redemption terms to be announced in
 *   advance, and forbid fake prizes: hence the rules text generated at publish, and the refusal of a prize that could
 *   never be drawn (weight 0 in dynamic mode, or zero stock).
 * - CASH_MIN_FEN: WeChat Pay merchant transfers start at 0.30 元. TOPUP_DENOMINATIONS_FEN: the face values mobile
 *   top-up providers sell (10/20/30/50/100 元).
 */
import type { GoldenQuestion } from '../../../shared/campaigns.ts';
import type { Campaign, CampaignPrize } from './tables.ts';

export const PRIZE_VALUE_CAP_FEN = 5_000_000;
export const CASH_MIN_FEN = 30;
export const TOPUP_DENOMINATIONS_FEN = [1000, 2000, 3000, 5000, 10000] as const;
/** A daily cap with no total stock: the shards start with this many units (effectively unlimited, fits int4). */
export const UNLIMITED_STOCK = 2_000_000_000;
export const MAX_SHARDS = 16;
/** Roughly one shard per this many units of stock, so small stocks are not spread thin. */
export const UNITS_PER_SHARD = 50;

export type CampaignState = Pick<Campaign,
  'name' | 'status' | 'startsAt' | 'endsAt' | 'skus' | 'questions' | 'unlockMin' | 'redemptionsPerDay' | 'drawsPerCampaign' | 'prizeMode'
  | 'lossPoints' | 'cashConfirmHours' | 'unclaimedCash' | 'deckSeedHash' | 'deckSeed' | 'deckSeedRevealedAt'>;
export type PrizeState = Pick<CampaignPrize, 'name' | 'kind' | 'value' | 'coupon' | 'weight' | 'totalStock' | 'dailyStock'>;

// ---- Stock shards ----

export interface ShardStock {
  shard: number;
  remaining: number;
  /** This shard's share of the daily cap; null = no daily cap. */
  dailyShare: number | null;
}

/** `total` split into `n` parts as evenly as possible; the first parts take the remainder. */
function split(total: number, n: number): number[] {
  const base = Math.floor(total / n);
  const extra = total - base * n;
  return Array.from({ length: n }, (_, i) => base + (i < extra ? 1 : 0));
}

/**
 * How a limited prize's stock is laid out in prize_stock_shards. n = clamp(floor(total / 50), 1, 16), and n ≤ the daily
 * cap so every shard has at least one unit a day. An unlimited total with a daily cap starts at UNLIMITED_STOCK.
 * Neither total nor daily cap → no shards (the prize is unlimited and never touches the table).
 */
export function shardStock(total: number | null, daily: number | null): ShardStock[] {
  if (total === null && daily === null) return [];
  const stock = total ?? UNLIMITED_STOCK;
  let n = Math.min(MAX_SHARDS, Math.max(1, Math.floor(stock / UNITS_PER_SHARD)));
  if (daily !== null) n = Math.max(1, Math.min(n, daily));
  const remaining = split(stock, n);
  const daySplit = daily === null ? null : split(daily, n);
  return remaining.map((r, shard) => ({ shard, remaining: r, dailyShare: daySplit ? daySplit[shard]! : null }));
}

// ---- Checks ----

/** A RegExp the chat may compile with or without the `u` flag: require both to work. */
function regexError(pattern: string): string | undefined {
  try {
    new RegExp(pattern);
    new RegExp(pattern, 'u');
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/** Structural problems of golden questions; checked on every write and again at publish. */
export function questionProblems(questions: GoldenQuestion[]): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  questions.forEach((q, i) => {
    const at = `question #${i + 1} "${q.key}"`;
    if (seen.has(q.key)) out.push(`${at}: duplicate key (each profile field can be asked once)`);
    seen.add(q.key);
    switch (q.kind) {
      case 'choice':
        if (!q.options || q.options.length < 2) out.push(`${at}: a choice question needs at least 2 options`);
        else if (new Set(q.options).size !== q.options.length) out.push(`${at}: duplicate options`);
        break;
      case 'range':
        if (!q.ranges || q.ranges.length < 2) out.push(`${at}: a range question needs at least 2 ranges`);
        else q.ranges.forEach((r, j) => {
          if (r.min !== undefined && r.max !== undefined && r.min >= r.max) out.push(`${at}: range "${r.label}" has min ${r.min} ≥ max ${r.max}`);
          if (j > 0 && q.ranges!.slice(0, j).some((o) => o.label === r.label)) out.push(`${at}: duplicate range label "${r.label}"`);
        });
        break;
      case 'number':
        if (q.min !== undefined && q.max !== undefined && q.min > q.max) out.push(`${at}: min ${q.min} > max ${q.max}`);
        break;
      case 'text': {
        if (q.minLength !== undefined && q.maxLength !== undefined && q.minLength > q.maxLength) out.push(`${at}: minLength ${q.minLength} > maxLength ${q.maxLength}`);
        const bad = q.pattern === undefined ? undefined : regexError(q.pattern);
        if (bad) out.push(`${at}: pattern is not a valid regular expression (${bad})`);
        break;
      }
      case 'region':
        break;
    }
  });
  return out;
}

/** Problems that make a campaign unstorable, whatever its status: checked on create and update. */
export function shapeProblems(c: Pick<CampaignState, 'startsAt' | 'endsAt' | 'questions'>): string[] {
  const out: string[] = [];
  if (!(c.endsAt.getTime() > c.startsAt.getTime())) out.push(`window: endsAt (${c.endsAt.toISOString()}) must be after startsAt (${c.startsAt.toISOString()})`);
  out.push(...questionProblems(c.questions));
  return out;
}

const fen2yuan = (fen: number) => {
  const s = (fen / 100).toFixed(2).replace(/\.?0+$/, '');
  return `${s}元`;
};

/** Market value in fen of one unit of a prize (points converted at `pointValueFen`). */
export function prizeValueFen(p: Pick<PrizeState, 'kind' | 'value'>, pointValueFen: number): number {
  if (p.kind === 'thanks') return 0;
  return p.kind === 'points' ? p.value * pointValueFen : p.value;
}

/**
 * Everything that must hold before consumers can take part, as a list of messages (empty = publishable).
 * `now` decides whether the window is already over.
 */
export function publishProblems(c: CampaignState, prizes: PrizeState[], opts: { now: Date; pointValueFen: number }): string[] {
  const out = shapeProblems(c);
  const cap = fen2yuan(PRIZE_VALUE_CAP_FEN);
  if (c.endsAt.getTime() <= opts.now.getTime()) out.push(`window: the campaign ended at ${c.endsAt.toISOString()}, which is already over`);
  if (c.unlockMin > c.questions.length) out.push(`unlockMin ${c.unlockMin} exceeds the number of golden questions (${c.questions.length})`);
  if (c.lossPoints * opts.pointValueFen > PRIZE_VALUE_CAP_FEN) out.push(`lossPoints ${c.lossPoints} are worth more than the legal cap of ${cap}`);

  const winning = prizes.filter((p) => p.kind !== 'thanks');
  if (winning.length === 0) out.push('no prizes: add at least one prize other than "thanks" (谢谢参与)');
  prizes.forEach((p, i) => {
    const at = `prize #${i + 1} "${p.name}"`;
    if (p.kind === 'thanks') return;
    const fen = prizeValueFen(p, opts.pointValueFen);
    if (p.value <= 0) out.push(`${at}: value must be greater than 0 (the prize amount is announced to consumers)`);
    if (fen > PRIZE_VALUE_CAP_FEN) {
      const what = p.kind === 'points' ? `${p.value} points (${fen2yuan(fen)} at ${opts.pointValueFen} fen per point)` : `value ${fen2yuan(fen)}`;
      out.push(`${at}: ${what} exceeds the legal cap of ${cap} for a lottery prize (SAMR 2020 promotion rules)`);
    }
    if (c.prizeMode === 'dynamic' && p.weight === 0) out.push(`${at}: weight 0 in dynamic mode: the prize could never be drawn, yet it would be announced`);
    if (p.totalStock === 0) out.push(`${at}: totalStock 0: the prize could never be won, yet it would be announced`);
    if (p.kind === 'coupon' && !p.coupon) out.push(`${at}: a coupon prize needs coupon details (title, validDays)`);
    if (p.kind === 'topup' && !(TOPUP_DENOMINATIONS_FEN as readonly number[]).includes(p.value)) {
      out.push(`${at}: top-up value ${p.value} fen is not one of ${TOPUP_DENOMINATIONS_FEN.map(fen2yuan).join('/')}`);
    }
    if (p.kind === 'cash' && p.value < CASH_MIN_FEN) out.push(`${at}: cash ${p.value} fen is below the WeChat Pay transfer minimum of ${fen2yuan(CASH_MIN_FEN)}`);
    if (c.prizeMode === 'deck') {
      if (p.totalStock === null) out.push(`${at}: deck mode needs a totalStock (the number of codes that carry the prize)`);
      if (p.dailyStock !== null) out.push(`${at}: deck mode cannot apply a dailyStock (prizes are pre-assigned to codes)`);
    }
  });
  return out;
}

// ---- Rules text (Simplified Chinese, what consumers read) ----

const pad = (n: number) => String(n).padStart(2, '0');

/** "2025年3月1日 08:00" in Beijing time (UTC+8, no DST). */
export function beijingTime(d: Date): string {
  const s = new Date(d.getTime() + 8 * 3_600_000);
  return `${s.getUTCFullYear()}年${s.getUTCMonth() + 1}月${s.getUTCDate()}日 ${pad(s.getUTCHours())}:${pad(s.getUTCMinutes())}`;
}

/** A percentage with enough decimals to show small odds: 33.33, 0.5, 0.0001. */
export function formatPercent(part: number, whole: number): string {
  if (whole <= 0 || part <= 0) return '0';
  const p = (part / whole) * 100;
  const decimals = p >= 1 ? 2 : Math.min(10, Math.ceil(-Math.log10(p)) + 2);
  return p.toFixed(decimals).replace(/\.?0+$/, '') || '0';
}

function prizeDescription(p: PrizeState): string {
  switch (p.kind) {
    case 'points': return `${p.value} 积分`;
    case 'coupon': return `${p.coupon?.title ?? p.name}（面值 ${fen2yuan(p.value)}${p.coupon ? `，领取后 ${p.coupon.validDays} 天内有效` : ''}）`;
    case 'topup': return `手机话费 ${fen2yuan(p.value)}`;
    case 'cash': return `微信零钱 ${fen2yuan(p.value)}`;
    case 'physical': return `实物奖品（市场价值 ${fen2yuan(p.value)}）`;
    case 'thanks': return '谢谢参与';
  }
}

/**
 * The rules consumers read (linked from the chat): time window, how to take part, every prize with its value,
 * quantity and odds (dynamic) or count in the deck (deck), per-user limits, how prizes are delivered, and in deck mode
 * the commit–reveal fairness statement. Regenerated whenever a published campaign changes (and at end, with the seed).
 */
export function buildRulesText(c: CampaignState, prizes: PrizeState[]): string {
  const lines: string[] = [];
  let section = 0;
  const head = (title: string) => {
    lines.push('', `${'一二三四五六七八九十'[section++]}、${title}`);
  };
  const winning = prizes.filter((p) => p.kind !== 'thanks');
  const totalWeight = prizes.reduce((s, p) => s + p.weight, 0);

  lines.push(`「${c.name}」活动规则`);

  head('活动时间');
  lines.push(`${beijingTime(c.startsAt)} 起至 ${beijingTime(c.endsAt)} 止（北京时间）。活动时间以外发送的兑奖码不予受理。`);

  head('参与方式');
  const steps = [
    `购买${c.skus.length ? `活动产品（${c.skus.join('、')}）` : '本品牌活动产品'}，在包装内找到兑奖码；`,
    '关注本公众号，在对话框中发送兑奖码；',
  ];
  if (c.questions.length > 0 && c.unlockMin > 0) {
    steps.push(`按提示回答 ${c.questions.length} 个简单问题（累计回答满 ${c.unlockMin} 个即可抽奖，已回答过的问题无需重复回答）；`);
  }
  steps.push('完成后即可抽奖，结果当场揭晓。');
  steps.forEach((s, i) => lines.push(`${i + 1}. ${s}`));

  head('奖项设置');
  winning.forEach((p, i) => {
    const qty = p.totalStock === null ? '不限量' : `共 ${p.totalStock} 份`;
    const daily = p.dailyStock !== null ? `，每日限 ${p.dailyStock} 份` : '';
    const odds = c.prizeMode === 'dynamic'
      ? `，中奖概率约为 ${formatPercent(p.weight, totalWeight)}%`
      : `，预置于 ${p.totalStock ?? 0} 个兑奖码中`;
    lines.push(`${i + 1}. ${p.name}：${prizeDescription(p)}，${qty}${daily}${odds}。`);
  });
  const consolation = c.lossPoints > 0 ? `，并获赠 ${c.lossPoints} 积分` : '';
  if (c.prizeMode === 'dynamic') {
    const lossWeight = prizes.filter((p) => p.kind === 'thanks').reduce((s, p) => s + p.weight, 0);
    lines.push(`未中奖为“谢谢参与”${consolation}，概率约为 ${formatPercent(lossWeight, totalWeight)}%。`);
    if (winning.some((p) => p.totalStock !== null || p.dailyStock !== null)) {
      lines.push('奖品数量有限，发完即止：某奖项（或其当日份额）发完后再抽中该奖项的，视为“谢谢参与”。');
    }
  } else {
    lines.push(`每个兑奖码对应的奖项在兑奖码生成时已确定，未预置奖品的兑奖码为“谢谢参与”${consolation}。`);
  }

  head('参与限制');
  const limits: string[] = ['每个兑奖码仅可使用一次'];
  if (c.redemptionsPerDay !== null) limits.push(`每位用户每天最多兑奖 ${c.redemptionsPerDay} 次`);
  if (c.drawsPerCampaign !== null) limits.push(`每位用户在本活动期间最多抽奖 ${c.drawsPerCampaign} 次`);
  if (c.redemptionsPerDay === null && c.drawsPerCampaign === null) limits.push('每位用户参与次数不限');
  lines.push(`${limits.join('；')}。`);

  head('领奖说明');
  const kinds = new Set(winning.map((p) => p.kind));
  if (kinds.has('cash')) {
    const after = c.unclaimedCash === 'reclaim' ? '可在活动期内再次申请领取' : '视为自动放弃该奖品';
    lines.push(`- 现金奖品通过微信支付发放至微信零钱：中奖后请在 ${c.cashConfirmHours} 小时内在小程序中确认收款，逾期未确认的，${after}。`);
  }
  if (kinds.has('topup')) lines.push('- 话费奖品充值至您绑定的手机号，未绑定的请按提示绑定后自动充值。');
  if (kinds.has('coupon')) lines.push('- 优惠券发放至您的会员账户，请在有效期内使用。');
  if (kinds.has('points') || c.lossPoints > 0) lines.push('- 积分自动计入您的会员账户。');
  if (kinds.has('physical')) lines.push('- 实物奖品请按提示填写收货信息，由主办方寄出。');
  lines.push(`- 单个奖项价值均不超过 ${fen2yuan(PRIZE_VALUE_CAP_FEN)}。`);

  if (c.prizeMode === 'deck') {
    head('公平性承诺');
    lines.push('本活动的奖品在兑奖码生成时即由随机种子洗牌、预先分配到各兑奖码，活动期间不会调整，不存在内定。');
    lines.push(`随机种子的 SHA-256 哈希值为：${c.deckSeedHash ?? '（发布时生成）'}`);
    if (c.deckSeedRevealedAt && c.deckSeed) lines.push(`活动已结束，随机种子为：${c.deckSeed}。任何人均可据此复算奖品分配，并验证其哈希值与上方一致。`);
    else lines.push('活动结束后我们将公布随机种子，任何人均可据此复算奖品分配，并验证其哈希值与上方一致。');
  }

  head('其他');
  lines.push('主办方不会以任何理由向您收取费用，请谨防诈骗。如有疑问，请在公众号内回复“客服”。');
  return lines.join('\n').trim();
}
