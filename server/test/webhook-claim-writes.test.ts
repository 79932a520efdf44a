/**
 * The dedup claim skips follower and customer-service-grant writes that would change next to nothing
 * (bot/repo.ts FOLLOWER_SLACK_S, grantSlackS): what that may leave stale, and what it never does — a used grant is
 * always renewed, a short grant always, and the stored 48-hour window never ends after WeChat's.
 */
import t from 'tap';
import { sql } from 'drizzle-orm';
import { openDatabase } from '../src/db/client.ts';
import { rowsOf } from '../src/db/retry.ts';
import { CLAIM_SQL, createBotRepo } from '../src/bot/repo.ts';
import { buildTestApp, testDatabase } from './helpers.ts';

const HOUR = 3_600_000;
const ms = (v: Date | string) => new Date(v).getTime();

async function follower(database: { query: <T>(q: any) => Promise<T[]> }, openid: string) {
  const [f] = await database.query<{ last_interaction_at: Date; last_message_at: Date | null }>(sql`
    SELECT last_interaction_at, last_message_at FROM followers WHERE openid = ${openid}`);
  return f!;
}

async function grant(database: { query: <T>(q: any) => Promise<T[]> }, openid: string, scene: string) {
  const [g] = await database.query<{ expires_at: Date; granted_at: Date; used: number; quota: number | null }>(sql`
    SELECT expires_at, granted_at, used, quota FROM cs_grants WHERE openid = ${openid} AND scene = ${scene}`);
  return g!;
}

t.test('claim › a follower touched within the last minute is not rewritten; older times are', async (t) => {
  const { sim, database } = await buildTestApp(t);
  const before = Date.now();
  await sim.text('oSlack', 'hello');
  let f = await follower(database, 'oSlack');
  t.ok(ms(f.last_message_at!) >= before - 1000, 'the first message writes the follower');

  // Stored times 30 s old: within the slack, the next message leaves them.
  const thirty = new Date(Date.now() - 30_000).toISOString();
  await database.query(sql`UPDATE followers SET last_interaction_at = ${thirty}::timestamptz, last_message_at = ${thirty}::timestamptz WHERE openid = 'oSlack'`);
  await sim.text('oSlack', 'again');
  f = await follower(database, 'oSlack');
  t.equal(ms(f.last_message_at!), ms(thirty), 'within a minute: not rewritten');
  t.equal(ms(f.last_interaction_at), ms(thirty));

  // 90 s old: rewritten to now.
  const ninety = new Date(Date.now() - 90_000).toISOString();
  await database.query(sql`UPDATE followers SET last_interaction_at = ${ninety}::timestamptz, last_message_at = ${ninety}::timestamptz WHERE openid = 'oSlack'`);
  const at = Date.now();
  await sim.text('oSlack', 'later');
  f = await follower(database, 'oSlack');
  t.ok(ms(f.last_message_at!) >= at - 1000, 'older than a minute: rewritten');
  t.ok(ms(f.last_interaction_at) >= at - 1000);

  // An event (not a user message) within the slack of last_interaction_at, with last_message_at far older: an event
  // never moves last_message_at, so nothing to write.
  const old = new Date(Date.now() - 10 * HOUR).toISOString();
  const recent = new Date(Date.now() - 10_000).toISOString();
  await database.query(sql`UPDATE followers SET last_interaction_at = ${recent}::timestamptz, last_message_at = ${old}::timestamptz WHERE openid = 'oSlack'`);
  await sim.click('oSlack', 'MEMBER_CENTER');
  f = await follower(database, 'oSlack');
  t.equal(ms(f.last_message_at!), ms(old), 'a menu click leaves last_message_at');
  t.equal(ms(f.last_interaction_at), ms(recent));
  // …but a user message with last_message_at that old is written even though last_interaction_at is recent.
  const at2 = Date.now();
  await sim.text('oSlack', 'and now');
  f = await follower(database, 'oSlack');
  t.ok(ms(f.last_message_at!) >= at2 - 1000, 'a stale last_message_at is rewritten');
});

t.test('claim › the 48-hour grant: an unused one renewed within a minute is kept, a used one is always renewed', async (t) => {
  const { sim, database } = await buildTestApp(t);
  const t0 = Date.now();
  await sim.text('oGrant', 'hello');
  let g = await grant(database, 'oGrant', 'message');
  t.equal(g.used, 0);
  t.equal(g.quota, 5);
  t.ok(Math.abs(ms(g.expires_at) - (t0 + 48 * HOUR)) < 5_000, 'the first message opens 48 hours');

  // A grant ending 30 s earlier than a renewal would: kept as it is (the window may end up to a minute early).
  const earlier = new Date(ms(g.expires_at) - 30_000).toISOString();
  await database.query(sql`UPDATE cs_grants SET expires_at = ${earlier}::timestamptz WHERE openid = 'oGrant' AND scene = 'message'`);
  const t1 = Date.now();
  await sim.text('oGrant', 'again');
  g = await grant(database, 'oGrant', 'message');
  t.equal(ms(g.expires_at), ms(earlier), 'unused, within a minute: not rewritten');
  t.ok(ms(g.expires_at) <= t1 + 48 * HOUR, 'the stored window never ends after WeChat\'s');
  t.ok(ms(g.expires_at) >= t1 + 48 * HOUR - 61_000, '…and at most a minute before it');

  // Messages used from the grant: the next user message renews the budget at once.
  await database.query(sql`UPDATE cs_grants SET used = 5 WHERE openid = 'oGrant' AND scene = 'message'`);
  const t2 = Date.now();
  await sim.text('oGrant', 'more');
  g = await grant(database, 'oGrant', 'message');
  t.equal(g.used, 0, 'a used grant is renewed (used back to 0)');
  t.ok(ms(g.expires_at) >= t2 + 48 * HOUR - 1000, 'and its window restarts');

  // Ending more than a minute early: renewed.
  const muchEarlier = new Date(ms(g.expires_at) - 90_000).toISOString();
  await database.query(sql`UPDATE cs_grants SET expires_at = ${muchEarlier}::timestamptz WHERE openid = 'oGrant' AND scene = 'message'`);
  const t3 = Date.now();
  await sim.text('oGrant', 'last');
  g = await grant(database, 'oGrant', 'message');
  t.ok(ms(g.expires_at) >= t3 + 48 * HOUR - 1000, 'more than a minute early: renewed');
});

t.test('claim › one-minute grants (menu) are renewed on every click', async (t) => {
  const { sim, database } = await buildTestApp(t);
  await sim.click('oMenu', 'MEMBER_CENTER');
  let g = await grant(database, 'oMenu', 'menu');
  const earlier = new Date(ms(g.expires_at) - 5_000).toISOString();
  await database.query(sql`UPDATE cs_grants SET expires_at = ${earlier}::timestamptz WHERE openid = 'oMenu' AND scene = 'menu'`);
  await new Promise((r) => setTimeout(r, 1100)); // a new CreateTime second: a new event, not a retry
  const t1 = Date.now();
  await sim.click('oMenu', 'MEMBER_CENTER');
  g = await grant(database, 'oMenu', 'menu');
  t.ok(ms(g.expires_at) >= t1 + 60_000 - 1000, 'renewed to a full minute');
  t.equal(g.quota, 3);
});

t.test('claim › commits without waiting for its WAL flush, and only the claim: the setting ends with its transaction', async (t) => {
  const database = await testDatabase(t);
  await database.migrate();
  // One connection, so the statement after the claim runs in the claim's session (PGlite is one session anyway).
  const one = database.kind === 'postgres' ? await openDatabase({ url: database.url!, poolSize: 1 }) : database;
  if (one !== database) t.teardown(() => one.close());
  const [before] = await one.query<{ synchronous_commit: string }>(sql`SHOW synchronous_commit`);
  t.equal(before!.synchronous_commit, 'on', 'the session default');

  const input = {
    key: 'k1', openid: 'oAsync', msgType: 'text', event: null, eventKey: null, msgId: '1', sentAt: new Date(), receivedAt: new Date(),
    payload: { Content: 'hi' }, isUserMessage: true, grant: { scene: 'message' as const, quota: 5, ttlMs: 48 * HOUR },
  };
  const claimed = await createBotRepo(one).claim(input);
  t.equal(claimed.claimed, true);
  const [after] = await one.query<{ synchronous_commit: string }>(sql`SHOW synchronous_commit`);
  t.equal(after!.synchronous_commit, 'on', 'the next transaction of the session commits synchronously again');

  // Inside a transaction (what the statement's own implicit transaction is), the claim has turned it off.
  const values = [JSON.stringify([{ ord: 0, key: 'k2', openid: 'oAsync', msg_type: 'text', sent_at: new Date().toISOString(), received_at: new Date().toISOString(), payload: {}, is_user: true }]), '{}'];
  // Comments out (one mentions $2), then each $n bound as a parameter.
  const text = CLAIM_SQL.replace(/--[^\n]*/g, '').split(/\$([12])/).map((part, i) => (i % 2 === 0 ? sql.raw(part) : sql`${values[Number(part) - 1]}`));
  const inside = await one.db.transaction(async (tx) => {
    await tx.execute(sql.join(text, sql.raw('')));
    return rowsOf<{ synchronous_commit: string }>(await tx.execute(sql`SHOW synchronous_commit`))[0]!.synchronous_commit;
  });
  t.equal(inside, 'off', "the claim's commit does not wait for the WAL flush");
  const [last] = await one.query<{ synchronous_commit: string }>(sql`SHOW synchronous_commit`);
  t.equal(last!.synchronous_commit, 'on');
  const [{ n }] = (await one.query<{ n: number }>(sql`SELECT count(*)::int AS n FROM webhook_dedup WHERE key IN ('k1', 'k2')`)) as [{ n: number }];
  t.equal(n, 2, 'both claims stored');
});
