/**
 * Helpers shared by the HTTP benchmarks (webhook.ts, redeem.ts); not a benchmark itself. Options, cleanup on exit
 * and on SIGINT/SIGTERM, the server as a child process, a scratch PostgreSQL database, CPU accounting from /proc,
 * latency percentiles, the machine and the code under test, signed WeChat text messages, formatting and results.
 */
import autocannon from 'autocannon';
import pg from 'pg';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes, randomInt } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { Config } from '../../server/src/config.ts';
import { type MsgCrypt, wechatSignature } from '../../server/src/wechat/crypto.ts';
import { buildXml } from '../../server/src/wechat/xml.ts';

/** The repository root: children run there. */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** Progress and diagnostics, on stderr (stdout carries the report). */
export const log = (msg: string) => process.stderr.write(`[bench] ${msg}\n`);

// ───────────────────────────── options ─────────────────────────────

/** Default for --pg-admin-url: $BENCH_PG_URL, else the local PostgreSQL. */
export const DEFAULT_PG_ADMIN_URL = process.env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** --help: prints the header comment of the script at `scriptUrl` (its import.meta.url) and exits. */
export function printHelpAndExit(scriptUrl: string): never {
  console.log(readFileSync(fileURLToPath(scriptUrl), 'utf8').split('*/')[0]);
  process.exit(0);
}

/** The value of option --`name` as a positive integer, or an error saying what is wrong. */
export function positiveInt(name: string, raw: string): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer (got "${raw}")`);
  return n;
}

/** --warmup (an integer ≥ 0) and --duration (1 to 240 s, so pre-generated timestamps stay in the server's window). */
export function runLength(warmup: string, duration: string): { warmupS: number; durationS: number } {
  const warmupS = Number(warmup);
  if (!Number.isInteger(warmupS) || warmupS < 0) throw new Error('--warmup must be an integer ≥ 0');
  const durationS = positiveInt('duration', duration);
  if (durationS > 240) throw new Error('--duration must be ≤ 240 s: pre-generated timestamps must stay within the server\'s ±300 s window');
  return { warmupS, durationS };
}

// ───────────────────────────── cleanup and signals ─────────────────────────────

/** Cleanup steps run last-in first-out, once, from `finally` or a signal. */
export class Cleanup {
  private readonly steps: Array<{ name: string; run: () => Promise<void> | void }> = [];
  private running: Promise<void> | undefined;
  private readonly children = new Set<ChildProcess>();

  add(name: string, run: () => Promise<void> | void) {
    this.steps.push({ name, run });
  }

  /** Children are also SIGKILLed synchronously on process exit, whatever happened. */
  trackChild(child: ChildProcess) {
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
  }

  killChildrenNow() {
    for (const child of this.children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }

  runAll(): Promise<void> {
    this.running ??= (async () => {
      while (this.steps.length > 0) {
        const step = this.steps.pop()!;
        const started = Date.now();
        try {
          await step.run();
        } catch (err) {
          log(`cleanup "${step.name}" failed: ${(err as Error).message}`);
        }
        if (Date.now() - started > 2_000) log(`cleanup "${step.name}" took ${((Date.now() - started) / 1000).toFixed(1)} s`);
      }
    })();
    return this.running;
  }
}

/** Thrown at the next step boundary after SIGINT/SIGTERM; the signal handler does the cleanup and exits. */
export class Interrupted extends Error {}

/**
 * SIGINT/SIGTERM handling: the first signal sets `interrupted`, calls `stopLoad` (for load other than autocannon's),
 * stops the autocannon run in flight, runs the cleanup and exits with 130; a second one is ignored, so it cannot cut
 * the cleanup short. On process exit, children still running are SIGKILLed. `guard` runs the bench's body.
 */
export class Interruption {
  interrupted = false;

  constructor(private readonly cleanup: Cleanup, stopLoad?: () => void) {
    const onSignal = (signal: NodeJS.Signals) => {
      if (this.interrupted) return; // a second Ctrl-C must not cut the cleanup short
      this.interrupted = true;
      log(`${signal}: stopping load and cleaning up…`);
      stopLoad?.();
      currentLoad?.stop();
      void cleanup.runAll().finally(() => process.exit(130));
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    process.on('exit', () => cleanup.killChildrenNow());
  }

  /** Runs the bench's `body`, then the cleanup, whatever happened. */
  async guard(body: () => Promise<void>): Promise<void> {
    try {
      await body();
    } catch (err) {
      // After a signal, failures are its consequences (children stopped under our feet): not worth reporting.
      throw this.interrupted ? new Interrupted('interrupted') : err;
    } finally {
      await this.cleanup.runAll();
    }
  }

  /** For long loops that should end early after a signal. */
  readonly shouldStop = () => this.interrupted;

  /** Throws Interrupted once a signal has come: called between steps. */
  readonly checkpoint = () => {
    if (this.interrupted) throw new Interrupted('interrupted');
  };
}

/** Runs a bench's main(): Interrupted ends it quietly (the signal handler cleans up and exits), other errors exit 1. */
export function runMain(main: () => Promise<void>): void {
  main().catch((err: unknown) => {
    if (err instanceof Interrupted) return; // the signal handler is cleaning up and will exit
    console.error(err instanceof Error ? (err.stack ?? err.message) : err);
    process.exitCode = 1;
  });
}

// ───────────────────────────── machine and code under test ─────────────────────────────

export interface Machine {
  cpuModel: string;
  cores: number;
  totalMemoryGiB: number;
  node: string;
  postgres: string;
}

/**
 * CPU, memory, Node and the version of the PostgreSQL at `pgAdminUrl` ('not used' without one). If it cannot be
 * reached, `unreachable` says whether the description says so ('report') or the error is thrown ('throw').
 */
export async function describeMachine(pgAdminUrl: string | undefined, unreachable: 'report' | 'throw'): Promise<Machine> {
  let postgres = 'not used';
  if (pgAdminUrl !== undefined) {
    const client = new pg.Client({ connectionString: pgAdminUrl, connectionTimeoutMillis: 3_000 });
    try {
      await client.connect();
      postgres = (await client.query<{ version: string }>('SELECT version()')).rows[0]?.version ?? 'unknown';
    } catch (err) {
      if (unreachable === 'throw') throw err;
      postgres = `unreachable (${(err as Error).message})`;
    } finally {
      await client.end().catch(() => undefined);
    }
  }
  return {
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    totalMemoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    postgres,
  };
}

/** "<cpu model> × <n> cores, <m> GiB RAM", for the report. */
export const machineHardware = (m: Machine) => `${m.cpuModel} × ${m.cores} cores, ${m.totalMemoryGiB} GiB RAM`;

export interface SourceFingerprint {
  sha256: string;
  files: number;
  newestChange: string;
}

/**
 * A fingerprint of the code under test: sha256 over paths and contents of server/src, server/migrations, shared and
 * `extraFiles` (relative to the repository root). Taken before the children start and again at the end, so a result
 * is tied to a version of the code and a run during which someone edited it is called out (the children keep
 * running the code they started with).
 */
export function sourceFingerprint(extraFiles: readonly string[] = []): SourceFingerprint {
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
      const rel = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(rel);
      else if (/\.(ts|sql|json)$/.test(entry.name)) files.push(rel);
    }
  };
  for (const dir of ['server/src', 'server/migrations', 'shared']) walk(dir);
  files.push(...extraFiles);
  files.sort();
  const hash = createHash('sha256');
  let newest = 0;
  for (const file of files) {
    const full = path.join(ROOT, file);
    hash.update(file).update('\0').update(readFileSync(full)).update('\0');
    newest = Math.max(newest, statSync(full).mtimeMs);
  }
  return { sha256: hash.digest('hex').slice(0, 16), files: files.length, newestChange: new Date(newest).toISOString() };
}

// ───────────────────────────── child processes ─────────────────────────────

/**
 * Keeps the tail of a child's output and counts its warn/error log lines (pino JSON, level ≥ 40), in all and by
 * message; `onLine` sees every line.
 */
export class ChildLogs {
  private readonly tail: string[] = [];
  warnOrWorse = 0;
  errorOrWorse = 0;
  readonly byMessage = new Map<string, number>();

  constructor(child: ChildProcess, private readonly onLine?: (line: string) => void) {
    for (const stream of [child.stdout, child.stderr]) {
      if (!stream) continue;
      createInterface({ input: stream }).on('line', (line) => this.push(line));
    }
  }

  private push(line: string) {
    this.tail.push(line);
    if (this.tail.length > 40) this.tail.shift();
    const level = /"level":(\d+)/.exec(line);
    if (level && Number(level[1]) >= 40) {
      this.warnOrWorse++;
      if (Number(level[1]) >= 50) this.errorOrWorse++;
      const msg = /"msg":"((?:[^"\\]|\\.)*)"/.exec(line)?.[1] ?? line.slice(0, 120);
      const key = `${Number(level[1]) >= 50 ? 'error' : 'warn'}: ${msg}`;
      this.byMessage.set(key, (this.byMessage.get(key) ?? 0) + 1);
    }
    this.onLine?.(line);
  }

  lastLines(n = 15): string {
    return this.tail.slice(-n).join('\n');
  }
}

/** Server configuration a child must not inherit from this process. */
const INHERITED_CONFIG = /^(WECHAT_|DATABASE_URL$|DATA_DIR$|PORT$|HOST$|PUBLIC_URL$|LOG_LEVEL$|DB_POOL_SIZE$|JOBS_ENABLED$|NODE_ENV$|WEBHOOK_|RULES_CACHE_|OPS_|PII_KEY$|DOTENV_)/;

/**
 * The environment of a child: this process's without any server configuration it inherited (nor the variables named
 * in `alsoDrop`), plus `extra`, so the child sees only what the bench sets. A developer's .env must not leak in
 * either (its DATABASE_URL or CODE_KEY would change what is measured).
 */
export function childEnv(extra: Record<string, string>, alsoDrop: readonly string[] = []): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value === undefined) continue;
    if (INHERITED_CONFIG.test(key) || alsoDrop.includes(key)) continue;
    env[key] = value;
  }
  env.DOTENV_CONFIG_PATH = '/dev/null';
  return { ...env, ...extra };
}

/** A TCP port free on 127.0.0.1 just now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Runs `entry` (relative to the repository root) under tsx as a child with output piped; it is stopped by `cleanup`
 * (step "stop <label>"). With `cpuProfDir`, under the V8 CPU profiler.
 */
export function spawnTs(entry: string, env: Record<string, string>, cleanup: Cleanup, label: string, cpuProfDir?: string): ChildProcess {
  // With --cpu-prof, V8 writes one .cpuprofile per thread (main, tsx's loader thread) when the child exits normally
  // (SIGTERM → graceful close → exit), into a folder per target. The main thread's is the one with the most samples.
  const profile = cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${path.join(cpuProfDir, label.replace(/\W+/g, '-'))}`] : [];
  const child = spawn(process.execPath, [...profile, '--import', 'tsx', entry], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  cleanup.trackChild(child);
  cleanup.add(`stop ${label}`, () => stopChild(child));
  return child;
}

/** SIGTERM, then SIGKILL if the child has not exited after `graceMs`. */
export async function stopChild(child: ChildProcess, graceMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

/** Resolves when `probe` succeeds; rejects if the child exits first or time runs out. */
export async function waitUntil(child: ChildProcess, logs: ChildLogs, what: string, probe: () => Promise<boolean>, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${what}: process exited (${child.exitCode ?? child.signalCode}) before it was ready:\n${logs.lastLines()}`);
    if (await probe().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${what}: not ready after ${timeoutMs / 1000} s:\n${logs.lastLines()}`);
}

/** The real server as a child process, ready. */
export interface ServerProcess {
  baseUrl: string;
  pid: number;
  logs: ChildLogs;
}

/**
 * Starts the real server (server/src/main.ts) as a child on a free port of 127.0.0.1 with LOG_LEVEL=info,
 * JOBS_ENABLED=false, DB_POOL_SIZE if given and `env` (its database), and waits until GET /readyz answers 200.
 * `label` names it in errors and in the cleanup step that stops it; `alsoDropEnv` goes to childEnv.
 */
export async function startServer(a: {
  label: string;
  env: Record<string, string>;
  dbPoolSize: number | undefined;
  cleanup: Cleanup;
  cpuProfDir?: string | undefined;
  alsoDropEnv?: readonly string[];
}): Promise<ServerProcess> {
  const port = await freePort();
  const env: Record<string, string> = { PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'info', JOBS_ENABLED: 'false', ...a.env };
  if (a.dbPoolSize) env.DB_POOL_SIZE = String(a.dbPoolSize);
  const child = spawnTs('server/src/main.ts', childEnv(env, a.alsoDropEnv), a.cleanup, a.label, a.cpuProfDir);
  const logs = new ChildLogs(child);
  const baseUrl = `http://127.0.0.1:${port}`;
  await waitUntil(child, logs, a.label, async () => (await fetch(`${baseUrl}/readyz`)).status === 200);
  return { baseUrl, pid: child.pid!, logs };
}

// ───────────────────────────── PostgreSQL ─────────────────────────────

/**
 * Creates a fresh database bench_<random> on the PostgreSQL at `pgAdminUrl` and has `cleanup` drop it (WITH FORCE).
 * Returns its name and URL; `pgOptions`, if given, become the URL's `options` parameter (session settings).
 */
/** `keep`: leave the database in place at the end (to look into it afterwards; drop it by hand). */
export async function createBenchDatabase(pgAdminUrl: string, cleanup: Cleanup, pgOptions?: string, keep = false): Promise<{ name: string; url: string }> {
  const name = `bench_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: pgAdminUrl, connectionTimeoutMillis: 5_000 });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  log(`created database ${name}${keep ? ' (kept at the end: --keep-db)' : ''}`);
  if (!keep) cleanup.add(`drop database ${name}`, async () => {
    const c = new pg.Client({ connectionString: pgAdminUrl, connectionTimeoutMillis: 5_000 });
    await c.connect();
    try {
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      log(`dropped database ${name}`);
    } finally {
      await c.end();
    }
  });
  const url = new URL(pgAdminUrl);
  url.pathname = `/${name}`;
  if (pgOptions) url.searchParams.set('options', pgOptions);
  return { name, url: url.toString() };
}

// ───────────────────────────── CPU accounting ─────────────────────────────

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** utime + stime of a process, in clock ticks (0 if it is gone). */
export function processTicks(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return 0;
  }
}

/**
 * Ticks of the PostgreSQL processes that work for this bench, by pid: the postmaster and its background processes
 * (walwriter, checkpointer, …) plus the client backends connected to `database`. Backends of other databases
 * (other users of this shared PostgreSQL) are left out; PostgreSQL puts user, database and client address in the
 * process title, e.g. `postgres: 15/main: postgres bench_ab12 127.0.0.1(50312) idle`.
 */
export function postgresTicks(database: string | undefined): Map<number, number> {
  const out = new Map<number, number>();
  let entries: string[] = [];
  try {
    entries = readdirSync('/proc');
  } catch {
    return out;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, 'utf8').trim() !== 'postgres') continue;
      const title = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
      const clientBackend = /\(\d+\)|\[local\]/.test(title);
      if (clientBackend && !(database && title.includes(` ${database} `))) continue;
      out.set(Number(entry), processTicks(Number(entry)));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/** Busy and total ticks of the whole machine, from /proc/stat. */
export function machineTicks(): { busy: number; total: number } {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const total = fields.slice(0, 8).reduce((a, b) => a + b, 0);
    const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
    return { busy: total - idle, total };
  } catch {
    return { busy: 0, total: 0 };
  }
}

/** CPU used during a measurement, in percent of one core averaged over it (rounded to 0.1). */
export interface CpuUse {
  /** The measured process (the server under load). */
  processPct: number;
  /** This process: the load generator. */
  loadgenPct: number;
  /** PostgreSQL processes working for the bench database (see postgresTicks). */
  postgresPct: number;
  /** Everything else on the machine (other users of these cores): busy − process − load generator − postgres. */
  otherPct: number;
  machineBusyPct: number;
}

/** Starts a CPU measurement of process `pid` and PostgreSQL for `database`; the returned function ends it. */
export function startCpuMeasurement(pid: number, database: string | undefined): () => CpuUse {
  const t0 = process.hrtime.bigint();
  const process0 = processTicks(pid);
  const self0 = process.cpuUsage();
  const pg0 = postgresTicks(database);
  const machine0 = machineTicks();
  return () => {
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const self = process.cpuUsage(self0);
    let pgDelta = 0;
    for (const [pgPid, ticks] of postgresTicks(database)) pgDelta += ticks - (pg0.get(pgPid) ?? 0);
    const machine1 = machineTicks();
    const pct = (ticks: number) => (ticks / CLK_TCK / seconds) * 100;
    const machineTotal = machine1.total - machine0.total;
    const processPct = pct(processTicks(pid) - process0);
    const loadgenPct = ((self.user + self.system) / 1e6 / seconds) * 100;
    const postgresPct = pct(Math.max(0, pgDelta));
    const machineBusyPct = machineTotal > 0 ? ((machine1.busy - machine0.busy) / machineTotal) * os.cpus().length * 100 : 0;
    return {
      processPct: round1(processPct),
      loadgenPct: round1(loadgenPct),
      postgresPct: round1(postgresPct),
      otherPct: round1(Math.max(0, machineBusyPct - processPct - loadgenPct - postgresPct)),
      machineBusyPct: round1(machineBusyPct),
    };
  };
}

// ───────────────────────────── load and latency ─────────────────────────────

/** The autocannon run in flight, for the signal handler. */
let currentLoad: autocannon.Instance | undefined;

/**
 * Runs autocannon with `options`, recording the latency of every 2xx response in `latencies` at sub-millisecond
 * precision (autocannon's own histogram is whole ms). A signal (see Interruption) stops it.
 */
export async function runAutocannon(options: autocannon.Options, latencies: LatencyRecorder): Promise<autocannon.Result> {
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    currentLoad = autocannon(options, (err, res) => (err ? reject(err) : resolve(res)));
    currentLoad.on('response', (_client, statusCode, _bytes, responseTimeMs) => {
      if (statusCode >= 200 && statusCode < 300) latencies.add(responseTimeMs);
    });
  });
  currentLoad = undefined;
  return result;
}

/** Latencies (ms), in a growable typed array. */
export class LatencyRecorder {
  private values: Float64Array;
  private n = 0;

  constructor(capacity: number) {
    this.values = new Float64Array(Math.max(1024, capacity));
  }

  add(ms: number) {
    if (this.n === this.values.length) {
      const bigger = new Float64Array(this.values.length * 2);
      bigger.set(this.values);
      this.values = bigger;
    }
    this.values[this.n++] = ms;
  }

  /** Nearest-rank percentiles. */
  percentiles(...ps: number[]): number[] {
    const sorted = this.values.subarray(0, this.n).sort();
    return ps.map((p) => (this.n === 0 ? NaN : sorted[Math.min(this.n - 1, Math.max(0, Math.ceil((p / 100) * this.n) - 1))]!));
  }
}

// ───────────────────────────── numbers and results ─────────────────────────────

export const round1 = (x: number) => Math.round(x * 10) / 10;
export const round2 = (x: number) => Math.round(x * 100) / 100;
/** 12,345 */
export const fmt = (n: number) => n.toLocaleString('en-US');

/** Median (NaN for none). */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length === 0 ? NaN : s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/**
 * Writes the results as indented JSON to `file` (creating its folder) and logs where: generatedAt, machine, code
 * (with changedDuringRun), then `rest`.
 */
export function writeResults(file: string, run: { machine: Machine; code: SourceFingerprint; codeChanged: boolean }, rest: Record<string, unknown>): void {
  const results = { generatedAt: new Date().toISOString(), machine: run.machine, code: { ...run.code, changedDuringRun: run.codeChanged }, ...rest };
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify(results, null, 2) + '\n');
  log(`results written to ${path.relative(process.cwd(), file)}`);
}

// ───────────────────────────── WeChat messages ─────────────────────────────

export type Mode = 'plain' | 'aes';

export interface WeChatCredentials {
  token: string;
  appId: string;
  encodingAesKey: string;
}

/** The credentials of the official account in `config` (which must have an EncodingAESKey, as the sandbox does). */
export const wechatCredentials = (config: Config): WeChatCredentials => ({ token: config.wechat.token, appId: config.wechat.appId, encodingAesKey: config.wechat.encodingAesKey! });

/** The sandbox official account: ToUserName of every message. */
export const ACCOUNT_ID = 'gh_sandbox00001';
/** The bench's users: OPENID_POOL openids. */
export const OPENID_POOL = 5_000;
export const OPENIDS: readonly string[] = Array.from({ length: OPENID_POOL }, (_, i) => `oBench${i.toString(36).padStart(22, '0')}`);

/** First MsgId of a process's messages (add a sequence number): distinct from those of earlier runs. */
export const newMsgIdBase = () => 6_000_000_000_000_000_000n + BigInt(Date.now()) * 1_000_000n;

/**
 * A text message from `openid` as WeChat pushes it to POST /wechat (see sandbox/simulator.ts): timestamped now, with
 * a fresh nonce and the signature over (token, timestamp, nonce); in safe mode ('aes') the XML goes in an encrypted
 * envelope with its msg_signature. `crypt` is shared across messages (key derivation once).
 */
export function signedTextMessage(creds: WeChatCredentials, crypt: MsgCrypt, mode: Mode, openid: string, content: string, msgId: bigint): { path: string; body: Buffer } {
  const now = Math.floor(Date.now() / 1000);
  const timestamp = String(now);
  const nonce = String(randomInt(1_000_000_000));
  const xml = buildXml({ ToUserName: ACCOUNT_ID, FromUserName: openid, CreateTime: now, MsgType: 'text', Content: content, MsgId: msgId.toString() });
  // Query values are hex, digits and [0-9a-zA-Z]: no URL encoding needed.
  let query = `signature=${wechatSignature(creds.token, timestamp, nonce)}&timestamp=${timestamp}&nonce=${nonce}&openid=${openid}`;
  let body = xml;
  if (mode === 'aes') {
    const encrypt = crypt.encrypt(xml);
    body = `<xml><ToUserName><![CDATA[${ACCOUNT_ID}]]></ToUserName><Encrypt><![CDATA[${encrypt}]]></Encrypt></xml>`;
    query += `&encrypt_type=aes&msg_signature=${wechatSignature(creds.token, timestamp, nonce, encrypt)}`;
  }
  return { path: `/wechat?${query}`, body: Buffer.from(body) };
}
