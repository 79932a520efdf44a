/**
 * Redemption + draw benchmark (issue 3): on-pack codes sent as WeChat text messages through POST /wechat on
 * PostgreSQL — the whole path: dedup claim, code classification, redeem (conditional update of the code, per-user
 * counter, redemption row, answered questions), unlock check, draw (gate, draw row, points ledger + balance,
 * fulfilment row; a limited-stock prize takes one unit from a shard in its own transaction), passive reply —
 * printed as redemptions/s and p99, next to a raw SQL loop of the bare conditional update on the same database in
 * the same run.
 *
 *   npm run bench:redeem -- [--connections 64] [--duration 10] [--warmup 3] [--rounds 3] [--aes]
 *                           [--db-pool-size 16] [--pg-admin-url postgres://postgres@127.0.0.1:5432/test]
 *                           [--rate-guess 5000] [--raw-rate-guess 10000] [--max-codes 1000000]
 *                           [--wait-quiet 0]   (seconds to wait, before each run, for other processes to go quiet)
 *                           [--cpu-prof]       (the server under the V8 CPU profiler)
 *                           [--users 5000]     (users sending the codes; more users = fewer codes per user)
 *                           [--json docs/bench/redeem-latest.json]
 *                           [--keep-db]        (leave the bench database in place at the end, for a look inside)
 *
 * Targets: ≥ 2,000 redemptions/s, p99 < 50 ms, and the webhook's rate ≥ 30 % of the raw loop's.
 *
 * Method
 * - The real server (server/src/main.ts) is a child process (so the load generator never shares its event loop) on a
 *   fresh database bench_<random> on the local PostgreSQL (dropped at the end, also on Ctrl-C), LOG_LEVEL=info,
 *   JOBS_ENABLED=false, sandbox credentials. This process derives the same token/appid/CODE_KEY with loadConfig();
 *   a first redemption is checked to succeed before any load (it would answer "未找到兑奖码" with another key).
 * - Seeding, with node-postgres straight into the migrated database: one live campaign (5 golden questions, unlock 2,
 *   1 consolation point; prizes 100积分 w5 unlimited, 10元话费 w1 stock 100,000 in 16 shards, 谢谢参与 w94), 5,000 users
 *   who each have 2 profile answers (name, occupation) so every redemption goes straight to the draw, and two code
 *   batches: one for the webhook, one for the raw loop, sized from a rate guess × time × 1.5 (capped by --max-codes)
 *   and topped up between runs should a run need more. `VACUUM ANALYZE` after the bulk load.
 * - Webhook runs: autocannon in this process, each request a distinct signed message (unique MsgId, fresh signature,
 *   optional safe mode with --aes) carrying a distinct fresh code in its printed form (XXXX-XXXX-XXXXX) from a random
 *   one of the 5,000 users. Every reply is decoded; a 2xx that is not a text passive reply saying 恭喜 or 很遗憾 (e.g.
 *   `success`, which the server answers when it overruns its 4 s budget) is a failure and flags the run.
 *   Rate = successful replies / run time; latency per response at sub-millisecond precision.
 * - Raw loop: a pg.Pool of the server's pool size (16), 64 statements in flight, the prepared
 *   `UPDATE codes SET redeemed_by = $2, redeemed_at = now() WHERE key = $1 AND redeemed_at IS NULL RETURNING …`
 *   over distinct fresh codes of the second batch, for the same duration.
 * - A warm-up of each (not reported), then --rounds rounds with the two interleaved (order alternating); the median
 *   over rounds is reported. CPU per run (server process, PostgreSQL for this database, this load generator, other)
 *   from /proc.
 * - At the end, the database is checked: redemptions = successful replies (+ requests cut off by the end of a run,
 *   which the server still completes), every successful reply's code redeemed by its sender, draws = redemptions,
 *   no code redeemed twice, Σ ledger deltas = Σ balances, top-up stock taken = top-up draws = top-up fulfilments.
 * - Results are printed as markdown and written to docs/bench/redeem-latest.json.
 */
import pg from 'pg';
import { randomInt } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { loadConfig } from '../../server/src/config.ts';
import { createLookupKeyer, formatForPrint, generateCodes, type LookupKeyer } from '../../server/src/campaigns/codes.ts';
import { MsgCrypt, wechatSignature } from '../../server/src/wechat/crypto.ts';
import type { GoldenQuestion } from '../../shared/campaigns.ts';
import {
  childEnv, Cleanup, createBenchDatabase, DEFAULT_PG_ADMIN_URL, describeMachine, fmt, Interruption, LatencyRecorder, log,
  machineHardware, median, newMsgIdBase, OPENID_POOL, OPENIDS as DEFAULT_OPENIDS, positiveInt, printHelpAndExit, ROOT, round1, round2,
  runAutocannon, runLength, runMain, signedTextMessage, sourceFingerprint, startCpuMeasurement, startServer,
  wechatCredentials, writeResults, type ChildLogs, type Machine, type Mode, type ServerProcess, type WeChatCredentials,
} from './lib.ts';

/** The users sending codes (`--users`; the default pool is the webhook bench's). */
let USERS: readonly string[] = DEFAULT_OPENIDS;

const DEFAULT_RESULTS_FILE = path.join(ROOT, 'docs/bench/redeem-latest.json');
const RAW_IN_FLIGHT = 64;
const INSERT_CHUNK = 50_000;
const TOPUP_TOTAL_STOCK = 100_000;
const TOPUP_SHARDS = 16;
const TARGETS = { rps: 2_000, p99Ms: 50, vsRaw: 0.3 } as const;

// Golden questions as in server/test/campaign-fixtures.ts.
const QUESTIONS: GoldenQuestion[] = [
  { key: 'name', kind: 'text', prompt: '请问怎么称呼您？', required: true, minLength: 2, maxLength: 20, pattern: '^[\\p{Script=Han}A-Za-z·\\s]+$', patternHint: '姓名只能包含中文或英文字母。' },
  { key: 'occupation', kind: 'choice', prompt: '您的职业是？', options: ['学生', '上班族', '个体经营', '自由职业', '退休', '其他'] },
  { key: 'region', kind: 'region', prompt: '您在哪个城市？' },
  { key: 'business_type', kind: 'choice', prompt: '您经营的业态是？', options: ['餐饮', '便利店', '商超', '烟酒店', '批发', '其他'] },
  { key: 'spending', kind: 'range', prompt: '您的人均消费大约是？', ranges: [{ label: '30元以下', max: 30 }, { label: '30–60元', min: 30, max: 60 }, { label: '60–100元', min: 60, max: 100 }, { label: '100元以上', min: 100 }] },
];

const PRIZES = [
  { name: '100积分', kind: 'points', value: 100, weight: 5, totalStock: null },
  { name: '10元话费', kind: 'topup', value: 1000, weight: 1, totalStock: TOPUP_TOTAL_STOCK },
  { name: '谢谢参与', kind: 'thanks', value: 0, weight: 94, totalStock: null },
] as const;

type PathName = 'webhook' | 'raw';

// ───────────────────────────── options ─────────────────────────────

interface Options {
  connections: number;
  durationS: number;
  warmupS: number;
  rounds: number;
  mode: Mode;
  dbPoolSize: number | undefined;
  pgAdminUrl: string;
  rateGuess: number;
  rawRateGuess: number;
  maxCodes: number;
  waitQuietS: number;
  resultsFile: string;
  /** Run the server under the V8 CPU profiler; the profiles land here once it exits. */
  cpuProfDir: string | undefined;
  /** How many users send the codes (each has answered 2 questions). */
  users: number;
  /** Leave the database in place at the end. */
  keepDb: boolean;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      connections: { type: 'string', default: '64' },
      duration: { type: 'string', default: '10' },
      warmup: { type: 'string', default: '3' },
      rounds: { type: 'string', default: '3' },
      aes: { type: 'boolean', default: false },
      'db-pool-size': { type: 'string' },
      'pg-admin-url': { type: 'string', default: DEFAULT_PG_ADMIN_URL },
      'rate-guess': { type: 'string', default: '5000' },
      'raw-rate-guess': { type: 'string', default: '10000' },
      'max-codes': { type: 'string', default: '1000000' },
      'wait-quiet': { type: 'string', default: '0' },
      'cpu-prof': { type: 'boolean', default: false },
      'keep-db': { type: 'boolean', default: false },
      users: { type: 'string', default: String(OPENID_POOL) },
      json: { type: 'string', default: DEFAULT_RESULTS_FILE },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) printHelpAndExit(import.meta.url);
  const { warmupS, durationS } = runLength(values.warmup, values.duration);
  return {
    connections: positiveInt('connections', values.connections),
    durationS,
    warmupS,
    rounds: positiveInt('rounds', values.rounds),
    mode: values.aes ? 'aes' : 'plain',
    dbPoolSize: values['db-pool-size'] ? positiveInt('db-pool-size', values['db-pool-size']) : undefined,
    pgAdminUrl: values['pg-admin-url'],
    rateGuess: positiveInt('rate-guess', values['rate-guess']),
    rawRateGuess: positiveInt('raw-rate-guess', values['raw-rate-guess']),
    maxCodes: positiveInt('max-codes', values['max-codes']),
    waitQuietS: Number(values['wait-quiet']) >= 0 ? Number(values['wait-quiet']) : 0,
    resultsFile: path.resolve(values.json),
    cpuProfDir: values['cpu-prof'] ? mkdtempSync(path.join(os.tmpdir(), 'redeem-bench-cpuprof-')) : undefined,
    users: positiveInt('users', values.users),
    keepDb: values['keep-db']!,
  };
}

// ───────────────────────────── server child process ─────────────────────────────

/**
 * Dropped from the children's environment on top of the server configuration childEnv always drops: an inherited
 * CODE_KEY (or one in a developer's .env) would change what is measured; without it, this process and the server
 * derive the same sandbox key.
 */
const ALSO_DROP_ENV = ['CODE_KEY'];

interface Server extends ServerProcess {
  database: string;
  databaseUrl: string;
}

async function startBenchServer(opts: Options, cleanup: Cleanup): Promise<Server> {
  const created = await createBenchDatabase(opts.pgAdminUrl, cleanup, undefined, opts.keepDb);
  const server = await startServer({ label: 'server', env: { DATABASE_URL: created.url }, dbPoolSize: opts.dbPoolSize, cleanup, alsoDropEnv: ALSO_DROP_ENV, cpuProfDir: opts.cpuProfDir });
  if (opts.cpuProfDir) log(`CPU profile of the server will be in ${opts.cpuProfDir} once it has exited`);
  return { ...server, database: created.name, databaseUrl: created.url };
}

// ───────────────────────────── seeding ─────────────────────────────

interface Seeded {
  campaignId: number;
  prizeIds: { points: number; topup: number; thanks: number };
}

async function seedCampaign(db: pg.Pool): Promise<Seeded> {
  const c = await db.query<{ id: number }>(
    `INSERT INTO campaigns (name, status, starts_at, ends_at, questions, unlock_min, loss_points, prize_mode)
     VALUES ('压测开盖有礼', 'live', now() - interval '1 hour', now() + interval '30 days', $1::jsonb, 2, 1, 'dynamic') RETURNING id`,
    [JSON.stringify(QUESTIONS)],
  );
  const campaignId = c.rows[0]!.id;
  const ids: number[] = [];
  for (const [i, p] of PRIZES.entries()) {
    const r = await db.query<{ id: number }>(
      `INSERT INTO campaign_prizes (campaign_id, name, kind, value, weight, total_stock, position) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`,
      [campaignId, p.name, p.kind, p.value, p.weight, p.totalStock, i],
    );
    ids.push(r.rows[0]!.id);
    if (p.totalStock !== null) {
      // 16 shards, remaining split evenly, no daily cap.
      await db.query(
        `INSERT INTO prize_stock_shards (prize_id, shard, remaining, daily_share)
         SELECT $1, s, $2::int / $3::int + CASE WHEN s < $2::int % $3::int THEN 1 ELSE 0 END, NULL FROM generate_series(0, $3::int - 1) AS s`,
        [r.rows[0]!.id, p.totalStock, TOPUP_SHARDS],
      );
    }
  }
  // Every pool user has answered 2 golden questions (name is required): each redemption goes straight to the draw.
  const names = ['张伟', '王芳', '李娜', '刘洋', '陈静', '杨磊', '赵敏', '黄强'];
  const jobs = ['学生', '上班族', '个体经营', '自由职业', '退休', '其他'];
  const openids: string[] = [];
  const keys: string[] = [];
  const values: string[] = [];
  const displays: string[] = [];
  for (const [i, openid] of USERS.entries()) {
    const name = names[i % names.length]!;
    const job = jobs[i % jobs.length]!;
    openids.push(openid, openid);
    keys.push('name', 'occupation');
    values.push(JSON.stringify(name), JSON.stringify(job));
    displays.push(name, job);
  }
  // They follow the account since last month, as consumers who redeem do (an account first seen minutes ago is a
  // fraud signal, and it would change what the draw issues when anti-fraud is on).
  await db.query(
    `INSERT INTO followers (openid, subscribed, subscribed_at, subscribe_count, first_seen_at, last_interaction_at)
     SELECT o, true, now() - interval '30 days', 1, now() - interval '30 days', now() - interval '1 day' FROM unnest($1::text[]) AS t(o)`,
    [[...USERS]],
  );
  await db.query(
    `INSERT INTO profile_answers (openid, question_key, value, display, campaign_id, source, answered_at)
     SELECT o, k, v::jsonb, d, $5, 'chat', now() - interval '1 day' FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS t(o, k, v, d)`,
    [openids, keys, values, displays, campaignId],
  );
  return { campaignId, prizeIds: { points: ids[0]!, topup: ids[1]!, thanks: ids[2]! } };
}

/** A batch of fresh codes: plaintext (webhook) or keys only (raw loop), handed out in order, topped up on demand. */
class CodeSet {
  /** Plaintext codes (kept only when `keepPlain`). */
  readonly codes: string[] = [];
  readonly keys: Buffer[] = [];
  /** Next unused code. */
  cursor = 0;
  batchId = 0;
  inserted = 0;

  constructor(
    private readonly db: pg.Pool,
    private readonly keyer: LookupKeyer,
    readonly name: string,
    private readonly keepPlain: boolean,
  ) {}

  get remaining() {
    return this.keys.length - this.cursor;
  }

  async create(campaignId: number) {
    const r = await this.db.query<{ id: number }>(
      `INSERT INTO code_batches (campaign_id, name, source, count, status, code_length) VALUES ($1, $2, 'imported', 0, 'active', 12) RETURNING id`,
      [campaignId, this.name],
    );
    this.batchId = r.rows[0]!.id;
  }

  /** Generate `n` more codes and insert them (chunks of 50k through unnest). */
  async add(n: number, shouldStop: () => boolean) {
    for (let done = 0; done < n && !shouldStop(); ) {
      const size = Math.min(INSERT_CHUNK, n - done);
      const plain = generateCodes(size);
      const keys = plain.map((code) => this.keyer.key(code));
      const seqs = Array.from({ length: size }, (_, i) => this.inserted + i);
      await this.db.query(`INSERT INTO codes (key, batch_id, seq) SELECT * FROM unnest($1::bytea[], $2::int[], $3::int[])`, [keys, new Array<number>(size).fill(this.batchId), seqs]);
      for (let i = 0; i < size; i++) {
        this.keys.push(keys[i]!);
        if (this.keepPlain) this.codes.push(plain[i]!);
      }
      this.inserted += size;
      done += size;
    }
    await this.db.query(`UPDATE code_batches SET count = $2 WHERE id = $1`, [this.batchId, this.inserted]);
  }

  /** Make sure at least `need` fresh codes are left (codes inserted now, outside any timed run). */
  async ensure(need: number, shouldStop: () => boolean) {
    if (this.remaining >= need) return;
    const more = Math.ceil((need - this.remaining) / INSERT_CHUNK) * INSERT_CHUNK;
    const started = Date.now();
    await this.add(more, shouldStop);
    log(`${this.name}: topped up ${fmt(more)} codes in ${Date.now() - started} ms (${fmt(this.remaining)} fresh)`);
  }
}

// ───────────────────────────── messages and replies ─────────────────────────────

interface WebhookRequest {
  path: string;
  body: Buffer;
  /** Index of the code in the webhook CodeSet. */
  codeIndex: number;
  user: number;
}

/** Distinct, correctly signed text messages carrying a code, as WeChat would push them. */
class MessageFactory {
  private readonly crypt: MsgCrypt;
  private readonly msgIdBase = newMsgIdBase();
  private seq = 0;

  constructor(private readonly creds: WeChatCredentials, private readonly mode: Mode) {
    this.crypt = new MsgCrypt(creds.encodingAesKey, creds.appId);
  }

  next(code: string, codeIndex: number): WebhookRequest {
    const seq = ++this.seq;
    const user = randomInt(USERS.length);
    // Content as printed on the pack: 7KQ3-MXW9-HD2RT
    const message = signedTextMessage(this.creds, this.crypt, this.mode, USERS[user]!, formatForPrint(code), this.msgIdBase + BigInt(seq));
    return { ...message, codeIndex, user };
  }

  /** `count` messages for the next fresh codes of `set`, yielding to the event loop between slices. */
  async generate(set: CodeSet, count: number, shouldStop: () => boolean): Promise<WebhookRequest[]> {
    const n = Math.min(count, set.remaining);
    const out: WebhookRequest[] = new Array(n);
    for (let i = 0; i < n && !shouldStop(); ) {
      for (const end = Math.min(n, i + 1_000); i < end; i++) out[i] = this.next(set.codes[set.cursor + i]!, set.cursor + i);
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    return out;
  }
}

const CONTENT_RE = /<Content><!\[CDATA\[([\s\S]*?)\]\]><\/Content>/;
const ENCRYPT_RE = /<Encrypt><!\[CDATA\[([^\]]*)\]\]><\/Encrypt>/;
const MSG_SIGNATURE_RE = /<MsgSignature><!\[CDATA\[([0-9a-f]+)\]\]><\/MsgSignature>/;

type Outcome = 'won_points' | 'won_topup' | 'won_other' | 'lost' | 'out_of_stock';

/** Decodes a passive reply (decrypting and checking MsgSignature in safe mode): the text Content, or null. */
function replyContent(body: string, mode: Mode, crypt: MsgCrypt, creds: WeChatCredentials, query?: { timestamp: string; nonce: string }): string | null {
  let xml = body;
  if (mode === 'aes') {
    const enc = ENCRYPT_RE.exec(body)?.[1];
    if (!enc) return null;
    if (query) {
      const sig = MSG_SIGNATURE_RE.exec(body)?.[1];
      if (sig !== wechatSignature(creds.token, query.timestamp, query.nonce, enc)) return null;
    }
    try {
      xml = crypt.decrypt(enc);
    } catch {
      return null;
    }
  }
  if (!xml.startsWith('<xml>') || !xml.includes('<MsgType><![CDATA[text]]></MsgType>')) return null;
  return CONTENT_RE.exec(xml)?.[1] ?? null;
}

function classifyReply(content: string | null): Outcome | null {
  if (content === null) return null;
  if (content.includes('恭喜')) {
    const prize = /【(.+?)】/.exec(content)?.[1];
    return prize === '100积分' ? 'won_points' : prize === '10元话费' ? 'won_topup' : 'won_other';
  }
  if (content.includes('很遗憾')) return content.includes('已发完') ? 'out_of_stock' : 'lost';
  return null;
}

/** Send one fresh code and check the answer is a draw result (proves the CODE_KEY matches the server's). */
async function firstRedemption(server: Server, factory: MessageFactory, set: CodeSet, mode: Mode, crypt: MsgCrypt, creds: WeChatCredentials): Promise<{ content: string; req: WebhookRequest }> {
  const req = factory.next(set.codes[set.cursor]!, set.cursor);
  set.cursor++;
  const res = await fetch(server.baseUrl + req.path, { method: 'POST', headers: { 'content-type': 'text/xml' }, body: req.body });
  const raw = await res.text();
  if (res.status !== 200) throw new Error(`first redemption: HTTP ${res.status}: ${raw.slice(0, 300)}`);
  const q = new URLSearchParams(req.path.split('?')[1]);
  const content = replyContent(raw, mode, crypt, creds, { timestamp: q.get('timestamp')!, nonce: q.get('nonce')! });
  if (content === null) throw new Error(`first redemption: not a text passive reply: ${raw.slice(0, 300)}`);
  if (!classifyReply(content)) {
    throw new Error(
      `first redemption: the reply is not a draw result, so the bench and the server disagree on the code key or the seed is wrong:\n  ${content}`,
    );
  }
  return { content, req };
}

// ───────────────────────────── CPU accounting ─────────────────────────────

/** Percent of one core, averaged over a run. */
interface CpuShare {
  serverPct: number;
  postgresPct: number;
  loadgenPct: number;
  /** busy − server − postgres − load generator: other users of the machine. */
  otherPct: number;
  machineBusyPct: number;
}

/** Starts a CPU measurement of the server and PostgreSQL for its database; the returned function ends it. */
function startServerCpuMeasurement(serverPid: number, database: string): () => CpuShare {
  const end = startCpuMeasurement(serverPid, database);
  return () => {
    const c = end();
    return { serverPct: c.processPct, postgresPct: c.postgresPct, loadgenPct: c.loadgenPct, otherPct: c.otherPct, machineBusyPct: c.machineBusyPct };
  };
}

/**
 * On a shared machine: wait up to `maxS` seconds until the CPU used outside this bench (server, its PostgreSQL
 * backends, this process) stays under 15 % of one core for a 2 s sample. Returns that share when the wait ended.
 */
async function waitQuiet(serverPid: number, database: string, maxS: number): Promise<number> {
  const deadline = Date.now() + maxS * 1000;
  for (;;) {
    const end = startCpuMeasurement(serverPid, database);
    await new Promise((r) => setTimeout(r, 2_000));
    const other = end().otherPct;
    if (other < 15 || Date.now() >= deadline) return other;
  }
}

// ───────────────────────────── PostgreSQL activity ─────────────────────────────

/** What a server statement is, from its text in pg_stat_activity. */
function statementLabel(query: string): string {
  if (query.includes('INSERT INTO webhook_dedup')) return 'claim batch (dedup + interaction log)';
  if (/key text, openid text, at timestamptz/.test(query)) return 'redeem batch';
  if (/redemption_id bigint, mode text/.test(query)) return 'draw batch';
  if (/FROM redemptions WHERE id = .* FOR UPDATE/s.test(query)) return 'stock draw: lock the redemption';
  if (query.includes('prize_stock_shards')) return 'stock draw: shard';
  if (/^\s*(BEGIN|COMMIT)/i.test(query)) return query.trim().split(/\s/)[0]!.toUpperCase();
  return query.replace(/\s+/g, ' ').trim().slice(0, 70);
}

/**
 * Samples the server's backends (pg_stat_activity of the bench database) every 100 ms during a run: how many are
 * busy, in which statement and on which wait event — where the database time of a redemption goes.
 */
class ActivitySampler {
  samples = 0;
  /** label → summed count of backends busy in it (active or idle in transaction) over all samples. */
  readonly busy = new Map<string, number>();
  /** label → wait event → count. */
  readonly waits = new Map<string, Map<string, number>>();
  private timer: NodeJS.Timeout | undefined;
  private inFlight = false;

  /** `raw`: sample the raw loop's connections instead of the server's. */
  constructor(private readonly db: pg.Pool, private readonly database: string, private readonly raw: boolean) {}

  start() {
    this.timer = setInterval(() => void this.sample(), 100);
  }

  stop() {
    clearInterval(this.timer);
  }

  private async sample() {
    if (this.inFlight) return;
    this.inFlight = true;
    try {
      const r = await this.db.query<{ state: string; wait: string | null; query: string }>(
        `SELECT state, CASE WHEN wait_event IS NULL THEN NULL ELSE wait_event_type || ':' || wait_event END AS wait, query
         FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid() AND backend_type = 'client backend'
           AND state IN ('active', 'idle in transaction') AND (application_name = 'bench-raw') = $2`,
        [this.database, this.raw],
      );
      this.samples++;
      for (const row of r.rows) {
        const label = row.state === 'idle in transaction' ? `(idle in transaction after) ${statementLabel(row.query)}` : statementLabel(row.query);
        this.busy.set(label, (this.busy.get(label) ?? 0) + 1);
        const w = this.waits.get(label) ?? new Map<string, number>();
        const wait = row.wait ?? 'CPU (no wait event)';
        w.set(wait, (w.get(wait) ?? 0) + 1);
        this.waits.set(label, w);
      }
    } catch {
      // a failed sample is skipped
    } finally {
      this.inFlight = false;
    }
  }

  summary(): Array<{ statement: string; avgBackends: number; waits: Record<string, number> }> {
    return [...this.busy.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([statement, n]) => {
        const w = [...(this.waits.get(statement) ?? new Map<string, number>()).entries()].sort((a, b) => b[1] - a[1]);
        return { statement, avgBackends: round2(n / Math.max(1, this.samples)), waits: Object.fromEntries(w.map(([k, v]) => [k, Math.round((v / n) * 100)])) };
      });
  }
}

// ───────────────────────────── runs ─────────────────────────────

/** Per-code state of the webhook CodeSet. */
const SENT = 1;
const REPLIED_OK = 2;
const REPLIED_BAD = 3;

interface RunResult {
  path: PathName;
  round: number; // 0 = warm-up
  durationS: number;
  /** Successful redemptions (webhook: replies with a draw result; raw: statements that updated a row). */
  ok: number;
  perSec: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Webhook: non-2xx + socket errors + 2xx bodies that are not a draw result; raw: errors + 0-row updates. */
  failures: number;
  detail: Record<string, number>;
  /** Webhook: requests sent whose answer the run did not wait for (cut off at the end). */
  cutOff: number;
  serverWarnLines: number;
  cpu: CpuShare;
  flagged: boolean;
  notes: string[];
}

let rawStop = false;

interface WebhookRunContext {
  server: Server;
  opts: Options;
  set: CodeSet;
  status: Uint8Array;
  /** Sender (index into USERS) of each code of the set. */
  users: Int32Array;
  factory: MessageFactory;
  crypt: MsgCrypt;
  creds: WeChatCredentials;
  outcomes: Record<Outcome, number>;
  badSamples: string[];
}

async function runWebhook(ctx: WebhookRunContext, round: number, durationS: number, pool: WebhookRequest[], sampler?: ActivitySampler): Promise<RunResult> {
  const { server, opts, set, status, factory, crypt, creds } = ctx;
  let cursor = 0;
  let onTheFly = 0;
  let exhausted = 0;
  let ok = 0;
  let bad = 0;
  const runOutcomes: Record<string, number> = {};
  const latencies = new LatencyRecorder(pool.length);
  // Latency by draw result (setupRequest → onResponse, a little wider than autocannon's): which replies are the tail?
  const byOutcome = new Map<Outcome, LatencyRecorder>();
  const warnBefore = server.logs.warnOrWorse;
  const endCpu = startServerCpuMeasurement(server.pid, server.database);
  const poolStart = pool[0]?.codeIndex ?? set.cursor;
  let highestIndex = set.cursor - 1;
  sampler?.start();

  const result = await runAutocannon(
    {
      url: server.baseUrl,
      connections: opts.connections,
      duration: durationS,
      method: 'POST',
      headers: { 'content-type': 'text/xml' },
      requests: [
        {
          method: 'POST',
          setupRequest: (req, context) => {
            let next = pool[cursor++];
            if (!next) {
              // The pool ran out: build more from the codes after it (load-generator CPU; noted).
              const index = poolStart + cursor - 1;
              if (index < set.keys.length) {
                onTheFly++;
                next = factory.next(set.codes[index]!, index);
              } else {
                exhausted++; // no fresh code left: re-send an already used one (it will fail and flag the run)
                next = factory.next(set.codes[set.codes.length - 1]!, set.codes.length - 1);
              }
            }
            status[next.codeIndex] = SENT;
            ctx.users[next.codeIndex] = next.user;
            highestIndex = Math.max(highestIndex, next.codeIndex);
            (context as { req?: WebhookRequest; t0?: number }).req = next;
            (context as { t0?: number }).t0 = performance.now();
            req.path = next.path;
            req.body = next.body;
            return req;
          },
          onResponse: (statusCode, body, context) => {
            const sent = (context as { req?: WebhookRequest }).req;
            let outcome: Outcome | null = null;
            if (statusCode >= 200 && statusCode < 300) {
              let q: { timestamp: string; nonce: string } | undefined;
              if (opts.mode === 'aes' && sent) {
                const p = new URLSearchParams(sent.path.slice(sent.path.indexOf('?') + 1));
                q = { timestamp: p.get('timestamp')!, nonce: p.get('nonce')! };
              }
              outcome = classifyReply(replyContent(body, opts.mode, crypt, creds, q));
            }
            if (outcome) {
              const t0 = (context as { t0?: number }).t0;
              if (t0 !== undefined) {
                let rec = byOutcome.get(outcome);
                if (!rec) byOutcome.set(outcome, (rec = new LatencyRecorder(1024)));
                rec.add(performance.now() - t0);
              }
              ok++;
              runOutcomes[outcome] = (runOutcomes[outcome] ?? 0) + 1;
              ctx.outcomes[outcome]++;
            } else {
              bad++;
              if (ctx.badSamples.length < 5) ctx.badSamples.push(`HTTP ${statusCode}: ${body.slice(0, 200)}`);
            }
            if (sent) status[sent.codeIndex] = outcome ? REPLIED_OK : REPLIED_BAD;
          },
        },
      ],
    },
    latencies,
  );
  sampler?.stop();
  const cpu = endCpu();

  // Codes handed out (sent or not) are used up; count what was sent but not answered.
  let cutOff = 0;
  for (let i = poolStart; i <= highestIndex; i++) if (status[i] === SENT) cutOff++;
  set.cursor = Math.max(set.cursor, highestIndex + 1);

  const [p50, p99, max] = latencies.percentiles(50, 99, 100);
  const failures = bad + result.errors; // `bad` counts non-2xx responses too (onResponse sees every response)
  const notes: string[] = [];
  if (onTheFly > 0) notes.push(`${fmt(onTheFly)} requests generated during the run (pool ran out)`);
  if (exhausted > 0) notes.push(`${fmt(exhausted)} requests re-sent a used code (no fresh codes left)`);
  const tail = [...byOutcome].map(([o, rec]) => {
    const [q50, q99] = rec.percentiles(50, 99);
    return `${o} p50 ${q50!.toFixed(1)} / p99 ${q99!.toFixed(1)} ms`;
  });
  if (tail.length > 0) notes.push(`latency by result: ${tail.join('; ')}`);
  const run: RunResult = {
    path: 'webhook',
    round,
    durationS: result.duration,
    ok,
    perSec: Math.round(ok / result.duration),
    p50Ms: round2(p50!),
    p99Ms: round2(p99!),
    maxMs: round2(max!),
    failures,
    detail: { ...runOutcomes, responses2xx: result['2xx'], non2xx: result.non2xx, socketErrors: result.errors, timeouts: result.timeouts, badReplies: bad - result.non2xx },
    cutOff,
    serverWarnLines: server.logs.warnOrWorse - warnBefore,
    cpu,
    flagged: false,
    notes,
  };
  run.flagged = run.failures > 0 || exhausted > 0 || ok === 0;
  return run;
}

const RAW_SQL = 'UPDATE codes SET redeemed_by = $2, redeemed_at = now() WHERE key = $1 AND redeemed_at IS NULL RETURNING batch_id, prize_id';

async function runRaw(rawPool: pg.Pool, set: CodeSet, server: Server, round: number, durationS: number, sampler?: ActivitySampler): Promise<RunResult> {
  const latencies = new LatencyRecorder(durationS * 20_000);
  let ok = 0;
  let zeroRows = 0;
  let errors = 0;
  let exhausted = false;
  const firstError: string[] = [];
  const warnBefore = server.logs.warnOrWorse;
  const endCpu = startServerCpuMeasurement(server.pid, server.database);
  const started = performance.now();
  const deadline = started + durationS * 1000;
  sampler?.start();
  const worker = async () => {
    while (!rawStop && performance.now() < deadline) {
      if (set.cursor >= set.keys.length) {
        exhausted = true;
        return;
      }
      const key = set.keys[set.cursor++]!;
      const t0 = performance.now();
      try {
        const r = await rawPool.query({ name: 'bench_raw_redeem', text: RAW_SQL, values: [key, USERS[randomInt(USERS.length)]] });
        latencies.add(performance.now() - t0);
        if (r.rowCount === 1) ok++;
        else zeroRows++;
      } catch (err) {
        errors++;
        if (firstError.length === 0) firstError.push((err as Error).message);
      }
    }
  };
  await Promise.all(Array.from({ length: RAW_IN_FLIGHT }, worker));
  sampler?.stop();
  const seconds = (performance.now() - started) / 1000;
  const cpu = endCpu();
  const [p50, p99, max] = latencies.percentiles(50, 99, 100);
  const notes: string[] = [];
  if (exhausted) notes.push('ran out of fresh codes before the end of the run');
  if (firstError.length > 0) notes.push(`first error: ${firstError[0]}`);
  const run: RunResult = {
    path: 'raw',
    round,
    durationS: round2(seconds),
    ok,
    perSec: Math.round(ok / seconds),
    p50Ms: round2(p50!),
    p99Ms: round2(p99!),
    maxMs: round2(max!),
    failures: errors + zeroRows,
    detail: { updated: ok, zeroRows, errors },
    cutOff: 0,
    serverWarnLines: server.logs.warnOrWorse - warnBefore,
    cpu,
    flagged: false,
    notes,
  };
  run.flagged = run.failures > 0 || exhausted || ok === 0;
  return run;
}

/** Codes (and webhook messages) to have ready for a run: 2× what the fastest run so far, or the rate guess, would use. */
const codesNeeded = (durationS: number, rate: number, connections: number) => Math.ceil(durationS * rate * 2) + connections + 1_000;

// ───────────────────────────── invariants ─────────────────────────────

interface Check {
  name: string;
  ok: boolean;
  text: string;
}

/** Waits until the server has finished the requests cut off at the end of the last run (counts stop moving). */
async function settle(db: pg.Pool): Promise<void> {
  let last = '';
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const r = await db.query<{ r: string; d: string }>(`SELECT (SELECT count(*) FROM redemptions) AS r, (SELECT count(*) FROM draws) AS d`);
    const now = `${r.rows[0]!.r}/${r.rows[0]!.d}`;
    if (now === last && r.rows[0]!.r === r.rows[0]!.d) return;
    last = now;
    await new Promise((res) => setTimeout(res, 1_000));
  }
}

/** How many of the given codes are redeemed, and how many of them by the given user. */
async function redeemedAmong(db: pg.Pool, keys: Buffer[], openids: string[]): Promise<{ redeemed: number; bySender: number }> {
  let redeemed = 0;
  let bySender = 0;
  for (let i = 0; i < keys.length; i += INSERT_CHUNK) {
    const r = await db.query<{ redeemed: string; by_sender: string }>(
      `SELECT count(c.redeemed_at) AS redeemed, count(*) FILTER (WHERE c.redeemed_by = t.o) AS by_sender
       FROM unnest($1::bytea[], $2::text[]) AS t(k, o) JOIN codes c ON c.key = t.k`,
      [keys.slice(i, i + INSERT_CHUNK), openids.slice(i, i + INSERT_CHUNK)],
    );
    redeemed += Number(r.rows[0]!.redeemed);
    bySender += Number(r.rows[0]!.by_sender);
  }
  return { redeemed, bySender };
}

async function checkInvariants(db: pg.Pool, seeded: Seeded, http: CodeSet, raw: CodeSet, status: Uint8Array, users: Int32Array, rawUpdated: number): Promise<{ checks: Check[]; facts: Record<string, number> }> {
  await settle(db);
  const q = async (text: string, values: unknown[] = []) => Number(Object.values((await db.query(text, values)).rows[0] as Record<string, unknown>)[0] ?? 0);
  const redemptions = await q(`SELECT count(*) FROM redemptions`);
  const distinctCodes = await q(`SELECT count(DISTINCT code_key) FROM redemptions`);
  const drawn = await q(`SELECT count(*) FROM redemptions WHERE status = 'drawn'`);
  const draws = await q(`SELECT count(*) FROM draws`);
  const httpRedeemed = await q(`SELECT count(*) FROM codes WHERE batch_id = $1 AND redeemed_at IS NOT NULL`, [http.batchId]);
  const rawRedeemed = await q(`SELECT count(*) FROM codes WHERE batch_id = $1 AND redeemed_at IS NOT NULL`, [raw.batchId]);
  const rawInRedemptions = await q(`SELECT count(*) FROM redemptions WHERE batch_id = $1`, [raw.batchId]);
  const ledgerSum = await q(`SELECT coalesce(sum(delta), 0) FROM points_ledger`);
  const balanceSum = await q(`SELECT coalesce(sum(balance), 0) FROM points_accounts`);
  const ledgerRows = await q(`SELECT count(*) FROM points_ledger`);
  const stockLeft = await q(`SELECT coalesce(sum(remaining), 0) FROM prize_stock_shards WHERE prize_id = $1`, [seeded.prizeIds.topup]);
  const topupDraws = await q(`SELECT count(*) FROM draws WHERE prize_id = $1`, [seeded.prizeIds.topup]);
  const topupFulfilments = await q(`SELECT count(*) FROM fulfilments WHERE kind = 'topup'`);
  const pointsDraws = await q(`SELECT count(*) FROM draws WHERE prize_id = $1`, [seeded.prizeIds.points]);
  const outOfStock = await q(`SELECT count(*) FROM draws WHERE outcome = 'out_of_stock'`);
  const topupStates = (await db.query<{ state: string; n: string }>(
    `SELECT state || coalesce(' (last_error: ' || left(last_error, 120) || ')', '') AS state, count(*) AS n FROM fulfilments WHERE kind = 'topup' GROUP BY 1 ORDER BY 2 DESC LIMIT 5`,
  )).rows;

  // Codes by what the bench saw: answered with a draw result, or sent without one (cut off / bad reply).
  const okKeys: Buffer[] = [];
  const okUsers: string[] = [];
  const otherKeys: Buffer[] = [];
  const otherUsers: string[] = [];
  for (let i = 0; i < http.cursor; i++) {
    if (status[i] === REPLIED_OK) {
      okKeys.push(http.keys[i]!);
      okUsers.push(USERS[users[i]!]!);
    } else if (status[i] === SENT || status[i] === REPLIED_BAD) {
      otherKeys.push(http.keys[i]!);
      otherUsers.push(USERS[users[i]!]!);
    }
  }
  const okSide = await redeemedAmong(db, okKeys, okUsers);
  const otherSide = await redeemedAmong(db, otherKeys, otherUsers);
  const successfulReplies = okKeys.length;

  const checks: Check[] = [
    {
      name: 'redemptions = successful replies',
      ok: redemptions === successfulReplies + otherSide.redeemed,
      text: `redemptions ${fmt(redemptions)} = successful replies ${fmt(successfulReplies)}` +
        (otherSide.redeemed > 0 || otherKeys.length > 0 ? ` + ${fmt(otherSide.redeemed)} redeemed of the ${fmt(otherKeys.length)} requests without a successful reply (cut off at the end of a run, or failed)` : ''),
    },
    { name: 'every successful reply redeemed its code for its sender', ok: okSide.bySender === successfulReplies, text: `${fmt(okSide.bySender)} of ${fmt(successfulReplies)} codes answered with a draw result are redeemed by the sender` },
    { name: 'draws = redemptions', ok: draws === redemptions && drawn === redemptions, text: `draws ${fmt(draws)}, redemptions in status drawn ${fmt(drawn)}, redemptions ${fmt(redemptions)}` },
    { name: 'no code redeemed twice', ok: httpRedeemed === redemptions && distinctCodes === redemptions, text: `codes of the webhook batch with redeemed_at set ${fmt(httpRedeemed)} = redemptions ${fmt(redemptions)} (distinct code keys ${fmt(distinctCodes)})` },
    { name: 'Σ ledger deltas = Σ balances', ok: ledgerSum === balanceSum, text: `Σ points_ledger.delta ${fmt(ledgerSum)} = Σ points_accounts.balance ${fmt(balanceSum)} (${fmt(ledgerRows)} ledger rows)` },
    { name: 'ledger rows = draws that credit points', ok: ledgerRows === draws - topupDraws, text: `ledger rows ${fmt(ledgerRows)} = draws ${fmt(draws)} − top-up wins ${fmt(topupDraws)} (every other draw credits 100 or 1 point)` },
    {
      name: 'top-up stock taken = top-up draws = fulfilments',
      ok: TOPUP_TOTAL_STOCK - stockLeft === topupDraws && topupDraws === topupFulfilments,
      text: `stock taken ${fmt(TOPUP_TOTAL_STOCK - stockLeft)} = top-up draws ${fmt(topupDraws)} = top-up fulfilments ${fmt(topupFulfilments)}`,
    },
    { name: 'top-up fulfilments by state (info)', ok: true, text: topupStates.map((r) => `${r.state} ${fmt(Number(r.n))}`).join(', ') || 'none' },
    { name: 'raw loop: rows updated = codes redeemed in its batch', ok: rawRedeemed === rawUpdated && rawInRedemptions === 0, text: `raw batch codes redeemed ${fmt(rawRedeemed)} = statements that updated a row ${fmt(rawUpdated)}; redemptions from the raw batch ${rawInRedemptions}` },
  ];
  return {
    checks,
    facts: { redemptions, draws, successfulReplies, withoutReply: otherKeys.length, withoutReplyRedeemed: otherSide.redeemed, pointsDraws, topupDraws, outOfStock, ledgerSum, balanceSum, stockLeft, rawRedeemed },
  };
}

// ───────────────────────────── report ─────────────────────────────

interface Summary {
  path: PathName;
  perSec: number;
  p50Ms: number;
  p99Ms: number;
  failures: number;
  cpu: CpuShare;
  flaggedRounds: number[];
}

function summarize(runs: RunResult[], p: PathName): Summary {
  const rs = runs.filter((r) => r.path === p && r.round > 0);
  const med = (f: (r: RunResult) => number) => median(rs.map(f));
  return {
    path: p,
    perSec: Math.round(med((r) => r.perSec)),
    p50Ms: round2(med((r) => r.p50Ms)),
    p99Ms: round2(med((r) => r.p99Ms)),
    failures: rs.reduce((a, r) => a + r.failures, 0),
    cpu: {
      serverPct: round1(med((r) => r.cpu.serverPct)),
      postgresPct: round1(med((r) => r.cpu.postgresPct)),
      loadgenPct: round1(med((r) => r.cpu.loadgenPct)),
      otherPct: round1(med((r) => r.cpu.otherPct)),
      machineBusyPct: round1(med((r) => r.cpu.machineBusyPct)),
    },
    flaggedRounds: rs.filter((r) => r.flagged).map((r) => r.round),
  };
}

interface Verdict {
  name: string;
  pass: boolean;
  text: string;
}

function verdicts(web: Summary, raw: Summary, checks: Check[]): Verdict[] {
  const ratio = raw.perSec > 0 ? web.perSec / raw.perSec : 0;
  return [
    { name: 'throughput', pass: web.perSec >= TARGETS.rps, text: `${fmt(web.perSec)} redemptions/s ≥ ${fmt(TARGETS.rps)}` },
    { name: 'p99', pass: web.p99Ms < TARGETS.p99Ms, text: `p99 ${web.p99Ms.toFixed(2)} ms < ${TARGETS.p99Ms} ms` },
    { name: 'vs raw', pass: ratio >= TARGETS.vsRaw, text: `webhook ${(ratio * 100).toFixed(1)} % of the raw loop's ${fmt(raw.perSec)}/s ≥ ${TARGETS.vsRaw * 100} %` },
    { name: 'no errors', pass: web.flaggedRounds.length === 0 && raw.flaggedRounds.length === 0, text: web.flaggedRounds.length + raw.flaggedRounds.length === 0 ? 'no failed requests or statements' : `failures in round(s) webhook ${web.flaggedRounds.join(', ') || '—'}, raw ${raw.flaggedRounds.join(', ') || '—'}` },
    { name: 'invariants', pass: checks.every((c) => c.ok), text: checks.every((c) => c.ok) ? 'database invariants hold' : `invariant(s) broken: ${checks.filter((c) => !c.ok).map((c) => c.name).join('; ')}` },
  ];
}

function renderReport(a: {
  machine: Machine;
  opts: Options;
  code: ReturnType<typeof sourceFingerprint>;
  codeChanged: boolean;
  web: Summary;
  raw: Summary;
  runs: RunResult[];
  outcomes: Record<Outcome, number>;
  checks: Check[];
  verdictList: Verdict[];
  logs: ChildLogs;
  badSamples: string[];
  seedInfo: string;
  activity: Record<PathName, ReturnType<ActivitySampler['summary']>>;
}): string {
  const { machine, opts, web, raw, runs } = a;
  const lines: string[] = [];
  lines.push('## Redemption + draw benchmark', '');
  lines.push(`- CPU: ${machineHardware(machine)}; Node ${machine.node}`);
  lines.push(`- PostgreSQL: ${machine.postgres}`);
  lines.push(`- Code under test: ${a.code.sha256} (newest change ${a.code.newestChange})${a.codeChanged ? ' — ⚠ the server code changed while the bench ran; the server ran the version above' : ''}`);
  lines.push(`- Webhook: ${opts.connections} connections, ${opts.mode} mode, each request a distinct fresh code from one of ${fmt(USERS.length)} users; server DB_POOL_SIZE ${opts.dbPoolSize ?? '16 (default)'}`);
  lines.push(`- Raw loop: pg.Pool of ${opts.dbPoolSize ?? 16}, ${RAW_IN_FLIGHT} statements in flight, prepared conditional UPDATE of a fresh code`);
  lines.push(`- ${opts.durationS} s per run after a ${opts.warmupS} s warm-up of each; median of ${opts.rounds} interleaved round(s); ${a.seedInfo}${opts.waitQuietS > 0 ? `; before each run, waited up to ${opts.waitQuietS} s for other processes to go quiet` : ''}`);
  lines.push('');
  lines.push('| path | per s | p50 ms | p99 ms | failures |');
  lines.push('|---|---:|---:|---:|---:|');
  const row = (label: string, s: Summary) => `| ${label} | ${fmt(s.perSec)}${s.flaggedRounds.length ? ' ⚠' : ''} | ${s.p50Ms.toFixed(2)} | ${s.p99Ms.toFixed(2)} | ${fmt(s.failures)} |`;
  lines.push(row('webhook: redemption + draw (redemptions/s)', web));
  lines.push(row('raw SQL conditional UPDATE (statements/s)', raw));
  lines.push('');
  lines.push(`Webhook rate / raw rate: ${raw.perSec > 0 ? ((web.perSec / raw.perSec) * 100).toFixed(1) : '—'} %`);
  lines.push('');
  lines.push('Per round:', '');
  lines.push('| round | webhook /s | webhook p99 ms | raw /s | raw p99 ms | webhook ÷ raw | other processes CPU (webhook / raw run) |');
  lines.push('|---:|---:|---:|---:|---:|---:|---:|');
  for (let r = 1; r <= opts.rounds; r++) {
    const w = runs.find((x) => x.path === 'webhook' && x.round === r);
    const s = runs.find((x) => x.path === 'raw' && x.round === r);
    if (!w || !s) continue;
    lines.push(`| ${r} | ${fmt(w.perSec)}${w.flagged ? ' ⚠' : ''} | ${w.p99Ms.toFixed(2)} | ${fmt(s.perSec)}${s.flagged ? ' ⚠' : ''} | ${s.p99Ms.toFixed(2)} | ${s.perSec > 0 ? ((w.perSec / s.perSec) * 100).toFixed(1) : '—'} % | ${w.cpu.otherPct} % / ${s.cpu.otherPct} % |`);
  }
  lines.push('');
  lines.push(`CPU during the runs (median, % of one core; ${machine.cores} cores = ${machine.cores * 100} %):`, '');
  lines.push('| path | server process | PostgreSQL (bench db) | load generator | other | machine busy | server CPU ms/op | PostgreSQL CPU ms/op |');
  lines.push('|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const s of [web, raw]) {
    const per = (pct: number) => (s.perSec > 0 ? ((pct * 10) / s.perSec).toFixed(3) : '—');
    lines.push(`| ${s.path} | ${s.cpu.serverPct} % | ${s.cpu.postgresPct} % | ${s.cpu.loadgenPct} % | ${s.cpu.otherPct} % | ${s.cpu.machineBusyPct} % | ${s.path === 'raw' ? '—' : per(s.cpu.serverPct)} | ${per(s.cpu.postgresPct)} |`);
  }
  lines.push('');
  const poolSize = opts.dbPoolSize ?? 16;
  lines.push(`PostgreSQL backends during the measured runs (pg_stat_activity every 100 ms): average number busy (of ${poolSize}) by statement, and what they waited on:`, '');
  lines.push('| path | statement | avg busy backends | wait events (share of its samples) |');
  lines.push('|---|---|---:|---|');
  for (const p of ['webhook', 'raw'] as const) {
    for (const s of a.activity[p].slice(0, 8)) {
      const waits = Object.entries(s.waits).slice(0, 4).map(([k, v]) => `${k} ${v} %`).join(', ');
      lines.push(`| ${p} | ${s.statement.replace(/\|/g, '\\|')} | ${s.avgBackends.toFixed(2)} | ${waits} |`);
    }
  }
  lines.push('');
  const o = a.outcomes;
  const total = o.won_points + o.won_topup + o.won_other + o.lost + o.out_of_stock;
  const pc = (n: number) => (total > 0 ? `${((n / total) * 100).toFixed(2)} %` : '—');
  lines.push(`Draw results in the replies (all runs incl. warm-up, ${fmt(total)}): 100积分 ${fmt(o.won_points)} (${pc(o.won_points)}), 10元话费 ${fmt(o.won_topup)} (${pc(o.won_topup)}), 谢谢参与 ${fmt(o.lost)} (${pc(o.lost)}), out of stock ${fmt(o.out_of_stock)}${o.won_other ? `, other prize ${fmt(o.won_other)}` : ''} — expected 5 % / 1 % / 94 %.`);
  lines.push('');
  lines.push('Database invariants after all runs:', '');
  for (const c of a.checks) lines.push(`- ${c.ok ? '✓' : '✗'} ${c.name}: ${c.text}`);
  lines.push('');
  const flagged = runs.filter((r) => r.flagged);
  if (flagged.length === 0) lines.push('Errors: none (every webhook response a passive reply with a draw result; every raw statement updated its row).');
  for (const r of flagged) lines.push(`- ⚠ ${r.path} ${r.round === 0 ? 'warm-up' : `round ${r.round}`}: ${fmt(r.failures)} failure(s) ${JSON.stringify(r.detail)}${r.notes.length ? `; ${r.notes.join('; ')}` : ''}`);
  for (const s of a.badSamples) lines.push(`  - sample: ${s.replace(/\n/g, ' ')}`);
  for (const r of runs.filter((x) => !x.flagged && x.notes.length > 0)) lines.push(`- note: ${r.path} ${r.round === 0 ? 'warm-up' : `round ${r.round}`}: ${r.notes.join('; ')}`);
  const busy = [web, raw].filter((s) => s.cpu.otherPct >= 20);
  if (busy.length > 0) lines.push(`- note: other processes used ${busy.map((s) => `${s.cpu.otherPct} % during ${s.path}`).join(', ')}: the numbers are depressed by contention.`);
  lines.push('');
  lines.push(`Server log: ${fmt(a.logs.warnOrWorse)} warn/error line(s) (${fmt(a.logs.errorOrWorse)} error or worse)${a.logs.byMessage.size ? ':' : '.'}`);
  for (const [msg, n] of [...a.logs.byMessage.entries()].sort((x, y) => y[1] - x[1]).slice(0, 10)) lines.push(`- ${fmt(n)} × ${msg}`);
  lines.push('');
  const pass = a.verdictList.every((v) => v.pass);
  lines.push(`Verdict: ${pass ? 'PASS' : 'FAIL'}`);
  for (const v of a.verdictList) lines.push(`- ${v.pass ? 'PASS' : 'FAIL'} ${v.name}: ${v.text}`);
  return lines.join('\n');
}

// ───────────────────────────── main ─────────────────────────────

async function main() {
  const opts = parseOptions(process.argv.slice(2));
  if (opts.users !== DEFAULT_OPENIDS.length) USERS = Array.from({ length: opts.users }, (_, i) => `oBench${i.toString(36).padStart(22, '0')}`);
  const cleanup = new Cleanup();
  const signals = new Interruption(cleanup, () => (rawStop = true));
  const { checkpoint, shouldStop } = signals;

  // The child runs loadConfig on this same (filtered) environment: same token, appid, AES key and CODE_KEY.
  const config = loadConfig(childEnv({}, ALSO_DROP_ENV));
  const creds = wechatCredentials(config);
  const crypt = new MsgCrypt(creds.encodingAesKey, creds.appId);
  const keyer = createLookupKeyer(config.codeKey);
  const factory = new MessageFactory(creds, opts.mode);

  await signals.guard(async () => {
    const machine = await describeMachine(opts.pgAdminUrl, 'throw');
    const code = sourceFingerprint();
    log(`code under test: ${code.sha256} (${code.files} files, newest change ${code.newestChange})`);
    log('starting the server on a fresh PostgreSQL database…');
    const server = await startBenchServer(opts, cleanup);
    checkpoint();

    const db = new pg.Pool({ connectionString: server.databaseUrl, max: 2 });
    db.on('error', () => undefined);
    cleanup.add('close seeding pool', () => db.end());
    const rawPool = new pg.Pool({ connectionString: server.databaseUrl, max: opts.dbPoolSize ?? 16, application_name: 'bench-raw' });
    rawPool.on('error', () => undefined);
    cleanup.add('close raw pool', () => rawPool.end());

    // ── seed
    const started = Date.now();
    const seeded = await seedCampaign(db);
    const http = new CodeSet(db, keyer, '压测批次（webhook）', true);
    const raw = new CodeSet(db, keyer, '压测批次（raw loop）', false);
    await http.create(seeded.campaignId);
    await raw.create(seeded.campaignId);
    const totalS = opts.warmupS + opts.rounds * opts.durationS;
    const httpInitial = Math.min(opts.maxCodes, Math.ceil(opts.rateGuess * totalS * 1.5) + 1_000);
    const rawInitial = Math.min(opts.maxCodes, Math.ceil(opts.rawRateGuess * totalS * 1.5) + 1_000);
    await http.add(httpInitial, shouldStop);
    checkpoint();
    await raw.add(rawInitial, shouldStop);
    checkpoint();
    await db.query('VACUUM (ANALYZE) codes, profile_answers, campaigns, campaign_prizes, prize_stock_shards, code_batches');
    // The sandbox learns of user messages from the client (real WeChat sees them): tell it every pool user wrote,
    // so the customer-service follow-ups of top-up wins go out instead of waiting and being retried on every message.
    for (let i = 0; i < USERS.length; i += 100) {
      await Promise.all(USERS.slice(i, i + 100).map((openid) => fetch(`${server.baseUrl}/sandbox/__sandbox/user-action`, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ openid, action: 'message' }),
      })));
    }
    const seedInfo = `seeded ${fmt(httpInitial)} + ${fmt(rawInitial)} codes (webhook + raw) and ${fmt(USERS.length * 2)} profile answers in ${((Date.now() - started) / 1000).toFixed(1)} s`;
    log(seedInfo);
    checkpoint();

    // Per-code bookkeeping of the webhook batch (grown on top-up).
    let status = new Uint8Array(http.keys.length);
    let users = new Int32Array(http.keys.length);
    const grow = () => {
      if (status.length >= http.keys.length) return;
      const s = new Uint8Array(http.keys.length);
      s.set(status);
      status = s;
      const u = new Int32Array(http.keys.length);
      u.set(users);
      users = u;
    };

    // ── first redemption: proves this process and the server agree on the code key
    const outcomes: Record<Outcome, number> = { won_points: 0, won_topup: 0, won_other: 0, lost: 0, out_of_stock: 0 };
    const first = await firstRedemption(server, factory, http, opts.mode, crypt, creds);
    status[first.req.codeIndex] = REPLIED_OK;
    users[first.req.codeIndex] = first.req.user;
    outcomes[classifyReply(first.content)!]++;
    log(`first redemption OK: "${first.content.split('\n')[0]}"`);
    checkpoint();

    const runs: RunResult[] = [];
    const badSamples: string[] = [];
    const webActivity = new ActivitySampler(db, server.database, false);
    const rawActivity = new ActivitySampler(db, server.database, true);
    const best = { webhook: 0, raw: 0 };
    let rawUpdated = 0;

    const quiet = async (what: string) => {
      if (opts.waitQuietS <= 0) return;
      const t0 = Date.now();
      const other = await waitQuiet(server.pid, server.database, opts.waitQuietS);
      if (Date.now() - t0 > 3_000 || other >= 15) log(`${what}: waited ${((Date.now() - t0) / 1000).toFixed(0)} s for other processes (now ${other} % of a core)`);
    };
    const measureWebhook = async (round: number) => {
      const durationS = round === 0 ? opts.warmupS : opts.durationS;
      const rate = Math.max(best.webhook, opts.rateGuess);
      await http.ensure(codesNeeded(durationS, rate, opts.connections), shouldStop);
      grow();
      checkpoint();
      await quiet('webhook');
      const t0 = Date.now();
      const pool = await factory.generate(http, codesNeeded(durationS, rate, 0), shouldStop);
      for (const r of pool) users[r.codeIndex] = r.user;
      checkpoint();
      const genMs = Date.now() - t0;
      const ctx: WebhookRunContext = { server, opts, set: http, status, users, factory, crypt, creds, outcomes, badSamples };
      const run = await runWebhook(ctx, round, durationS, pool, round > 0 ? webActivity : undefined);
      checkpoint();
      runs.push(run);
      best.webhook = Math.max(best.webhook, run.perSec);
      log(
        `${round === 0 ? 'warm-up' : `round ${round}`} webhook: ${fmt(run.perSec)} redemptions/s, p50 ${run.p50Ms} ms, p99 ${run.p99Ms} ms, max ${run.maxMs} ms` +
          ` | failures ${run.failures}${run.flagged ? ' ⚠ FLAGGED' : ''} | cut off ${run.cutOff}` +
          ` | cpu server ${run.cpu.serverPct}% pg ${run.cpu.postgresPct}% loadgen ${run.cpu.loadgenPct}% other ${run.cpu.otherPct}% machine ${run.cpu.machineBusyPct}%` +
          ` | pool ${fmt(pool.length)} in ${genMs} ms${run.notes.length ? ` | ${run.notes.join('; ')}` : ''}`,
      );
    };
    const measureRaw = async (round: number) => {
      const durationS = round === 0 ? opts.warmupS : opts.durationS;
      await raw.ensure(codesNeeded(durationS, Math.max(best.raw, opts.rawRateGuess), RAW_IN_FLIGHT), shouldStop);
      checkpoint();
      await quiet('raw loop');
      checkpoint();
      const run = await runRaw(rawPool, raw, server, round, durationS, round > 0 ? rawActivity : undefined);
      checkpoint();
      runs.push(run);
      rawUpdated += run.ok;
      best.raw = Math.max(best.raw, run.perSec);
      log(
        `${round === 0 ? 'warm-up' : `round ${round}`} raw loop: ${fmt(run.perSec)} statements/s, p50 ${run.p50Ms} ms, p99 ${run.p99Ms} ms, max ${run.maxMs} ms` +
          ` | failures ${run.failures}${run.flagged ? ' ⚠ FLAGGED' : ''}` +
          ` | cpu pg ${run.cpu.postgresPct}% loadgen ${run.cpu.loadgenPct}% server ${run.cpu.serverPct}% other ${run.cpu.otherPct}% machine ${run.cpu.machineBusyPct}%` +
          `${run.notes.length ? ` | ${run.notes.join('; ')}` : ''}`,
      );
    };

    if (opts.warmupS > 0) {
      await measureWebhook(0);
      await measureRaw(0);
    }
    for (let round = 1; round <= opts.rounds; round++) {
      // Alternate who goes first, so drift over time (table growth, autovacuum) is spread over both.
      if (round % 2 === 1) {
        await measureWebhook(round);
        await measureRaw(round);
      } else {
        await measureRaw(round);
        await measureWebhook(round);
      }
    }

    log('checking the database…');
    const { checks, facts } = await checkInvariants(db, seeded, http, raw, status, users, rawUpdated);
    checkpoint();
    const web = summarize(runs, 'webhook');
    const rawSummary = summarize(runs, 'raw');
    const verdictList = verdicts(web, rawSummary, checks);
    const codeAtEnd = sourceFingerprint();
    const codeChanged = codeAtEnd.sha256 !== code.sha256;
    const activity = { webhook: webActivity.summary(), raw: rawActivity.summary() };
    console.log(renderReport({ machine, opts, code, codeChanged, web, raw: rawSummary, runs, outcomes, checks, verdictList, logs: server.logs, badSamples, seedInfo, activity }));

    writeResults(opts.resultsFile, { machine, code, codeChanged }, {
      options: { ...opts, pgAdminUrl: undefined, resultsFile: undefined, rawInFlight: RAW_IN_FLIGHT, openidPool: USERS.length },
      targets: TARGETS,
      results: { webhook: web, raw: rawSummary, webhookVsRaw: rawSummary.perSec > 0 ? round2(web.perSec / rawSummary.perSec) : null },
      verdicts: verdictList,
      outcomesInReplies: outcomes,
      invariants: checks,
      database: facts,
      postgresActivity: activity,
      serverLog: { warnOrWorse: server.logs.warnOrWorse, errorOrWorse: server.logs.errorOrWorse, byMessage: Object.fromEntries(server.logs.byMessage) },
      runs,
    });
    if (!verdictList.every((v) => v.pass)) process.exitCode = 2;
  });
}

runMain(main);
