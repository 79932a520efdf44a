/**
 * The scoring function: features → a probability-like score and the top reasons, pure and allocation-light (it runs
 * on every redemption). A logistic model over "excess" features: each raw signal is first turned into how far it is
 * beyond what an honest user plausibly does (the allowance), so honest behaviour contributes exactly zero and the
 * score of a clean user is the model's floor, σ(bias). Weights, allowances and thresholds are data (FraudModel),
 * versioned in `fraud_models`; see docs/FRAUD.md.
 */

export const FEATURES = [
  'blacklisted', 'unknownCodes', 'typos', 'wrongRate', 'redeemHour', 'redeemDay', 'redeemTotal', 'newAccount', 'sharedPhone',
  'sharedDevice', 'sharedIp', 'answerPrint', 'fastAnswers', 'nightHour', 'campaignBurst', 'cashOnly', 'scatteredCodes', 'recentBlock', 'newOnDevice',
  'sharedName',
] as const;
export type FeatureName = (typeof FEATURES)[number];

/** Raw signals of one user at one action. Unknown values are 0 / null (contribute nothing). */
export interface Features {
  /** A blacklisted openid / unionid / phone / IP / device: 1, else 0. */
  blacklisted: number;
  /** Well-formed codes (check character right) that matched nothing, or were someone else's, in the window. */
  unknownCodes: number;
  /** Codes failing the check character in the last hour (honest typos are common; only a flood counts). */
  typos: number;
  /** Wrong attempts per minute (decayed rate). */
  wrongRate: number;
  /** Redemptions in about the last hour (decayed rate), this one included. */
  redeemHour: number;
  /** Redemptions today in this campaign (the daily-limit counter), this one included. */
  redeemDay: number;
  /** Redemptions in this campaign so far (the per-campaign counter), this one included. */
  redeemTotal: number;
  /** Minutes since the user subscribed (null: unknown). */
  accountAgeMin: number | null;
  /** Accounts bound to the same phone, this one included. */
  sharedPhone: number;
  /** Accounts seen on the same device (mini program: device fingerprint on the same IP) or unionid, this one included. */
  sharedDevice: number;
  /** Accounts seen on the same client IP (mini program), this one included. Weak: carrier NAT and office wifi share IPs. */
  sharedIp: number;
  /** Accounts that gave exactly the same golden answers, this one included. */
  answerPrint: number;
  /** Answers typed faster than a person can read the question. */
  fastAnswers: number;
  /** Local hour (Asia/Shanghai), 0–23. */
  hour: number;
  /** Campaign-wide redemptions per minute relative to its recent normal (1 = normal). */
  campaignBurst: number;
  /** Won prizes claimed only when they were cash (others abandoned): 1, else 0. */
  cashOnly: number;
  /**
   * Print neighbourhoods among the user's codes of about the last hour: codes of one multipack leave the line together
   * and are print neighbours (one neighbourhood), bought codes were harvested from many packs (one each).
   */
  scatteredCodes: number;
  /** A block by score ended within the last week: 1, else 0. */
  recentBlock: number;
  /** Accounts first seen on this account's device (mini program) within the last 24 h, this one included. */
  newOnDevice: number;
  /**
   * Accounts that typed this account's (normalised, non-generic) name within the shared-name window, this one
   * included, when that was last counted (0: never counted). Stored only when it was more than chance explains.
   */
  sharedName: number;
  /** Name answers typed in that window by every account (the campaign-wide volume chance is measured against). */
  nameAnswers: number;
}

export interface FraudModel {
  version: number;
  /** z = bias + Σ weight·excess; score = 1 / (1 + e^−z). */
  bias: number;
  weights: Record<FeatureName, number>;
  /** What an honest user may do before a signal counts. */
  allowances: {
    unknownCodes: number; typos: number; wrongRate: number; redeemHour: number; redeemDay: number; redeemTotal: number;
    newAccountMin: number; sharedPhone: number; sharedDevice: number; sharedIp: number; answerPrint: number; nightFrom: number; nightTo: number; campaignBurst: number;
    /** Neighbourhoods a person may bring in an hour (a multipack and a pack or two bought on their own). */
    scatteredCodes: number;
    /** Print positions within which two codes of one batch are neighbours (one multipack, one carton). */
    printSpan: number;
    /** New accounts one phone may bring in a day (the owner's; a second is a partner trying the app). */
    newOnDevice: number;
    /**
     * Prior share of the most common full name among the names typed (0.001 = 5 × 张伟's ≈ 0.02 % in China, for
     * regional concentration): accounts sharing a name count only beyond what this share explains (sharedNameAllowance).
     */
    sharedNameShare: number;
    /** Minutes within which accounts typing the same name are counted together (and the campaign's name answers). */
    sharedNameWindowMin: number;
  };
  /** Each excess is capped so that one runaway signal cannot hide the others in the reasons. */
  cap: number;
  thresholds: {
    /** At or above: hold (draw happens, fulfilment waits for review). */
    hold: number;
    /** At or above: block (no draw; code attempts refused). */
    block: number;
    /** Lower hold thresholds for valuable prize kinds (e.g. cash). */
    holdByKind: Partial<Record<'points' | 'coupon' | 'topup' | 'cash' | 'physical', number>>;
    /**
     * Look-back: when a user's score reaches a hold (or block), prizes they won within this many hours and that are
     * not yet out of reach (points still in the account, jobs not started) are held for review too. 0 turns it off;
     * absent: the defaults' (72: a farm works its accounts in sessions over days).
     */
    lookbackH?: number;
    /** The score at or above which a look-back holds earlier prizes (any kind); absent: the defaults' (0.6). */
    lookback?: number;
  };
  /** Progressive throttling of wrong codes: after `free` wrong codes in the window, each further one starts the next cool-down. */
  cooldown: { free: number; stepsS: number[]; windowH: number; /** How long a block decision suspends code attempts. */ blockS?: number };
}

export const DEFAULT_MODEL: FraudModel = {
  version: 1,
  bias: -4,
  weights: {
    blacklisted: 12, unknownCodes: 1.1, typos: 0.25, wrongRate: 0.4, redeemHour: 1.0, redeemDay: 0.6, redeemTotal: 0.5, newAccount: 0.4,
    sharedPhone: 4, sharedDevice: 2.0, sharedIp: 0.4, answerPrint: 0.9, fastAnswers: 1.8, nightHour: 0.3, campaignBurst: 0.15, cashOnly: 0.8,
    scatteredCodes: 2.0, recentBlock: 4, newOnDevice: 1.0, sharedName: 5,
  },
  allowances: {
    unknownCodes: 1, typos: 6, wrongRate: 3, redeemHour: 4, redeemDay: 10, redeemTotal: 12, newAccountMin: 10, sharedPhone: 2, sharedDevice: 2, sharedIp: 6,
    answerPrint: 3, nightFrom: 1, nightTo: 6, campaignBurst: 3, scatteredCodes: 2, printSpan: 50, newOnDevice: 1,
    sharedNameShare: 0.001, sharedNameWindowMin: 120,
  },
  cap: 10,
  thresholds: { hold: 0.5, block: 0.92, holdByKind: { cash: 0.25, topup: 0.25 }, lookback: 0.6, lookbackH: 72 },
  cooldown: { free: 3, stepsS: [60, 300, 1800, 7200, 86_400], windowH: 24, blockS: 6 * 3600 },
};

export interface Reason {
  feature: FeatureName;
  /** The raw value that triggered it. */
  value: number;
  /** Its share of z. */
  contribution: number;
}

export interface Score {
  score: number;
  /** Up to three, largest contribution first. */
  reasons: Reason[];
  modelVersion: number;
  /**
   * The score would stay below the block threshold without the device signals (accounts on one device or IP, new
   * accounts on one device): sharing a device alone holds prizes for a reviewer but never blocks.
   */
  sharingOnly: boolean;
}

/**
 * Accounts on one device or IP, or typing one name: evidence for a reviewer, not a verdict (families, wifi, carrier
 * NAT, two households with the same phone model behind one NAT; a namesake typing a name a farm also uses). A phone
 * *number* typed by several accounts is not in this set: beyond a couple it is the farm pattern itself, and it may block.
 */
const SHARING: ReadonlySet<FeatureName> = new Set(['sharedDevice', 'sharedIp', 'newOnDevice', 'sharedName']);

/* ================= shared name: how many namesakes chance explains ================= */

/**
 * False-alarm rate of the shared-name test in one window: an honest person's name reaches the count that holds less
 * often than this, by chance, under the prior share. Over the three nested windows scanned, at most 3 × this (union
 * bound; nested windows overlap, so in practice closer to 1 ×), and far less for real names, rarer than the prior.
 */
export const SHARED_NAME_ALPHA = 1e-4;
/**
 * The windows scanned, as divisors of `sharedNameWindowMin` (shortest first: 2 h → 7.5 min, 30 min, 2 h). Farms work
 * their accounts in bursts, and in a short window few names are typed, so three namesakes there are already
 * beyond chance; honest namesakes arrive at any time, and over the long window many more names are compared.
 */
export const SHARED_NAME_SCALES = [16, 4, 1] as const;
/** Two accounts with one name always pass (a household, or chance at any volume): at least three count. */
export const SHARED_NAME_MIN = 2;
/** z of the one-sided normal quantile for SHARED_NAME_ALPHA (Φ⁻¹(1 − 1e-4) = 3.719), for large λ. */
const Z_ALPHA = 3.719;

/**
 * The accounts (this one included) that may type the same name within one window by chance, when `nameAnswers`
 * names were typed in it campaign-wide and no full name is more common than `share`. The other accounts typing a
 * given person's name are at most Binomial(nameAnswers, share) ≤ Poisson(λ = nameAnswers · share) in the tail; the
 * allowance is the smallest k ≥ 2 with P(X ≥ k | λ) < SHARED_NAME_ALPHA, so a cluster of k + 1 accounts counts.
 * Exact Poisson sum up to λ = 200 (≤ ~300 terms), a Cornish–Fisher quantile above, rounded up (conservative).
 */
export function sharedNameAllowance(nameAnswers: number, share: number): number {
  const lambda = Math.max(0, nameAnswers) * share;
  if (!(lambda > 0)) return SHARED_NAME_MIN;
  if (!Number.isFinite(lambda)) return Number.MAX_SAFE_INTEGER;
  if (lambda > 200) return Math.max(SHARED_NAME_MIN, Math.ceil(lambda + Z_ALPHA * Math.sqrt(lambda) + (Z_ALPHA * Z_ALPHA + 2) / 6) + 1);
  const logLambda = Math.log(lambda);
  let logPmf = -lambda; // log P(X = 0)
  let cdf = Math.exp(logPmf); // P(X ≤ k − 1) for k = 1
  for (let k = 1; ; k++) {
    if (k >= SHARED_NAME_MIN && 1 - cdf < SHARED_NAME_ALPHA) return k;
    logPmf += logLambda - Math.log(k);
    cdf += Math.exp(logPmf);
  }
}

/**
 * The fewest name answers in the window at which `accounts` namesakes are explained by chance (allowance ≥
 * accounts): counting the window's answers up to this many is enough to decide (the count stays bounded).
 */
export function nameAnswersExplaining(accounts: number, share: number): number {
  if (accounts <= SHARED_NAME_MIN) return 0;
  if (!(share > 0)) return Number.MAX_SAFE_INTEGER;
  let hi = Math.max(1, Math.ceil(1 / share));
  while (sharedNameAllowance(hi, share) < accounts && hi < Number.MAX_SAFE_INTEGER / 2) hi *= 2;
  let lo = 0;
  // Invariant: allowance(lo) < accounts ≤ allowance(hi).
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (sharedNameAllowance(mid, share) >= accounts) hi = mid;
    else lo = mid;
  }
  return hi;
}

const excess = (v: number, allowance: number, cap: number) => (v > allowance ? Math.min(v - allowance, cap) : 0);

/** Each feature's excess over its allowance (0 for honest behaviour). */
export function excesses(f: Features, m: FraudModel): Record<FeatureName, number> {
  const a = m.allowances;
  const night = a.nightFrom <= a.nightTo ? f.hour >= a.nightFrom && f.hour < a.nightTo : f.hour >= a.nightFrom || f.hour < a.nightTo;
  return {
    blacklisted: f.blacklisted > 0 ? 1 : 0,
    unknownCodes: excess(f.unknownCodes, a.unknownCodes, m.cap),
    typos: excess(f.typos, a.typos, m.cap),
    wrongRate: excess(f.wrongRate, a.wrongRate, m.cap),
    redeemHour: excess(f.redeemHour, a.redeemHour, m.cap),
    redeemDay: excess(f.redeemDay, a.redeemDay, m.cap),
    redeemTotal: excess(f.redeemTotal, a.redeemTotal ?? 12, m.cap),
    newAccount: f.accountAgeMin !== null && f.accountAgeMin < a.newAccountMin ? 1 : 0,
    sharedPhone: excess(f.sharedPhone, a.sharedPhone, m.cap),
    sharedDevice: excess(f.sharedDevice, a.sharedDevice, m.cap),
    // Models saved before this feature existed have no allowance for it: the default applies.
    sharedIp: excess(f.sharedIp ?? 0, a.sharedIp ?? 6, m.cap),
    answerPrint: excess(f.answerPrint, a.answerPrint, m.cap),
    // At most 3 count: typing speed alone can hold a prize for a reviewer (three answers, each within 2 s of its
    // question, is a script or a copy-paste farm) but never blocks anyone.
    fastAnswers: Math.min(f.fastAnswers, 3),
    nightHour: night ? 1 : 0,
    campaignBurst: excess(f.campaignBurst, a.campaignBurst, m.cap),
    cashOnly: f.cashOnly > 0 ? 1 : 0,
    scatteredCodes: excess(f.scatteredCodes ?? 0, a.scatteredCodes ?? 2, m.cap),
    recentBlock: f.recentBlock > 0 ? 1 : 0,
    // At most 2 count: arrivals hold a prize for a reviewer (with the device's own count) but never block on their own.
    newOnDevice: Math.min(excess(f.newOnDevice ?? 0, a.newOnDevice ?? 1, m.cap), 2),
    // Beyond what chance explains at the window's volume (frequency-aware, not a fixed count). Evidence for a reviewer:
    // it holds alone but never blocks alone (SHARING).
    sharedName: (f.sharedName ?? 0) > SHARED_NAME_MIN
      ? excess(f.sharedName, sharedNameAllowance(f.nameAnswers ?? 0, a.sharedNameShare ?? DEFAULT_MODEL.allowances.sharedNameShare), m.cap) : 0,
  };
}

const RAW: Record<FeatureName, (f: Features) => number> = {
  blacklisted: (f) => f.blacklisted, unknownCodes: (f) => f.unknownCodes, typos: (f) => f.typos, wrongRate: (f) => f.wrongRate,
  redeemHour: (f) => f.redeemHour, redeemDay: (f) => f.redeemDay, redeemTotal: (f) => f.redeemTotal, newAccount: (f) => f.accountAgeMin ?? -1, sharedPhone: (f) => f.sharedPhone,
  sharedDevice: (f) => f.sharedDevice, sharedIp: (f) => f.sharedIp, answerPrint: (f) => f.answerPrint, fastAnswers: (f) => f.fastAnswers, nightHour: (f) => f.hour,
  campaignBurst: (f) => f.campaignBurst, cashOnly: (f) => f.cashOnly, scatteredCodes: (f) => f.scatteredCodes, recentBlock: (f) => f.recentBlock, newOnDevice: (f) => f.newOnDevice,
  sharedName: (f) => f.sharedName,
};

/** The score and its top reasons. Pure: the same features and model always give the same result. */
export function score(f: Features, m: FraudModel): Score {
  const x = excesses(f, m);
  let z = m.bias;
  let sharing = 0;
  const reasons: Reason[] = [];
  for (const name of FEATURES) {
    const v = x[name];
    if (v === 0) continue;
    const c = (m.weights[name] ?? 0) * v;
    if (c === 0) continue;
    z += c;
    if (SHARING.has(name)) sharing += c;
    // Rounded and kept finite (JSON has no Infinity): reasons are stored and shown to reviewers.
    if (c > 0) reasons.push({ feature: name, value: Math.round(RAW[name](f) * 100) / 100, contribution: Math.round(Math.min(c, 1e9) * 1000) / 1000 });
  }
  if (reasons.length > 1) reasons.sort((a, b) => b.contribution - a.contribution);
  if (reasons.length > 3) reasons.length = 3;
  // A model outside MODEL_LIMITS (a version saved before they existed) can overflow z to ±Infinity or NaN (∞ − ∞),
  // and NaN compares false with every threshold: the user would be allowed. A broken model scores 1 instead.
  if (!Number.isFinite(z)) return { score: 1, reasons, modelVersion: m.version, sharingOnly: false };
  return { score: 1 / (1 + Math.exp(-z)), reasons, modelVersion: m.version, sharingOnly: sharing > 0 && 1 / (1 + Math.exp(-(z - sharing))) < m.thresholds.block };
}

export type Decision = 'allow' | 'hold' | 'block';

/** allow / hold / block for a score; `prizeKind` (when the prize is known) may lower the hold threshold. */
export function decide(s: Score, m: FraudModel, prizeKind?: string | null): Decision {
  // Not a number is not a pass: NaN would fail every comparison below and allow.
  const sc = Number.isNaN(s.score) ? 1 : s.score;
  if (sc >= m.thresholds.block && !s.sharingOnly) return 'block';
  const byKind = prizeKind ? (m.thresholds.holdByKind as Record<string, number | undefined>)[prizeKind] : undefined;
  if (sc >= Math.min(m.thresholds.hold, byKind ?? 1)) return 'hold';
  return 'allow';
}

/** The cool-down (seconds) a wrong code starts, given the wrong codes counted in the window (this one included). */
export function cooldownFor(wrongInWindow: number, level: number, m: FraudModel): number {
  if (wrongInWindow <= m.cooldown.free) return 0;
  const steps = m.cooldown.stepsS;
  return steps.length === 0 ? 0 : steps[Math.min(level, steps.length - 1)]!;
}

/** A feature vector of an honest-looking user (every signal at rest). */
export function cleanFeatures(hour = 12): Features {
  return {
    blacklisted: 0, unknownCodes: 0, typos: 0, wrongRate: 0, redeemHour: 1, redeemDay: 1, redeemTotal: 1, accountAgeMin: null, sharedPhone: 0,
    sharedDevice: 0, sharedIp: 0, answerPrint: 0, fastAnswers: 0, hour, campaignBurst: 1, cashOnly: 0, scatteredCodes: 1, recentBlock: 0, newOnDevice: 0,
    sharedName: 0, nameAnswers: 0,
  };
}

/* ================= limits of an edited model ================= */

/**
 * What an ops edit may set. Bias and weights are bounded so that z = bias + Σ weight·excess always stays finite and
 * meaningful: |z| ≤ 50 + 20 features · 100 · cap 100, far from overflow, and σ(±50) is already 0 or 1 to 20 digits.
 */
export const MODEL_LIMITS = {
  bias: { min: -50, max: 50, integer: false },
  weight: { min: -100, max: 100, integer: false },
  cap: { min: 1, max: 100, integer: false },
} as const;

export type AllowanceName = keyof FraudModel['allowances'];
interface Limit { readonly min: number; readonly max: number; readonly integer: boolean; /** Why the minimum is not 0 (in the error). */ readonly why?: string }

/**
 * The range of each allowance. Counts that include the user's own action ("this one included": a redemption, the
 * account itself) start at 1, so that an honest single redemption never counts; typos and wrong attempts per minute
 * start at 1 because an honest user mistypes once (a typo allowance of 0 also throttles the first typo: the "too
 * fast" reply starts above 4 × the allowance). Unknown codes may be 0 (an honest redemption has none); newAccountMin 0
 * switches the signal off. Integers where the signal is a count; night hours are 0–23 (from = to: no night).
 */
export const ALLOWANCE_LIMITS: { readonly [K in AllowanceName]: Limit } = {
  unknownCodes: { min: 0, max: 100, integer: true },
  typos: { min: 1, max: 100, integer: true, why: 'an honest user mistypes a code now and then; 0 also throttles the first typo' },
  wrongRate: { min: 1, max: 100, integer: false, why: 'one honest mistake is a wrong attempt per minute' },
  redeemHour: { min: 1, max: 1000, integer: false, why: 'the rate includes this redemption: below 1 every first redemption counts' },
  redeemDay: { min: 1, max: 10_000, integer: true, why: "today's count includes this redemption: 0 flags every user" },
  redeemTotal: { min: 1, max: 100_000, integer: true, why: 'the campaign count includes this redemption: 0 flags every user' },
  newAccountMin: { min: 0, max: 43_200, integer: true },
  sharedPhone: { min: 1, max: 100, integer: true, why: 'the count includes the account itself' },
  sharedDevice: { min: 1, max: 1000, integer: true, why: 'the count includes the account itself' },
  sharedIp: { min: 1, max: 10_000, integer: true, why: 'the count includes the account itself' },
  answerPrint: { min: 1, max: 10_000, integer: true, why: 'the count includes the account itself' },
  nightFrom: { min: 0, max: 23, integer: true },
  nightTo: { min: 0, max: 23, integer: true },
  campaignBurst: { min: 1, max: 1000, integer: false, why: 'it is relative to the campaign\'s normal rate (1 = normal)' },
  scatteredCodes: { min: 1, max: 100, integer: true, why: "one pack's codes are one neighbourhood: 0 flags every redemption" },
  printSpan: { min: 1, max: 1_000_000, integer: true, why: 'below 1 every code is its own neighbourhood' },
  newOnDevice: { min: 1, max: 100, integer: true, why: 'the count includes the account itself' },
  sharedNameShare: { min: 0.000_01, max: 0.1, integer: false, why: 'a share near 0 would call any namesake a farm' },
  sharedNameWindowMin: { min: 1, max: 10_080, integer: true, why: 'the window is in minutes' },
};
export const ALLOWANCES = Object.keys(ALLOWANCE_LIMITS) as AllowanceName[];

export const PRIZE_KINDS = ['points', 'coupon', 'topup', 'cash', 'physical'] as const;

const FEATURE_SET: ReadonlySet<string> = new Set(FEATURES);

/** null, or what is wrong with `value` at `field` (named in the message). */
function outOfRange(field: string, value: unknown, l: Limit): string | null {
  const ok = typeof value === 'number' && Number.isFinite(value) && value >= l.min && value <= l.max && (!l.integer || Number.isInteger(value));
  if (ok) return null;
  const below = typeof value === 'number' && value < l.min && l.why ? ` (${l.why})` : '';
  return `${field} must be ${l.integer ? 'an integer' : 'a number'} in [${l.min}, ${l.max}]${below}`;
}

/**
 * Checks the keys and ranges of an ops edit on its own (before it is merged over the model in force): unknown
 * weights, allowances and prize kinds are refused by name, each value must be within its limit. The caller answers
 * 400 with the message. Cross-field rules (hold ≤ block) need the merged model: validateModel.
 */
export function validateModelPatch(p: {
  bias?: unknown; cap?: unknown; weights?: Record<string, unknown>; allowances?: Record<string, unknown>;
  thresholds?: { holdByKind?: Record<string, unknown> };
}): string | null {
  if (p.bias !== undefined) { const e = outOfRange('bias', p.bias, MODEL_LIMITS.bias); if (e) return e; }
  if (p.cap !== undefined) { const e = outOfRange('cap', p.cap, MODEL_LIMITS.cap); if (e) return e; }
  for (const [k, v] of Object.entries(p.weights ?? {})) {
    if (!FEATURE_SET.has(k)) return `weights.${k} is not a feature (${FEATURES.join(', ')})`;
    const e = outOfRange(`weights.${k}`, v, MODEL_LIMITS.weight);
    if (e) return e;
  }
  for (const [k, v] of Object.entries(p.allowances ?? {})) {
    if (!Object.hasOwn(ALLOWANCE_LIMITS, k)) return `allowances.${k} is not an allowance (${ALLOWANCES.join(', ')})`;
    const e = outOfRange(`allowances.${k}`, v, ALLOWANCE_LIMITS[k as AllowanceName]);
    if (e) return e;
  }
  for (const k of Object.keys(p.thresholds?.holdByKind ?? {})) {
    if (!(PRIZE_KINDS as readonly string[]).includes(k)) return `thresholds.holdByKind.${k} is not a prize kind (${PRIZE_KINDS.join(', ')})`;
  }
  return null;
}

/**
 * Checks a whole model (an ops edit merged over the version in force) against MODEL_LIMITS and ALLOWANCE_LIMITS:
 * bias and weights bounded, allowances in range, thresholds ordered, hold thresholds only for prize kinds, cool-downs
 * positive. Only edits are checked: versions already saved load as they are (and score() survives them).
 */
export function validateModel(m: FraudModel): string | null {
  for (const name of FEATURES) {
    if (!Number.isFinite(m.weights[name])) return `weights.${name} must be a number`;
    const e = outOfRange(`weights.${name}`, m.weights[name], MODEL_LIMITS.weight);
    if (e) return e;
  }
  if (!Number.isFinite(m.bias)) return 'bias must be a number';
  const e = outOfRange('bias', m.bias, MODEL_LIMITS.bias) ?? outOfRange('cap', m.cap, MODEL_LIMITS.cap);
  if (e) return e;
  for (const name of ALLOWANCES) {
    const v = (m.allowances as Partial<FraudModel['allowances']>)[name];
    // Absent in a version saved before the allowance existed: the scoring uses the default.
    if (v === undefined) continue;
    const e = outOfRange(`allowances.${name}`, v, ALLOWANCE_LIMITS[name]);
    if (e) return e;
  }
  const t = m.thresholds;
  if (!(t.hold > 0 && t.hold <= t.block && t.block <= 1)) return 'thresholds must satisfy 0 < hold ≤ block ≤ 1';
  for (const [k, v] of Object.entries(t.holdByKind ?? {})) {
    if (!(PRIZE_KINDS as readonly string[]).includes(k)) return `thresholds.holdByKind.${k} is not a prize kind (${PRIZE_KINDS.join(', ')})`;
    if (!(typeof v === 'number' && v > 0 && v <= 1)) return `thresholds.holdByKind.${k} must be in (0, 1]`;
  }
  if (t.lookback !== undefined && !(typeof t.lookback === 'number' && t.lookback > 0 && t.lookback <= 1)) return 'thresholds.lookback must be in (0, 1]';
  if (t.lookbackH !== undefined && !(Number.isInteger(t.lookbackH) && t.lookbackH >= 0 && t.lookbackH <= 168)) return 'thresholds.lookbackH must be an integer in [0, 168]';
  const c = m.cooldown;
  if (!(Number.isInteger(c.free) && c.free >= 0 && c.free <= 100)) return 'cooldown.free must be an integer in [0, 100]';
  if (!(Number.isInteger(c.windowH) && c.windowH >= 1 && c.windowH <= 720)) return 'cooldown.windowH must be an integer in [1, 720]';
  if (!c.stepsS.every((s) => Number.isInteger(s) && s > 0)) return 'cooldown.stepsS must be positive integers';
  if (c.blockS !== undefined && !(Number.isInteger(c.blockS) && c.blockS >= 0)) return 'cooldown.blockS must be a non-negative integer';
  return null;
}
