/**
 * Fulfilment under ops and load: a cash job held for a notification that does not match it is cancelled at WeChat
 * Pay before it is cancelled here; a slow batch renews the leases of the jobs still waiting, so no other instance
 * reclaims them.
 */
import t, { type Test } from 'tap';
import { sql } from 'drizzle-orm';
import { count } from './helpers.ts';
import { notifications, setup } from './fulfilment-helpers.ts';

/** A cash job whose bill waits for the user's confirmation at WeChat Pay. */
async function waitingCash(t: Test, openid: string) {
  const s = await setup(t);
  const j = await s.job('cash', 500, openid);
  await s.f.runDue();
  const bill = s.paySandbox.state.bills.get(j.outNo)!;
  t.equal((await s.get(j.id)).state, 'waiting_user');
  return { s, j, bill };
}

t.test('cash › a bill held for a mismatching notification: an ops cancel cancels it at WeChat Pay first', async (t) => {
  const { s, j, bill } = await waitingCash(t, 'oOdd');
  // Authentic, but about another amount than the job's: the job is held for a look.
  const { envelope, headers, post } = notifications(s, j, bill);
  const body = JSON.stringify(envelope('SUCCESS', { transfer_amount: 50_000 }));
  t.equal((await post(body, headers(body))).statusCode, 200);
  t.equal((await s.get(j.id)).state, 'held');
  t.equal(bill.state, 'WAIT_USER_CONFIRM', 'the bill is still open at WeChat Pay: the user could still confirm it');

  const after = await s.f.cancel(j.id);
  t.equal(after.state, 'cancelled');
  t.equal(s.paySandbox.state.bills.get(j.outNo)!.state, 'CANCELLED', 'cancelled at WeChat Pay, not only here');
});

t.test('cash › an ops cancel of a pending job whose bill is still open (a retry after a failed cancel) cancels it at WeChat Pay first', async (t) => {
  const { s, j } = await waitingCash(t, 'oRetried');
  // What an ops retry of the job leaves after its cancel and query failed ('unknown'): pending again, not yet picked up.
  await s.database.db.execute(sql`UPDATE fulfilments SET state = 'pending', next_attempt_at = now() + interval '1 hour' WHERE id = ${j.id}`);
  const after = await s.f.cancel(j.id);
  t.equal(after.state, 'cancelled');
  t.equal(s.paySandbox.state.bills.get(j.outNo)!.state, 'CANCELLED', 'cancelled at WeChat Pay, not only here: the user can no longer confirm it');
});

t.test('cash › a SUCCESS notification for a job given up meanwhile is recorded as paid, not ignored', async (t) => {
  const { s, j, bill } = await waitingCash(t, 'oLate');
  // Given up here while its bill stayed open at WeChat Pay; the user confirms it there.
  await s.database.db.execute(sql`UPDATE fulfilments SET state = 'cancelled' WHERE id = ${j.id}`);
  const { envelope, headers, post } = notifications(s, j, bill);
  const body = JSON.stringify(envelope('SUCCESS'));
  t.equal((await post(body, headers(body))).statusCode, 200);
  const row = await s.get(j.id);
  t.equal(row.state, 'succeeded', 'the money left: the record says so');
  t.match(row.lastError, /paid while cancelled/);
});

t.test('backlog › a slow batch renews the leases of the jobs still waiting in it: no other instance reclaims them', async (t) => {
  const s = await setup(t, { TOPUP_TIMEOUT_MS: '10000' });
  const jobs = [];
  for (let i = 0; i < 12; i++) {
    await s.services.phones.bind(`oSlow${i}`, `138001381${String(i).padStart(2, '0')}`);
    jobs.push(await s.job('topup', 1000, `oSlow${i}`));
  }
  // Instance A claims all twelve (one lease, 60 s) and works four at a time; its provider takes 10 s a call. When its
  // third round starts (80 s after the claim), instance B ticks.
  const b = s.instance();
  let calls = 0;
  let bRun: Promise<number> | undefined;
  const a = s.instance({
    afterProviderCall: () => {
      s.clock.advance(10_000);
      if (++calls === 9) bRun = b.runDue();
      return false;
    },
  });
  await a.runDue();
  await bRun;
  // A top-up that timed out (the sandbox's 300 ms, on a loaded machine) is `unknown` until its query: let it settle.
  for (let i = 0; i < 5 && (await count(s.database, 'fulfilments', `state <> 'succeeded'`)) > 0; i++) {
    s.clock.advance(120_000);
    await s.f.runDue();
  }
  await Promise.all([a.idle(), b.idle(), s.f.idle()]);
  for (const j of jobs) {
    t.match(await s.get(j.id), { state: 'succeeded' });
    t.notOk((await s.f.events(j.id)).some((e) => e.note === 'lease expired: reclaimed'), `${j.outNo}: not reclaimed`);
    t.equal(s.topupSandbox.state.orders.get(j.outNo)!.charges, 1);
  }
});

