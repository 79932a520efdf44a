/**
 * Runs the CPU side of a batch load or export — chunk derivation/keying/CSV/scatter and bucket sort+encode
 * (batch-derive.ts) — on worker threads when the batch is large, otherwise inline on the calling thread (yielding to the
 * event loop between chunks). Both produce identical bytes; only the wall time differs.
 *
 * Why threads: keying costs ≈ 1 µs per code in JS, so 10 million codes are ≈ 10 s of CPU; on this 2-core machine two
 * workers halve that, and the sort+encode work runs on them too while PostgreSQL's COPY uses the other core.
 * Workers are started per operation (≈ 0.3 s, the tsx loader compiling the two modules) and terminated after it.
 */
import { Worker } from 'node:worker_threads';
import os from 'node:os';
import { createLookupKeyer, type LookupKeyer } from './codes.ts';
import { encodeBuckets, processChunk, type ChunkJob, type EncodeResult } from './batch-derive.ts';
import type { WorkerRequest } from './batch-worker.ts';

/** Below this many codes the work runs inline (thread start-up would cost more than it saves). */
export const WORKER_THRESHOLD = 200_000;

export interface Runner {
  readonly threads: number;
  chunk(chunk: number): Promise<{ csv: Buffer | null; overflow: boolean }>;
  encode(b0: number, b1: number): Promise<EncodeResult>;
  close(): Promise<void>;
}

const yieldToLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

class InlineRunner implements Runner {
  readonly threads = 0;
  private readonly keyer: LookupKeyer | null;
  constructor(private readonly job: ChunkJob) {
    this.keyer = job.buckets ? createLookupKeyer(Buffer.from(job.codeKey)) : null;
  }
  async chunk(chunk: number) {
    await yieldToLoop();
    return processChunk(this.job, this.keyer, chunk);
  }
  async encode(b0: number, b1: number) {
    await yieldToLoop();
    if (!this.job.buckets) throw new Error('job has no buckets');
    return encodeBuckets(this.job.buckets, b0, b1, this.job.batchId);
  }
  async close() {}
}

type WithoutId<T> = T extends unknown ? Omit<T, 'id'> : never;

interface Pending {
  resolve(v: any): void;
  reject(e: Error): void;
}

class ThreadRunner implements Runner {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly load: number[];
  private failure: Error | null = null;

  private constructor(private readonly workers: Worker[]) {
    this.load = workers.map(() => 0);
    workers.forEach((w, i) => {
      w.on('message', (m: { id: number; error?: string }) => {
        const p = this.pending.get(m.id);
        if (!p) return;
        this.pending.delete(m.id);
        this.load[i]!--;
        if (m.error) p.reject(new Error(`batch worker: ${m.error}`));
        else p.resolve(m);
      });
      w.on('error', (err) => this.fail(err));
      w.on('exit', (code) => {
        if (code !== 0) this.fail(new Error(`batch worker exited with code ${code}`));
      });
    });
  }

  static async start(job: ChunkJob, threads: number): Promise<ThreadRunner> {
    const bootstrap = `import(${JSON.stringify(TSX_API)}).then((m) => { m.register(); return import(${JSON.stringify(WORKER_URL)}); });`;
    const workers = Array.from({ length: threads }, () => new Worker(bootstrap, { eval: true }));
    const runner = new ThreadRunner(workers);
    try {
      await Promise.all(workers.map((_, i) => runner.call(i, { type: 'job', job })));
    } catch (err) {
      await runner.close();
      throw err;
    }
    return runner;
  }

  get threads() {
    return this.workers.length;
  }

  private fail(err: Error) {
    if (this.failure) return;
    this.failure = err;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }

  private call<T>(worker: number, req: WithoutId<WorkerRequest>): Promise<T> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    this.load[worker]!++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.workers[worker]!.postMessage({ ...req, id });
    });
  }

  private leastLoaded(): number {
    let best = 0;
    for (let i = 1; i < this.load.length; i++) if (this.load[i]! < this.load[best]!) best = i;
    return best;
  }

  async chunk(chunk: number) {
    const m = await this.call<{ csv: Uint8Array | null; overflow: boolean }>(this.leastLoaded(), { type: 'chunk', chunk });
    return { csv: m.csv ? Buffer.from(m.csv.buffer, m.csv.byteOffset, m.csv.byteLength) : null, overflow: m.overflow };
  }

  async encode(b0: number, b1: number): Promise<EncodeResult> {
    const m = await this.call<{ result: EncodeResult | { ok: true; rows: number; buf: Uint8Array } }>(this.leastLoaded(), { type: 'encode', b0, b1 });
    const r = m.result;
    if (!r.ok) return r;
    return { ok: true, rows: r.rows, buf: Buffer.from(r.buf.buffer, r.buf.byteOffset, r.buf.byteLength) };
  }

  async close() {
    this.fail(new Error('runner closed'));
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

let TSX_API = '';
const WORKER_URL = new URL('./batch-worker.ts', import.meta.url).href;
try {
  TSX_API = import.meta.resolve('tsx/esm/api');
} catch {
  // no tsx: always inline
}

/**
 * A runner for `job` over `count` codes: `threads` workers (default: one per core, at most 4) when the batch is at
 * least WORKER_THRESHOLD codes, inline otherwise or when the workers cannot start.
 */
export async function openRunner(job: ChunkJob, count: number, threads?: number): Promise<Runner> {
  const n = threads ?? (count >= WORKER_THRESHOLD ? Math.min(4, os.availableParallelism()) : 0);
  if (n > 0 && TSX_API) {
    try {
      return await ThreadRunner.start(job, n);
    } catch {
      // fall through: inline
    }
  }
  return new InlineRunner(job);
}

