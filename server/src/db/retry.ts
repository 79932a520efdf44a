/**
 * Deadlocks between concurrent set-based statements (batches locking rows in different orders) are resolved by
 * PostgreSQL aborting one of them. A single statement is atomic, so running it again is safe.
 */
export async function retryOnDeadlock<T>(fn: () => Promise<T>, attempts = 3): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if ((err as { code?: string }).code !== '40P01' || attempt >= attempts) throw err;
    }
  }
}

/** Rows of a driver result (node-postgres and PGlite both answer `{ rows }`). */
export const rowsOf = <T>(res: unknown): T[] => (res as { rows: T[] }).rows;
