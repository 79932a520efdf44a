/**
 * Runs calls with the same key one after another (in this process), calls with different keys concurrently: one
 * user's requests never interleave, whatever order they arrive in. A failed call does not stop the next one. The
 * chain of a key is forgotten once it has run out, so memory follows the number of users with a call in flight.
 */
export function createKeyedSerial() {
  const chains = new Map<string, Promise<unknown>>();
  return function serial<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = chains.get(key) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const settled = next.then(() => undefined, () => undefined);
    chains.set(key, settled);
    void settled.then(() => {
      if (chains.get(key) === settled) chains.delete(key);
    });
    return next;
  };
}
