/**
 * Worker thread of batch-pipeline.ts: derives, keys, CSV-formats and scatters chunks of a generated batch, and sorts +
 * encodes key buckets for COPY. Stateless apart from the current job; the bucket memory is a SharedArrayBuffer.
 */
import { parentPort } from 'node:worker_threads';
import { createLookupKeyer, type LookupKeyer } from './codes.ts';
import { encodeBuckets, processChunk, type ChunkJob } from './batch-derive.ts';

export type WorkerRequest =
  | { id: number; type: 'job'; job: ChunkJob }
  | { id: number; type: 'chunk'; chunk: number }
  | { id: number; type: 'encode'; b0: number; b1: number };

let job: ChunkJob | null = null;
let keyer: LookupKeyer | null = null;

/** Large results move (transfer); small ones may sit in Buffer's shared 8 KiB pool and are copied. */
function pack(buf: Buffer | null): { data: Uint8Array | null; transfer: ArrayBuffer[] } {
  if (!buf) return { data: null, transfer: [] };
  if (buf.buffer.byteLength >= 65_536 && buf.buffer instanceof ArrayBuffer) {
    return { data: new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength), transfer: [buf.buffer] };
  }
  return { data: Uint8Array.from(buf), transfer: [] };
}

const port = parentPort;
if (!port) throw new Error('batch-worker.ts must run in a worker thread');

port.on('message', (m: WorkerRequest) => {
  try {
    if (m.type === 'job') {
      job = m.job;
      keyer = job.buckets ? createLookupKeyer(Buffer.from(job.codeKey)) : null;
      port.postMessage({ id: m.id, ok: true });
      return;
    }
    if (!job) throw new Error('no job');
    if (m.type === 'chunk') {
      const r = processChunk(job, keyer, m.chunk);
      const { data, transfer } = pack(r.csv);
      port.postMessage({ id: m.id, csv: data, overflow: r.overflow }, transfer);
      return;
    }
    if (!job.buckets) throw new Error('job has no buckets');
    const r = encodeBuckets(job.buckets, m.b0, m.b1, job.batchId);
    if (!r.ok) {
      port.postMessage({ id: m.id, result: r });
      return;
    }
    const { data, transfer } = pack(r.buf);
    port.postMessage({ id: m.id, result: { ok: true, rows: r.rows, buf: data } }, transfer);
  } catch (err) {
    port.postMessage({ id: m.id, error: err instanceof Error ? err.message : String(err) });
  }
});
