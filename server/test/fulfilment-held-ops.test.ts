/**
 * A prize held by anti-fraud leaves `held` only through the review queue: the fulfilment ops actions (retry, cancel,
 * complete) refuse it with 409 and leave it held, so the review's approve (which pays) and reject (which cancels and
 * returns the stock) keep working. Holds that are ops' own (a physical prize waiting to be shipped) are unaffected.
 * Through the public ops API, with anti-fraud on and a manual clock (as in fraud-webhook.test.ts).
 */
import t, { type Test } from 'tap';
import { sql } from 'drizzle-orm';
import { manualClock } from '../src/platform/clock.ts';
import { adminHeaders, buildTestApp, noonShanghai, simulatorOn } from './helpers.ts';
import { seedCampaign } from './campaign-fixtures.ts';
import type { PrizeBody } from '../../shared/campaigns.ts';

const HOUR = 3_600_000;

async function setup(t: { teardown(fn: () => unknown): void }, prizes: PrizeBody[]) {
  const clock = manualClock(noonShanghai());
  const ctx = await buildTestApp(t, { clock, env: { FRAUD_ENABLED: 'true', FRAUD_CACHE_TTL_MS: '0' } });
  const seeded = await seedCampaign(ctx.database, ctx.config.codeKey, {
    prizes, codes: 6, unlockMin: 2, startsAt: new Date(clock.now().getTime() - 3 * 24 * HOUR), endsAt: new Date(clock.now().getTime() + 30 * 24 * HOUR),
  });
  const sim = simulatorOn(ctx, () => clock.now().getTime());
  const admin = await adminHeaders(ctx.app);
  const api = (method: 'GET' | 'POST', url: string, payload?: unknown) =>
    ctx.app.inject({ method, url, headers: admin, ...(payload === undefined ? {} : { payload: payload as object }) });
  const settle = async () => {
    await ctx.services.bot.drain();
    await ctx.services.fulfilment.idle();
    await ctx.services.bot.drain();
  };
  const q = async <T = Record<string, unknown>>(text: string) => ctx.database.query<T>(sql.raw(text));
  const job = async (id: number) => (await q<{ state: string; kind: string }>(`SELECT state, kind FROM fulfilments WHERE id = ${id}`))[0]!;
  const stock = async () => Number((await q<{ n: number }>(`SELECT sum(remaining)::int AS n FROM prize_stock_shards`))[0]!.n);
  /** Hold every prize from now on (a new model version), then let the given users win one each. */
  const holdAll = async (tt: Test, openids: string[]) => {
    tt.equal((await api('POST', '/api/ops/fraud/models', { thresholds: { hold: 0.01, holdByKind: { cash: 0.01, physical: 0.01 } }, note: 'hold all for the test' })).statusCode, 201);
    for (const [i, openid] of openids.entries()) {
      await sim.text(openid, seeded.codes[i]!);
      clock.advance(6_000);
      await sim.text(openid, ['林峰', '黄蕾', '周杰'][i]!);
      clock.advance(5_000);
      const r = await sim.text(openid, '2');
      tt.match(r.content, /您的奖品正在审核中/, `${openid}'s prize is held`);
    }
    await settle();
    const reviews = ((await api('GET', '/api/ops/fraud/reviews?status=pending')).json() as Array<{ id: number; fulfilmentId: number }>).sort((a, b) => a.id - b.id);
    tt.equal(reviews.length, openids.length, 'one pending review per held prize');
    return reviews;
  };
  /** retry, cancel and complete are each refused with 409, pointing at the review queue; the job stays held. */
  const refusedAll = async (tt: Test, fulfilmentId: number, reviewId: number) => {
    for (const action of ['retry', 'cancel', 'complete']) {
      const res = await api('POST', `/api/ops/fulfilments/${fulfilmentId}/${action}`, { note: 'ops shortcut' });
      tt.equal(res.statusCode, 409, `${action} is refused`);
      if (action !== 'complete' || (await job(fulfilmentId)).kind === 'physical') {
        tt.match(res.json(), { code: 'CONFLICT', message: new RegExp(`anti-fraud review ${reviewId}.*review queue`), details: { reviewId } }, `${action}: use the review queue`);
      }
      tt.equal((await job(fulfilmentId)).state, 'held', `still held after ${action}`);
    }
    await settle();
    tt.equal((await job(fulfilmentId)).state, 'held', 'still held once the worker has run');
  };
  return { ...ctx, ...seeded, clock, sim, api, settle, q, job, stock, holdAll, refusedAll };
}

t.test('cash held for review: retry/cancel/complete are refused (409, still held, nothing paid); approve pays, reject cancels and returns the stock', async (t) => {
  const s = await setup(t, [{ name: '现金红包 5元', kind: 'cash', value: 500, weight: 1, totalStock: 4 }]);
  const [a, b] = await s.holdAll(t, ['oHeldA', 'oHeldB']);
  t.equal(await s.stock(), 2, 'held prizes keep their stock');

  await s.refusedAll(t, a!.fulfilmentId, a!.id);
  await s.refusedAll(t, b!.fulfilmentId, b!.id);
  t.equal(s.paySandbox.state.bills.size, 0, 'no transfer bill was created');
  t.equal(await s.stock(), 2);
  const pending = (await s.api('GET', '/api/ops/fraud/reviews?status=pending')).json() as unknown[];
  t.equal(pending.length, 2, 'both reviews still pending');
  t.equal(Number((await s.q<{ n: number }>(`SELECT count(*)::int AS n FROM audit_log WHERE action LIKE 'fulfilment.%'`))[0]!.n), 0, 'refused actions leave no audit entry');

  // Approve A: it is released and paid through the normal path.
  const approved = await s.api('POST', `/api/ops/fraud/reviews/${a!.id}/approve`, { note: 'looks fine' });
  t.equal(approved.statusCode, 200, 'approve is accepted');
  await s.settle();
  t.equal((await s.job(a!.fulfilmentId)).state, 'waiting_user', 'approved: the transfer bill was created');
  t.equal(s.paySandbox.state.bills.size, 1);

  // Reject B: cancelled, stock returned.
  const rejected = await s.api('POST', `/api/ops/fraud/reviews/${b!.id}/reject`, { note: 'farm' });
  t.equal(rejected.statusCode, 200, 'reject is accepted');
  t.equal((await s.job(b!.fulfilmentId)).state, 'cancelled');
  t.equal(await s.stock(), 3, 'the rejected prize went back to stock');
  t.equal(s.paySandbox.state.bills.size, 1, 'nothing paid for the rejected prize');

  t.equal((await s.api('POST', `/api/ops/fraud/reviews/${b!.id}/approve`, {})).statusCode, 409, 'a rejected review stays rejected');
});

t.test('an approve racing ops retries (truly parallel on PostgreSQL) always wins: the review is settled and the prize paid once', async (t) => {
  const s = await setup(t, [{ name: '现金红包 5元', kind: 'cash', value: 500, weight: 1, totalStock: 4 }]);
  const [c] = await s.holdAll(t, ['oRace']);
  const results = await Promise.all([
    s.api('POST', `/api/ops/fulfilments/${c!.fulfilmentId}/retry`, {}),
    s.api('POST', `/api/ops/fraud/reviews/${c!.id}/approve`, { note: 'ok' }),
    s.api('POST', `/api/ops/fulfilments/${c!.fulfilmentId}/retry`, {}),
    s.api('POST', `/api/ops/fulfilments/${c!.fulfilmentId}/complete`, {}),
    s.api('POST', `/api/ops/fulfilments/${c!.fulfilmentId}/retry`, {}),
  ]);
  t.equal(results[1]!.statusCode, 200, 'the approval goes through');
  t.equal(results[3]!.statusCode, 409, 'a cash prize is never completed by hand');
  // A retry that ran before the approval was refused; one after it re-queues an already released job (harmless).
  for (const r of [results[0]!, results[2]!, results[4]!]) t.ok(r.statusCode === 409 || r.statusCode === 200, `retry answered ${r.statusCode}`);
  t.match((await s.api('GET', `/api/ops/fraud/reviews/${c!.id}`)).json(), { status: 'approved' });
  await s.settle();
  t.equal((await s.job(c!.fulfilmentId)).state, 'waiting_user');
  t.equal(s.paySandbox.state.bills.size, 1, 'one transfer bill');
});

t.test('physical held for review: complete/cancel/retry are refused; after approval it waits for shipping and complete works', async (t) => {
  const s = await setup(t, [{ name: '一等奖 保温杯', kind: 'physical', value: 9900, weight: 1, totalStock: 3 }]);
  const [a, b] = await s.holdAll(t, ['oPhysA', 'oPhysB']);
  await s.refusedAll(t, a!.fulfilmentId, a!.id);
  await s.refusedAll(t, b!.fulfilmentId, b!.id);

  t.equal((await s.api('POST', `/api/ops/fraud/reviews/${a!.id}/approve`, {})).statusCode, 200);
  await s.settle();
  const after = (await s.api('GET', `/api/ops/fulfilments/${a!.fulfilmentId}`)).json();
  t.match(after, { state: 'held', detail: { manual: true } }, 'approved: held for ops to ship, as any physical prize');
  const done = await s.api('POST', `/api/ops/fulfilments/${a!.fulfilmentId}/complete`, { note: 'SF123' });
  t.equal(done.statusCode, 200, 'complete is accepted');
  t.equal(done.json().state, 'succeeded', 'a shipped prize is completed by hand once its review is settled');

  t.equal((await s.api('POST', `/api/ops/fraud/reviews/${b!.id}/reject`, {})).statusCode, 200);
  t.equal((await s.job(b!.fulfilmentId)).state, 'cancelled');
  t.equal(await s.stock(), 2, 'the rejected prize went back to stock');
});
