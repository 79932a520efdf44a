/**
 * Anti-fraud: signals updated inside the request that causes them, a score and a decision at two stages (before a
 * code is looked up, and before a prize is issued), held prizes with a review queue, the blacklist and the
 * versioned model. Design and numbers: docs/FRAUD.md.
 *
 * The honest hot path (a valid code from a user with no stored signals) costs no database round trip here: the
 * model, the blacklist (keyed hashes) and the set of flagged users are in-process caches refreshed every
 * `cacheTtlMs` (ahead of expiry, and at once after writes in this process); the user's recent redemption rate and
 * typos are kept in memory, the day's count comes back from the redemption statement. Only a flagged user's row is read, and only
 * suspicious events write (wrong code, golden answers, phone binding, redemptions above half the allowance).
 */
import { createHmac } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import type { Database, Tx } from '../db/client.ts';
import { rowsOf } from '../db/retry.ts';
import { sql } from 'drizzle-orm';
import type { Clock } from '../platform/clock.ts';
import { createRefreshing } from '../platform/refreshing.ts';
import { AppError } from '../platform/errors.ts';
import type { Actor, AuditEntry } from '../ops/service.ts';
import { createRedeemRepo, type DrawInput } from '../campaigns/redeem-repo.ts';
import { createFulfilmentRepo } from '../fulfilment/repo.ts';
import { createLedger } from '../members/ledger.ts';
import { normalisePhone, phoneHash } from '../members/phones.ts';
import { createFraudRepo, type ReviewRow, type StateRow } from './repo.ts';
import { cooldownFor, decide, DEFAULT_MODEL, nameAnswersExplaining, score, SHARED_NAME_MIN, SHARED_NAME_SCALES, validateModel, validateModelPatch, type Decision, type Features, type FraudModel, type Score } from './scoring.ts';
import { countedName, NAME_QUESTION_KEY } from './names.ts';

export const FRAUD_TEXTS = {
  cooldown: '您输入错误兑奖码的次数较多，为保障账户安全，请于 {time} 后再试。',
  blocked: '为保障活动公平，您的账号暂时无法参与兑奖。如有疑问，请联系客服。',
  held: '您的奖品正在审核中，审核通过后将自动发放，请耐心等待。',
  lookBack: '您近期获得的奖品正在审核中，审核通过后将自动发放，请耐心等待。如有疑问，请联系客服。',
  lookBackPoints: '您近期获得的 {points} 积分奖励正在审核中，审核期间暂不可用，审核通过后将自动返还到您的账户。',
  heldPoints: '本次的 {points} 积分正在审核中，审核通过后将自动存入您的账户。',
  tooFast: '您的操作过于频繁，请稍后再试。',
} as const;

export type BlacklistKind = 'openid' | 'unionid' | 'phone' | 'ip' | 'device';
export const BLACKLIST_KINDS: BlacklistKind[] = ['openid', 'unionid', 'phone', 'ip', 'device'];

export interface Verdict extends Score {
  decision: Decision;
  features: Features;
}

/** What the redemption service needs to know before it looks a code up. */
export interface CodeGate {
  /** Refuse the attempt with this text, without looking at the code. */
  refuse?: string;
  /** Do not draw inside the redemption statement: decide at the draw, when the prize is known. */
  noFuse: boolean;
}

export interface HeldDrawInput {
  openid: string;
  campaignId: number;
  input: DrawInput;
  /** The prize has limited stock and the campaign draws dynamically: take one unit from a shard here. */
  limited: boolean;
  shard: number;
  day: string;
  lossPoints: number;
  verdict: Verdict;
}

export interface FraudDeps {
  database: Database;
  clock: Clock;
  log: FastifyBaseLogger;
  piiKey: Buffer;
  cacheTtlMs: number;
  /** Version 1 of the model when the database has none. */
  defaults?: FraudModel;
  audit: (actor: Actor, entry: AuditEntry, ctx: { requestId?: string; ip?: string }, tx: Tx) => Promise<void>;
  /** The fulfilment worker's kick (after an approval). */
  onFulfilmentQueued?: () => void;
  /** A customer-service text to a user (look-back holds tell the user their earlier prize waits for review). */
  notify?: (openid: string, content: string, key: string) => Promise<unknown>;
}

/** In-memory, per instance: cheap signals of the hot path. */
interface Mem {
  /** Redemptions per hour, decayed (τ = 1 h), at `redeemAt`. */
  redeemRate: number;
  redeemAt: number;
  /**
   * The part of `redeemRate` from redemptions not yet added to the shared velocity row (decayed alike, at
   * `redeemAt`): each instance adds only what it counted since its last write, so the row is the sum over instances.
   */
  unsent: number;
  day: string;
  dayCount: number;
  /** Redemptions in the campaign of the last one (the per-campaign counter). */
  campaignId: number;
  total: number;
  /** Typos per hour, decayed (τ = 1 h). */
  typoRate: number;
  typoAt: number;
  lastBlockRecorded: number;
  /** The user's last redeemed codes: batch, print position, time (scatteredCodes). */
  codes: Array<{ batch: number; seq: number; at: number }>;
  /** Accounts new on this user's device within a day when it was first linked here, and when (newOnDevice). */
  newOnDevice: number;
  newOnDeviceAt: number;
}

const HOUR = 3_600_000;
/** Rolls back a hold at phone binding whose draw was reviewed already. */
const ALREADY_REVIEWED = new Error('fraud: draw already reviewed');
/** Rolls back a look-back hold that lost a race (the job started, another look-back held the draw first). */
const NOT_HELD = new Error('fraud: look-back hold not taken');
const MEM_MAX = 200_000;
const FULL_RELOAD_MS = 5 * 60_000;
const localHour = (d: Date) => (d.getUTCHours() + 8) % 24;
const localDay = (d: Date) => new Date(d.getTime() + 8 * HOUR).toISOString().slice(0, 10);
const ms = (d: Date | string | null | undefined) => (d ? new Date(d).getTime() : null);
const blockedUntilMs = (st: { blocked_until: Date | string | null }) => ms(st.blocked_until);
const decay = (rate: number, at: number, now: number, tau: number) => (rate > 0 ? rate * Math.exp(-Math.max(now - at, 0) / tau) : 0);

/** Asia/Shanghai minute of `d`, rounded up: "请于 13:06 后再试" for a cool-down ending 13:05:40, never before its end. */
function formatLocal(d: Date): string {
  return new Date(Math.ceil(d.getTime() / 60_000) * 60_000 + 8 * HOUR).toISOString().slice(0, 16).replace('T', ' ');
}

function hint(kind: BlacklistKind, value: string): string {
  if (kind === 'phone') return value.length === 11 ? `${value.slice(0, 3)}****${value.slice(7)}` : '****';
  if (value.length <= 6) return `${value.slice(0, 1)}***`;
  return `${value.slice(0, 3)}***${value.slice(-3)}`;
}

export function createFraudService(deps: FraudDeps) {
  const { database, clock, log } = deps;
  const { db } = database;
  const repo = createFraudRepo(db);
  const draws = createRedeemRepo(database);
  const jobs = createFulfilmentRepo(db);
  const ledger = createLedger({ db, clock });
  const defaults = deps.defaults ?? DEFAULT_MODEL;

  /* ---- keyed hashes: the blacklist never holds an identifier in the clear ---- */
  function hashOf(kind: BlacklistKind, value: string): string {
    // Phones use the members' own lookup hash, so a shared or blacklisted phone is found without decrypting.
    if (kind === 'phone') return phoneHash(value, deps.piiKey);
    return createHmac('sha256', deps.piiKey).update(`fraud:${kind}:${value}`).digest('hex').slice(0, 40);
  }
  function normalise(kind: BlacklistKind, value: string): string | null {
    const v = value.trim();
    if (kind === 'phone') return normalisePhone(v);
    if (kind === 'ip') return /^[0-9a-fA-F:.]{3,45}$/.test(v) ? v.toLowerCase() : null;
    return v.length >= 1 && v.length <= 128 && !/\s/.test(v) ? v : null;
  }

  /* ---- caches ---- */
  let model: FraudModel = defaults;
  let blacklist = new Set<string>();
  let blacklistStamp = '';
  const flagged = new Set<string>();
  let flaggedSince: Date | null = null;
  let fullLoadedAt = -Infinity;
  let fullReloading: Promise<void> | undefined;
  const openidHashes = new Map<string, string>();
  /** (account, identifier) pairs this instance already linked: the mini program sends them on every request. */
  const seenIds = new Set<string>();

  async function load() {
    let latest = await repo.latestModel();
    if (!latest) {
      await repo.seedModel({ ...defaults, version: 1 }, clock.now());
      latest = await repo.latestModel();
    }
    // A version saved before a feature existed lacks its weight and allowance: the defaults fill them in.
    if (latest) {
      model = {
        ...defaults, ...latest.model, version: latest.version,
        weights: { ...defaults.weights, ...latest.model.weights }, allowances: { ...defaults.allowances, ...latest.model.allowances },
      };
    }
    // The whole list only when it changed (imports bring thousands of entries; this runs every FRAUD_CACHE_TTL_MS).
    const stamp = await repo.blacklistStamp();
    if (stamp !== blacklistStamp) {
      const keys = await repo.blacklistKeys();
      blacklist = new Set(keys.map((k) => `${k.kind}:${k.value_hash}`));
      blacklistStamp = stamp;
    }
    // Flagged users: all of them once, then only rows changed since the last load (minus a margin for clock skew
    // between instances and transactions that committed late). On the service's clock: rows carry its time.
    const since = flaggedSince;
    const startedAt = clock.now();
    for (const r of await repo.flaggedSince(since)) flagged.add(r.openid);
    flaggedSince = new Date(startedAt.getTime() - 5_000);
    if (since === null) fullLoadedAt = clock.now().getTime();
  }
  /**
   * Every FULL_RELOAD_MS, all flagged users again, in the background (no request waits for it): a flag whose row
   * committed later than the incremental load's margin (a slow transaction, clocks apart) is not missed for good.
   */
  function fullReloadIfDue() {
    if (fullReloading || clock.now().getTime() - fullLoadedAt < FULL_RELOAD_MS) return;
    fullLoadedAt = clock.now().getTime();
    fullReloading = repo.flaggedSince(null)
      .then((rows) => { for (const r of rows) flagged.add(r.openid); })
      .catch((err: unknown) => log.warn({ err }, 'fraud: full reload of flagged users failed'))
      .finally(() => (fullReloading = undefined));
  }
  // Refreshed ahead of expiry (platform/refreshing.ts): no request waits for a reload under steady traffic. Loads run
  // one after another (a forced one waits for the one in flight): the latest model and blacklist always win, and
  // `flaggedSince` only moves forward.
  let loadChain: Promise<unknown> = Promise.resolve();
  const serialLoad = () => {
    const p = loadChain.then(load);
    loadChain = p.catch(() => undefined);
    return p;
  };
  const cache = createRefreshing(serialLoad, {
    ttlMs: deps.cacheTtlMs,
    // On the service's clock, like every time this service keeps (a simulated day reloads as a real one would).
    now: () => clock.now().getTime(),
    onBackgroundError: (err) => log.warn({ err }, 'fraud: reloading the model and lists failed'),
  });
  async function refresh(force = false) {
    await cache.get({ fresh: force });
    fullReloadIfDue();
  }
  function invalidate() {
    cache.invalidate();
  }

  function openidHash(openid: string): string {
    let h = openidHashes.get(openid);
    if (h === undefined) {
      h = hashOf('openid', openid);
      if (openidHashes.size >= MEM_MAX) openidHashes.delete(openidHashes.keys().next().value!);
      openidHashes.set(openid, h);
    }
    return h;
  }
  /**
   * A stored hit (phone bound, identifier seen) counts while its entry is on the blacklist: removing the entry
   * unblocks the user. Hits stored before they carried the entry's key (the kind alone) cannot be checked and stand.
   */
  const stillBlacklisted = (hit: string | null | undefined) => !!hit && (!hit.includes(':') || blacklist.has(hit));
  const isBlacklisted = (openid: string) => blacklist.size > 0 && blacklist.has(`openid:${openidHash(openid)}`);

  const mems = new Map<string, Mem>();
  /** Velocity writes in flight, per user (chained so one user's writes land in order). */
  const velocityWrites = new Map<string, Promise<void>>();
  function mem(openid: string): Mem {
    let m = mems.get(openid);
    if (!m) {
      if (mems.size >= MEM_MAX) mems.delete(mems.keys().next().value!);
      m = { redeemRate: 0, redeemAt: 0, unsent: 0, day: '', dayCount: 0, campaignId: 0, total: 0, typoRate: 0, typoAt: 0, lastBlockRecorded: 0, codes: [], newOnDevice: 0, newOnDeviceAt: 0 };
      mems.set(openid, m);
    }
    return m;
  }

  /* ---- campaign-wide burst: short (τ = 1 min) against long (τ = 1 h) redemption rate, per minute ---- */
  const bursts = new Map<number, { short: number; long: number; at: number }>();
  function campaignBurst(campaignId: number | undefined, now: number): number {
    if (campaignId === undefined) return 1;
    const b = bursts.get(campaignId);
    if (!b) return 1;
    const short = decay(b.short, b.at, now, 60_000);
    const long = decay(b.long, b.at, now, HOUR) / 60;
    return short / Math.max(long, 5);
  }

  /** Print neighbourhoods among the codes of the last hour (codes within `printSpan` positions of one batch: one). */
  function neighbourhoods(m: Mem | undefined, t: number): number {
    if (!m || m.codes.length === 0) return 0;
    const recent = m.codes.filter((c) => t - c.at < HOUR).sort((a, b) => a.batch - b.batch || a.seq - b.seq);
    const span = model.allowances.printSpan ?? 50;
    let n = 0;
    for (let i = 0; i < recent.length; i++) {
      const c = recent[i]!;
      const p = recent[i - 1];
      if (!p || p.batch !== c.batch || c.seq - p.seq > span) n++;
    }
    return n;
  }

  /* ---- features ---- */
  function featuresOf(openid: string, now: Date, st: StateRow | undefined, campaignId?: number, counting = true): Features {
    const t = now.getTime();
    const m = mems.get(openid);
    const windowMs = model.cooldown.windowH * HOUR;
    const ws = ms(st?.window_start);
    const memRate = m ? decay(m.redeemRate, m.redeemAt, t, HOUR) : 0;
    const lr = ms(st?.last_redeem_at);
    const dbRate = st && lr !== null ? decay(st.redeem_rate, lr, t, HOUR) : 0;
    const lw = ms(st?.last_wrong_at);
    const sub = ms(st?.subscribed_at) ?? ms(st?.first_seen_at);
    const day = localDay(now);
    return {
      blacklisted: isBlacklisted(openid) || stillBlacklisted(st?.blacklist_hit) ? 1 : 0,
      unknownCodes: st && ws !== null && t - ws < windowMs ? st.unknown_codes : 0,
      typos: m ? decay(m.typoRate, m.typoAt, t, HOUR) : 0,
      wrongRate: st && lw !== null ? decay(st.wrong_rate, lw, t, 60_000) : 0,
      // The shared row has every instance's redemptions up to its last write; this instance's since then are added.
      redeemHour: Math.max(memRate, dbRate + (m ? decay(m.unsent, m.redeemAt, t, HOUR) : 0)) + (counting ? 1 : 0),
      redeemDay: (m && m.day === day ? m.dayCount : 0) + (counting ? 1 : 0),
      // Per campaign: the stored count only for its own campaign (before the lookup, the one this instance last saw
      // the user redeem in) — a loyal customer's total of last campaign does not count in the next one.
      redeemTotal: Math.max(m && (campaignId === undefined || m.campaignId === campaignId) ? m.total : 0,
        st && st.redeem_campaign_id !== null && st.redeem_campaign_id === (campaignId ?? m?.campaignId) ? st.redeem_total : 0) + (counting ? 1 : 0),
      accountAgeMin: sub !== null ? (t - sub) / 60_000 : null,
      sharedPhone: st?.shared_phone ?? 0,
      sharedDevice: st?.shared_device ?? 0,
      sharedIp: st?.shared_ip ?? 0,
      answerPrint: st?.print_accounts ?? 0,
      fastAnswers: st?.fast_answers ?? 0,
      hour: localHour(now),
      campaignBurst: campaignBurst(campaignId, t),
      cashOnly: 0,
      // Before the lookup the code's print position is unknown: counted as a pack of its own (the worst case), so that
      // a score this could lift above a hold threshold turns the fused draw off and the draw decides with the truth.
      scatteredCodes: neighbourhoods(m, t) + (counting ? 1 : 0),
      newOnDevice: m && t - m.newOnDeviceAt < 24 * HOUR ? m.newOnDevice : 0,
      sharedName: st?.shared_name ?? 0,
      nameAnswers: st?.shared_name_answers ?? 0,
      // Blocked by score, the block still in force or ended within the last week (a blacklist block never ends this way).
      recentBlock: st && blockedUntilMs(st) !== null && t - blockedUntilMs(st)! < 7 * 24 * HOUR ? 1 : 0,
    };
  }

  function verdictOf(f: Features, prizeKind?: string | null): Verdict {
    const s = score(f, model);
    return { ...s, decision: f.blacklisted ? 'block' : decide(s, model, prizeKind), features: f };
  }

  /** A refused code attempt still counts towards the hourly rate (in memory). */
  function bumpAttempt(openid: string, now: Date) {
    const m = mem(openid);
    const t = now.getTime();
    m.redeemRate = decay(m.redeemRate, m.redeemAt, t, HOUR) + 1;
    m.redeemAt = t;
  }

  const lowestHold = () => Math.min(model.thresholds.hold, ...Object.values(model.thresholds.holdByKind).filter((v): v is number => typeof v === 'number'));

  /** Stored signals of a flagged user (one round trip), else none. */
  async function stateOf(openid: string): Promise<StateRow | undefined> {
    if (!flagged.has(openid)) return undefined;
    const st = await repo.state(openid);
    return st?.openid ? st : st ? { ...st, openid } : undefined;
  }

  /** A block suspends code attempts for `cooldown.blockS` (a user blocked by score stays blocked for a while). */
  async function suspend(openid: string, now: Date) {
    const s = model.cooldown.blockS ?? 0;
    if (s > 0) await repo.block(openid, new Date(now.getTime() + s * 1000), now);
    flagged.add(openid);
  }

  /**
   * A block at the code stage, recorded, and the user's earlier prizes looked back at — at most once per user per
   * minute: a script hammering while blocked (a blacklisted one is refused here at every attempt) must not turn into
   * a row and two reads per attempt.
   */
  async function recordBlock(openid: string, v: Verdict, now: Date, campaignId?: number) {
    const m = mem(openid);
    if (now.getTime() - m.lastBlockRecorded < 60_000) return;
    m.lastBlockRecorded = now.getTime();
    await repo.recordDecision({ openid, stage: 'code', decision: 'block', score: v.score, reasons: v.reasons, features: v.features, modelVersion: v.modelVersion, campaignId: campaignId ?? null, at: now });
    await lookBack([openid], now);
  }

  /** A fulfilment job created `held` (waiting for a review), with its first event; null when its source key is taken. */
  async function insertHeldJob(tx: Tx, j: {
    sourceKey: string; outNo: string; drawId: string | number; campaignId: number; openid: string; prizeId: number | null;
    kind: string; amount: number; detail: Record<string, unknown>; note: string; at: Date;
  }): Promise<string | number | null> {
    const at = j.at.toISOString();
    const [job] = rowsOf<{ id: string | number }>(await tx.execute(sql`
      INSERT INTO fulfilments (source_key, draw_id, campaign_id, openid, prize_id, kind, amount, state, next_attempt_at, out_no, detail, created_at, updated_at)
      VALUES (${j.sourceKey}, ${j.drawId}, ${j.campaignId}, ${j.openid}, ${j.prizeId}, ${j.kind}, ${j.amount}, 'held', ${at}, ${j.outNo}, ${JSON.stringify(j.detail)}::jsonb, ${at}, ${at})
      ON CONFLICT DO NOTHING RETURNING id`));
    if (!job) return null;
    await tx.execute(sql`INSERT INTO fulfilment_events (fulfilment_id, from_state, to_state, note, at) VALUES (${job.id}, NULL, 'held', ${j.note}, ${at})`);
    return job.id;
  }

  /* ---- held draw: the draw happens, the prize is kept, its fulfilment waits for review ---- */
  async function heldDraw(a: HeldDrawInput): Promise<{ drawId: string; outcome: 'won' | 'lost' | 'out_of_stock'; heldPoints: number; reviewId: number | null } | null> {
    const now = a.input.at;
    const held = await db.transaction(async (tx) => {
      const locked = rowsOf<{ id: string }>(await tx.execute(sql`SELECT id FROM redemptions WHERE id = ${a.input.redemptionId} AND status = 'redeemed' FOR UPDATE`));
      if (locked.length === 0) return null;
      let outcome = a.input.outcome;
      let prizeId = a.input.prizeId;
      let shard: number | null = null;
      if (outcome === 'won' && a.limited && prizeId !== null) {
        // Same rule as the draw's own stock step: one shard row at a time, the preferred shard first.
        const candidates = rowsOf<{ shard: number }>(await tx.execute(sql`
          SELECT shard FROM prize_stock_shards WHERE prize_id = ${prizeId} AND remaining > 0
            AND (daily_share IS NULL OR (CASE WHEN day >= ${a.day}::date THEN issued_today ELSE 0 END) < daily_share)
          ORDER BY shard = ${a.shard} DESC, shard`));
        for (const c of candidates) {
          const r = rowsOf(await tx.execute(sql`
            UPDATE prize_stock_shards SET remaining = remaining - 1,
              -- A shard's day never moves backwards (migration 0005): a late draw of an earlier day counts into it.
              issued_today = CASE WHEN day >= ${a.day}::date THEN issued_today + 1 ELSE 1 END, day = greatest(day, ${a.day}::date)
            WHERE prize_id = ${prizeId} AND shard = ${c.shard} AND remaining > 0
              AND (daily_share IS NULL OR (CASE WHEN day >= ${a.day}::date THEN issued_today ELSE 0 END) < daily_share)
            RETURNING prize_id`));
          if (r.length > 0) {
            shard = c.shard;
            break;
          }
        }
        if (shard === null) {
          outcome = 'out_of_stock';
          prizeId = null;
        }
      }
      // The draw itself without its payouts: no points credited and no job queued by the draw statement.
      const [row] = await draws.drawMany([{ ...a.input, prizeId, outcome, fulfilKind: null, fulfilAmount: 0, points: 0 }], tx);
      const drawId = row?.draw_id;
      if (!drawId) return null;
      const won = outcome === 'won';
      const kind = won ? a.input.fulfilKind : a.lossPoints > 0 ? 'points' : null;
      const amount = won ? (kind === 'points' ? a.input.points : a.input.fulfilAmount) : a.lossPoints;
      const decisionId = await repo.recordDecision({
        openid: a.openid, stage: 'draw', decision: 'hold', score: a.verdict.score, reasons: a.verdict.reasons, features: a.verdict.features,
        modelVersion: a.verdict.modelVersion, campaignId: a.campaignId, redemptionId: a.input.redemptionId, drawId, at: now,
      }, tx);
      await repo.markRedemption(a.input.redemptionId, 'hold', a.verdict, tx);
      let reviewId: number | null = null;
      if (kind && (kind !== 'points' || amount > 0)) {
        const jobId = await insertHeldJob(tx, {
          sourceKey: won ? `draw:${drawId}` : `consolation:${drawId}`, outNo: (won ? 'D' : 'C') + drawId, drawId, campaignId: a.campaignId, openid: a.openid,
          prizeId: won ? prizeId : null, kind, amount, detail: { fraudHold: true, decisionId },
          note: `fraud: held for review (score ${a.verdict.score.toFixed(3)}, model v${a.verdict.modelVersion})`, at: now,
        });
        if (jobId === null) throw new Error(`fraud: a job for draw ${drawId} exists already`);
        reviewId = await repo.insertReview({ decisionId, openid: a.openid, campaignId: a.campaignId, drawId, fulfilmentId: jobId, prizeId: won ? prizeId : null, shard, day: shard !== null ? a.day : null, at: now }, tx);
      }
      return { drawId, outcome, heldPoints: kind === 'points' ? amount : 0, reviewId };
    });
    // The evidence that holds this prize also reaches the user's earlier ones.
    if (held) await lookBack([a.openid], now);
    return held;
  }

  /* ---- look-back: evidence that arrives after a prize was issued holds the prizes still within reach ---- */
  const notifying = new Set<Promise<unknown>>();

  /**
   * The signals that make a user's next prize wait for review often arrive after the user's first prizes were issued:
   * a farm's name cluster counts from its third account, a phone or device is over its allowance from the third
   * account on it, a reseller's velocity from the fourth code. When a user's score now reaches `thresholds.lookback`
   * (default 0.6: above the plain hold, since this takes back what was given; a blacklisted or suspended user always),
   * their prizes of the last `thresholds.lookbackH` hours (default 72) that no reviewer has seen and that are still
   * within reach are held for review, each exactly once (the review's unique draw): points are taken back from the account
   * (ledger key `hold:draw:<id>`) into a held job that credits them again on approval (`release:draw:<id>`); a job
   * not started yet (pending, waiting for a phone) moves to held. A job already running or paid, a cash bill waiting
   * for the user's confirmation and points already spent are out of reach and left as they are. Each user so held is
   * told once, by a customer-service message. Returns the number of prizes held. Errors are logged, never thrown:
   * the request that brought the evidence goes on.
   */
  async function lookBack(openids: Iterable<string>, now: Date): Promise<number> {
    const hours = model.thresholds.lookbackH ?? defaults.thresholds.lookbackH ?? 72;
    const users = [...new Set(openids)];
    if (hours <= 0 || users.length === 0) return 0;
    try {
      // Users whose score now reaches a hold; a blacklisted or suspended user's every prize waits for review.
      const verdicts = new Map<string, Verdict>();
      const bar = model.thresholds.lookback ?? defaults.thresholds.lookback ?? 0.6;
      for (const st of await repo.states(users.slice(0, 200))) {
        const v = verdictOf(featuresOf(st.openid, now, st, undefined, false));
        const blocked = blockedUntilMs(st);
        const forced = v.features.blacklisted === 1 || (blocked !== null && blocked > now.getTime());
        if (forced || v.score >= bar) verdicts.set(st.openid, v);
      }
      if (verdicts.size === 0) return 0;
      const wins = await repo.unreviewedWins([...verdicts.keys()], new Date(now.getTime() - hours * HOUR));
      const heldBy = new Map<string, { first: string; points: number; prizes: number }>();
      let n = 0;
      for (const w of wins) {
        const held = await holdIssued(w, verdicts.get(w.openid)!, now).catch((err: unknown) => {
          if (err !== NOT_HELD) log.warn({ err, drawId: w.draw_id }, 'fraud: look-back hold failed');
          return null;
        });
        if (held === null) continue;
        n++;
        const h = heldBy.get(w.openid) ?? { first: w.draw_id, points: 0, prizes: 0 };
        if (held === 'points') h.points += w.points ?? 0;
        else h.prizes++;
        heldBy.set(w.openid, h);
      }
      for (const [openid, h] of heldBy) {
        flagged.add(openid);
        if (!deps.notify) continue;
        const content = h.prizes === 0 ? FRAUD_TEXTS.lookBackPoints.replace('{points}', String(h.points)) : FRAUD_TEXTS.lookBack;
        const p = deps.notify(openid, content, `fraud-lookback:${openid}:${h.first}`)
          .catch((err: unknown) => log.warn({ err, openid }, 'fraud: look-back notice failed'))
          .finally(() => notifying.delete(p));
        notifying.add(p);
      }
      if (n > 0) log.info({ users: heldBy.size, prizes: n }, 'fraud: look-back held earlier prizes');
      return n;
    } catch (err) {
      log.warn({ err }, 'fraud: look-back failed');
      return 0;
    }
  }

  /** One issued prize to review, in one transaction: 'points' or 'job' when held, NOT_HELD thrown when out of reach. */
  async function holdIssued(w: Awaited<ReturnType<typeof repo.unreviewedWins>>[number], v: Verdict, now: Date): Promise<'points' | 'job' | null> {
    const isPoints = w.job_id === null && w.points !== null && w.points > 0;
    if (!isPoints && (w.job_id === null || (w.job_state !== 'pending' && w.job_state !== 'waiting_phone'))) return null;
    return db.transaction(async (tx) => {
      const decisionId = await repo.recordDecision({
        openid: w.openid, stage: 'lookback', decision: 'hold', score: v.score, reasons: v.reasons, features: v.features,
        modelVersion: v.modelVersion, campaignId: w.campaign_id, redemptionId: w.redemption_id, drawId: w.draw_id, at: now,
      }, tx);
      let jobId: string | number;
      if (isPoints) {
        // Taken back now, credited again by the held job on approval; already spent → out of reach (rolled back).
        try {
          await ledger.debit(w.openid, w.points!, `hold:draw:${w.draw_id}`, 'fraud_hold', { drawId: w.draw_id, decisionId }, tx);
        } catch (err) {
          if (err instanceof AppError && err.code === 'VALIDATION') throw NOT_HELD;
          throw err;
        }
        const job = await insertHeldJob(tx, {
          sourceKey: `release:draw:${w.draw_id}`, outNo: `R${w.draw_id}`, drawId: w.draw_id, campaignId: w.campaign_id, openid: w.openid,
          prizeId: w.prize_id, kind: 'points', amount: w.points!, detail: { fraudHold: true, lookBack: true, decisionId },
          note: `fraud: ${w.points} points taken back for review (look-back, score ${v.score.toFixed(3)}, model v${v.modelVersion})`, at: now,
        });
        if (job === null) throw NOT_HELD;
        jobId = job;
      } else {
        const row = await jobs.transition(Number(w.job_id), { from: w.job_state as 'pending' | 'waiting_phone' }, 'held',
          { detail: { ...((w.job_detail as object | null) ?? {}), fraudHold: true, lookBack: true, decisionId } },
          `fraud: held for review (look-back, score ${v.score.toFixed(3)}, model v${v.modelVersion})`, now, tx);
        if (!row) throw NOT_HELD;
        jobId = row.id;
      }
      const review = await repo.insertReview({ decisionId, openid: w.openid, campaignId: w.campaign_id, drawId: w.draw_id, fulfilmentId: jobId, prizeId: w.prize_id, shard: null, day: null, at: now }, tx);
      if (review === null) throw NOT_HELD;
      await repo.markRedemption(w.redemption_id, 'hold', v, tx);
      return isPoints ? 'points' : 'job';
    });
  }

  /**
   * A name typed by this account and, in each scanned window (shortest first), by `others` accounts not yet flagged
   * for a shared name (`flaggedRecently`: accounts flagged for it that typed it within the shortest window).
   *
   * Each account is flagged for a name once, and a later namesake is judged with the accounts not flagged yet: alone,
   * matching a known cluster's name is no evidence (its chance is λ, not α), and an honest person typing a farm's name
   * after the farm was caught is not swept into it — except within the shortest window of the cluster's latest
   * accounts, where a namesake is the burst going on (the farm's next account, a minute later) far more often than
   * chance (expected honest namesakes there per cluster: that window's names × the name's share; docs/FRAUD.md).
   *
   * Otherwise a window's cluster (this one included) counts when it is more than chance explains with that window's
   * name answers (scoring.ts sharedNameAllowance); those are counted only up to the volume at which chance would
   * explain it (bounded index ranges, one statement). The shortest window that counts is flagged: its accounts, up to
   * 50 (past that only this one).
   */
  async function sharedName(openid: string, hash: string, others: number[], flaggedRecently: number, since: Date[], now: Date) {
    let written: string[] = [];
    if (flaggedRecently > 0) written = await repo.joinSharedName(hash, since[0]!, openid, now);
    else {
      const share = model.allowances.sharedNameShare ?? defaults.allowances.sharedNameShare;
      const windows = others.map((n, i) => ({ accounts: n + 1, since: since[i]!, limit: nameAnswersExplaining(n + 1, share) })).filter((w) => w.accounts > SHARED_NAME_MIN);
      if (windows.length === 0) return;
      const answers = await repo.nameAnswersSince(windows);
      const hit = windows.findIndex((w, i) => answers[i]! < w.limit);
      if (hit < 0) return;
      const w = windows[hit]!;
      written = await repo.flagSharedName(hash, w.since, w.accounts, answers[hit]!, openid, now, w.accounts > 50 ? openid : undefined);
    }
    if (written.length === 0) return;
    for (const o of written) flagged.add(o);
    invalidate(); // as after flagPrint: reload the flagged set (other instances learn the flags at their own reload)
    await lookBack(written, now);
  }

  function reviewView(r: ReviewRow) {
    return {
      id: Number(r.id), openid: r.openid, campaignId: r.campaign_id, drawId: String(r.draw_id), fulfilmentId: Number(r.fulfilment_id),
      prize: r.prize_id !== null ? { id: r.prize_id, name: r.prize_name ?? '', kind: r.prize_kind ?? '' } : null,
      amount: r.amount, fulfilmentState: r.fulfilment_state, status: r.status, score: Number(r.score), reasons: r.reasons as unknown[],
      features: r.features as Record<string, unknown>, modelVersion: r.model_version, reviewer: r.reviewer_name, note: r.note,
      blacklisted: r.blacklisted, createdAt: new Date(r.created_at).toISOString(), reviewedAt: r.reviewed_at ? new Date(r.reviewed_at).toISOString() : null,
    };
  }

  async function blacklistEntries(items: Array<{ kind: BlacklistKind; value: string; note?: string | undefined }>) {
    const out: Array<{ kind: string; hash: string; hint: string; note: string | null }> = [];
    const errors: Array<{ index: number; message: string }> = [];
    items.forEach((e, index) => {
      const v = BLACKLIST_KINDS.includes(e.kind) ? normalise(e.kind, e.value) : null;
      if (v === null) errors.push({ index, message: `invalid ${e.kind} value` });
      else out.push({ kind: e.kind, hash: hashOf(e.kind, v), hint: hint(e.kind, v), note: e.note ?? null });
    });
    return { out, errors };
  }

  const blView = (r: { id: number; kind: string; hint: string; note: string | null; created_by: string; created_at: Date | string }) => ({
    id: r.id, kind: r.kind, hint: r.hint, note: r.note, createdBy: r.created_by, createdAt: new Date(r.created_at).toISOString(),
  });

  return {
    /** For tests and the bench: the keyed hash of an identifier, and the model in force. */
    hashOf,
    model: () => model,
    refresh,
    invalidate,

    /* ================= hooks called by the redemption flow ================= */

    /** Before a code is looked up: cool-down and block refuse it (the code is neither looked up nor consumed). */
    async beforeCode(openid: string, now: Date): Promise<CodeGate> {
      await refresh();
      if (!flagged.has(openid) && !isBlacklisted(openid)) {
        // Hot path: nothing stored about this user; in-memory signals only.
        const v = verdictOf(featuresOf(openid, now, undefined));
        if (v.decision === 'block') {
          if (!v.features.blacklisted) await suspend(openid, now);
          await recordBlock(openid, v, now);
          return { refuse: FRAUD_TEXTS.blocked, noFuse: true };
        }
        return { noFuse: v.score >= lowestHold() };
      }
      const st = await stateOf(openid);
      const blockedUntil = ms(st?.blocked_until);
      if (blockedUntil !== null && blockedUntil > now.getTime()) {
        // Still counts as an attempt: hammering while blocked keeps the rate up.
        bumpAttempt(openid, now);
        return { refuse: FRAUD_TEXTS.blocked, noFuse: true };
      }
      const until = ms(st?.cooldown_until);
      if (until !== null && until > now.getTime()) return { refuse: FRAUD_TEXTS.cooldown.replace('{time}', formatLocal(new Date(until))), noFuse: true };
      const v = verdictOf(featuresOf(openid, now, st));
      if (v.decision === 'block') {
        bumpAttempt(openid, now);
        if (!v.features.blacklisted) await suspend(openid, now);
        await recordBlock(openid, v, now);
        return { refuse: FRAUD_TEXTS.blocked, noFuse: true };
      }
      return { noFuse: v.score >= lowestHold() };
    },

    /** A code failing its check character (a typo: no lookup happened). In memory only; a flood is throttled. */
    onTypo(openid: string, now: Date): string | undefined {
      const m = mem(openid);
      const t = now.getTime();
      m.typoRate = decay(m.typoRate, m.typoAt, t, HOUR) + 1;
      m.typoAt = t;
      return m.typoRate > model.allowances.typos * 4 ? FRAUD_TEXTS.tooFast : undefined;
    },

    /** A well-formed code that matched nothing, or belongs to someone else: counted; may start a cool-down. */
    async onWrongCode(openid: string, now: Date): Promise<string | undefined> {
      const r = await repo.wrongCode(openid, now, model.cooldown.windowH);
      flagged.add(openid);
      const seconds = cooldownFor(r.unknown_codes, r.cooldown_level, model);
      if (seconds <= 0) return undefined;
      const until = new Date(now.getTime() + seconds * 1000);
      await repo.startCooldown(openid, until, now);
      await lookBack([openid], now);
      return FRAUD_TEXTS.cooldown.replace('{time}', formatLocal(until));
    },

    /** After a redemption: velocity. Written to the database only close to an allowance. */
    async afterRedeem(openid: string, campaignId: number, dayCount: number | null, now: Date, total?: number | null, code?: { batchId: number | null; seq: number | null }): Promise<void> {
      const t = now.getTime();
      const m = mem(openid);
      if (code && code.batchId !== null && code.seq !== null) {
        m.codes.push({ batch: code.batchId, seq: code.seq, at: t });
        if (m.codes.length > 16) m.codes.shift();
      }
      m.redeemRate = decay(m.redeemRate, m.redeemAt, t, HOUR) + 1;
      m.unsent = decay(m.unsent, m.redeemAt, t, HOUR) + 1;
      m.redeemAt = t;
      // A late request of an earlier day does not move the day back (its count went into the newer day).
      const d = localDay(now);
      if (d > m.day) {
        m.day = d;
        m.dayCount = 0;
      }
      m.dayCount = dayCount ?? m.dayCount + 1;
      m.total = total ?? (m.campaignId === campaignId ? m.total + 1 : 1);
      m.campaignId = campaignId;
      const b = bursts.get(campaignId) ?? { short: 0, long: 0, at: t };
      b.short = decay(b.short, b.at, t, 60_000) + 1;
      b.long = decay(b.long, b.at, t, HOUR) + 1;
      b.at = t;
      bursts.set(campaignId, b);
      // Shared with the other instances just before a signal starts to count (a six-pack gets here, from its third
      // code), and from then on at every redemption of a user the row exists for (flagged: also one another instance
      // wrote). Beside the reply, not before it: this instance's memory already has the rate, the row is for the
      // others (and survives a restart); writes of one user run in order, and drain() waits for them at shutdown.
      const a = model.allowances;
      if (m.redeemRate >= a.redeemHour - 1 || m.dayCount >= a.redeemDay - 2 || m.total >= a.redeemTotal - 2 || flagged.has(openid)) {
        flagged.add(openid);
        const delta = m.unsent;
        m.unsent = 0;
        const total = m.total;
        const write: Promise<void> = (velocityWrites.get(openid) ?? Promise.resolve())
          .then(() => repo.velocity(openid, delta, total, campaignId, now))
          .catch((err: unknown) => {
            // Not in the row: counted again as unsent, so the next write carries it.
            m.unsent += m.redeemAt > t ? decay(delta, t, m.redeemAt, HOUR) : delta;
            log.warn({ err, openid }, 'fraud: velocity write failed (kept in memory)');
          })
          .finally(() => {
            if (velocityWrites.get(openid) === write) velocityWrites.delete(openid);
          });
        velocityWrites.set(openid, write);
      }
    },

    /** Waits for the velocity writes in flight (shutdown, tests). */
    async drain(): Promise<void> {
      while (velocityWrites.size > 0) await Promise.all([...velocityWrites.values()]);
      while (notifying.size > 0) await Promise.all([...notifying]);
      await fullReloading;
    },

    /** Before a prize is issued (its kind known): allow, hold or block (a block is recorded here: no draw follows). */
    async atDraw(openid: string, campaignId: number, prizeKind: string | null, now: Date, redemptionId?: string): Promise<Verdict> {
      await refresh();
      const st = await stateOf(openid);
      const v = verdictOf(featuresOf(openid, now, st, campaignId, false), prizeKind);
      const blockedUntil = st ? blockedUntilMs(st) : null;
      if (blockedUntil !== null && blockedUntil > now.getTime()) {
        // A suspended user draws nothing, also for codes redeemed before the block (redeem fast, draw later): the
        // redemptions stay pending; after the block every prize waits for a reviewer (recentBlock).
        return { ...v, decision: 'block' };
      }
      if (v.decision === 'block') {
        // At most one decision row a minute per user (a script calling draw in a loop).
        const m = mem(openid);
        if (now.getTime() - m.lastBlockRecorded < 60_000) return v;
        m.lastBlockRecorded = now.getTime();
        await repo.recordDecision({ openid, stage: 'draw', decision: 'block', score: v.score, reasons: v.reasons, features: v.features, modelVersion: v.modelVersion, campaignId, redemptionId: redemptionId ?? null, at: now });
        if (redemptionId) await repo.markRedemption(redemptionId, 'block', v);
        if (!v.features.blacklisted) await suspend(openid, now);
        await lookBack([openid], now);
      }
      return v;
    },

    /** Records an allow decision of a user whose signals were read (the review history shows them). */
    async recordAllow(openid: string, v: Verdict, campaignId: number, redemptionId: string, now: Date) {
      if (!flagged.has(openid)) return;
      await repo.recordDecision({ openid, stage: 'draw', decision: 'allow', score: v.score, reasons: v.reasons, features: v.features, modelVersion: v.modelVersion, campaignId, redemptionId, at: now });
      await repo.markRedemption(redemptionId, 'allow', v);
    },

    heldDraw,
    lookBack,

    /**
     * A golden answer: typing speed, identical answer sets across accounts, and (the name question, key 'name') one
     * name typed by more accounts within the window than chance explains at the campaign's volume of names.
     */
    async onAnswer(openid: string, key: string, display: string, askedAt: Date | null, now: Date): Promise<void> {
      // A person needs a couple of seconds to read a question and type an answer; a script answers at once.
      const fast = askedAt !== null && now.getTime() - askedAt.getTime() < 2_000;
      const value = display.trim().toLowerCase().replace(/\s+/g, ' ');
      // The name is linked in the answer's own statement (no extra round trip): only its keyed hash is stored.
      const name = key === NAME_QUESTION_KEY ? countedName(display) : null;
      const windowMs = (model.allowances.sharedNameWindowMin ?? defaults.allowances.sharedNameWindowMin) * 60_000;
      const since = SHARED_NAME_SCALES.map((d) => new Date(now.getTime() - windowMs / d));
      const nameHash = name !== null ? createHmac('sha256', deps.piiKey).update(`fraud:name:${name}`).digest('hex').slice(0, 40) : null;
      const r = await repo.answer(openid, key, value, fast, now, db, nameHash !== null ? { hash: nameHash, since } : undefined);
      if (nameHash !== null && r.name_others) await sharedName(openid, nameHash, r.name_others, r.name_flagged ?? 0, since, now);
      const answers = r.answers ?? {};
      const keys = Object.keys(answers).sort();
      const print = createHmac('sha256', deps.piiKey).update(JSON.stringify(keys.map((k) => [k, answers[k]]))).digest('hex').slice(0, 32);
      let accounts = 0;
      if (print !== r.answer_print) accounts = await db.transaction((tx) => repo.movePrint(openid, r.answer_print, print, now, tx));
      if (fast) flagged.add(openid);
      if (accounts > model.allowances.answerPrint) {
        const newly = await repo.flagPrint(print, now);
        flagged.add(openid);
        invalidate(); // other accounts with this print were just flagged: reload the set
        await lookBack([...newly, openid], now);
      }
    },

    /**
     * A phone was bound (top-up dialog, or the members' binding): accounts sharing it and blacklisted phones.
     * Returns true when this user's prizes must wait for review.
     */
    async onPhoneBound(openid: string, phone: string, now: Date): Promise<boolean> {
      const p = normalisePhone(phone);
      if (!p) return false;
      await refresh();
      const hash = phoneHash(p, deps.piiKey);
      const openids = [...new Set([...(await repo.openidsWithPhoneHash(hash)), openid])];
      const hit = blacklist.has(`phone:${hash}`) ? `phone:${hash}` : null;
      const flag = openids.length > model.allowances.sharedPhone || hit !== null;
      if (!flag && openids.length < 2) return false;
      await repo.sharedPhone(openids, openids.length, flag, null, now);
      if (hit) await repo.sharedPhone([openid], openids.length, true, hit, now);
      if (flag) for (const o of openids) flagged.add(o);
      // The others' earlier prizes now; this user's after its waiting top-ups are held at the draw stage (holdWaitingJobs).
      if (flag) await lookBack(openids.filter((o) => o !== openid), now);
      const v = verdictOf(featuresOf(openid, now, await repo.state(openid), undefined, false), 'topup');
      return v.decision !== 'allow';
    },

    /**
     * Jobs of this user waiting for a phone go to review instead of running (a phone shared by a farm, or
     * blacklisted), then its other prizes within reach (look-back). Returns how many waiting jobs were held.
     */
    async holdWaitingJobs(openid: string, now: Date): Promise<number> {
      const st = await repo.state(openid);
      const v = verdictOf(featuresOf(openid, now, st, undefined, false), 'topup');
      const waiting = await jobs.byOpenid(openid, ['waiting_phone']);
      let held = 0;
      for (const job of waiting) {
        const ok = await db.transaction(async (tx) => {
          const row = await jobs.transition(job.id, { from: 'waiting_phone' }, 'held', { detail: { ...((job.detail as object) ?? {}), fraudHold: true } },
            `fraud: held for review at phone binding (score ${v.score.toFixed(3)}, model v${v.modelVersion})`, now, tx);
          if (!row) return false;
          const decisionId = await repo.recordDecision({ openid, stage: 'draw', decision: 'hold', score: v.score, reasons: v.reasons, features: v.features, modelVersion: v.modelVersion, campaignId: job.campaignId, drawId: job.drawId, at: now }, tx);
          if (job.drawId !== null && job.campaignId !== null) {
            const review = await repo.insertReview({ decisionId, openid, campaignId: job.campaignId, drawId: job.drawId, fulfilmentId: job.id, prizeId: job.prizeId, shard: null, day: null, at: now }, tx);
            // The draw has a review already (a reviewer approved it before the phone was asked for): their decision
            // stands, the job is not held again with no review to release it.
            if (review === null) throw ALREADY_REVIEWED;
          }
          return true;
        }).catch((err: unknown) => {
          if (err === ALREADY_REVIEWED) return false;
          throw err;
        });
        if (ok) held++;
      }
      await lookBack([openid], now);
      return held;
    },

    /**
     * Identifiers the mini program sees (unionid, device, client IP), on the mini-program path only: blacklist hits,
     * and how many accounts share each one (exact across instances, see repo.linkIdentifiers). Each (account,
     * identifier) is written once per instance; above an allowance every account on the identifier is flagged.
     * `device` is the mini program's device fingerprint, counted together with the IP (see docs/FRAUD.md). Returns
     * true when this user is now flagged.
     */
    async onIdentifiers(openid: string, ids: Partial<Record<'unionid' | 'device' | 'ip', string | null | undefined>>, now: Date): Promise<boolean> {
      await refresh();
      let hit: string | null = null;
      const fresh: Array<{ kind: string; hash: string }> = [];
      const memos: string[] = [];
      const ip = ids.ip ? normalise('ip', ids.ip) : null;
      for (const kind of ['unionid', 'device', 'ip'] as const) {
        const raw = ids[kind];
        const v = raw ? normalise(kind, raw.slice(0, 128)) : null;
        if (!v) continue;
        if (blacklist.has(`${kind}:${hashOf(kind, v)}`)) hit = `${kind}:${hashOf(kind, v)}`;
        // A fingerprint alone is shared by everyone with the same phone model; on one IP it is, in practice, one phone.
        const counted = kind === 'device' ? (ip ? hashOf('device', `${v}@${ip}`) : null) : hashOf(kind, v);
        if (!counted) continue;
        const memo = `${openid}|${kind}:${counted}`;
        if (seenIds.has(memo)) continue;
        memos.push(memo);
        fresh.push({ kind, hash: counted });
      }
      const linked = await repo.linkIdentifiers(openid, fresh, now);
      // Several accounts new on one phone within a day is a farm logging its accounts in, not a family (whose second
      // account arrives once, over months): counted for the newcomer (per instance, like the hourly rate).
      const device = fresh.find((f) => f.kind === 'device');
      if (device && linked.some((r) => r.kind === 'device' && r.value_hash === device.hash && r.accounts > 1)) {
        const n = await repo.arrivalsSince('device', device.hash, new Date(now.getTime() - 24 * HOUR));
        if (n > model.allowances.newOnDevice) {
          const m = mem(openid);
          m.newOnDevice = n;
          m.newOnDeviceAt = now.getTime();
        }
      }
      // Remembered only once written: a failed write is retried at the member's next request.
      for (const memo of memos) {
        if (seenIds.size >= MEM_MAX) seenIds.delete(seenIds.keys().next().value!);
        seenIds.add(memo);
      }
      let flag = false;
      const accounts: string[] = [];
      for (const r of linked) {
        const ipKind = r.kind === 'ip';
        if (r.accounts <= (ipKind ? model.allowances.sharedIp : model.allowances.sharedDevice)) continue;
        // Every account of the identifier learns the new count (a farm's early accounts are caught at their next
        // session), up to 50 accounts: past that it is a carrier gateway or a large farm already flagged, and only the
        // newcomer is written, so the cost per new member stays bounded however many people share the IP.
        const allAccounts = r.accounts <= 50;
        for (const o of await repo.flagIdentifierAccounts(r.kind, r.value_hash, r.accounts, ipKind ? 'shared_ip' : 'shared_device', now, allAccounts ? undefined : openid)) {
          flagged.add(o);
          accounts.push(o);
        }
        flag = true;
      }
      if (hit) await repo.sharedDevice(openid, 0, hit, true, now);
      if (flag || hit) {
        flagged.add(openid);
        invalidate(); // other instances' flags: reload the set
        await lookBack([...accounts, openid], now);
      }
      return flag || hit !== null;
    },

    /* ================= review queue ================= */

    async listReviews(filter: { status?: 'pending' | 'approved' | 'rejected' | undefined; beforeId?: number | undefined; limit?: number | undefined }) {
      const rows = await repo.reviews({ status: filter.status, beforeId: filter.beforeId, limit: Math.max(1, Math.min(200, filter.limit ?? 50)) });
      return rows.map(reviewView);
    },

    async getReview(id: number) {
      const [row] = await repo.reviews({ limit: 1 }, id);
      if (!row) throw new AppError('NOT_FOUND', `No review ${id}`);
      const [history, decisions, st] = [await repo.historyOf(row.openid), await repo.decisionsOf(row.openid), await repo.state(row.openid)];
      return { ...reviewView(row), history: { ...history, decisions, signals: st?.openid ? featuresOf(row.openid, clock.now(), st, undefined, false) : null } };
    },

    /** Approve: fulfilment proceeds. Exactly once: the review row changes pending → approved by a conditional update. */
    async approve(id: number, actor: Actor, note: string | null, ctx: { requestId?: string; ip?: string } = {}) {
      const now = clock.now();
      const done = await db.transaction(async (tx) => {
        const r = await repo.settleReview(id, 'approved', { id: actor.id, name: actor.username }, note, false, now, tx);
        if (!r) return false;
        const job = await jobs.transition(Number(r.fulfilment_id), { from: 'held' }, 'pending', { nextAttemptAt: now, lastError: null }, `fraud review approved by ${actor.username}`, now, tx);
        if (!job) throw new AppError('CONFLICT', 'The prize is no longer held; reload and try again');
        await deps.audit(actor, { action: 'fraud_review.approve', targetType: 'fraud_review', targetId: id, detail: { note, drawId: String(r.draw_id), fulfilmentId: Number(r.fulfilment_id) } }, ctx, tx);
        return true;
      });
      if (!done) throw await settledError(id);
      deps.onFulfilmentQueued?.();
      const [row] = await repo.reviews({ limit: 1 }, id);
      return reviewView(row!);
    },

    /** Reject: the prize goes back to stock, the job is cancelled, the user optionally blacklisted. Exactly once. */
    async reject(id: number, actor: Actor, note: string | null, blacklistUser: boolean, ctx: { requestId?: string; ip?: string } = {}) {
      const now = clock.now();
      const done = await db.transaction(async (tx) => {
        const r = await repo.settleReview(id, 'rejected', { id: actor.id, name: actor.username }, note, blacklistUser, now, tx);
        if (!r) return false;
        const job = await jobs.transition(Number(r.fulfilment_id), { from: 'held' }, 'cancelled', { detail: { fraudRejected: true, reviewId: id } }, `fraud review rejected by ${actor.username}`, now, tx);
        if (!job) throw new AppError('CONFLICT', 'The prize is no longer held; reload and try again');
        if (r.prize_id !== null) await repo.returnStock(r.prize_id, r.stock_shard, r.stock_day, tx);
        if (blacklistUser) {
          const entries = [{ kind: 'openid', hash: hashOf('openid', r.openid), hint: hint('openid', r.openid), note: `review ${id}` }];
          const ph = rowsOf<{ phone_hash: string | null }>(await tx.execute(sql`SELECT phone_hash FROM members WHERE openid = ${r.openid}`))[0]?.phone_hash;
          if (ph) entries.push({ kind: 'phone', hash: ph, hint: 'phone of ' + hint('openid', r.openid), note: `review ${id}` });
          await repo.addBlacklist(entries, actor.username, now, tx);
        }
        await deps.audit(actor, { action: 'fraud_review.reject', targetType: 'fraud_review', targetId: id, detail: { note, blacklisted: blacklistUser, drawId: String(r.draw_id), fulfilmentId: Number(r.fulfilment_id), stockReturned: r.prize_id !== null } }, ctx, tx);
        return true;
      });
      if (!done) throw await settledError(id);
      if (blacklistUser) invalidate();
      const [row] = await repo.reviews({ limit: 1 }, id);
      return reviewView(row!);
    },

    /* ================= blacklist ================= */

    async listBlacklist(filter: { kind?: BlacklistKind | undefined; beforeId?: number | undefined; limit?: number | undefined }) {
      return (await repo.blacklist({ kind: filter.kind, beforeId: filter.beforeId, limit: Math.max(1, Math.min(500, filter.limit ?? 100)) })).map(blView);
    },

    async addToBlacklist(entry: { kind: BlacklistKind; value: string; note?: string | undefined }, actor: Actor) {
      const { out, errors } = await blacklistEntries([entry]);
      if (errors.length > 0) throw new AppError('VALIDATION', errors[0]!.message);
      const [row] = await repo.addBlacklist(out, actor.username, clock.now());
      if (!row) throw new AppError('CONFLICT', 'Already on the blacklist');
      invalidate();
      return blView(row);
    },

    /** Import: all valid or nothing (a bad line is reported with its index and nothing is written). */
    async importBlacklist(items: Array<{ kind: BlacklistKind; value: string; note?: string | undefined }>, actor: Actor) {
      const { out, errors } = await blacklistEntries(items);
      if (errors.length > 0) throw new AppError('VALIDATION', `${errors.length} invalid entr${errors.length === 1 ? 'y' : 'ies'}`, errors.slice(0, 50));
      const unique = [...new Map(out.map((e) => [`${e.kind}:${e.hash}`, e])).values()];
      const added = await repo.addBlacklist(unique, actor.username, clock.now());
      invalidate();
      return { received: items.length, added: added.length, alreadyListed: unique.length - added.length };
    },

    async removeFromBlacklist(id: number) {
      if (!(await repo.removeBlacklist(id))) throw new AppError('NOT_FOUND', `No blacklist entry ${id}`);
      invalidate();
    },

    /* ================= model versions ================= */

    async currentModel() {
      await refresh(true);
      const latest = await repo.latestModel();
      return { version: model.version, model, note: latest?.note ?? null, createdBy: latest?.created_by ?? 'system', createdAt: latest ? new Date(latest.created_at).toISOString() : null };
    },

    async listModels() {
      return (await repo.models()).map((r) => ({ version: r.version, model: r.model, note: r.note, createdBy: r.created_by, createdAt: new Date(r.created_at).toISOString() }));
    },

    /** A new version from a partial edit of the one in force (weights, allowances, thresholds, cool-downs). */
    async createModel(patch: Partial<Omit<FraudModel, 'version'>>, note: string | null, actor: Actor) {
      const bad = validateModelPatch(patch);
      if (bad) throw new AppError('VALIDATION', bad);
      // The patch is merged over the version in force and saved as the next one only if that is still the latest:
      // two edits at once are both kept (the second merged over the first), never one silently undoing the other.
      let saved: { version: number; next: FraudModel } | null = null;
      for (let i = 0; i < 5 && saved === null; i++) {
        await refresh(true);
        const next: FraudModel = {
          ...model,
          ...(patch.bias !== undefined ? { bias: patch.bias } : {}),
          ...(patch.cap !== undefined ? { cap: patch.cap } : {}),
          weights: { ...model.weights, ...(patch.weights ?? {}) },
          allowances: { ...model.allowances, ...(patch.allowances ?? {}) },
          thresholds: { ...model.thresholds, ...(patch.thresholds ?? {}), holdByKind: { ...model.thresholds.holdByKind, ...(patch.thresholds?.holdByKind ?? {}) } },
          cooldown: { ...model.cooldown, ...(patch.cooldown ?? {}) },
        };
        const problem = validateModel(next);
        if (problem) throw new AppError('VALIDATION', problem);
        const { version: basedOn, ...body } = next;
        const version = await repo.insertModel(body, note, actor.username, clock.now(), basedOn);
        if (version !== null) saved = { version, next };
      }
      if (saved === null) throw new AppError('CONFLICT', 'Other model versions were being saved at the same time; reload and try again');
      const { version, next } = saved;
      await refresh(true);
      log.info({ version, by: actor.username }, 'fraud model version saved');
      return { version, model: { ...next, version }, note, createdBy: actor.username, createdAt: clock.now().toISOString() };
    },
  };

  async function settledError(id: number) {
    const [row] = await repo.reviews({ limit: 1 }, id);
    if (!row) return new AppError('NOT_FOUND', `No review ${id}`);
    return new AppError('CONFLICT', `Review ${id} was already ${row.status}${row.reviewer_name ? ` by ${row.reviewer_name}` : ''}`);
  }
}
export type FraudService = ReturnType<typeof createFraudService>;
