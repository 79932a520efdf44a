/**
 * bench:member — points earn and balance reads per second on PostgreSQL, through the service layer (createEarn /
 * createLedger, in process: no HTTP, no mini-program session check), on a scratch database that is dropped after.
 *
 *   npm run bench:member                              # postgres://postgres@127.0.0.1:5432/test (or $BENCH_PG_URL)
 *   npm run bench:member -- --concurrency 32 --duration 5 --members 5000
 *
 * Earn: each call is one `purchase` earn with a fresh order number — the rule read, the account row lock, the
 * duplicate check, the tier multiplier, the ledger credit (with its FIFO lot, written by the trigger) and the tier
 * re-evaluation on earning. Replay: the same calls again (every one a duplicate: the idempotent path). Balance: one
 * `ledger.balance(openid)` read. Members are picked at random, so concurrent calls rarely share an account.
 *
 * Options: --pg-admin-url URL  --members N (2000)  --concurrency N (16)  --duration S (3)  --warmup S (1)  --pool N (20)
 */
import { randomInt } from 'node:crypto';
import { parseArgs } from 'node:util';
import { sql } from 'drizzle-orm';
import { openDatabase } from '../../server/src/db/client.ts';
import { systemClock } from '../../server/src/platform/clock.ts';
import { createLedger } from '../../server/src/members/ledger.ts';
import { createTiers } from '../../server/src/members/tiers.ts';
import { createEarn } from '../../server/src/members/earn.ts';
import { members } from '../../server/src/members/tables.ts';
import { Cleanup, DEFAULT_PG_ADMIN_URL, createBenchDatabase, describeMachine, fmt, log, machineHardware, positiveInt, printHelpAndExit, round1, runMain } from './lib.ts';

interface Phase { name: string; ops: number; seconds: number; perSecond: number; p50Ms: number; p99Ms: number }

async function phase(name: string, concurrency: number, warmupS: number, durationS: number, op: (i: number) => Promise<unknown>): Promise<Phase> {
  let seq = 0;
  const run = async (untilMs: number, record: number[] | null) => {
    await Promise.all(Array.from({ length: concurrency }, async () => {
      while (Date.now() < untilMs) {
        const t0 = performance.now();
        await op(seq++);
        record?.push(performance.now() - t0);
      }
    }));
  };
  if (warmupS > 0) await run(Date.now() + warmupS * 1000, null);
  const lat: number[] = [];
  const start = performance.now();
  await run(Date.now() + durationS * 1000, lat);
  const seconds = (performance.now() - start) / 1000;
  lat.sort((a, b) => a - b);
  const q = (p: number) => round1(lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] ?? NaN);
  const r = { name, ops: lat.length, seconds: round1(seconds), perSecond: Math.round(lat.length / seconds), p50Ms: q(0.5), p99Ms: q(0.99) };
  log(`${name}: ${fmt(r.ops)} in ${r.seconds} s → ${fmt(r.perSecond)}/s (p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms)`);
  return r;
}

async function main() {
  const { values } = parseArgs({
    options: {
      help: { type: 'boolean' }, 'pg-admin-url': { type: 'string', default: DEFAULT_PG_ADMIN_URL },
      members: { type: 'string', default: '2000' }, concurrency: { type: 'string', default: '16' },
      duration: { type: 'string', default: '3' }, warmup: { type: 'string', default: '1' }, pool: { type: 'string', default: '20' },
    },
  });
  if (values.help) printHelpAndExit(import.meta.url);
  const n = positiveInt('members', values.members!);
  const concurrency = positiveInt('concurrency', values.concurrency!);
  const durationS = positiveInt('duration', values.duration!);
  const warmupS = Number(values.warmup);
  const poolSize = positiveInt('pool', values.pool!);
  const cleanup = new Cleanup();
  try {
    const machine = await describeMachine(values['pg-admin-url'], 'throw');
    const { url } = await createBenchDatabase(values['pg-admin-url']!, cleanup);
    const database = await openDatabase({ url, poolSize });
    cleanup.add('close database', () => database.close());
    await database.migrate();
    const { db } = database;
    const clock = systemClock;
    const ledger = createLedger({ db, clock });
    const tiers = createTiers({ db, clock, cacheTtlMs: 3000 }); // the server's default RULES_CACHE_TTL_MS
    const earn = createEarn({ db, clock, ledger, tiers, piiKey: Buffer.alloc(32, 7), cacheTtlMs: 3000 });
    const openids = Array.from({ length: n }, (_, i) => `oBenchMember${i.toString(36).padStart(16, '0')}`);
    for (let i = 0; i < n; i += 1000) {
      await db.insert(members).values(openids.slice(i, i + 1000).map((openid) => ({ openid, mpOpenid: `mp_${openid}`, isMember: true, createdAt: new Date() })));
    }
    log(`seeded ${fmt(n)} members; concurrency ${concurrency}, pool ${poolSize}, ${warmupS} s warm-up + ${durationS} s per phase`);
    const orders: Array<[string, string]> = [];
    const earnPhase = await phase('earn (new event)', concurrency, warmupS, durationS, async (i) => {
      const openid = openids[randomInt(n)]!;
      const order = `B${i}`;
      orders.push([openid, order]);
      const r = await earn.earn(openid, 'purchase', order, { amountFen: 1990 });
      if (!r.credited) throw new Error(`earn not credited: ${r.reason}`);
    });
    const replayPhase = await phase('earn (replayed event)', concurrency, 0, durationS, async (i) => {
      const [openid, order] = orders[i % orders.length]!;
      const r = await earn.earn(openid, 'purchase', order, { amountFen: 1990 });
      if (!r.credited || !r.duplicate) throw new Error('a replay was not a duplicate');
    });
    const balancePhase = await phase('balance read', concurrency, warmupS, durationS, async () => ledger.balance(openids[randomInt(n)]!));
    const entries = (await database.query<{ n: number }>(sql`SELECT count(*)::int AS n FROM points_ledger`))[0]!.n;
    console.log(`\nMembers bench — ${new Date().toISOString()}\n${machineHardware(machine)}; Node ${machine.node}; ${machine.postgres.split(',')[0]}`);
    console.log(`service layer in process, ${fmt(n)} members, concurrency ${concurrency}, pool ${poolSize}, ${durationS} s per phase\n`);
    for (const p of [earnPhase, replayPhase, balancePhase]) console.log(`${p.name.padEnd(24)} ${fmt(p.perSecond).padStart(8)}/s   p50 ${p.p50Ms} ms   p99 ${p.p99Ms} ms   (${fmt(p.ops)} ops)`);
    console.log(`\nledger entries written: ${fmt(entries)} (= new earns incl. warm-up: ${fmt(orders.length)})`);
    if (entries !== orders.length) throw new Error('ledger entries differ from the earns made');
  } finally {
    await cleanup.runAll();
  }
}

runMain(main);
