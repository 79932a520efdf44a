/**
 * npm run bench:fraud [-- --n 1500]
 *
 * What anti-fraud scoring costs the redemption path, three ways (PGlite in memory, or DATABASE_URL's PostgreSQL):
 *  1. score() alone over 200,000 mixed feature vectors: µs per call, p50 / p99.
 *  2. The honest hot-path hooks (beforeCode + afterRedeem, a known user with nothing stored) and the flagged path
 *     (one state read), timed per call, with the number of database round trips they made and their CPU.
 *  3. End to end through the signed webhook: the same N honest redemptions (valid code, profile already unlocking the
 *     draw: the fused one-statement path) with FRAUD_ENABLED=false and =true, p50 / p99 latency of each, and the
 *     difference. Sequential requests, so latency is the cost of one redemption, not queueing.
 */
import { performance } from 'node:perf_hooks';
import os from 'node:os';
import { sql } from 'drizzle-orm';
import { manualClock } from '../../server/src/platform/clock.ts';
import { WeChatSimulator } from '../../server/src/wechat/sandbox/simulator.ts';
import { cleanFeatures, DEFAULT_MODEL, score, type Features } from '../../server/src/fraud/scoring.ts';
import { createFraudService } from '../../server/src/fraud/service.ts';
import { buildTestApp, testDatabase } from '../../server/test/helpers.ts';
import { QUESTIONS, seedCampaign } from '../../server/test/campaign-fixtures.ts';

const argv = process.argv.slice(2);
const N = Number(argv[argv.indexOf('--n') + 1] ?? 0) || 1500;
const teardowns: Array<() => unknown> = [];
const t = { teardown: (fn: () => unknown) => void teardowns.push(fn) };

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
const us = (ms: number) => `${(ms * 1000).toFixed(1)} µs`;
const msf = (ms: number) => `${ms.toFixed(3)} ms`;

async function scoreOnly() {
  const vectors: Features[] = Array.from({ length: 1000 }, (_, i) => ({
    ...cleanFeatures(i % 24), unknownCodes: i % 7, redeemHour: 1 + (i % 11), redeemDay: 1 + (i % 17), sharedPhone: i % 5, answerPrint: i % 6, fastAnswers: i % 4, accountAgeMin: i % 3 ? null : i,
  }));
  for (let i = 0; i < 20_000; i++) score(vectors[i % 1000]!, DEFAULT_MODEL); // warm-up
  const times: number[] = [];
  let sink = 0;
  for (let i = 0; i < 200_000; i++) {
    const a = performance.now();
    sink += score(vectors[i % 1000]!, DEFAULT_MODEL).score;
    times.push(performance.now() - a);
  }
  if (sink < 0) console.log(sink);
  return { p50: pct(times, 50), p99: pct(times, 99) };
}

async function hooks() {
  const database = await testDatabase(t);
  await database.migrate();
  let roundTrips = 0;
  const counted = new Proxy(database.db, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver);
      if (prop === 'execute' || prop === 'transaction') return (...a: unknown[]) => (roundTrips++, (v as (...x: unknown[]) => unknown).apply(target, a));
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
  const clock = manualClock(new Date('2026-12-01T04:00:00Z'));
  const fraud = createFraudService({
    database: { ...database, db: counted as typeof database.db }, clock, log: { info() {}, warn() {}, error() {} } as never,
    // The cache expires on the service clock, which moves 50 ms per redemption below: 100 s of it is one reload per
    // 2,000 redemptions, as a 2 s cache on an instance taking 1,000 redemptions a second.
    piiKey: Buffer.alloc(32, 7), cacheTtlMs: 100_000, audit: async () => undefined,
  });
  await fraud.refresh(true);
  const honest: number[] = [];
  const start = clock.now().getTime();
  roundTrips = 0;
  const cpu0 = process.cpuUsage();
  // Honest users redeem a pack or two a day: 16,000 users, 12,000 of them once and 4,000 five codes of a six-pack (print
  // neighbours) a minute apart — 32,000 redemptions, the print-neighbourhood count over the user's codes included.
  for (let i = 0; i < 32_000; i++) {
    const user = i < 12_000 ? i : 12_000 + Math.floor((i - 12_000) / 5);
    const nth = i < 12_000 ? 0 : (i - 12_000) % 5;
    const openid = `oHot${user}`;
    const now = new Date(start + i * 50 + nth * 60_000);
    clock.set(now);
    const a = performance.now();
    const gate = await fraud.beforeCode(openid, now);
    await fraud.afterRedeem(openid, 1, nth + 1, now, nth + 1, { batchId: 1, seq: user * 50 + nth });
    honest.push(performance.now() - a);
    if (gate.refuse) throw new Error('an honest user was refused');
  }
  const cpu = process.cpuUsage(cpu0);
  const honestTrips = roundTrips;
  // Flagged users: one stored wrong code each; their code attempts read the state row.
  for (let i = 0; i < 200; i++) await fraud.onWrongCode(`oFlag${i}`, clock.now());
  const flagged: number[] = [];
  roundTrips = 0;
  for (let i = 0; i < 2000; i++) {
    const a = performance.now();
    await fraud.beforeCode(`oFlag${i % 200}`, clock.now());
    flagged.push(performance.now() - a);
  }
  return {
    honest: { p50: pct(honest, 50), p99: pct(honest, 99), cpuUsPerCall: (cpu.user + cpu.system) / 32_000, roundTripsPerCall: honestTrips / 32_000 },
    flagged: { p50: pct(flagged, 50), p99: pct(flagged, 99), roundTripsPerCall: roundTrips / 2000 },
  };
}

async function endToEndApp(enabled: boolean) {
  const clock = manualClock(new Date(Date.now() - 3_600_000));
  // Each step moves the app's clock 2 s (a user's two codes 50 minutes apart), and the fraud cache expires on that
  // clock: its 2 s lifetime would reload model, blacklist and flags before every request. 600 s of this clock is 300
  // requests, under a second of real time here — more often than a 2 s cache reloads in production.
  const ctx = await buildTestApp(t, { clock, env: { FRAUD_ENABLED: String(enabled), RULES_CACHE_TTL_MS: '3000', FRAUD_CACHE_TTL_MS: '600000' } });
  const { codes } = await seedCampaign(ctx.database, ctx.config.codeKey, {
    codes: N, unlockMin: 2, prizes: [{ name: '10积分', kind: 'points', value: 10, weight: 40 }, { name: '谢谢参与', kind: 'thanks', weight: 60 }],
    startsAt: new Date(clock.now().getTime() - 86_400_000),
  });
  const users = Math.ceil(N / 2);
  // Profiles that already unlock the draw: every redemption is the fused one-statement path.
  for (let i = 0; i < users; i += 500) {
    const values = Array.from({ length: Math.min(500, users - i) }, (_, k) => `('oE2E${i + k}', 'name', '"x"'::jsonb, '用户', 1, 'chat', now()), ('oE2E${i + k}', 'occupation', '"2"'::jsonb, '上班族', 1, 'chat', now())`).join(',');
    await ctx.database.query(sql.raw(`INSERT INTO profile_answers (openid, question_key, value, display, campaign_id, source, answered_at) VALUES ${values}`));
  }
  void QUESTIONS;
  const sim = new WeChatSimulator({
    transport: {
      async post(pathAndQuery, body, contentType) {
        const res = await ctx.app.inject({ method: 'POST', url: pathAndQuery, payload: body, headers: { 'content-type': contentType } });
        return { status: res.statusCode, body: res.body };
      },
    },
    token: ctx.config.wechat.token, appId: ctx.config.wechat.appId, now: () => clock.now().getTime(),
  });
  const times: number[] = [];
  return {
    async step(i: number, measured: boolean) {
      clock.advance(2_000);
      const a = performance.now();
      const r = await sim.text(`oE2E${i % users}`, codes[i]!);
      if (measured) times.push(performance.now() - a);
      if (!/恭喜|很遗憾/.test(r.content ?? '')) throw new Error(`unexpected reply: ${r.content}`);
    },
    async result() {
      const held = Number((await ctx.database.query<{ n: number }>(sql`SELECT count(*)::int AS n FROM fraud_reviews`))[0]!.n);
      return { p50: pct(times, 50), p99: pct(times, 99), mean: times.reduce((s, x) => s + x, 0) / times.length, held };
    },
  };
}

/** Both apps side by side, requests alternating between them, so both see the same machine. */
async function endToEnd() {
  const offApp = await endToEndApp(false);
  const onApp = await endToEndApp(true);
  const warm = Math.min(300, Math.floor(N / 5));
  for (let i = 0; i < N; i++) {
    const measured = i >= warm;
    if (i % 2 === 0) {
      await offApp.step(i, measured);
      await onApp.step(i, measured);
    } else {
      await onApp.step(i, measured);
      await offApp.step(i, measured);
    }
  }
  return { off: await offApp.result(), on: await onApp.result(), measured: N - warm };
}

async function main() {
  const kind = process.env.DATABASE_URL ? 'PostgreSQL' : 'PGlite';
  console.log(`bench:fraud — ${new Date().toISOString()}, ${os.cpus()[0]?.model} × ${os.cpus().length}, Node ${process.version}, ${kind}`);
  const s = await scoreOnly();
  console.log(`score(): p50 ${us(s.p50)}, p99 ${us(s.p99)} per call (200,000 calls)`);
  const h = await hooks();
  console.log(`honest hot path (beforeCode + afterRedeem): p50 ${us(h.honest.p50)}, p99 ${us(h.honest.p99)}, CPU ${h.honest.cpuUsPerCall.toFixed(1)} µs/redemption, ${h.honest.roundTripsPerCall.toFixed(4)} DB round trips/redemption (a cache reload every 2,000 redemptions included)`);
  console.log(`flagged user (state row read): p50 ${msf(h.flagged.p50)}, p99 ${msf(h.flagged.p99)}, ${h.flagged.roundTripsPerCall.toFixed(3)} DB round trips/attempt`);
  const { off, on, measured } = await endToEnd();
  console.log(`webhook redemption, ${measured} measured (after warm-up), sequential, alternating between two apps, fused path — fraud off: p50 ${msf(off.p50)}, p99 ${msf(off.p99)}, mean ${msf(off.mean)}`);
  console.log(`webhook redemption, same codes and users — fraud on:  p50 ${msf(on.p50)}, p99 ${msf(on.p99)}, mean ${msf(on.mean)} (held: ${on.held})`);
  console.log(`added by scoring: p50 ${msf(on.p50 - off.p50)}, p99 ${msf(on.p99 - off.p99)}, mean ${msf(on.mean - off.mean)}`);
}

main()
  .catch((err) => {
    console.error(err);
    process.exitCode = 1;
  })
  .finally(async () => {
    for (const fn of teardowns.reverse()) await Promise.resolve(fn()).catch(() => undefined);
  });
