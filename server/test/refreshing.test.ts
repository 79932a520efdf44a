import t from 'tap';
import { createRefreshing } from '../src/platform/refreshing.ts';

/** A loader whose loads the test resolves one by one, on a clock the test moves. */
function harness(ttlMs = 1000) {
  let clock = 0;
  const loads: Array<{ resolve: (v: string) => void; reject: (e: unknown) => void; startedAt: number }> = [];
  const errors: unknown[] = [];
  const cache = createRefreshing(() => new Promise<string>((resolve, reject) => loads.push({ resolve, reject, startedAt: clock })), {
    ttlMs, now: () => clock, onBackgroundError: (err) => errors.push(err),
  });
  const settled = async <T>(p: Promise<T>) => {
    let done = false;
    void p.then(() => (done = true), () => (done = true));
    for (let i = 0; i < 5; i++) await Promise.resolve();
    await new Promise((r) => setImmediate(r));
    return done;
  };
  return { cache, loads, errors, settled, tick: (ms: number) => (clock += ms) };
}

/** A harness whose first value, 'v1', was loaded at t = 0. */
async function loaded(ttlMs = 1000) {
  const h = harness(ttlMs);
  const first = h.cache.get();
  h.loads[0]!.resolve('v1');
  await first;
  return h;
}

t.test('refreshing › first read waits for the load; reads in the first half of the TTL cost nothing', async (t) => {
  const h = harness();
  const first = h.cache.get();
  t.equal(await h.settled(first), false, 'waits for the first load');
  h.loads[0]!.resolve('v1');
  t.equal(await first, 'v1');
  h.tick(499);
  t.equal(await h.cache.get(), 'v1');
  t.equal(h.loads.length, 1, 'no reload before half the TTL');
});

t.test('refreshing › second half of the TTL: answered at once from the value, one background reload', async (t) => {
  const h = await loaded();
  h.tick(500);
  const reads = [h.cache.get(), h.cache.get(), h.cache.get()];
  t.same(await Promise.all(reads), ['v1', 'v1', 'v1'], 'no read waits');
  t.equal(h.loads.length, 2, 'one reload for all of them');
  h.tick(100);
  t.equal(await h.cache.get(), 'v1', 'still the old value while the reload runs');
  t.equal(h.loads.length, 2);
  h.loads[1]!.resolve('v2');
  await new Promise((r) => setImmediate(r));
  t.equal(await h.cache.get(), 'v2', 'the reloaded value');
  // Its age counts from when its load started (t = 500): at 1,000 it is half-way, at 1,500 expired.
  h.tick(399);
  t.equal(await h.cache.get(), 'v2');
  t.equal(h.loads.length, 2);
});

t.test('refreshing › a value older than the TTL is never served: the read waits', async (t) => {
  const h = await loaded();
  h.tick(1000);
  const late = h.cache.get();
  t.equal(await h.settled(late), false, 'waits for the reload');
  t.equal(h.loads.length, 2);
  h.loads[1]!.resolve('v2');
  t.equal(await late, 'v2');
});

t.test('refreshing › a background reload that started before the value expired is what an expired read waits for', async (t) => {
  const h = await loaded();
  h.tick(600);
  t.equal(await h.cache.get(), 'v1');
  t.equal(h.loads.length, 2, 'background reload started');
  h.tick(500); // expired, the reload still running
  const late = h.cache.get();
  t.equal(h.loads.length, 2, 'no second reload');
  t.equal(await h.settled(late), false);
  h.loads[1]!.resolve('v2');
  t.equal(await late, 'v2');
});

t.test('refreshing › invalidate: a load that started before it never becomes the value', async (t) => {
  const h = await loaded();
  h.tick(600);
  await h.cache.get(); // background reload 1 (reads the data before the write)
  h.cache.invalidate(); // a write in this process
  const after = h.cache.get();
  t.equal(h.loads.length, 3, 'the read after invalidate loads again instead of joining the older load');
  h.loads[1]!.resolve('before-write');
  t.equal(await h.settled(after), false, 'still waiting for its own load');
  h.loads[2]!.resolve('after-write');
  t.equal(await after, 'after-write');
  t.equal(await h.cache.get(), 'after-write', 'the older load did not overwrite it');
});

t.test('refreshing › fresh: waits for a load that started no earlier than the call', async (t) => {
  const h = await loaded();
  h.tick(600);
  await h.cache.get(); // background reload started at 600
  h.tick(10);
  const fresh = h.cache.get({ fresh: true });
  t.equal(h.loads.length, 3, 'a new load: the one in flight started before the call');
  const again = h.cache.get({ fresh: true });
  t.equal(h.loads.length, 3, 'a second fresh read at the same time shares it');
  h.loads[2]!.resolve('v3');
  t.equal(await fresh, 'v3');
  t.equal(await again, 'v3');
  h.loads[1]!.resolve('v2'); // the older load ends last: it does not replace the newer value
  await new Promise((r) => setImmediate(r));
  t.equal(await h.cache.get(), 'v3');
});

t.test('refreshing › a failed background reload keeps the value until it expires; the next read tries again', async (t) => {
  const h = await loaded();
  h.tick(600);
  t.equal(await h.cache.get(), 'v1');
  h.loads[1]!.reject(new Error('connection lost'));
  await new Promise((r) => setImmediate(r));
  t.equal(h.errors.length, 1, 'reported');
  t.match(String(h.errors[0]), /connection lost/);
  t.equal(await h.cache.get(), 'v1', 'still served');
  t.equal(h.loads.length, 3, 'and reloaded again in the background');
  h.tick(500);
  const late = h.cache.get();
  h.loads[2]!.reject(new Error('still down'));
  await t.rejects(late, /still down/, 'an expired value is not served: the read sees the error');
});

t.test('refreshing › TTL 0: every read loads (concurrent reads share one load)', async (t) => {
  const h = harness(0);
  const a = h.cache.get();
  const b = h.cache.get();
  t.equal(h.loads.length, 1);
  h.loads[0]!.resolve('v1');
  t.same([await a, await b], ['v1', 'v1']);
  const c = h.cache.get();
  t.equal(h.loads.length, 2);
  h.loads[1]!.resolve('v2');
  t.equal(await c, 'v2');
});
