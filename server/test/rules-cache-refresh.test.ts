/**
 * The webhook's rules snapshot is refreshed ahead of its expiry (platform/refreshing.ts): a change made elsewhere
 * (another instance, straight in the database) shows up in the second half of the TTL without any message waiting
 * for the reload — on PostgreSQL, even while the reload itself is stuck behind a lock.
 */
import t from 'tap';
import { sql } from 'drizzle-orm';
import { adminHeaders, buildTestApp, holdLocks, onPostgres } from './helpers.ts';

const TTL = 4000;
const sleepUntil = (at: number) => new Promise((r) => setTimeout(r, Math.max(0, at - Date.now())));

t.test('rules cache › a rule changed elsewhere is seen in the second half of the TTL; no message waits for the reload', async (t) => {
  const { app, sim, database } = await buildTestApp(t, { env: { RULES_CACHE_TTL_MS: String(TTL) } });
  const headers = await adminHeaders(app);
  const created = await app.inject({ method: 'POST', url: '/api/ops/keyword-rules', headers, payload: { name: 'hours', matchType: 'exact', pattern: '营业时间', reply: { type: 'text', content: '旧：9点到18点' } } });
  t.equal(created.statusCode, 201);

  // The snapshot is loaded during this message (the write above dropped it): its age counts from between t0 and t1.
  const t0 = Date.now();
  t.equal((await sim.text('oCache1', '营业时间')).content, '旧：9点到18点');
  const t1 = Date.now();
  // Another instance edits the rule: this one is not told.
  await database.db.execute(sql`UPDATE keyword_rules SET reply = '{"type":"text","content":"新：9点到20点"}'::jsonb WHERE name = 'hours'`);

  await sleepUntil(t1 + TTL / 2 + 50);
  t.equal((await sim.text('oCache1', '营业时间')).content, '旧：9点到18点', 'second half: answered from the snapshot (the reload runs beside it)');
  await new Promise((r) => setTimeout(r, 300));
  const seen = Date.now();
  t.equal((await sim.text('oCache1', '营业时间')).content, '新：9点到20点', 'the change, before the first snapshot expired');
  t.ok(seen < t0 + TTL, `checked before the first snapshot's expiry (${seen - t0} ms after it loaded): a reload on expiry alone would still answer 旧`);

  if (!onPostgres) return;
  // The reloaded snapshot's own second half, with its reload blocked: the message is still answered at once.
  const reloadedAt = seen - 300; // at the latest (its load started with the "second half" message)
  const lock = await holdLocks(t, (database as { url?: string }).url!, 'LOCK TABLE keyword_rules IN ACCESS EXCLUSIVE MODE');
  await sleepUntil(reloadedAt + TTL / 2 + 50);
  const started = Date.now();
  const reply = await Promise.race([
    sim.text('oCache1', '营业时间').then((r) => r.content),
    new Promise<string>((r) => setTimeout(() => r('timed out'), 1500)),
  ]);
  t.equal(reply, '新：9点到20点', `answered in ${Date.now() - started} ms while the reload waits for the lock`);
  t.equal(await lock.releaseWhen(1), 1, 'the background reload was waiting on the lock');
});
