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
