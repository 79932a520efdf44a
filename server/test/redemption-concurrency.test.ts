/**
 * Exactly-once under concurrency, through the webhook: every code sent by three users at once is redeemed once
 * (two app instances on one database); a prize with stock 10 under 500 parallel draws is issued exactly 10 times;
 * a deck issues exactly its cards. Full sizes on PostgreSQL; PGlite (one connection) runs smaller ones.
 */
import t, { type Test } from 'tap';
import pg from 'pg';
import { sql } from 'drizzle-orm';
import { buildApp } from '../src/app.ts';
import { WeChatSimulator, type PassiveReply } from '../src/wechat/sandbox/simulator.ts';
import { buildTestApp, count, injectTransport, onPostgres } from './helpers.ts';
import { seedCampaign } from './campaign-fixtures.ts';

type Services = Awaited<ReturnType<typeof buildApp>>['services'];
type Sent = { openid: string; msgId: string; r: PassiveReply };

/** A code sent as a text message with a known MsgId (to find its answer if it was deferred). */
function send(sim: WeChatSimulator, openid: string, code: string) {
  const msgId = sim.newMsgId();
  return sim.text(openid, code, msgId).then((r) => ({ code, openid, msgId, r }));
}

/**
 * What each message was answered, once every instance's background work is done. A handler that overruns the reply
 * budget (a loaded machine: a user's messages are handled one after another, so the last of twenty queued ones
 * waits for the nineteen before it) is answered `success` and its reply goes out as a customer-service message,
 * keyed by the message (`reply:<dedup key>`): that message is the answer then. Every redemption, draw and credit
 * of a deferred message has also happened once this returns.
 */
async function answers(t: Test, instances: Services[], sent: Sent[]): Promise<Array<string | undefined>> {
  for (const s of instances) await s.bot.drain();
  const outbox = new Map<string, string | undefined>();
  const deferred = sent.filter(({ r }) => r.status === 200 && r.raw === 'success');
  for (const openid of new Set(deferred.map((d) => d.openid))) {
    for (const row of await instances[0]!.messaging.list(openid)) outbox.set(row.key, row.message.type === 'text' ? row.message.content : JSON.stringify(row.message));
  }
  if (deferred.length > 0) t.comment(`${deferred.length} of ${sent.length} replies overran the reply budget and went out as customer-service messages`);
  return sent.map(({ openid, msgId, r }) => (r.raw === 'success' ? outbox.get(`reply:m:${openid}:${msgId}`) : r.content));
}

const CODES = onPostgres ? 1000 : 150;
const DRAWS = onPostgres ? 500 : 120;

t.test(`${CODES} codes, each sent by 3 users at once over two instances → each redeemed exactly once`, async (t) => {
  const a = await buildTestApp(t);
  const { codes } = await seedCampaign(a.database, a.config.codeKey, { unlockMin: 0, questions: [], codes: CODES, prizes: [{ name: '1积分', kind: 'points', value: 1, weight: 1 }] });
  // A second instance on the same database (on PGlite: the same in-process engine).
  const b = await buildApp(a.config, { database: a.database, logger: false });
  // Thousands of messages at once: the simulators skip reporting each one to the sandbox.
  const simA = new WeChatSimulator({ ...a.sim.opts, sandboxUrl: undefined });
  t.teardown(() => b.app.close());
  const simB = new WeChatSimulator({ ...a.sim.opts, sandboxUrl: undefined, transport: injectTransport(b.app) });

  const sends = codes.flatMap((code, i) => [
    send(simA, `oUserA${i % 50}`, code),
    send(simA, `oUserB${i % 50}`, code),
    send(simB, `oUserC${i % 50}`, code),
  ]);
  const results = await Promise.all(sends);
  const answered = await answers(t, [a.services, b.services], results);
  const wins = new Map<string, number>();
  results.forEach(({ code, r }, i) => {
    t.equal(r.status, 200);
    const content = answered[i];
    if (/恭喜/.test(content ?? '')) wins.set(code, (wins.get(code) ?? 0) + 1);
    else if (!/已被其他用户使用/.test(content ?? '')) t.fail(`unexpected reply: ${content ?? r.raw}`);
  });
  t.equal(wins.size, CODES, 'every code was won by someone');
  t.ok([...wins.values()].every((n) => n === 1), 'and by exactly one sender');
  t.equal(await count(a.database, 'redemptions'), CODES);
  t.equal(await count(a.database, 'draws'), CODES);
  t.equal(await count(a.database, 'codes', 'redeemed_at IS NOT NULL'), CODES);
  const [{ n }] = (await a.database.query<{ n: number }>(sql`SELECT coalesce(sum(total), 0)::int AS n FROM campaign_user_counters`)) as [{ n: number }];
  t.equal(n, CODES, 'the per-user counters gave back every count of a lost race');
  const [{ pts }] = (await a.database.query<{ pts: number }>(sql`SELECT coalesce(sum(balance), 0)::int AS pts FROM points_accounts`)) as [{ pts: number }];
  t.equal(pts, CODES, 'one point per redemption, credited once');
});

t.test(`a prize with stock 10 under ${DRAWS} parallel draws is issued exactly 10 times`, async (t) => {
  const { database, config, sim: base, services } = await buildTestApp(t);
  const sim = new WeChatSimulator({ ...base.opts, sandboxUrl: undefined });
  const { codes, prizes } = await seedCampaign(database, config.codeKey, {
    unlockMin: 0, questions: [], codes: DRAWS, shards: 3,
    prizes: [{ name: '5元话费', kind: 'topup', value: 500, weight: 1, totalStock: 10 }],
  });
  const replies = (await answers(t, [services], await Promise.all(codes.map((code, i) => send(sim, `oStock${i}`, code))))).map((c) => c ?? '(no answer)');
  const won = replies.filter((c) => /恭喜/.test(c)).length;
  const out = replies.filter((c) => /奖品已发完/.test(c)).length;
  const other = replies.filter((c) => !/恭喜|奖品已发完/.test(c));
  t.same(other.slice(0, 3), [], 'no other replies');
  t.equal(won, 10, 'ten winners told so');
  t.equal(out, DRAWS - 10, 'everyone else told the prizes are gone');
  t.equal(await count(database, 'draws', `prize_id = ${prizes[0]!.id}`), 10);
  t.equal(await count(database, 'draws', `outcome = 'out_of_stock'`), DRAWS - 10);
  t.equal(await count(database, 'fulfilments', `kind = 'topup'`), 10, 'ten fulfilment jobs');
  const [{ left }] = (await database.query<{ left: number }>(sql`SELECT sum(remaining)::int AS left FROM prize_stock_shards`)) as [{ left: number }];
  t.equal(left, 0);
});

t.test('a daily cap holds under parallel draws; the next day has a fresh share', async (t) => {
  const { sim, database, config, services } = await buildTestApp(t);
  const { codes } = await seedCampaign(database, config.codeKey, {
    unlockMin: 0, questions: [], codes: 60, shards: 2,
    prizes: [{ name: '优惠券', kind: 'coupon', value: 500, weight: 1, totalStock: 100, dailyStock: 6, coupon: { title: '5元券', validDays: 30 } }],
  });
  const replies = await answers(t, [services], await Promise.all(codes.slice(0, 40).map((code, i) => send(sim, `oDaily${i}`, code))));
  t.equal(replies.filter((c) => /恭喜/.test(c ?? '')).length, 6);
  await database.db.execute(sql`UPDATE prize_stock_shards SET day = day - 1`);
  const next = await answers(t, [services], await Promise.all(codes.slice(40).map((code, i) => send(sim, `oDaily${i}`, code))));
  t.equal(next.filter((c) => /恭喜/.test(c ?? '')).length, 6);
  const [{ left }] = (await database.query<{ left: number }>(sql`SELECT sum(remaining)::int AS left FROM prize_stock_shards`)) as [{ left: number }];
  t.equal(left, 88);
});

t.test('deck mode: what is issued is exactly the deck, with no stock rows involved', async (t) => {
  const { sim, database, config, services } = await buildTestApp(t);
  const deck = [0, 1, 1, 0, 1];
  const { codes } = await seedCampaign(database, config.codeKey, {
    unlockMin: 0, questions: [], codes: 30, prizeMode: 'deck', deck,
    prizes: [{ name: '一等奖 现金5元', kind: 'cash', value: 500, weight: 0, totalStock: 2 }, { name: '100积分', kind: 'points', value: 100, weight: 0, totalStock: 3 }],
  });
  const replies = await answers(t, [services], await Promise.all(codes.map((code, i) => send(sim, `oDeck${i % 7}`, code))));
  t.equal(replies.filter((c) => /现金5元/.test(c ?? '')).length, 2);
  t.equal(replies.filter((c) => /【100积分】/.test(c ?? '')).length, 3);
  t.equal(await count(database, 'draws', `mode = 'deck' AND outcome = 'won'`), 5);
  t.equal(await count(database, 'draws', `mode = 'deck' AND outcome = 'lost'`), 25);
});

t.test('odds hold when a limited prize competes with unlimited ones (the pick made before the redemption is honoured)', async (t) => {
  const { database, config, sim: base, services } = await buildTestApp(t);
  const sim = new WeChatSimulator({ ...base.opts, sandboxUrl: undefined });
  const N = 300;
  const { codes } = await seedCampaign(database, config.codeKey, {
    unlockMin: 0, questions: [], codes: N,
    prizes: [{ name: '10元话费', kind: 'topup', value: 1000, weight: 1, totalStock: 10_000 }, { name: '1积分', kind: 'points', value: 1, weight: 1 }],
  });
  const replies = await answers(t, [services], await Promise.all(codes.map((code, i) => send(sim, `oOdds${i}`, code))));
  const topups = replies.filter((c) => /【10元话费】/.test(c ?? '')).length;
  t.equal(replies.filter((c) => /恭喜/.test(c ?? '')).length, N, 'every draw won one of the two');
  // Binomial(300, 0.5): mean 150, sd ≈ 8.7. Re-picking after a limited pick would give ≈ 75.
  t.ok(topups > 110 && topups < 190, `limited prize drawn ${topups} of ${N} times at 50 % odds`);
});

t.test('a limited prize is taken in the redemption statement; with every shard busy the draw waits in its own transaction', { skip: !onPostgres && 'needs a second connection (PostgreSQL)' }, async (t) => {
  const { database, config, sim, services } = await buildTestApp(t);
  const { codes, prizes } = await seedCampaign(database, config.codeKey, {
    unlockMin: 0, questions: [], codes: 3, shards: 2,
    prizes: [{ name: '5元话费', kind: 'topup', value: 500, weight: 1, totalStock: 2 }],
  });
  // Free shards: taken at once, in the statement that redeems the code.
  const [first] = await answers(t, [services], [await send(sim, 'oBusy1', codes[0]!)]);
  t.match(first, /恭喜/);
  // Another transaction holds every shard: the code is still redeemed, and the draw waits for the shard, not fails.
  const holder = new pg.Client({ connectionString: (database as { url?: string }).url });
  await holder.connect();
  t.teardown(() => holder.end());
  await holder.query('BEGIN');
  await holder.query('SELECT * FROM prize_stock_shards FOR UPDATE');
  const pending = send(sim, 'oBusy2', codes[1]!);
  // The redemption commits on its own while the draw that follows waits for a shard: wait for it (the draw cannot
  // happen before COMMIT below, however long the redemption took on a loaded machine).
  const deadline = Date.now() + 20_000;
  while ((await count(database, 'redemptions', `openid = 'oBusy2'`)) === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  t.equal(await count(database, 'redemptions', `openid = 'oBusy2'`), 1, 'the code was redeemed while the shards were busy');
  t.equal(await count(database, 'draws', `openid = 'oBusy2'`), 0, 'and its draw is waiting for a shard');
  await holder.query('COMMIT');
  const [waited] = await answers(t, [services], [await pending]);
  t.match(waited, /恭喜/, 'the waiting draw took the last unit once the shard was free');
  // Nothing left: the next pre-drawn unit is out of stock in the redemption statement itself.
  const [last] = await answers(t, [services], [await send(sim, 'oBusy3', codes[2]!)]);
  t.match(last, /奖品已发完/);
  t.equal(await count(database, 'draws', `prize_id = ${prizes[0]!.id}`), 2);
  t.equal(await count(database, 'fulfilments', `kind = 'topup'`), 2);
  const [{ left }] = (await database.query<{ left: number }>(sql`SELECT sum(remaining)::int AS left FROM prize_stock_shards`)) as [{ left: number }];
  t.equal(left, 0);
});
