/**
 * Recommendations: products and events picked for a member by ops-editable rules over the member's golden-question
 * profile (profile_answers, shared with the chat flow), tags (member_tags) and tier, topped up with what is popular.
 *
 * A rule holds when all its conditions hold; its items are then shown with the rule's reason. Rules run highest
 * priority first; an item appears once. `@city-events` in a rule's items means "active events in the member's
 * city" (matched against the region answer's province or city, so 上海 matches a member in 上海市 浦东新区). Events
 * for another city are never shown. Every card shown is an impression row, every tap a click row, and a click tags
 * the member `interest:<item key>` (what the dashboards and later rules read).
 */
import { desc, eq, gte, sql } from 'drizzle-orm';
import type { Database } from '../db/client.ts';
import { AppError } from '../platform/errors.ts';
import type { Clock } from '../platform/clock.ts';
import { profileAnswers } from '../campaigns/tables.ts';
import { memberTags, recEvents, recItems, recRules, type RecCondition, type RecItem, type RecRule } from './tables.ts';

export const CITY_EVENTS = '@city-events';

export interface MemberContext {
  openid: string;
  memberId?: number | undefined;
}

export interface Recommendation {
  item: RecItem;
  ruleId: number | null;
  reason: string;
}

type ItemInput = Omit<typeof recItems.$inferInsert, 'id' | 'createdAt' | 'updatedAt'>;
type RuleInput = { name: string; priority?: number | undefined; conditions: RecCondition[]; itemKeys: string[]; reason: string; active?: boolean | undefined };

/** The brand's examples, seeded into an empty catalogue (ops edit or replace them). */
export const DEFAULT_REC_ITEMS: ItemInput[] = [
  { key: 'growing-up-formula', kind: 'product', title: '成长奶粉', description: '3–6 岁儿童成长配方奶粉，接着喝更安心', link: '/pages/mall/index' },
  { key: 'kids-cheese-stick', kind: 'product', title: '儿童奶酪棒', description: '爱喝纯牛奶？试试高钙奶酪棒', link: '/pages/mall/index' },
  { key: 'premium-cheese', kind: 'product', title: '臻选原制奶酪', description: '高端原制奶酪，精选进口奶源', link: '/pages/mall/index' },
  { key: 'cup-yogurt', kind: 'product', title: '杯装风味酸奶', description: '颜值与口感兼具的新款杯装酸奶', link: '/pages/mall/index' },
  { key: 'pure-milk', kind: 'product', title: '纯牛奶', description: '每天一杯，营养好吸收', link: '/pages/mall/index' },
  { key: 'shanghai-tasting-day', kind: 'event', title: '上海 · 奶酪品鉴会', description: '周末门店品鉴，会员免费参加', city: '上海', link: '/pages/home/index' },
  { key: 'chengdu-family-day', kind: 'event', title: '成都 · 亲子牧场日', description: '带孩子走进牧场，体验挤奶', city: '成都', link: '/pages/home/index' },
];

export const DEFAULT_REC_RULES: RuleInput[] = [
  { name: '孩子约5岁 → 成长奶粉（持续购买）', priority: 50, conditions: [{ field: 'profile.child_age', op: 'between', value: [4, 6] }], itemKeys: ['growing-up-formula'], reason: 'continued_purchase' },
  { name: '爱喝纯牛奶 → 奶酪（向上销售）', priority: 40, conditions: [{ field: 'tag', op: 'has', value: 'likes_pure_milk' }], itemKeys: ['kids-cheese-stick'], reason: 'up_sell' },
  { name: '高消费 → 高端奶酪', priority: 30, conditions: [{ field: 'profile.spending.min', op: 'gte', value: 100 }], itemKeys: ['premium-cheese'], reason: 'premium' },
  { name: '时尚达人 → 杯装酸奶', priority: 20, conditions: [{ field: 'tag', op: 'has', value: 'fashion' }], itemKeys: ['cup-yogurt'], reason: 'lifestyle' },
  { name: '本市活动', priority: 10, conditions: [], itemKeys: [CITY_EVENTS], reason: 'local_event' },
];

const normCity = (s: string | null | undefined) => (s ?? '').trim().replace(/(特别行政区|自治区|自治州|地区|省|市)$/u, '');

function num(v: unknown): number | undefined {
  const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
  return Number.isFinite(n) ? n : undefined;
}

function holds(c: RecCondition, ctx: { profile: Map<string, unknown>; tags: Set<string>; cities: string[]; tier: string | null }): boolean {
  let v: unknown;
  if (c.field === 'tag') v = [...ctx.tags];
  else if (c.field === 'city') v = ctx.cities;
  else if (c.field === 'tier') v = ctx.tier;
  else {
    const [, key, sub] = c.field.split('.');
    v = ctx.profile.get(key!);
    // A range answer ({label,min,max,amount}) compared as a number means its amount, else its lower bound.
    if (sub && v && typeof v === 'object') v = (v as Record<string, unknown>)[sub];
    else if (!sub && v && typeof v === 'object' && ('amount' in v || 'min' in v) && ['between', 'gte', 'lte'].includes(c.op)) v = (v as any).amount ?? (v as any).min;
  }
  if (v === undefined || v === null) return false;
  const many = Array.isArray(v) ? v.map(String) : [String(v)];
  switch (c.op) {
    case 'eq': return many.some((x) => (c.field === 'city' ? normCity(x) === normCity(String(c.value)) : x === String(c.value)));
    case 'in': return Array.isArray(c.value) && many.some((x) => (c.value as unknown[]).map(String).includes(x));
    case 'has': return many.includes(String(c.value));
    case 'contains': return many.some((x) => x.includes(String(c.value)));
    case 'between': {
      const n = num(v);
      const [lo, hi] = Array.isArray(c.value) ? c.value.map(num) : [];
      return n !== undefined && lo !== undefined && hi !== undefined && n >= lo && n <= hi;
    }
    case 'gte': { const n = num(v); const x = num(c.value); return n !== undefined && x !== undefined && n >= x; }
    case 'lte': { const n = num(v); const x = num(c.value); return n !== undefined && x !== undefined && n <= x; }
    default: return false;
  }
}

export function createAudienceService(deps: { database: Database; clock: Clock }) {
  const { database, clock } = deps;
  const { db } = database;

  function checkRule(r: Partial<RuleInput>) {
    for (const c of r.conditions ?? []) {
      if (c.op === 'between' && !(Array.isArray(c.value) && c.value.length === 2 && c.value.every((x) => num(x) !== undefined))) throw new AppError('VALIDATION', `between needs [min, max] (${c.field})`);
      if (c.op === 'in' && !Array.isArray(c.value)) throw new AppError('VALIDATION', `in needs an array (${c.field})`);
      if (['eq', 'has', 'contains', 'gte', 'lte'].includes(c.op) && (c.value === undefined || c.value === null || typeof c.value === 'object')) throw new AppError('VALIDATION', `${c.op} needs a string or number value (${c.field})`);
    }
  }

  async function context(m: MemberContext) {
    const answers = await db.select().from(profileAnswers).where(eq(profileAnswers.openid, m.openid));
    const profile = new Map(answers.map((a) => [a.questionKey, a.value as unknown]));
    const tags = new Set((await db.select({ tag: memberTags.tag }).from(memberTags).where(eq(memberTags.openid, m.openid))).map((t) => t.tag));
    const region = profile.get('region') as { province?: string; city?: string } | undefined;
    const cities = [region?.province, region?.city].filter((x): x is string => !!x).map(normCity);
    const tier = m.memberId ? ((await database.query<{ tier: string | null }>(sql`SELECT tier FROM members WHERE id = ${m.memberId}`))[0]?.tier ?? null) : null;
    return { profile, tags, cities, tier };
  }

  function live(item: RecItem, now: Date, cities: string[]): boolean {
    if (!item.active) return false;
    if (item.startsAt && item.startsAt > now) return false;
    if (item.endsAt && item.endsAt <= now) return false;
    if (item.kind === 'event' && item.city) return cities.includes(normCity(item.city));
    return true;
  }

  return {
    /** Seed the brand's example items and rules into an empty catalogue (idempotent; ops edits survive restarts). */
    async seedDefaults(): Promise<void> {
      const [{ n }] = await database.query<{ n: number }>(sql`SELECT (SELECT count(*) FROM rec_items) + (SELECT count(*) FROM rec_rules) AS n`) as [{ n: number }];
      if (Number(n) > 0) return;
      const now = clock.now();
      await db.insert(recItems).values(DEFAULT_REC_ITEMS.map((i) => ({ ...i, createdAt: now, updatedAt: now }))).onConflictDoNothing();
      await db.insert(recRules).values(DEFAULT_REC_RULES.map((r) => ({ ...r, priority: r.priority ?? 0, active: true, createdAt: now, updatedAt: now }))).onConflictDoNothing();
    },

    /** Up to `limit` cards for the member, recorded as impressions. */
    async recommend(m: MemberContext, limit = 6): Promise<Recommendation[]> {
      const now = clock.now();
      const ctx = await context(m);
      const items = await db.select().from(recItems).where(eq(recItems.active, true));
      const byKey = new Map(items.map((i) => [i.key, i]));
      const rules = await db.select().from(recRules).where(eq(recRules.active, true)).orderBy(desc(recRules.priority), recRules.id);
      const out: Recommendation[] = [];
      const seen = new Set<number>();
      const add = (item: RecItem | undefined, ruleId: number | null, reason: string) => {
        if (!item || seen.has(item.id) || out.length >= limit || !live(item, now, ctx.cities)) return;
        seen.add(item.id);
        out.push({ item, ruleId, reason });
      };
      for (const rule of rules) {
        if (!rule.conditions.every((c) => holds(c, ctx))) continue;
        for (const key of rule.itemKeys) {
          if (key === CITY_EVENTS) items.filter((i) => i.kind === 'event' && i.city).forEach((i) => add(i, rule.id, rule.reason));
          else add(byKey.get(key), rule.id, rule.reason);
        }
      }
      if (out.length < limit) {
        // Popular: most clicks in the last 30 days, then impressions; unknown items last, newest first.
        const since = new Date(now.getTime() - 30 * 86_400_000);
        const stats = await db.select({ itemId: recEvents.itemId, clicks: sql<number>`count(*) FILTER (WHERE ${recEvents.kind} = 'click')`, shown: sql<number>`count(*)` })
          .from(recEvents).where(gte(recEvents.at, since)).groupBy(recEvents.itemId);
        const score = new Map(stats.map((s) => [s.itemId, Number(s.clicks) * 1000 + Number(s.shown)]));
        [...items].sort((a, b) => (score.get(b.id) ?? 0) - (score.get(a.id) ?? 0) || b.id - a.id).forEach((i) => add(i, null, 'popular'));
      }
      if (out.length > 0) {
        await db.insert(recEvents).values(out.map((r) => ({ openid: m.openid, itemId: r.item.id, ruleId: r.ruleId, kind: 'impression' as const, detail: { reason: r.reason }, at: now })));
      }
      return out;
    },

    /** A tap on a card: a click row, and the member tagged with the interest. */
    async click(m: MemberContext, itemId: number, ruleId: number | null): Promise<void> {
      const [item] = await db.select().from(recItems).where(eq(recItems.id, itemId));
      if (!item) throw new AppError('NOT_FOUND', `没有推荐内容 ${itemId}`);
      const now = clock.now();
      await db.transaction(async (tx) => {
        await tx.insert(recEvents).values({ openid: m.openid, itemId, ruleId, kind: 'click', at: now });
        await tx.insert(memberTags).values({ openid: m.openid, tag: `interest:${item.key}`, source: 'recommendation', weight: 1, updatedAt: now })
          .onConflictDoUpdate({ target: [memberTags.openid, memberTags.tag], set: { weight: sql`${memberTags.weight} + 1`, updatedAt: now } });
      });
    },

    // ---- ops ----
    listItems: (): Promise<RecItem[]> => db.select().from(recItems).orderBy(recItems.id),

    async createItem(input: ItemInput): Promise<RecItem> {
      const now = clock.now();
      const [row] = await db.insert(recItems).values({ ...input, createdAt: now, updatedAt: now }).onConflictDoNothing().returning();
      if (!row) throw new AppError('CONFLICT', `An item with key ${input.key} exists`);
      return row;
    },

    async updateItem(id: number, patch: Partial<ItemInput>): Promise<RecItem> {
      const set = Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined));
      const [row] = await db.update(recItems).set({ ...set, updatedAt: clock.now() }).where(eq(recItems.id, id)).returning();
      if (!row) throw new AppError('NOT_FOUND', `No recommendation item ${id}`);
      return row;
    },

    listRules: (): Promise<RecRule[]> => db.select().from(recRules).orderBy(desc(recRules.priority), recRules.id),

    async createRule(input: RuleInput): Promise<RecRule> {
      checkRule(input);
      const now = clock.now();
      const [row] = await db.insert(recRules).values({ ...input, priority: input.priority ?? 0, active: input.active ?? true, createdAt: now, updatedAt: now }).onConflictDoNothing().returning();
      if (!row) throw new AppError('CONFLICT', `A rule named ${input.name} exists`);
      return row;
    },

    async updateRule(id: number, patch: Partial<RuleInput>): Promise<RecRule> {
      checkRule(patch);
      const set = Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined));
      const [row] = await db.update(recRules).set({ ...set, updatedAt: clock.now() }).where(eq(recRules.id, id)).returning();
      if (!row) throw new AppError('NOT_FOUND', `No rule ${id}`);
      return row;
    },

    async deleteRule(id: number): Promise<void> {
      const rows = await db.delete(recRules).where(eq(recRules.id, id)).returning({ id: recRules.id });
      if (rows.length === 0) throw new AppError('NOT_FOUND', `No rule ${id}`);
    },

    /** Tag a member (ops or imports); the rules' `tag` conditions read these. */
    async tag(openid: string, tag: string, source: string): Promise<void> {
      await db.insert(memberTags).values({ openid, tag, source, weight: 1, updatedAt: clock.now() })
        .onConflictDoUpdate({ target: [memberTags.openid, memberTags.tag], set: { source, updatedAt: clock.now() } });
    },

    async tagsOf(openid: string) {
      return db.select().from(memberTags).where(eq(memberTags.openid, openid)).orderBy(memberTags.tag);
    },

    /** Impressions and clicks per item (since `since`). */
    async stats(since?: Date) {
      const rows = await database.query<{ item_id: number; key: string; title: string; impressions: number; clicks: number }>(sql`
        SELECT i.id AS item_id, i.key, i.title,
          count(e.id) FILTER (WHERE e.kind = 'impression')::int AS impressions,
          count(e.id) FILTER (WHERE e.kind = 'click')::int AS clicks
        FROM rec_items i LEFT JOIN rec_events e ON e.item_id = i.id AND (${since ?? null}::timestamptz IS NULL OR e.at >= ${since ?? null}::timestamptz)
        GROUP BY i.id ORDER BY i.id`);
      return rows.map((r) => ({ itemId: r.item_id, key: r.key, title: r.title, impressions: Number(r.impressions), clicks: Number(r.clicks) }));
    },

  };
}
export type AudienceService = ReturnType<typeof createAudienceService>;
