/**
 * Webhook benchmark: messages/s and p50/p99 latency of POST /wechat for text messages, plaintext and safe (AES)
 * mode, on PGlite and on PostgreSQL, next to a bare Fastify route doing the same protocol work without a database.
 *
 *   npm run bench:webhook -- [--connections 64] [--duration 10] [--warmup 2] [--rounds 3]
 *                            [--only pglite,postgres,bare] [--modes plain,aes] [--db-pool-size 16]
 *                            [--pg-admin-url postgres://postgres@127.0.0.1:5432/test] [--cpu-prof]
 *                            [--pg-options="-c synchronous_commit=off"]  (diagnostics: session settings for the server)
 *                            [--json docs/bench/webhook-latest.json]     (where the JSON results go)
 *
 * 64 concurrent connections by default: at 32 the single event loop and the batched database round trip run in
 * lockstep and the server idles while a batch commits (figures for both are in docs/BENCHMARKS.md).
 *
 * Method
 * - Targets are child processes, so the load generator (autocannon, in this process) never shares their event loop:
 *     pglite    the real server (server/src/main.ts) on PGlite in a fresh temp DATA_DIR;
 *     postgres  the real server on a fresh database bench_<random> on the local PostgreSQL (dropped at the end);
 *     bare      scripts/bench/bare-webhook.ts: Fastify + the same signature/decrypt/parse/reply helpers, no database.
 *   The servers run with the default LOG_LEVEL=info, JOBS_ENABLED=false, sandbox credentials from loadConfig().
 * - Every request is a distinct message, as WeChat sends them: a unique MsgId, an openid from a pool of 5,000 users,
 *   a fresh signature over (token, timestamp, nonce), and in AES mode its own encrypted envelope and msg_signature.
 *   Requests are pre-generated right before each run (timestamps of "now"; the server accepts ±300 s), twice as many
 *   as the fastest run so far would need, and handed out by autocannon's setupRequest from a cursor. Should a run
 *   outpace its pool, the rest are generated on the fly (load-generator CPU; the run is annotated) — except for the
 *   bare route, which has no dedup, so it is simply sent requests again.
 * - Before loading, one message per (target, mode) is sent and its answer checked to be a valid text passive reply
 *   (MsgSignature verified and decrypted in AES mode). During runs, non-2xx responses, socket errors/timeouts and
 *   2xx bodies that are not a passive reply (e.g. `success`, what a dedup retry would get) are counted; any of
 *   them flags the run.
 * - A warm-up run (not reported) per (target, mode), then `--rounds` rounds, targets interleaved (order rotated each
 *   round). Reported per (target, mode): the median over rounds of msgs/s (2xx per second), p50 and p99 latency.
 *   Latencies are recorded per response at sub-millisecond precision (autocannon's own histogram is whole ms).
 * - CPU per run (percent of one core; the machine has os.cpus().length of them) for the target process, this load
 *   generator process, PostgreSQL (postmaster, background processes and the backends of the bench database), everything
 *   else, and the whole machine, from /proc: it shows who the bottleneck is and whether other work on a shared machine
 *   depressed the numbers. "target CPU ms/msg" is the target process's CPU time per message.
 * - The output names the code under test (a hash of server/src, migrations, shared, the bare route) and says so if it
 *   changed during the run. Results are printed as markdown and written to docs/bench/webhook-latest.json.
 * - Child processes, the temp DATA_DIR and the database are removed in `finally` and on SIGINT/SIGTERM.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig } from '../../server/src/config.ts';
import { MsgCrypt } from '../../server/src/wechat/crypto.ts';
import { WeChatSimulator } from '../../server/src/wechat/sandbox/simulator.ts';
import {
  ACCOUNT_ID, childEnv, ChildLogs, Cleanup, createBenchDatabase, DEFAULT_PG_ADMIN_URL, describeMachine, fmt, Interruption,
  LatencyRecorder, log, machineHardware, median, newMsgIdBase, OPENID_POOL, OPENIDS, positiveInt, printHelpAndExit, ROOT,
  round1, round2, runAutocannon, runLength, runMain, signedTextMessage, sourceFingerprint, spawnTs, startCpuMeasurement,
  startServer, waitUntil, wechatCredentials, writeResults, type Machine, type Mode, type WeChatCredentials,
} from './lib.ts';

const DEFAULT_RESULTS_FILE = path.join(ROOT, 'docs/bench/webhook-latest.json');
/** The bare route: a target, part of the code under test. */
const BARE_ROUTE = 'scripts/bench/bare-webhook.ts';
/** Rate assumed before a (target, mode) has been measured, to size its first pool. */
const INITIAL_RATE_GUESS = 15_000;
const TARGETS = { rps: 3_000, p99Ms: 50, vsBare: 0.5 } as const;

type TargetName = 'pglite' | 'postgres' | 'bare';
const ALL_TARGETS: TargetName[] = ['pglite', 'postgres', 'bare'];
const ALL_MODES: Mode[] = ['plain', 'aes'];

// ───────────────────────────── options ─────────────────────────────

interface Options {
  connections: number;
  durationS: number;
  warmupS: number;
  rounds: number;
  targets: TargetName[];
  modes: Mode[];
  dbPoolSize: number | undefined;
  pgAdminUrl: string;
  /** Write V8 CPU profiles of the target processes here (numbers are then measured under the profiler). */
  cpuProfDir: string | undefined;
  /** PostgreSQL session options for the server's connections (the `options` connection parameter), for experiments. */
  pgOptions: string | undefined;
  resultsFile: string;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      connections: { type: 'string', default: '64' },
      duration: { type: 'string', default: '10' },
      warmup: { type: 'string', default: '2' },
      rounds: { type: 'string', default: '3' },
      only: { type: 'string' },
      modes: { type: 'string', default: 'plain,aes' },
      'db-pool-size': { type: 'string' },
      'pg-admin-url': { type: 'string', default: DEFAULT_PG_ADMIN_URL },
      'cpu-prof': { type: 'boolean', default: false },
      'pg-options': { type: 'string' },
      json: { type: 'string', default: DEFAULT_RESULTS_FILE },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) printHelpAndExit(import.meta.url);
  const list = <T extends string>(name: string, raw: string, allowed: readonly T[]): T[] => {
    const items = raw.split(/[,|]/).map((s) => s.trim()).filter(Boolean);
    for (const item of items) if (!allowed.includes(item as T)) throw new Error(`--${name}: "${item}" is not one of ${allowed.join(', ')}`);
    if (items.length === 0) throw new Error(`--${name} is empty`);
    return allowed.filter((a) => items.includes(a)); // canonical order, no duplicates
  };
  const { warmupS, durationS } = runLength(values.warmup, values.duration);
  return {
    connections: positiveInt('connections', values.connections),
    durationS,
    warmupS,
    rounds: positiveInt('rounds', values.rounds),
    targets: values.only ? list('only', values.only, ALL_TARGETS) : ALL_TARGETS,
    modes: list('modes', values.modes, ALL_MODES),
    dbPoolSize: values['db-pool-size'] ? positiveInt('db-pool-size', values['db-pool-size']) : undefined,
    pgAdminUrl: values['pg-admin-url'],
    cpuProfDir: values['cpu-prof'] ? mkdtempSync(path.join(os.tmpdir(), 'webhook-bench-cpuprof-')) : undefined,
    pgOptions: values['pg-options'],
    resultsFile: path.resolve(values.json),
  };
}

// ───────────────────────────── messages ─────────────────────────────

/** One pre-built webhook request: path with the signed query, and the XML body. */
interface WebhookRequest {
  path: string;
  body: Buffer;
}

const TEXTS = ['你好', '在吗？', '请问怎么兑奖', '帮助', '我的积分是多少', 'hello', '包装上的码扫不出来', '谢谢'];

/** Builds distinct, correctly signed text messages as WeChat would push them (see sandbox/simulator.ts). */
class MessageFactory {
  private readonly crypt: MsgCrypt;
  private readonly msgIdBase = newMsgIdBase();
  private seq = 0;

  constructor(private readonly creds: WeChatCredentials) {
    this.crypt = new MsgCrypt(creds.encodingAesKey, creds.appId); // one instance: key derivation once
  }

  /**
   * `count` distinct messages, timestamped now. Generated in slices that yield to the event loop, so a Ctrl-C is
   * handled at once (tsx, which runs this script, SIGKILLs a child that does not acknowledge a signal within ~60 ms).
   */
  async generate(count: number, mode: Mode, shouldStop: () => boolean): Promise<WebhookRequest[]> {
    const out: WebhookRequest[] = new Array(count);
    for (let i = 0; i < count && !shouldStop(); ) {
      for (const end = Math.min(count, i + 1_000); i < end; i++) out[i] = this.next(mode).request;
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    return out;
  }

  next(mode: Mode): { request: WebhookRequest; openid: string } {
    const seq = ++this.seq;
    const openid = OPENIDS[seq % OPENID_POOL]!;
    const request = signedTextMessage(this.creds, this.crypt, mode, openid, TEXTS[seq % TEXTS.length]!, this.msgIdBase + BigInt(seq));
    return { request, openid };
  }
}

/** A 2xx body is a passive reply when it is an XML document (plain or the AES envelope), not `success`. */
function isPassiveReply(body: unknown): boolean {
  return typeof body === 'string' ? body.startsWith('<xml>') : Buffer.isBuffer(body) && body.subarray(0, 5).toString() === '<xml>';
}

// ───────────────────────────── targets ─────────────────────────────

interface Target {
  name: TargetName;
  baseUrl: string;
  pid: number;
  logs: ChildLogs;
  /** The PostgreSQL database it uses (postgres target only). */
  database?: string;
  /** The bare route has no dedup: when its pool runs out it may reuse requests instead of generating more. */
  mayReuseRequests: boolean;
}

async function startServerTarget(kind: 'pglite' | 'postgres', opts: Options, cleanup: Cleanup): Promise<Target> {
  const env: Record<string, string> = {};
  let database: string | undefined;
  if (kind === 'postgres') {
    const created = await createBenchDatabase(opts.pgAdminUrl, cleanup, opts.pgOptions);
    database = created.name;
    env.DATABASE_URL = created.url;
  } else {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'webhook-bench-pglite-'));
    cleanup.add(`remove ${dir}`, () => rmSync(dir, { recursive: true, force: true }));
    env.DATA_DIR = dir;
  }
  const server = await startServer({ label: `${kind} server`, env, dbPoolSize: opts.dbPoolSize, cleanup, cpuProfDir: opts.cpuProfDir });
  return { name: kind, ...server, ...(database ? { database } : {}), mayReuseRequests: false };
}

async function startBareTarget(opts: Options, cleanup: Cleanup): Promise<Target> {
  let port: number | undefined;
  const child = spawnTs(BARE_ROUTE, childEnv({ PORT: '0', HOST: '127.0.0.1' }), cleanup, 'bare route', opts.cpuProfDir);
  const logs = new ChildLogs(child, (line) => {
    const m = /^BARE_READY (\d+)/.exec(line);
    if (m) port = Number(m[1]);
  });
  await waitUntil(child, logs, 'bare route', async () => port !== undefined);
  return { name: 'bare', baseUrl: `http://127.0.0.1:${port}`, pid: child.pid!, logs, mayReuseRequests: true };
}

// ───────────────────────────── verification ─────────────────────────────

/** Send one fresh message and check the answer is a valid text passive reply (decrypted and verified in AES mode). */
async function verifyPassiveReply(target: Target, mode: Mode, factory: MessageFactory, creds: WeChatCredentials): Promise<string> {
  const { request, openid } = factory.next(mode);
  const res = await fetch(target.baseUrl + request.path, { method: 'POST', headers: { 'content-type': 'text/xml' }, body: request.body });
  const raw = await res.text();
  const where = `${target.name}/${mode}`;
  if (res.status !== 200) throw new Error(`${where}: check message answered ${res.status}: ${raw.slice(0, 300)}`);
  if (mode === 'aes' && !raw.includes('<Encrypt>')) throw new Error(`${where}: expected an encrypted reply envelope, got: ${raw.slice(0, 300)}`);
  // The simulator's decoder is the platform side of the protocol: it checks MsgSignature and decrypts.
  const decoder = new WeChatSimulator({ transport: { post: () => Promise.reject(new Error('unused')) }, ...creds, encrypt: mode === 'aes' });
  const reply = decoder.decode({ status: res.status, body: raw });
  const problems: string[] = [];
  if (reply.msgType !== 'text') problems.push(`MsgType is ${reply.msgType ?? 'missing'} (want text)`);
  if (!reply.content) problems.push('empty Content');
  if (reply.fields.ToUserName !== openid) problems.push(`ToUserName ${reply.fields.ToUserName} ≠ sender ${openid}`);
  if (reply.fields.FromUserName !== ACCOUNT_ID) problems.push(`FromUserName ${reply.fields.FromUserName} ≠ ${ACCOUNT_ID}`);
  if (!/^\d+$/.test(reply.fields.CreateTime ?? '')) problems.push('CreateTime missing');
  if (problems.length > 0) throw new Error(`${where}: not a valid passive reply (${problems.join('; ')}):\n${reply.xml ?? raw}`);
  return reply.content!;
}

// ───────────────────────────── CPU accounting ─────────────────────────────

interface CpuShare {
  /** Percent of one core, averaged over the run. */
  targetPct: number;
  loadgenPct: number;
  postgresPct: number;
  /** Everything else on the machine (other users of these cores): busy − target − load generator − postgres. */
  otherPct: number;
  machineBusyPct: number;
}

/** Starts a CPU measurement of the target (and of PostgreSQL for its database); the returned function ends it. */
function startTargetCpuMeasurement(target: Target): () => CpuShare {
  const end = startCpuMeasurement(target.pid, target.database);
  return () => {
    const c = end();
    return { targetPct: c.processPct, loadgenPct: c.loadgenPct, postgresPct: c.postgresPct, otherPct: c.otherPct, machineBusyPct: c.machineBusyPct };
  };
}

// ───────────────────────────── load ─────────────────────────────

interface RunResult {
  target: TargetName;
  mode: Mode;
  round: number; // 0 = warm-up
  durationS: number;
  messages: number;
  msgsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  /** 2xx answers that were not a passive reply (`success`, empty). */
  notReplies: number;
  /** Requests generated on the fly because the pre-generated pool ran out. */
  generatedDuringRun: number;
  /** Requests sent a second time because the pool ran out (bare route only: it has no dedup). */
  reusedDuringRun: number;
  serverWarnLines: number;
  cpu: CpuShare;
  statusCodes: Record<string, number>;
  flagged: boolean;
}


async function runLoad(target: Target, mode: Mode, round: number, durationS: number, connections: number, pool: WebhookRequest[], factory: MessageFactory): Promise<RunResult> {
  let cursor = 0;
  let generatedDuringRun = 0;
  let reusedDuringRun = 0;
  const latencies = new LatencyRecorder(pool.length);
  const warnBefore = target.logs.warnOrWorse;
  const endCpu = startTargetCpuMeasurement(target);

  const result = await runAutocannon(
    {
      url: target.baseUrl,
      connections,
      duration: durationS,
      method: 'POST',
      headers: { 'content-type': 'text/xml' },
      verifyBody: isPassiveReply,
      requests: [
        {
          method: 'POST',
          setupRequest: (req) => {
            let next = pool[cursor++];
            if (!next && target.mayReuseRequests) {
              reusedDuringRun++;
              next = pool[cursor % pool.length]!;
            } else if (!next) {
              generatedDuringRun++;
              next = factory.next(mode).request;
            }
            req.path = next.path;
            req.body = next.body;
            return req;
          },
        },
      ],
    },
    latencies,
  );

  const cpu = endCpu();
  const [p50, p99, max] = latencies.percentiles(50, 99, 100);
  const statusCodes = Object.fromEntries(Object.entries(result.statusCodeStats ?? {}).map(([code, s]) => [code, s.count ?? 0]));
  const run: RunResult = {
    target: target.name,
    mode,
    round,
    durationS: result.duration,
    messages: result['2xx'],
    msgsPerSec: Math.round(result['2xx'] / result.duration),
    p50Ms: round2(p50!),
    p99Ms: round2(p99!),
    maxMs: round2(max!),
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    notReplies: result.mismatches,
    generatedDuringRun,
    reusedDuringRun,
    serverWarnLines: target.logs.warnOrWorse - warnBefore,
    cpu,
    statusCodes,
    flagged: false,
  };
  run.flagged = run.non2xx > 0 || run.errors > 0 || run.notReplies > 0 || run.messages === 0;
  return run;
}

/**
 * Requests to pre-generate for a run: twice what the fastest run of this (target, mode) so far would need (a warm-up
 * on a busy machine can be much slower than later runs), at least 2,000/s.
 */
function poolSizeFor(durationS: number, rateEstimate: number): number {
  return Math.ceil(durationS * Math.max(rateEstimate, 2_000) * 2) + 2_000;
}

// ───────────────────────────── report ─────────────────────────────

interface Summary {
  target: TargetName;
  mode: Mode;
  msgsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  non2xx: number;
  errors: number;
  notReplies: number;
  vsBare: number | null;
  cpu: CpuShare;
  flaggedRounds: number[];
  rounds: number;
}

function summarize(runs: RunResult[], targets: TargetName[], modes: Mode[]): Summary[] {
  const summaries: Summary[] = [];
  for (const target of targets) {
    for (const mode of modes) {
      const rs = runs.filter((r) => r.target === target && r.mode === mode && r.round > 0);
      if (rs.length === 0) continue;
      summaries.push({
        target,
        mode,
        msgsPerSec: Math.round(median(rs.map((r) => r.msgsPerSec))),
        p50Ms: round2(median(rs.map((r) => r.p50Ms))),
        p99Ms: round2(median(rs.map((r) => r.p99Ms))),
        non2xx: rs.reduce((a, r) => a + r.non2xx, 0),
        errors: rs.reduce((a, r) => a + r.errors, 0),
        notReplies: rs.reduce((a, r) => a + r.notReplies, 0),
        vsBare: null,
        cpu: {
          targetPct: round1(median(rs.map((r) => r.cpu.targetPct))),
          loadgenPct: round1(median(rs.map((r) => r.cpu.loadgenPct))),
          postgresPct: round1(median(rs.map((r) => r.cpu.postgresPct))),
          otherPct: round1(median(rs.map((r) => r.cpu.otherPct))),
          machineBusyPct: round1(median(rs.map((r) => r.cpu.machineBusyPct))),
        },
        flaggedRounds: rs.filter((r) => r.flagged).map((r) => r.round),
        rounds: rs.length,
      });
    }
  }
  for (const s of summaries) {
    const bare = summaries.find((b) => b.target === 'bare' && b.mode === s.mode);
    s.vsBare = bare && bare.msgsPerSec > 0 ? round2(s.msgsPerSec / bare.msgsPerSec) : null;
  }
  return summaries;
}

interface Verdict {
  mode: Mode;
  pass: boolean;
  line: string;
}

function verdicts(summaries: Summary[]): Verdict[] {
  return summaries
    .filter((s) => s.target === 'postgres')
    .map((s) => {
      const checks = [
        { ok: s.msgsPerSec >= TARGETS.rps, text: `${fmt(s.msgsPerSec)} msgs/s ≥ ${fmt(TARGETS.rps)}` },
        { ok: s.p99Ms < TARGETS.p99Ms, text: `p99 ${s.p99Ms} ms < ${TARGETS.p99Ms} ms` },
        s.vsBare === null
          ? { ok: true, text: '× bare n/a (bare route not run)' }
          : { ok: s.vsBare >= TARGETS.vsBare, text: `${s.vsBare.toFixed(2)}× bare ≥ ${TARGETS.vsBare}×` },
        { ok: s.flaggedRounds.length === 0, text: s.flaggedRounds.length === 0 ? 'no errors' : `errors in round(s) ${s.flaggedRounds.join(', ')}` },
      ];
      const pass = checks.every((c) => c.ok);
      return { mode: s.mode, pass, line: `Verdict postgres/${s.mode}: ${pass ? 'PASS' : 'FAIL'} — ${checks.map((c) => `${c.text} ${c.ok ? '✓' : '✗'}`).join('; ')}` };
    });
}

function renderReport(machine: Machine, opts: Options, code: ReturnType<typeof sourceFingerprint>, codeChanged: boolean, summaries: Summary[], runs: RunResult[], verdictList: Verdict[]): string {
  const lines: string[] = [];
  lines.push('## Webhook benchmark', '');
  lines.push(`- CPU: ${machineHardware(machine)}`);
  lines.push(`- Node ${machine.node}; PostgreSQL: ${machine.postgres}`);
  lines.push(`- Code under test: ${code.sha256} (sha256 of server/src, server/migrations, shared and the bare route; newest change ${code.newestChange})${codeChanged ? ' — ⚠ the code changed while the bench ran; the targets ran the version above' : ''}`);
  lines.push(`- ${opts.connections} connections, ${opts.durationS} s per run (after a ${opts.warmupS} s warm-up), median of ${opts.rounds} interleaved round(s); text messages, each distinct; server DB_POOL_SIZE ${opts.dbPoolSize ?? '16 (default)'}${opts.pgOptions ? `; PostgreSQL session options "${opts.pgOptions}"` : ''}${opts.cpuProfDir ? '; targets under the V8 CPU profiler' : ''}`);
  lines.push('');
  lines.push('| target | mode | msgs/s | p50 ms | p99 ms | non-2xx | vs bare |');
  lines.push('|---|---|---:|---:|---:|---:|---:|');
  for (const s of summaries) {
    const flag = s.flaggedRounds.length > 0 ? ' ⚠' : '';
    lines.push(`| ${s.target} | ${s.mode} | ${fmt(s.msgsPerSec)}${flag} | ${s.p50Ms.toFixed(2)} | ${s.p99Ms.toFixed(2)} | ${fmt(s.non2xx)} | ${s.target === 'bare' ? '1.00×' : s.vsBare === null ? '—' : `${s.vsBare.toFixed(2)}×`} |`);
  }
  lines.push('');
  lines.push('CPU during the runs (median, % of one core; the machine has ' + machine.cores + ' cores = ' + machine.cores * 100 + '%):', '');
  lines.push('| target | mode | target process | load generator | postgres (bench db) | other processes | machine busy | target CPU ms/msg |');
  lines.push('|---|---|---:|---:|---:|---:|---:|---:|');
  for (const s of summaries) {
    const perMsg = s.msgsPerSec > 0 ? (s.cpu.targetPct * 10 / s.msgsPerSec).toFixed(3) : '—';
    lines.push(`| ${s.target} | ${s.mode} | ${s.cpu.targetPct}% | ${s.cpu.loadgenPct}% | ${s.cpu.postgresPct}% | ${s.cpu.otherPct}% | ${s.cpu.machineBusyPct}% | ${perMsg} |`);
  }
  lines.push('');
  const flagged = runs.filter((r) => r.round > 0 && r.flagged);
  if (flagged.length === 0) {
    lines.push('Errors: none (0 non-2xx, 0 socket errors/timeouts, every 2xx body a passive reply).');
  } else {
    lines.push('⚠ Runs with errors (their numbers are not trustworthy):');
    for (const r of flagged) {
      lines.push(`- ${r.target}/${r.mode} round ${r.round}: non-2xx ${r.non2xx} (${JSON.stringify(r.statusCodes)}), errors ${r.errors} (timeouts ${r.timeouts}), non-reply 2xx bodies ${r.notReplies}`);
    }
  }
  const overflowed = runs.filter((r) => r.round > 0 && r.generatedDuringRun > 0);
  for (const r of overflowed) lines.push(`- note: ${r.target}/${r.mode} round ${r.round} outran its pre-generated pool; ${fmt(r.generatedDuringRun)} requests were generated during the run (load-generator CPU).`);
  const reused = runs.filter((r) => r.round > 0 && r.reusedDuringRun > 0);
  for (const r of reused) lines.push(`- note: ${r.target}/${r.mode} round ${r.round} outran its pool; ${fmt(r.reusedDuringRun)} requests were re-sent (the bare route has no dedup, so the work is the same).`);
  const busy = summaries.filter((s) => s.cpu.otherPct >= 20);
  if (busy.length > 0) lines.push(`- note: other processes used ${busy.map((s) => `${s.cpu.otherPct}% during ${s.target}/${s.mode}`).join(', ')} of the machine: the numbers are depressed by contention.`);
  const noisy = runs.filter((r) => r.round > 0 && r.serverWarnLines > 0);
  for (const r of noisy) lines.push(`- note: ${r.target}/${r.mode} round ${r.round}: the server logged ${r.serverWarnLines} warn/error line(s).`);
  lines.push('');
  for (const v of verdictList) lines.push(v.line);
  if (verdictList.length === 0) lines.push('Verdict: PostgreSQL target not run.');
  return lines.join('\n');
}

// ───────────────────────────── main ─────────────────────────────

async function main() {
  const opts = parseOptions(process.argv.slice(2));
  const cleanup = new Cleanup();
  const signals = new Interruption(cleanup);
  const { checkpoint, shouldStop } = signals;

  // The children run loadConfig on this same environment: same token, appid and key.
  const config = loadConfig(childEnv({}));
  const creds = wechatCredentials(config);
  const factory = new MessageFactory(creds);

  await signals.guard(async () => {
    const machine = await describeMachine(opts.targets.includes('postgres') ? opts.pgAdminUrl : undefined, 'report');
    const code = sourceFingerprint([BARE_ROUTE]);
    log(`code under test: ${code.sha256} (${code.files} files, newest change ${code.newestChange})`);

    const targets: Target[] = [];
    for (const name of opts.targets) {
      log(`starting ${name}…`);
      targets.push(name === 'bare' ? await startBareTarget(opts, cleanup) : await startServerTarget(name, opts, cleanup));
      checkpoint();
    }

    for (const target of targets) {
      for (const mode of opts.modes) {
        const content = await verifyPassiveReply(target, mode, factory, creds);
        checkpoint();
        log(`${target.name}/${mode}: passive reply OK ("${content.slice(0, 24)}…")`);
      }
    }

    const runs: RunResult[] = [];
    const bestRate = new Map<string, number>();
    const measure = async (target: Target, mode: Mode, round: number) => {
      const key = `${target.name}/${mode}`;
      const durationS = round === 0 ? opts.warmupS : opts.durationS;
      const started = Date.now();
      const pool = await factory.generate(poolSizeFor(durationS, bestRate.get(key) ?? INITIAL_RATE_GUESS), mode, shouldStop);
      checkpoint();
      const genMs = Date.now() - started;
      const run = await runLoad(target, mode, round, durationS, opts.connections, pool, factory);
      checkpoint();
      bestRate.set(key, Math.max(bestRate.get(key) ?? 0, run.msgsPerSec));
      runs.push(run);
      log(
        `${round === 0 ? 'warm-up' : `round ${round}`} ${key}: ${fmt(run.msgsPerSec)} msgs/s, p50 ${run.p50Ms} ms, p99 ${run.p99Ms} ms` +
          ` | non-2xx ${run.non2xx}, errors ${run.errors}, non-replies ${run.notReplies}${run.flagged ? '  ⚠ FLAGGED' : ''}` +
          ` | cpu target ${run.cpu.targetPct}% loadgen ${run.cpu.loadgenPct}% pg ${run.cpu.postgresPct}% other ${run.cpu.otherPct}% machine ${run.cpu.machineBusyPct}%` +
          ` | pool ${fmt(pool.length)} in ${genMs} ms${run.generatedDuringRun ? `, +${fmt(run.generatedDuringRun)} on the fly` : ''}${run.reusedDuringRun ? `, ${fmt(run.reusedDuringRun)} re-sent` : ''}`,
      );
    };

    if (opts.warmupS > 0) for (const target of targets) for (const mode of opts.modes) await measure(target, mode, 0);
    for (let round = 1; round <= opts.rounds; round++) {
      // Interleave targets, rotating who goes first, so drift over time is spread across all of them.
      const order = targets.map((_, i) => targets[(i + round - 1) % targets.length]!);
      for (const target of order) for (const mode of opts.modes) await measure(target, mode, round);
    }

    const summaries = summarize(runs, opts.targets, opts.modes);
    const verdictList = verdicts(summaries);
    const codeAtEnd = sourceFingerprint([BARE_ROUTE]);
    const codeChanged = codeAtEnd.sha256 !== code.sha256;
    console.log(renderReport(machine, opts, code, codeChanged, summaries, runs, verdictList));

    writeResults(opts.resultsFile, { machine, code, codeChanged }, {
      options: { ...opts, pgAdminUrl: undefined, cpuProfDir: undefined, resultsFile: undefined, cpuProfiled: Boolean(opts.cpuProfDir) },
      targets: TARGETS,
      results: summaries,
      verdicts: verdictList,
      runs,
    });
    if (opts.cpuProfDir) log(`CPU profiles of the targets will be in ${opts.cpuProfDir} once they have exited`);
    if (runs.some((r) => r.round > 0 && r.flagged)) process.exitCode = 2;
  });
}

runMain(main);
