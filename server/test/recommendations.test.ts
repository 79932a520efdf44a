/**
 * Recommendations through /api/mp and /api/ops: the brand's example rules seeded as defaults (child ~5 → growing-up
 * formula, likes pure milk → cheese, high spender → premium cheese, fashion-minded → cup yogurt, events by city),
 * the popular fallback, impressions and clicks recorded (a click tags the member), and ops editing rules.
 *
 * Profiles are answered through the mini program's profile form (PUT /api/mp/me/profile, read as the chat reads
 * answers); child age and region, which the default questions do not ask in one form field, are arranged as the chat
 * stores answers (profile_answers). Everything asserted goes through the HTTP API.
 */
import t from 'tap';
import { sql } from 'drizzle-orm';
import { count } from './helpers.ts';
import { commerceApp } from './commerce-helpers.ts';

type H = Awaited<ReturnType<typeof commerceApp>>;

async function answer(h: H, openid: string, key: string, value: unknown, display = String(value)) {
  await h.database.query(sql`INSERT INTO profile_answers (openid, question_key, value, display, source, answered_at)
    VALUES (${openid}, ${key}, ${JSON.stringify(value)}::jsonb, ${display}, 'chat', now())`);
}

const cards = async (h: H, m: { headers: Record<string, string> }) => {
  const res = await h.inject({ method: 'GET', url: '/api/mp/recommendations', headers: m.headers });
  if (res.statusCode !== 200) throw new Error(res.body);
  return res.json() as Array<{ itemId: number; key: string; kind: string; reason: string; ruleId: number | null; city: string | null }>;
};
/** Answer through the mini program's profile form (members: read exactly as the chat reads answers). */
async function viaProfile(h: H, m: { headers: Record<string, string> }, answers: Record<string, string>) {
  const res = await h.inject({ method: 'PUT', url: '/api/mp/me/profile', headers: m.headers, payload: { answers } });
  if (res.statusCode !== 200) throw new Error(`profile: ${res.statusCode} ${res.body}`);
}
const tag = (h: H, openid: string, name: string) => h.inject({ method: 'PUT', url: `/api/ops/members/${openid}/tags/${name}`, headers: h.ops });

t.test("the brand's example rules are seeded once", async (t) => {
  const h = await commerceApp(t);
  const rules = (await h.inject({ method: 'GET', url: '/api/ops/recommendations/rules', headers: h.ops })).json();
  t.same(rules.map((r: any) => r.reason), ['continued_purchase', 'up_sell', 'premium', 'lifestyle', 'local_event']);
  const items = (await h.inject({ method: 'GET', url: '/api/ops/recommendations/items', headers: h.ops })).json();
  t.ok(items.some((i: any) => i.key === 'growing-up-formula'));
  await h.services.audience.seedDefaults();
  t.equal(await count(h.database, 'rec_rules'), 5, 'seeding again adds nothing');
});

t.test('a child aged about 5 → growing-up formula (continued purchase)', async (t) => {
  const h = await commerceApp(t);
  const m = await h.member();
  await answer(h, m.who.openid, 'child_age', 5);
  const list = await cards(h, m);
  t.equal(list[0]!.key, 'growing-up-formula');
  t.equal(list[0]!.reason, 'continued_purchase');
  t.ok(list[0]!.ruleId);
  const older = await h.member();
  await answer(h, older.who.openid, 'child_age', 12);
  t.notOk((await cards(h, older)).some((c) => c.reason === 'continued_purchase'), 'a 12-year-old does not match');
});

t.test('likes pure milk → cheese; high spender → premium cheese; fashion-minded → cup yogurt', async (t) => {
  const h = await commerceApp(t);
  const milk = await h.member();
  t.equal((await tag(h, milk.who.openid, 'likes_pure_milk')).statusCode, 200);
  t.match((await cards(h, milk))[0], { key: 'kids-cheese-stick', reason: 'up_sell' });
  const rich = await h.member();
  await viaProfile(h, rich, { spending: '100元以上' });
  t.match((await cards(h, rich))[0], { key: 'premium-cheese', reason: 'premium' });
  const thrifty = await h.member();
  await viaProfile(h, thrifty, { spending: '25' });
  t.notOk((await cards(h, thrifty)).some((c) => c.reason === 'premium'));
  const fashion = await h.member();
  await tag(h, fashion.who.openid, 'fashion');
  t.match((await cards(h, fashion))[0], { key: 'cup-yogurt', reason: 'lifestyle' });
  t.equal(await count(h.database, 'audit_log', `action = 'member.tag'`), 2, 'ops tagging is audited');
});

t.test("events are shown in the member's city only", async (t) => {
  const h = await commerceApp(t);
  const sh = await h.member();
  await answer(h, sh.who.openid, 'region', { provinceCode: '310000', province: '上海市', cityCode: '310115', city: '浦东新区' }, '上海市 浦东新区');
  const shCards = await cards(h, sh);
  t.ok(shCards.some((c) => c.key === 'shanghai-tasting-day' && c.reason === 'local_event'));
  t.notOk(shCards.some((c) => c.key === 'chengdu-family-day'));
  const cd = await h.member();
  await answer(h, cd.who.openid, 'region', { provinceCode: '510000', province: '四川省', cityCode: '510100', city: '成都市' }, '四川省 成都市');
  const cdCards = await cards(h, cd);
  t.ok(cdCards.some((c) => c.key === 'chengdu-family-day'));
  t.notOk(cdCards.some((c) => c.key === 'shanghai-tasting-day'));
  const nowhere = await h.member();
  t.notOk((await cards(h, nowhere)).some((c) => c.kind === 'event' && c.city), 'no city, no city events');
});

t.test('with no profile the popular items fill the cards; clicks make an item popular and tag the member', async (t) => {
  const h = await commerceApp(t);
  const fresh = await h.member();
  const first = await cards(h, fresh);
  t.ok(first.length > 0);
  t.ok(first.every((c) => c.reason === 'popular' && c.ruleId === null));
  t.equal(await count(h.database, 'rec_events', `kind = 'impression' AND openid = '${fresh.who.openid}'`), first.length, 'every card shown is an impression');
  const milk = first.find((c) => c.key === 'pure-milk')!;
  for (let i = 0; i < 3; i++) {
    const click = await h.inject({ method: 'POST', url: '/api/mp/recommendations/click', headers: fresh.headers, payload: { itemId: milk.itemId } });
    t.equal(click.statusCode, 200);
  }
  const tags = (await h.inject({ method: 'GET', url: `/api/ops/members/${fresh.who.openid}/tags`, headers: h.ops })).json();
  t.match(tags, [{ tag: 'interest:pure-milk', source: 'recommendation', weight: 3 }]);
  const other = await h.member();
  t.equal((await cards(h, other))[0]!.key, 'pure-milk', 'the most clicked comes first');
  const stats = (await h.inject({ method: 'GET', url: '/api/ops/recommendations/stats', headers: h.ops })).json();
  t.match(stats.find((s: any) => s.key === 'pure-milk'), { impressions: 2, clicks: 3 });
  const limited = await h.inject({ method: 'GET', url: '/api/mp/recommendations?limit=2', headers: other.headers });
  t.equal(limited.json().length, 2);
});

t.test('ops edit rules and items; bad rules are refused', async (t) => {
  const h = await commerceApp(t);
  const item = await h.inject({ method: 'POST', url: '/api/ops/recommendations/items', headers: h.ops, payload: { key: 'cheese-gift-box', kind: 'product', title: '奶酪礼盒' } });
  t.equal(item.statusCode, 200);
  const rule = await h.inject({ method: 'POST', url: '/api/ops/recommendations/rules', headers: h.ops,
    payload: { name: '学生 → 奶酪礼盒', priority: 100, conditions: [{ field: 'profile.occupation', op: 'eq', value: '学生' }], itemKeys: ['cheese-gift-box'], reason: 'gift' } });
  t.equal(rule.statusCode, 200, rule.body);
  const student = await h.member();
  await viaProfile(h, student, { occupation: '学生' });
  t.match((await cards(h, student))[0], { key: 'cheese-gift-box', reason: 'gift', ruleId: rule.json().id });
  const off = await h.inject({ method: 'PATCH', url: `/api/ops/recommendations/rules/${rule.json().id}`, headers: h.ops, payload: { active: false } });
  t.equal(off.json().active, false);
  t.notOk((await cards(h, student)).some((c) => c.reason === 'gift'));
  const bad = await h.inject({ method: 'POST', url: '/api/ops/recommendations/rules', headers: h.ops, payload: { name: 'x', conditions: [{ field: 'profile.child_age', op: 'between', value: [4] }], itemKeys: ['pure-milk'], reason: 'x' } });
  t.equal(bad.statusCode, 422);
  const badField = await h.inject({ method: 'POST', url: '/api/ops/recommendations/rules', headers: h.ops, payload: { name: 'y', conditions: [{ field: 'password', op: 'eq', value: 1 }], itemKeys: ['pure-milk'], reason: 'x' } });
  t.equal(badField.statusCode, 400);
  const dup = await h.inject({ method: 'POST', url: '/api/ops/recommendations/items', headers: h.ops, payload: { key: 'cheese-gift-box', kind: 'product', title: '重复' } });
  t.equal(dup.statusCode, 409);
  t.equal((await h.inject({ method: 'DELETE', url: `/api/ops/recommendations/rules/${rule.json().id}`, headers: h.ops })).statusCode, 200);
  t.equal((await h.inject({ method: 'DELETE', url: `/api/ops/recommendations/rules/${rule.json().id}`, headers: h.ops })).statusCode, 404);
  t.equal(await count(h.database, 'audit_log', `action LIKE 'rec.%'`), 4);
});

t.test('recommendations need a session; clicks on unknown items are refused', async (t) => {
  const h = await commerceApp(t);
  t.equal((await h.inject({ method: 'GET', url: '/api/mp/recommendations' })).statusCode, 401);
  t.equal((await h.inject({ method: 'GET', url: '/api/mp/recommendations', headers: { authorization: 'Bearer nope' } })).statusCode, 401);
  const m = await h.member();
  const res = await h.inject({ method: 'POST', url: '/api/mp/recommendations/click', headers: m.headers, payload: { itemId: 99999 } });
  t.equal(res.statusCode, 404);
  t.equal(await count(h.database, 'rec_events', `kind = 'click'`), 0);
});

t.test('ops switch an item off or move an event to another city', async (t) => {
  const h = await commerceApp(t);
  const items = (await h.inject({ method: 'GET', url: '/api/ops/recommendations/items', headers: h.ops })).json();
  const sh = items.find((i: any) => i.key === 'shanghai-tasting-day');
  const milk = items.find((i: any) => i.key === 'pure-milk');
  const moved = await h.inject({ method: 'PATCH', url: `/api/ops/recommendations/items/${sh.id}`, headers: h.ops, payload: { city: '成都', endsAt: new Date(Date.now() + 86_400_000).toISOString() } });
  t.equal(moved.statusCode, 200);
  t.equal(moved.json().city, '成都');
  t.equal((await h.inject({ method: 'PATCH', url: `/api/ops/recommendations/items/${milk.id}`, headers: h.ops, payload: { active: false } })).json().active, false);
  const cd = await h.member();
  await answer(h, cd.who.openid, 'region', { provinceCode: '510000', province: '四川省', cityCode: '510100', city: '成都市' }, '四川省 成都市');
  const list = await cards(h, cd);
  t.ok(list.some((c) => c.key === 'shanghai-tasting-day'), 'now shown in 成都');
  t.notOk(list.some((c) => c.key === 'pure-milk'), 'inactive items are never shown');
  t.equal((await h.inject({ method: 'PATCH', url: '/api/ops/recommendations/items/99999', headers: h.ops, payload: { active: false } })).statusCode, 404);
});
