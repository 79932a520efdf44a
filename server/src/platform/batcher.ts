/**
 * Group concurrent calls into one database round trip. Calls made while fewer than `maxInflight` batches
 * are running go out on the next tick together; under load, calls queue while batches run and the next batch
 * takes them all (up to `maxBatch`). One statement and one commit then serve many webhook requests.
 */
export interface BatcherOptions {
  maxBatch: number;
  maxInflight: number;
}

export function createBatcher<I, O>(run: (items: I[]) => Promise<O[]>, opts: BatcherOptions) {
  let queue: Array<{ item: I; resolve: (o: O) => void; reject: (e: unknown) => void }> = [];
  let inflight = 0;
  let scheduled = false;

  function pump() {
    scheduled = false;
    while (queue.length > 0 && inflight < opts.maxInflight) {
      const batch = queue.slice(0, opts.maxBatch);
      queue = queue.slice(batch.length);
      inflight++;
      run(batch.map((b) => b.item))
        .then(
          (out) => batch.forEach((b, i) => b.resolve(out[i]!)),
          (err) => batch.forEach((b) => b.reject(err)),
        )
        .finally(() => {
          inflight--;
          schedule();
        });
    }
  }

  function schedule() {
    if (scheduled || queue.length === 0) return;
    scheduled = true;
    setImmediate(pump);
  }

  return (item: I): Promise<O> =>
    new Promise<O>((resolve, reject) => {
      queue.push({ item, resolve, reject });
      schedule();
    });
}

export type Settled<O> = { ok: true; value: O } | { ok: false; error: unknown };

/**
 * Run a batch as one call; if that call fails with an error that may belong to one item (bad data, a constraint),
 * run each half again, down to single items: only the items that fail on their own fail, the others succeed (one bad
 * item among n costs about 2·log2(n) more calls). Errors `batchWide` says are about the batch or the database, not
 * an item (a deadlock after its retries, a lost connection), fail every item at once. `run` must be atomic (one
 * statement): a failed call has changed nothing, so running its items again is safe. Halves run in order.
 */
export async function settleIsolated<I, O>(items: I[], run: (items: I[]) => Promise<O[]>, batchWide: (err: unknown) => boolean): Promise<Array<Settled<O>>> {
  try {
    return (await run(items)).map((value) => ({ ok: true as const, value }));
  } catch (error) {
    if (items.length <= 1 || batchWide(error)) return items.map(() => ({ ok: false as const, error }));
    const half = Math.ceil(items.length / 2);
    const first = await settleIsolated(items.slice(0, half), run, batchWide);
    return first.concat(await settleIsolated(items.slice(half), run, batchWide));
  }
}
