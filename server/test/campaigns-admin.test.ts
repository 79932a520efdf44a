/**
 * Campaign administration end to end through the ops API: CRUD and validation, the status machine, the legal checks
 * at publish, the rules text, stock shards, the deck commit–reveal, roles and audit, live counters and the CSV export
 * (on redemptions, draws and fulfilments inserted directly), and the public rules page.
 */
import { createHash } from 'node:crypto';
import { PassThrough } from 'node:stream';
import t, { type Test } from 'tap';
import { parse } from 'csv-parse/sync';
import { and, asc, eq, sql } from 'drizzle-orm';
import { adminHeaders, buildTestApp, count } from './helpers.ts';
import { createCampaignAdmin, CSV_COLUMNS, shardStock, shanghaiDate } from '../src/campaigns/admin.ts';
import { DEFAULT_GOLDEN_QUESTIONS } from '../src/campaigns/questions-defaults.ts';
import { campaigns, codeBatches, draws, prizeStockShards, profileAnswers, redemptions } from '../src/campaigns/tables.ts';
import { fulfilments } from '../src/fulfilment/tables.ts';
import { systemClock } from '../src/platform/clock.ts';

type Built = Awaited<ReturnType<typeof buildTestApp>>;
type Injectable = Built['app'];
type Headers = { authorization: string };

const DAY = 86_400_000;

/** A publishable dynamic campaign: Σ weights = 1000, so the odds are easy to read. */
function campaignBody(over: Record<string, unknown> = {}) {
  return {
    name: '夏日畅饮 扫码赢好礼',
    startsAt: new Date(Date.now() - DAY).toISOString(),
    endsAt: new Date(Date.now() + 30 * DAY).toISOString(),
    skus: ['冰红茶 500ml', '绿茶 500ml'],
    unlockMin: 2,
    redemptionsPerDay: 5,
    drawsPerCampaign: 20,
    prizes: [
      { name: '现金红包 8.88元', kind: 'cash', value: 888, weight: 10, totalStock: 1000, dailyStock: 50 },
      { name: '满20减5优惠券', kind: 'coupon', value: 500, weight: 90, coupon: { title: '满20减5', validDays: 30 } },
      { name: '10元话费', kind: 'topup', value: 1000, weight: 5, totalStock: 120 },
      { name: '100积分', kind: 'points', value: 100, weight: 195 },
      { name: '谢谢参与', kind: 'thanks', weight: 700 },
    ],
    ...over,
  };
}

async function login(app: Injectable, username: string, password: string): Promise<Headers> {
  const res = await app.inject({ method: 'POST', url: '/api/ops/login', payload: { username, password } });
  if (res.statusCode !== 200) throw new Error(`login ${username} failed: ${res.statusCode} ${res.body}`);
  return { authorization: `Bearer ${res.json().token}` };
}

function client(app: Injectable, headers: Headers) {
  return {
    create: (body: unknown) => app.inject({ method: 'POST', url: '/api/ops/campaigns', headers, payload: body as object }),
    get: (id: number) => app.inject({ method: 'GET', url: `/api/ops/campaigns/${id}`, headers }),
    patch: (id: number, body: unknown) => app.inject({ method: 'PATCH', url: `/api/ops/campaigns/${id}`, headers, payload: body as object }),
    act: (id: number, action: string) => app.inject({ method: 'POST', url: `/api/ops/campaigns/${id}/${action}`, headers }),
  };
}

t.test('shardStock', async (t) => {
  const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
  const cash = shardStock(1000, 50);
  t.equal(cash.length, 16, 'floor(1000/50) = 20, clamped to 16');
  t.equal(sum(cash.map((s) => s.remaining)), 1000);
  t.same(cash.map((s) => s.remaining), [...Array(8).fill(63), ...Array(8).fill(62)], 'the first shards take the remainder');
  t.equal(sum(cash.map((s) => s.dailyShare!)), 50);
  t.same(cash.slice(0, 3).map((s) => s.dailyShare), [4, 4, 3]);
  t.same(cash.map((s) => s.shard), [...Array(16).keys()]);
  t.same(shardStock(120, null), [{ shard: 0, remaining: 60, dailyShare: null }, { shard: 1, remaining: 60, dailyShare: null }]);
  t.same(shardStock(7, null), [{ shard: 0, remaining: 7, dailyShare: null }], 'small stock: one shard');
  t.same(shardStock(1000, 3).map((s) => [s.remaining, s.dailyShare]), [[334, 1], [333, 1], [333, 1]], 'no more shards than the daily cap');
  const unlimited = shardStock(null, 5);
  t.equal(unlimited.length, 5);
  t.equal(sum(unlimited.map((s) => s.remaining)), 2_000_000_000, 'unlimited total with a daily cap');
  t.same(unlimited.map((s) => s.dailyShare), [1, 1, 1, 1, 1]);
  t.same(shardStock(null, null), [], 'unlimited: no shards');
  t.same(shardStock(0, null), [{ shard: 0, remaining: 0, dailyShare: null }]);
});

t.test('CRUD and validation', async (t) => {
  const { app } = await buildTestApp(t);
  const api = client(app, await adminHeaders(app));
  const created = await api.create(campaignBody());
  const id = created.json().id as number;

  t.test('create › 201, a draft with its prizes in order and the default golden questions', async (t) => {
    t.equal(created.statusCode, 201, created.body);
    const c = created.json();
    t.match(c, { status: 'draft', name: '夏日畅饮 扫码赢好礼', prizeMode: 'dynamic', unlockMin: 2, redemptionsPerDay: 5, rulesText: null, publishedAt: null, deckSeedHash: null, deckSeed: null });
    t.same(c.prizes.map((p: any) => [p.name, p.position]), [['现金红包 8.88元', 0], ['满20减5优惠券', 1], ['10元话费', 2], ['100积分', 3], ['谢谢参与', 4]]);
    t.same(c.prizes[1].coupon, { title: '满20减5', validDays: 30 });
    t.equal(c.prizes[1].totalStock, null);
    t.same(c.questions, DEFAULT_GOLDEN_QUESTIONS, 'questions omitted → defaults');
    t.same(c.questions.map((q: any) => q.key), ['name', 'occupation', 'region', 'business_type', 'spending']);
  });

  t.test('create › an explicit empty question list is kept', async (t) => {
    const res = await api.create(campaignBody({ questions: [], unlockMin: 0 }));
    t.equal(res.statusCode, 201);
    t.same(res.json().questions, []);
  });

  t.test('get and list', async (t) => {
    const one = await api.get(id);
    t.equal(one.statusCode, 200);
    t.same(one.json(), created.json());
    const list = await app.inject({ method: 'GET', url: '/api/ops/campaigns', headers: (await adminHeaders(app)) });
    t.equal(list.statusCode, 200);
    t.ok((list.json() as Array<{ id: number; prizes: unknown[] }>).some((c) => c.id === id && c.prizes.length === 5));
    t.equal((await api.get(999_999)).statusCode, 404);
  });

  t.test('update › a draft can change anything; prizes are replaced as a whole', async (t) => {
    const res = await api.patch(id, { name: '夏日畅饮 第二季', prizes: [{ name: '50积分', kind: 'points', value: 50, weight: 1 }, { name: '谢谢参与', kind: 'thanks', weight: 3 }], prizeMode: 'dynamic', unlockMin: 1 });
    t.equal(res.statusCode, 200, res.body);
    t.match(res.json(), { name: '夏日畅饮 第二季', unlockMin: 1 });
    t.same(res.json().prizes.map((p: any) => [p.name, p.position, p.weight]), [['50积分', 0, 1], ['谢谢参与', 1, 3]]);
    t.ok(Date.parse(res.json().updatedAt) >= Date.parse(created.json().updatedAt));
    const noPrizes = await api.patch(id, { lossPoints: 5 });
    t.equal(noPrizes.json().prizes.length, 2, 'prizes untouched when not given');
    t.equal((await api.patch(999_999, { name: 'x' })).statusCode, 404);
  });

  t.test('validation › endsAt before startsAt is 422 with a clear message', async (t) => {
    const res = await api.create(campaignBody({ startsAt: '2030-02-01T00:00:00Z', endsAt: '2030-01-01T00:00:00Z' }));
    t.equal(res.statusCode, 422);
    t.equal(res.json().code, 'VALIDATION');
    t.match(res.json().message, /endsAt .* must be after startsAt/);
    t.same(res.json().details.problems.length, 1);
    const patch = await api.patch(id, { endsAt: '2000-01-01T00:00:00Z' });
    t.equal(patch.statusCode, 422, 'on update too');
  });

  t.test('validation › invalid golden questions are 422', async (t) => {
    const res = await api.create(campaignBody({
      questions: [
        { key: 'name', kind: 'text', prompt: '称呼？', pattern: '([a-z' },
        { key: 'name', kind: 'region', prompt: '城市？' },
        { key: 'job', kind: 'choice', prompt: '职业？' },
        { key: 'spend', kind: 'range', prompt: '消费？' },
      ],
    }));
    t.equal(res.statusCode, 422);
    const problems = res.json().details.problems as string[];
    t.equal(problems.length, 4, problems.join('\n'));
    t.match(res.json().message, /pattern is not a valid regular expression/);
    t.match(res.json().message, /duplicate key/);
    t.match(res.json().message, /choice question needs at least 2 options/);
    t.match(res.json().message, /range question needs at least 2 ranges/);
  });

  t.test('validation › schema errors (unknown field, missing name, negative weight) are rejected', async (t) => {
    for (const body of [campaignBody({ color: 'red' }), { ...campaignBody(), name: undefined }, campaignBody({ prizes: [{ name: 'x', kind: 'points', value: 1, weight: -1 }] })]) {
      const res = await api.create(body);
      t.equal(res.statusCode, 400);
      t.equal(res.json().code, 'VALIDATION');
    }
    t.equal((await api.patch(id, {})).statusCode, 400, 'an empty patch');
  });
});

t.test('status machine', async (t) => {
  const { app } = await buildTestApp(t);
  const api = client(app, await adminHeaders(app));
  const id = (await api.create(campaignBody())).json().id as number;

  const expect = async (t: Tap, action: string, status: number, match?: RegExp) => {
    const res = await api.act(id, action);
    t.equal(res.statusCode, status, `${action} → ${status}: ${res.body.slice(0, 200)}`);
    if (status === 409) t.equal(res.json().code, 'CONFLICT');
    if (match) t.match(res.json().message, match);
    return res;
  };

  t.test('draft: only publish', async (t) => {
    await expect(t, 'pause', 409, /draft; publish it first/);
    await expect(t, 'resume', 409, /draft/);
    await expect(t, 'end', 409, /never published/);
  });
  t.test('draft → live → paused → live → ended', async (t) => {
    const pub = await expect(t, 'publish', 200);
    t.equal(pub.json().status, 'live');
    t.ok(pub.json().publishedAt);
    await expect(t, 'publish', 409, /already live/);
    await expect(t, 'resume', 409, /already live/);
    t.equal((await expect(t, 'pause', 200)).json().status, 'paused');
    await expect(t, 'pause', 409, /already paused/);
    await expect(t, 'publish', 409, /paused; use resume/);
    t.equal((await expect(t, 'resume', 200)).json().status, 'live');
    t.equal((await expect(t, 'pause', 200)).json().status, 'paused');
    t.equal((await expect(t, 'end', 200)).json().status, 'ended', 'paused → ended');
    await expect(t, 'end', 409, /already ended/);
    await expect(t, 'resume', 409, /ended/);
    await expect(t, 'publish', 409, /ended/);
    await expect(t, 'pause', 409, /ended/);
    const patch = await api.patch(id, { texts: { x: 'y' } });
    t.equal(patch.statusCode, 409);
    t.match(patch.json().message, /has ended/);
  });
  t.test('unknown campaign is 404', async (t) => {
    t.equal((await api.act(999_999, 'publish')).statusCode, 404);
    t.equal((await api.act(999_999, 'end')).statusCode, 404);
  });
});
type Tap = Test;

t.test('editing a published campaign', async (t) => {
  const built = await buildTestApp(t);
  const { app, database } = built;
  const api = client(app, await adminHeaders(app));
  const id = (await api.create(campaignBody())).json().id as number;
  t.equal((await api.act(id, 'publish')).statusCode, 200);

  t.test('texts, recommendation and relaxed limits may change; the rules text follows', async (t) => {
    const res = await api.patch(id, { texts: { paused: '活动暂停中' }, recommendation: { title: '新品冰红茶' }, redemptionsPerDay: 8, drawsPerCampaign: null, name: '夏日畅饮（加码）' });
    t.equal(res.statusCode, 200, res.body);
    t.match(res.json(), { texts: { paused: '活动暂停中' }, recommendation: { title: '新品冰红茶' }, redemptionsPerDay: 8, drawsPerCampaign: null });
    t.match(res.json().rulesText, /每天最多兑奖 8 次/);
    t.notMatch(res.json().rulesText, /最多抽奖/);
    t.match(res.json().rulesText, /「夏日畅饮（加码）」/);
  });
  t.test('limits cannot get stricter, the end cannot come earlier', async (t) => {
    const stricter = await api.patch(id, { redemptionsPerDay: 3 });
    t.equal(stricter.statusCode, 409);
    t.match(stricter.json().message, /may only be raised or removed/);
    const newLimit = await api.patch(id, { drawsPerCampaign: 100 });
    t.equal(newLimit.statusCode, 409, 'unlimited → limited is stricter too');
    const current = (await api.get(id)).json();
    const earlier = await api.patch(id, { endsAt: new Date(Date.parse(current.endsAt) - DAY).toISOString() });
    t.equal(earlier.statusCode, 409);
    t.match(earlier.json().message, /can only be extended/);
    const later = await api.patch(id, { endsAt: new Date(Date.parse(current.endsAt) + DAY).toISOString() });
    t.equal(later.statusCode, 200);
    t.equal(later.json().endsAt, new Date(Date.parse(current.endsAt) + DAY).toISOString());
  });
  t.test('prizes, questions, mode and start are locked (409 naming the fields)', async (t) => {
    const res = await api.patch(id, { prizes: [{ name: '1积分', kind: 'points', value: 1, weight: 1 }], unlockMin: 0, startsAt: new Date().toISOString() });
    t.equal(res.statusCode, 409);
    t.match(res.json().message, /prizes, unlockMin, startsAt cannot change once published/);
    t.equal((await api.patch(id, { prizeMode: 'deck' })).statusCode, 409);
    t.equal((await api.get(id)).json().prizes.length, 5, 'prizes unchanged');
  });
  t.test('a paused campaign whose window closed cannot resume', async (t) => {
    t.equal((await api.act(id, 'pause')).statusCode, 200);
    await database.db.update(campaigns).set({ startsAt: new Date(Date.now() - 3 * DAY), endsAt: new Date(Date.now() - DAY) }).where(eq(campaigns.id, id));
    const res = await api.act(id, 'resume');
    t.equal(res.statusCode, 409);
    t.match(res.json().message, /window closed/);
    t.equal((await api.act(id, 'end')).statusCode, 200, 'it can be ended');
  });
});

t.test('publish: legal and completeness checks', async (t) => {
  const { app, database } = await buildTestApp(t);
  const api = client(app, await adminHeaders(app));

  /** Create with the given overrides and publish; returns the publish response. */
  const publish = async (over: Record<string, unknown>) => {
    const c = await api.create(campaignBody(over));
    if (c.statusCode !== 201) throw new Error(c.body);
    return { id: c.json().id as number, res: await api.act(c.json().id, 'publish') };
  };
  const refused = async (t: Tap, over: Record<string, unknown>, re: RegExp) => {
    const { id, res } = await publish(over);
    t.equal(res.statusCode, 422, res.body);
    t.equal(res.json().code, 'VALIDATION');
    t.equal(res.json().details.problems.length, 1, res.json().details.problems.join('\n'));
    t.match(res.json().message, re);
    t.equal((await api.get(id)).json().status, 'draft', 'still a draft');
    t.equal(await count(database, 'prize_stock_shards', `prize_id IN (SELECT id FROM campaign_prizes WHERE campaign_id = ${id})`), 0, 'no shards');
  };
  const prize = (p: Record<string, unknown>) => ({ prizes: [p, { name: '谢谢参与', kind: 'thanks', weight: 10 }] });

  t.test('the top prize: ¥50,000.01 refused, ¥50,000 accepted', async (t) => {
    await refused(t, prize({ name: '大奖', kind: 'physical', value: 5_000_001, weight: 1, totalStock: 1 }), /"大奖": value 50000\.01元 exceeds the legal cap of 50000元/);
    const ok = await publish(prize({ name: '大奖', kind: 'physical', value: 5_000_000, weight: 1, totalStock: 1 }));
    t.equal(ok.res.statusCode, 200, ok.res.body);
    await refused(t, prize({ name: '现金大奖', kind: 'cash', value: 5_000_001, weight: 1, totalStock: 1 }), /exceeds the legal cap/);
  });
  t.test('points count at 1 fen each', async (t) => {
    await refused(t, prize({ name: '海量积分', kind: 'points', value: 5_000_001, weight: 1 }), /5000001 points \(50000\.01元 at 1 fen per point\) exceeds/);
    t.equal((await publish(prize({ name: '积分', kind: 'points', value: 5_000_000, weight: 1 }))).res.statusCode, 200);
  });
  t.test('no prize but thanks', async (t) => {
    await refused(t, { prizes: [{ name: '谢谢参与', kind: 'thanks', weight: 1 }] }, /no prizes/);
    await refused(t, { prizes: [] }, /no prizes/);
  });
  t.test('a prize with weight 0 in dynamic mode', async (t) => {
    await refused(t, prize({ name: '幽灵奖', kind: 'points', value: 10, weight: 0 }), /"幽灵奖": weight 0 in dynamic mode/);
  });
  t.test('a window already over', async (t) => {
    await refused(t, { startsAt: new Date(Date.now() - 10 * DAY).toISOString(), endsAt: new Date(Date.now() - DAY).toISOString() }, /already over/);
  });
  t.test('unlockMin above the number of questions', async (t) => {
    await refused(t, { questions: [], unlockMin: 1 }, /unlockMin 1 exceeds the number of golden questions \(0\)/);
    t.equal((await publish({ questions: [], unlockMin: 0 })).res.statusCode, 200, 'no questions, nothing to unlock');
  });
  t.test('invalid questions stored by other means are caught again', async (t) => {
    const c = (await api.create(campaignBody())).json();
    await database.db.update(campaigns).set({ questions: [{ key: 'name', kind: 'text', prompt: '称呼？', pattern: '(' }, { key: 'job', kind: 'choice', prompt: '职业？' }] }).where(eq(campaigns.id, c.id));
    const res = await api.act(c.id, 'publish');
    t.equal(res.statusCode, 422);
    t.same(res.json().details.problems.length, 2);
    t.match(res.json().message, /pattern is not a valid regular expression/);
  });
  t.test('a coupon without coupon details', async (t) => {
    await refused(t, prize({ name: '优惠券', kind: 'coupon', value: 500, weight: 1 }), /coupon prize needs coupon details/);
  });
  t.test('a top-up of a face value providers do not sell', async (t) => {
    await refused(t, prize({ name: '话费', kind: 'topup', value: 1500, weight: 1 }), /top-up value 1500 fen is not one of 10元\/20元\/30元\/50元\/100元/);
    for (const value of [1000, 2000, 3000, 5000, 10000]) t.equal((await publish(prize({ name: '话费', kind: 'topup', value, weight: 1 }))).res.statusCode, 200, `${value} fen`);
  });
  t.test('cash below WeChat Pay’s 0.30元 minimum', async (t) => {
    await refused(t, prize({ name: '红包', kind: 'cash', value: 29, weight: 1 }), /cash 29 fen is below the WeChat Pay transfer minimum of 0\.3元/);
    t.equal((await publish(prize({ name: '红包', kind: 'cash', value: 30, weight: 1 }))).res.statusCode, 200);
  });
  t.test('deck mode without total stock on a winning prize', async (t) => {
    await refused(t, { prizeMode: 'deck', ...prize({ name: '红包', kind: 'cash', value: 100, weight: 0 }) }, /deck mode needs a totalStock/);
    t.equal((await publish({ prizeMode: 'deck', ...prize({ name: '红包', kind: 'cash', value: 100, weight: 0, totalStock: 10 }) })).res.statusCode, 200, 'weights do not matter in deck mode');
  });
  t.test('several problems are listed together', async (t) => {
    const { res } = await publish({ questions: [], unlockMin: 3, prizes: [{ name: '话费', kind: 'topup', value: 1, weight: 0 }, { name: '红包', kind: 'cash', value: 1, weight: 1 }] });
    t.equal(res.statusCode, 422);
    t.equal(res.json().details.problems.length, 4, res.json().details.problems.join('\n'));
  });
});

t.test('rules text and stock shards at publish', async (t) => {
  const { app, database } = await buildTestApp(t);
  const api = client(app, await adminHeaders(app));
  const draft = (await api.create(campaignBody({ lossPoints: 5, cashConfirmHours: 48, unclaimedCash: 'forfeit' }))).json();
  const id = draft.id as number;
  const preview = await app.inject({ method: 'GET', url: `/api/ops/campaigns/${id}/rules`, headers: await adminHeaders(app) });
  const pub = await api.act(id, 'publish');
  const text = pub.json().rulesText as string;

  t.test('a draft shows a preview', async (t) => {
    t.equal(preview.statusCode, 200);
    t.match(preview.json(), { campaignId: id, status: 'draft', preview: true });
    t.match(preview.json().rulesText, /中奖概率约为/);
  });

  t.test('every prize with value, quantity and odds', async (t) => {
    t.equal(pub.statusCode, 200, pub.body);
    t.comment(text);
    t.match(text, /^「夏日畅饮 扫码赢好礼」活动规则/);
    t.match(text, /（北京时间）/);
    t.match(text, /活动产品（冰红茶 500ml、绿茶 500ml）/);
    t.match(text, /回答 5 个简单问题（累计回答满 2 个即可抽奖/);
    t.match(text, /1\. 现金红包 8\.88元：微信零钱 8\.88元，共 1000 份，每日限 50 份，中奖概率约为 1%。/);
    t.match(text, /2\. 满20减5优惠券：满20减5（面值 5元，领取后 30 天内有效），不限量，中奖概率约为 9%。/);
    t.match(text, /3\. 10元话费：手机话费 10元，共 120 份，中奖概率约为 0\.5%。/);
    t.match(text, /4\. 100积分：100 积分，不限量，中奖概率约为 19\.5%。/);
    t.match(text, /未中奖为“谢谢参与”，并获赠 5 积分，概率约为 70%/);
    t.match(text, /发完即止/);
    t.match(text, /每天最多兑奖 5 次；每位用户在本活动期间最多抽奖 20 次/);
    t.match(text, /48 小时内在小程序中确认收款，逾期未确认的，视为自动放弃该奖品/);
    t.notMatch(text, /公平性承诺/, 'no deck statement in dynamic mode');
    const rules = await app.inject({ method: 'GET', url: `/api/ops/campaigns/${id}/rules`, headers: await adminHeaders(app) });
    t.match(rules.json(), { preview: false, rulesText: text, status: 'live' });
  });

  t.test('the dates are Beijing time', async (t) => {
    const c = (await api.create(campaignBody({ startsAt: '2030-06-30T16:00:00Z', endsAt: '2030-09-01T16:00:00Z' }))).json();
    const r = (await app.inject({ method: 'GET', url: `/api/ops/campaigns/${c.id}/rules`, headers: await adminHeaders(app) })).json();
    t.match(r.rulesText, /2030年7月1日 00:00 起至 2030年9月2日 00:00 止（北京时间）/);
  });

  t.test('shards: total and daily stock split, unlimited prizes have none', async (t) => {
    const prizes = pub.json().prizes as Array<{ id: number; name: string }>;
    const shards = async (prizeId: number) => database.db.select().from(prizeStockShards).where(eq(prizeStockShards.prizeId, prizeId)).orderBy(asc(prizeStockShards.shard));
    const cash = await shards(prizes[0]!.id);
    t.equal(cash.length, 16);
    t.equal(cash.reduce((s, r) => s + r.remaining, 0), 1000, 'Σ remaining = total stock');
    t.equal(cash.reduce((s, r) => s + r.dailyShare!, 0), 50, 'Σ daily shares = daily cap');
    t.ok(cash.every((r) => r.day === null && r.issuedToday === 0));
    const topup = await shards(prizes[2]!.id);
    t.same(topup.map((r) => [r.remaining, r.dailyShare]), [[60, null], [60, null]]);
    t.equal((await shards(prizes[1]!.id)).length, 0, 'unlimited coupon');
    t.equal((await shards(prizes[3]!.id)).length, 0, 'unlimited points');
  });

  t.test('pause and resume do not refill the stock', async (t) => {
    const cashId = (pub.json().prizes as Array<{ id: number }>)[0]!.id;
    await database.db.update(prizeStockShards).set({ remaining: 0 }).where(and(eq(prizeStockShards.prizeId, cashId), eq(prizeStockShards.shard, 0)));
    t.equal((await api.act(id, 'pause')).statusCode, 200);
    t.equal((await api.act(id, 'resume')).statusCode, 200);
    const rows = await database.db.select().from(prizeStockShards).where(eq(prizeStockShards.prizeId, cashId));
    t.equal(rows.length, 16);
    t.equal(rows.reduce((s, r) => s + r.remaining, 0), 1000 - 63);
  });
});

t.test('deck mode: commit at creation, reveal at the end', async (t) => {
  const { app, database } = await buildTestApp(t);
  const api = client(app, await adminHeaders(app));
  const deckPrizes = { prizeMode: 'deck', prizes: [{ name: '一等奖 手机', kind: 'physical', value: 399_900, weight: 0, totalStock: 3 }, { name: '5元红包', kind: 'cash', value: 500, weight: 0, totalStock: 200 }] };
  const created = (await api.create(campaignBody(deckPrizes))).json();
  const id = created.id as number;
  const [row] = await database.db.select().from(campaigns).where(eq(campaigns.id, id));
  const seed = row!.deckSeed!;

  t.test('the seed is 32 random bytes in hex, the hash is sha256 of that string', async (t) => {
    t.match(seed, /^[0-9a-f]{64}$/);
    t.equal(created.deckSeedHash, createHash('sha256').update(seed, 'utf8').digest('hex'));
    t.equal(created.deckSeed, null, 'hidden from ops');
    t.notOk(JSON.stringify(created).includes(seed));
  });

  t.test('published: the hash is in the rules, the seed nowhere; no shards in deck mode', async (t) => {
    const pub = await api.act(id, 'publish');
    t.equal(pub.statusCode, 200, pub.body);
    t.equal(pub.json().deckSeed, null);
    t.match(pub.json().rulesText, new RegExp(`SHA-256 哈希值为：${created.deckSeedHash}`));
    t.match(pub.json().rulesText, /1\. 一等奖 手机：实物奖品（市场价值 3999元），共 3 份，预置于 3 个兑奖码中。/);
    t.match(pub.json().rulesText, /活动结束后我们将公布随机种子/);
    t.notOk(pub.body.includes(seed));
    const pub2 = await app.inject({ method: 'GET', url: `/api/public/campaigns/${id}/rules` });
    t.notOk(pub2.body.includes(seed));
    t.equal(await count(database, 'prize_stock_shards', `prize_id IN (SELECT id FROM campaign_prizes WHERE campaign_id = ${id})`), 0);
    const rules = (await app.inject({ method: 'GET', url: `/api/ops/campaigns/${id}/rules`, headers: await adminHeaders(app) })).json();
    t.match(rules, { deckSeedHash: created.deckSeedHash, deckSeed: null });
  });

  t.test('ended: the seed is revealed', async (t) => {
    const end = await api.act(id, 'end');
    t.equal(end.statusCode, 200);
    t.equal(end.json().deckSeed, seed);
    t.ok(end.json().deckSeedRevealedAt);
    t.equal((await api.get(id)).json().deckSeed, seed);
    t.match(end.json().rulesText, new RegExp(`随机种子为：${seed}`));
    const page = await app.inject({ method: 'GET', url: `/api/public/campaigns/${id}/rules` });
    t.ok(page.body.includes(seed), 'on the public page too');
  });

  t.test('a draft switched to deck gets a seed; back to dynamic drops it', async (t) => {
    const c = (await api.create(campaignBody())).json();
    t.equal(c.deckSeedHash, null);
    const deck = (await api.patch(c.id, { prizeMode: 'deck' })).json();
    t.match(deck.deckSeedHash, /^[0-9a-f]{64}$/);
    t.equal((await api.patch(c.id, { prizeMode: 'dynamic' })).json().deckSeedHash, null);
  });

  t.test('once a deck campaign has code batches its prizes are frozen', async (t) => {
    const c = (await api.create(campaignBody(deckPrizes))).json();
    await database.db.insert(codeBatches).values({ campaignId: c.id, name: '第一批', source: 'generated', count: 100, status: 'active', codeLength: 12 });
    const res = await api.patch(c.id, { prizes: [{ name: 'x', kind: 'points', value: 1, weight: 0, totalStock: 1 }] });
    t.equal(res.statusCode, 409);
    t.match(res.json().message, /deck prizes can no longer change/);
    t.equal((await api.patch(c.id, { prizeMode: 'dynamic' })).statusCode, 409);
    t.equal((await api.patch(c.id, { name: '改名' })).statusCode, 200, 'other fields still change');
  });
});

t.test('roles and audit', async (t) => {
  const { app } = await buildTestApp(t);
  const admin = await adminHeaders(app);
  for (const [username, role] of [['olivia', 'operator'], ['ann.analyst', 'analyst'], ['rex.reviewer', 'reviewer']]) {
    const res = await app.inject({ method: 'POST', url: '/api/ops/users', headers: admin, payload: { username, password: `${role}-pass-1`, role } });
    if (res.statusCode !== 201) throw new Error(res.body);
  }
  const operator = await login(app, 'olivia', 'operator-pass-1');
  const analyst = await login(app, 'ann.analyst', 'analyst-pass-1');
  const reviewer = await login(app, 'rex.reviewer', 'reviewer-pass-1');
  const created = await client(app, operator).create(campaignBody());
  const id = created.json().id as number;

  t.test('an operator creates, edits and publishes', async (t) => {
    t.equal(created.statusCode, 201);
    t.equal((await client(app, operator).patch(id, { lossPoints: 1 })).statusCode, 200);
    t.equal((await client(app, operator).act(id, 'publish')).statusCode, 200);
    t.equal((await app.inject({ method: 'GET', url: `/api/ops/campaigns/${id}/redemptions.csv`, headers: operator })).statusCode, 403, 'but does not export openids');
  });
  t.test('an analyst reads and exports but cannot write', async (t) => {
    const api = client(app, analyst);
    t.equal((await api.create(campaignBody())).statusCode, 403);
    t.equal((await api.patch(id, { name: 'x' })).statusCode, 403);
    t.equal((await api.act(id, 'pause')).statusCode, 403);
    t.equal((await api.get(id)).statusCode, 200);
    t.equal((await app.inject({ method: 'GET', url: '/api/ops/campaigns', headers: analyst })).statusCode, 200);
    t.equal((await app.inject({ method: 'GET', url: `/api/ops/campaigns/${id}/counters`, headers: analyst })).statusCode, 200);
    t.equal((await app.inject({ method: 'GET', url: `/api/ops/campaigns/${id}/redemptions.csv`, headers: analyst })).statusCode, 200);
  });
  t.test('a reviewer reads only', async (t) => {
    const api = client(app, reviewer);
    t.equal((await api.get(id)).statusCode, 200);
    t.equal((await app.inject({ method: 'GET', url: `/api/ops/campaigns/${id}/counters`, headers: reviewer })).statusCode, 200);
    t.equal((await app.inject({ method: 'GET', url: `/api/ops/campaigns/${id}/rules`, headers: reviewer })).statusCode, 200);
    t.equal((await api.create(campaignBody())).statusCode, 403);
    t.equal((await api.act(id, 'end')).statusCode, 403);
    t.equal((await app.inject({ method: 'GET', url: `/api/ops/campaigns/${id}/redemptions.csv`, headers: reviewer })).statusCode, 403);
  });
  t.test('without a token: 401', async (t) => {
    t.equal((await app.inject({ method: 'GET', url: '/api/ops/campaigns' })).statusCode, 401);
    t.equal((await app.inject({ method: 'POST', url: '/api/ops/campaigns', payload: campaignBody() })).statusCode, 401);
  });
  t.test('every write (and the export) is audited with actor and target; refused ones are not', async (t) => {
    t.equal((await client(app, operator).act(id, 'publish')).statusCode, 409);
    const rows = (await app.inject({ method: 'GET', url: '/api/ops/audit?targetType=campaign', headers: admin })).json() as Array<{ action: string; targetId: string; actorName: string; detail: any }>;
    t.same(rows.map((r) => [r.action, r.targetId, r.actorName]), [
      ['campaign.export_redemptions', String(id), 'ann.analyst'],
      ['campaign.publish', String(id), 'olivia'],
      ['campaign.update', String(id), 'olivia'],
      ['campaign.create', String(id), 'olivia'],
    ]);
    t.same(rows[2]!.detail, { lossPoints: 1 });
  });
});

t.test('counters and the redemptions export', async (t) => {
  const { app, database } = await buildTestApp(t);
  const { db } = database;
  const admin = await adminHeaders(app);
  const api = client(app, admin);
  const c = (await api.create(campaignBody())).json();
  const id = c.id as number;
  t.equal((await api.act(id, 'publish')).statusCode, 200);
  const [cash, coupon] = c.prizes as Array<{ id: number }>;
  const now = Date.now();

  // Batches: one active, one voided, one still loading.
  const [active] = await db.insert(codeBatches).values({ campaignId: id, name: '2025春季批', source: 'generated', count: 1000, status: 'active', codeLength: 12 }).returning();
  await db.insert(codeBatches).values({ campaignId: id, name: '作废批', source: 'imported', count: 200, status: 'voided', codeLength: 12, voidedAt: new Date() });
  await db.insert(codeBatches).values({ campaignId: id, name: '导入中', source: 'imported', count: 50, status: 'loading', codeLength: 12 });
  // Another campaign's redemption must not show up.
  const other = (await api.create(campaignBody())).json().id as number;

  const redeem = async (openid: string, at: number, risk: { decision: string; score: number; reasons: string[] } | null = null) => {
    const [r] = await db.insert(redemptions).values({ campaignId: id, batchId: active!.id, codeKey: Buffer.from(`${openid}-${at}`), openid, redeemedAt: new Date(at), risk }).returning();
    return r!;
  };
  const draw = async (r: { id: number; openid: string }, prizeId: number | null, outcome: 'won' | 'lost' | 'out_of_stock') => {
    await db.update(redemptions).set({ status: 'drawn', drawnAt: new Date() }).where(eq(redemptions.id, r.id));
    const [d] = await db.insert(draws).values({ redemptionId: r.id, campaignId: id, openid: r.openid, mode: 'dynamic', eligible: [], roll: 1, drawnPrizeId: prizeId, prizeId: outcome === 'won' ? prizeId : null, outcome, createdAt: new Date() }).returning();
    return d!;
  };
  const fulfil = async (d: { id: number; openid: string } | null, openid: string, prizeId: number | null, kind: 'cash' | 'coupon' | 'points', state: 'pending' | 'succeeded', key: string) => {
    await db.insert(fulfilments).values({ sourceKey: key, drawId: d?.id ?? null, campaignId: id, openid, prizeId, kind, amount: 1, state, nextAttemptAt: new Date(), outNo: `out-${key}`, createdAt: new Date(), updatedAt: new Date() });
  };

  const r1 = await redeem('oAlice', Date.UTC(2025, 5, 30, 17, 30, 5)); // 2025-07-01 01:30:05 in Shanghai
  const r2 = await redeem('oBob', now - 3000);
  const r3 = await redeem('oCarol', now - 2000);
  const r4 = await redeem('oAlice', now - 1000, { decision: 'allow', score: 0.1, reasons: [] });
  await db.insert(redemptions).values({ campaignId: other, batchId: active!.id, codeKey: Buffer.from('other'), openid: 'oOther', redeemedAt: new Date() });
  const d1 = await draw(r1, cash!.id, 'won');
  const d2 = await draw(r2, coupon!.id, 'out_of_stock');
  const d4 = await draw(r4, coupon!.id, 'won');
  await fulfil(d1, 'oAlice', cash!.id, 'cash', 'succeeded', `draw:${d1.id}`);
  await fulfil(d4, 'oAlice', coupon!.id, 'coupon', 'pending', `draw:${d4.id}`);
  for (const [openid, key] of [['oAlice', 'name'], ['oAlice', 'occupation'], ['oAlice', 'region'], ['oBob', 'name']]) {
    await db.insert(profileAnswers).values({ openid: openid!, questionKey: key!, value: 'x', display: 'x', campaignId: id, answeredAt: new Date() });
  }
  // One cash unit issued today from shard 0.
  await db.update(prizeStockShards).set({ remaining: sql`${prizeStockShards.remaining} - 1`, day: shanghaiDate(new Date()), issuedToday: 1 })
    .where(and(eq(prizeStockShards.prizeId, cash!.id), eq(prizeStockShards.shard, 0)));

  t.test('counters', async (t) => {
    const res = await app.inject({ method: 'GET', url: `/api/ops/campaigns/${id}/counters`, headers: admin });
    t.equal(res.statusCode, 200, res.body);
    const k = res.json();
    t.match(k, {
      campaignId: id, status: 'live',
      codes: { printed: 1000, voided: 200, activeBatches: 1, voidedBatches: 1 },
      redeemed: 4, draws: 3, questionsCompleted: 3, pendingDraws: 1, wins: 2, losses: 1,
      // Consolation points are credited by the draw itself (no job): counted as the losses of a campaign that gives them.
      consolation: {},
    });
    const byName = Object.fromEntries((k.prizes as any[]).map((p) => [p.name, p]));
    t.same(byName['现金红包 8.88元'], { prizeId: cash!.id, name: '现金红包 8.88元', kind: 'cash', won: 1, stockRemaining: 999, dailyCap: 50, issuedToday: 1, fulfilment: { succeeded: 1 } });
    t.match(byName['满20减5优惠券'], { won: 1, stockRemaining: null, dailyCap: null, issuedToday: 0, fulfilment: { pending: 1 } });
    t.match(byName['10元话费'], { won: 0, stockRemaining: 120, fulfilment: {} });
    t.same(k.byKind.find((b: any) => b.kind === 'coupon'), { kind: 'coupon', won: 1, fulfilment: { pending: 1 } });
    t.same(k.byKind.find((b: any) => b.kind === 'cash'), { kind: 'cash', won: 1, fulfilment: { succeeded: 1 } });
    t.equal((await app.inject({ method: 'GET', url: '/api/ops/campaigns/999999/counters', headers: admin })).statusCode, 404);
  });

  const expected = [
    { openid: 'oAlice', batch_id: String(active!.id), batch_name: '2025春季批', redeemed_at: '2025-07-01T01:30:05+08:00', answers_completed: '3', draw_result: '现金红包 8.88元', draw_outcome: 'won', prize_kind: 'cash', fulfilment_state: 'succeeded', risk_decision: '' },
    { openid: 'oBob', answers_completed: '1', draw_result: '谢谢参与', draw_outcome: 'out_of_stock', prize_kind: '', fulfilment_state: '', risk_decision: '' },
    { openid: 'oCarol', answers_completed: '0', draw_result: '未抽奖', draw_outcome: '', prize_kind: '', fulfilment_state: '', risk_decision: '' },
    { openid: 'oAlice', answers_completed: '3', draw_result: '满20减5优惠券', draw_outcome: 'won', prize_kind: 'coupon', fulfilment_state: 'pending', risk_decision: 'allow' },
  ];

  t.test('CSV over HTTP: headers, BOM, one row per redemption in id order', async (t) => {
    const res = await app.inject({ method: 'GET', url: `/api/ops/campaigns/${id}/redemptions.csv`, headers: admin });
    t.equal(res.statusCode, 200);
    t.match(res.headers['content-type'], /^text\/csv; charset=utf-8/);
    t.equal(res.headers['content-disposition'], `attachment; filename="campaign-${id}-redemptions.csv"`);
    t.ok(res.rawPayload.subarray(0, 3).equals(Buffer.from([0xef, 0xbb, 0xbf])), 'UTF-8 BOM for Excel');
    const rows = parse(res.rawPayload, { bom: true, columns: true }) as Array<Record<string, string>>;
    t.same(Object.keys(rows[0]!), [...CSV_COLUMNS]);
    t.equal(rows.length, 4);
    expected.forEach((e, i) => t.match(rows[i], e, `row ${i + 1}`));
    t.match(rows[1]!.redeemed_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+08:00$/);
    t.equal((await app.inject({ method: 'GET', url: '/api/ops/campaigns/999999/redemptions.csv', headers: admin })).statusCode, 404);
  });

  t.test('CSV streamed in small pages gives the same rows', async (t) => {
    const admin2 = createCampaignAdmin({ db, clock: systemClock, exportPageSize: 2 });
    const out = new PassThrough();
    const chunks: Buffer[] = [];
    out.on('data', (c: Buffer) => chunks.push(c));
    const { rows } = await admin2.redemptionsCsv(id, out);
    t.equal(rows, 4);
    const parsed = parse(Buffer.concat(chunks), { bom: true, columns: true }) as Array<Record<string, string>>;
    expected.forEach((e, i) => t.match(parsed[i], e, `row ${i + 1}`));
    const empty = new PassThrough();
    const emptyChunks: Buffer[] = [];
    empty.on('data', (c: Buffer) => emptyChunks.push(c));
    t.same(await admin2.redemptionsCsv((await api.create(campaignBody())).json().id, empty), { rows: 0 });
    t.equal(Buffer.concat(emptyChunks).toString('utf8').replace(/^\uFEFF/, '').trim(), CSV_COLUMNS.join(','), 'header only');
  });

  t.test('risk decision column and formula escaping', async (t) => {
    await db.update(codeBatches).set({ name: '=HYPERLINK("x")' }).where(eq(codeBatches.id, active!.id));
    const res = await app.inject({ method: 'GET', url: `/api/ops/campaigns/${id}/redemptions.csv`, headers: admin });
    const rows = parse(res.rawPayload, { bom: true, columns: true }) as Array<Record<string, string>>;
    t.equal(rows[0]!.batch_name, `'=HYPERLINK("x")`, 'a formula is neutralised');
    t.equal(rows[3]!.risk_decision, 'allow');
  });
});

t.test('public rules page', async (t) => {
  const { app } = await buildTestApp(t);
  const api = client(app, await adminHeaders(app));
  const id = (await api.create(campaignBody())).json().id as number;

  t.test('a draft is 404, without login', async (t) => {
    const res = await app.inject({ method: 'GET', url: `/api/public/campaigns/${id}/rules` });
    t.equal(res.statusCode, 404);
    t.equal(res.json().code, 'NOT_FOUND');
    t.equal((await app.inject({ method: 'GET', url: '/api/public/campaigns/999999/rules' })).statusCode, 404);
  });
  t.test('published: plain text, or HTML for a browser', async (t) => {
    t.equal((await api.act(id, 'publish')).statusCode, 200);
    const res = await app.inject({ method: 'GET', url: `/api/public/campaigns/${id}/rules` });
    t.equal(res.statusCode, 200);
    t.match(res.headers['content-type'], /^text\/plain; charset=utf-8/);
    t.match(res.body, /^「夏日畅饮 扫码赢好礼」活动规则/);
    for (const name of ['现金红包 8.88元', '满20减5优惠券', '10元话费', '100积分']) t.ok(res.body.includes(name), name);
    const html = await app.inject({ method: 'GET', url: `/api/public/campaigns/${id}/rules`, headers: { accept: 'text/html,application/xhtml+xml' } });
    t.match(html.headers['content-type'], /^text\/html/);
    t.match(html.body, /<title>夏日畅饮 扫码赢好礼 · 活动规则<\/title>/);
    t.match(html.body, /中奖概率约为 1%/);
  });
  t.test('still readable after the end', async (t) => {
    t.equal((await api.act(id, 'end')).statusCode, 200);
    t.equal((await app.inject({ method: 'GET', url: `/api/public/campaigns/${id}/rules` })).statusCode, 200);
  });
  t.test('documented in OpenAPI', async (t) => {
    const doc = (await app.inject({ method: 'GET', url: '/docs/json' })).json();
    t.ok(doc.paths['/api/ops/campaigns']?.post);
    t.ok(doc.paths['/api/ops/campaigns/{id}/publish']?.post);
    t.ok(doc.paths['/api/public/campaigns/{id}/rules']?.get);
  });
});
