/**
 * The scoring function, signal by signal: honest behaviour scores at the floor and is allowed; each signal beyond its
 * allowance raises the score, names itself among the top reasons, and crosses hold / block where the model says.
 */
import t from 'tap';
import {
  ALLOWANCE_LIMITS, ALLOWANCES, cleanFeatures, cooldownFor, decide, DEFAULT_MODEL, FEATURES, nameAnswersExplaining, score, sharedNameAllowance,
  validateModel, validateModelPatch, type Features, type FraudModel,
} from '../src/fraud/scoring.ts';
import { countedName, normaliseName } from '../src/fraud/names.ts';

const m = DEFAULT_MODEL;
const f = (patch: Partial<Features>): Features => ({ ...cleanFeatures(), ...patch });
const floor = score(cleanFeatures(), m).score;

t.test('an honest user (one redemption, at noon, no stored signals) scores at the floor and is allowed for every prize kind', async (t) => {
  const s = score(cleanFeatures(), m);
  t.equal(s.reasons.length, 0);
  t.ok(s.score < 0.05);
  t.equal(s.modelVersion, m.version);
  for (const kind of [null, 'points', 'coupon', 'topup', 'cash', 'physical']) t.equal(decide(s, m, kind), 'allow', String(kind));
});

t.test('honest noise stays allowed: a few typos, a new follower, a 6-pack redeemed in a row, a couple sharing a phone, a late night', async (t) => {
  const s = score(f({ typos: 3, accountAgeMin: 2, redeemHour: 6, redeemDay: 6, sharedPhone: 2, hour: 2 }), m);
  t.equal(decide(s, m, 'cash'), 'allow', `score ${s.score}`);
});

const cases: Array<{ name: string; feature: (typeof FEATURES)[number]; mild: Partial<Features>; strong: Partial<Features>; strongDecision: 'hold' | 'block' }> = [
  { name: 'wrong codes (well-formed but unknown: guessing)', feature: 'unknownCodes', mild: { unknownCodes: 3 }, strong: { unknownCodes: 8 }, strongDecision: 'block' },
  { name: 'redemption velocity in the last hour (bought codes)', feature: 'redeemHour', mild: { redeemHour: 8 }, strong: { redeemHour: 14 }, strongDecision: 'hold' },
  { name: 'redemptions today (daily count)', feature: 'redeemDay', mild: { redeemDay: 15 }, strong: { redeemDay: 40 }, strongDecision: 'hold' },
  { name: 'one phone shared by several accounts (farm)', feature: 'sharedPhone', mild: { sharedPhone: 3 }, strong: { sharedPhone: 5 }, strongDecision: 'hold' },
  { name: 'one device (fingerprint on one IP) / unionid shared by several accounts', feature: 'sharedDevice', mild: { sharedDevice: 4 }, strong: { sharedDevice: 6 }, strongDecision: 'hold' },
  { name: 'one client IP shared by many accounts', feature: 'sharedIp', mild: { sharedIp: 9 }, strong: { sharedIp: 16 }, strongDecision: 'hold' },
  { name: 'identical golden answers across accounts (bots)', feature: 'answerPrint', mild: { answerPrint: 5 }, strong: { answerPrint: 9 }, strongDecision: 'hold' },
  { name: 'a flood of typos', feature: 'typos', mild: { typos: 10 }, strong: { typos: 16, wrongRate: 13 }, strongDecision: 'hold' },
  { name: 'wrong attempts per minute', feature: 'wrongRate', mild: { wrongRate: 6 }, strong: { wrongRate: 13, unknownCodes: 4 }, strongDecision: 'hold' },
  { name: 'codes from scattered packs within the hour (bought codes)', feature: 'scatteredCodes', mild: { scatteredCodes: 3 }, strong: { scatteredCodes: 4 }, strongDecision: 'hold' },
  { name: 'a block by score ended this week (a returning reseller)', feature: 'recentBlock', mild: { recentBlock: 1, hour: 12 }, strong: { recentBlock: 1, scatteredCodes: 3 }, strongDecision: 'hold' },
];

t.test('signal: print neighbourhoods — a six-pack and two single packs in an hour are honest; the fourth scattered code holds', async (t) => {
  t.equal(score(f({ scatteredCodes: 1, redeemHour: 6 }), m).reasons.some((r) => r.feature === 'scatteredCodes'), false, 'one multipack: nothing');
  t.equal(decide(score(f({ scatteredCodes: 2 }), m), m, 'cash'), 'allow', 'two packs bought on their own');
  t.equal(decide(score(f({ scatteredCodes: 3 }), m), m, 'cash'), 'allow', 'three: counted, still paid');
  t.equal(decide(score(f({ scatteredCodes: 4 }), m), m, 'points'), 'hold');
  t.equal(decide(score(f({ recentBlock: 1 }), m), m, 'points'), 'hold', 'after a block, a reviewer sees the prizes for a week');
});

for (const c of cases) {
  t.test(`signal: ${c.name} raises the score, is the top reason, and decides`, async (t) => {
    const mild = score(f(c.mild), m);
    t.ok(mild.score > floor, `mild ${mild.score} above the floor ${floor}`);
    t.equal(mild.reasons[0]?.feature, c.feature, 'named as the top reason');
    const strong = score(f(c.strong), m);
    t.ok(strong.score > mild.score, 'stronger signal, higher score');
    const d = decide(strong, m, 'points');
    t.ok(c.strongDecision === 'block' ? d === 'block' : d === 'hold' || d === 'block', `strong → ${d}`);
  });
}

t.test('signal: typed too fast counts, holds a prize for review, but typing speed alone never blocks (capped)', async (t) => {
  const s = score(f({ fastAnswers: 3 }), m);
  t.equal(s.reasons[0]?.feature, 'fastAnswers');
  t.same(score(f({ fastAnswers: 30 }), m).score, s.score, 'capped at three answers');
  t.equal(decide(score(f({ fastAnswers: 30 }), m), m, 'points'), 'hold', 'three instant answers: a reviewer looks');
  t.equal(decide(score(f({ fastAnswers: 1 }), m), m, 'cash'), 'allow', 'one quick answer is a fast typist');
  t.equal(decide(score(f({ fastAnswers: 2 }), m), m, 'points'), 'allow', 'two: points are paid');
  t.equal(decide(score(f({ fastAnswers: 2 }), m), m, 'cash'), 'hold', 'two: cash waits');
  t.equal(decide(score(f({ fastAnswers: 3, answerPrint: 6 }), m), m, 'points'), 'block', 'with identical answers across accounts it blocks');
});

t.test('signal: account age — a brand-new follower counts a little, an unknown age nothing', async (t) => {
  t.ok(score(f({ accountAgeMin: 1 }), m).score > floor);
  t.equal(score(f({ accountAgeMin: 1 }), m).reasons[0]?.feature, 'newAccount');
  t.equal(score(f({ accountAgeMin: null }), m).score, floor);
  t.equal(score(f({ accountAgeMin: 60 * 24 }), m).score, floor);
});

t.test('signal: time of day — 01:00–05:59 counts a little', async (t) => {
  t.equal(score(f({ hour: 3 }), m).reasons[0]?.feature, 'nightHour');
  t.equal(score(f({ hour: 6 }), m).score, floor);
  t.equal(score(f({ hour: 0 }), m).score, floor);
});

t.test('signal: campaign-wide burst and cash-only preference count', async (t) => {
  t.equal(score(f({ campaignBurst: 8 }), m).reasons[0]?.feature, 'campaignBurst');
  t.equal(score(f({ cashOnly: 1 }), m).reasons[0]?.feature, 'cashOnly');
});

t.test('signal: a blacklist hit (openid, unionid, phone, IP) blocks on its own', async (t) => {
  const s = score(f({ blacklisted: 1 }), m);
  t.equal(s.reasons[0]?.feature, 'blacklisted');
  t.equal(decide(s, m, null), 'block');
});

t.test('reasons: at most three, largest contribution first', async (t) => {
  const s = score(f({ unknownCodes: 4, redeemHour: 9, sharedPhone: 4, answerPrint: 5, hour: 3 }), m);
  t.equal(s.reasons.length, 3);
  t.ok(s.reasons[0]!.contribution >= s.reasons[1]!.contribution && s.reasons[1]!.contribution >= s.reasons[2]!.contribution);
});

t.test('decide: cash has a lower hold threshold than points; block is above both', async (t) => {
  const s = score(f({ unknownCodes: 3, accountAgeMin: 1, typos: 8 }), m);
  t.equal(decide(s, m, 'points'), 'allow', `score ${s.score}`);
  t.equal(decide(s, m, 'cash'), 'hold');
});

t.test('the score is pure and monotone in every signal', async (t) => {
  const base = f({ unknownCodes: 2, redeemHour: 7 });
  t.same(score(base, m), score({ ...base }, m));
  for (const k of ['unknownCodes', 'typos', 'wrongRate', 'redeemHour', 'redeemDay', 'sharedPhone', 'sharedDevice', 'answerPrint', 'fastAnswers', 'campaignBurst', 'scatteredCodes', 'recentBlock'] as const) {
    t.ok(score({ ...base, [k]: (base[k] as number) + 5 }, m).score >= score(base, m).score, k);
  }
});

t.test('cool-downs grow with each wrong code beyond the free ones', async (t) => {
  t.equal(cooldownFor(1, 0, m), 0);
  t.equal(cooldownFor(3, 0, m), 0);
  t.equal(cooldownFor(4, 0, m), 60);
  t.equal(cooldownFor(5, 1, m), 300);
  t.equal(cooldownFor(6, 2, m), 1800);
  t.equal(cooldownFor(50, 40, m), 86_400, 'the last step repeats');
});

t.test('model validation refuses broken edits', async (t) => {
  t.equal(validateModel(m), null);
  t.match(validateModel({ ...m, thresholds: { ...m.thresholds, hold: 0.95, block: 0.9 } }), /hold ≤ block/);
  t.match(validateModel({ ...m, weights: { ...m.weights, sharedPhone: Number.NaN } } as FraudModel), /weights.sharedPhone/);
  t.match(validateModel({ ...m, cooldown: { ...m.cooldown, stepsS: [60, -1] } }), /stepsS/);
  t.match(validateModel({ ...m, thresholds: { ...m.thresholds, lookback: 0 } }), /thresholds\.lookback must be in \(0, 1\]/);
  t.match(validateModel({ ...m, thresholds: { ...m.thresholds, lookbackH: 1.5 } }), /lookbackH must be an integer in \[0, 168\]/);
  t.match(validateModel({ ...m, thresholds: { ...m.thresholds, lookbackH: 169 } }), /lookbackH/);
  t.equal(validateModel({ ...m, thresholds: { ...m.thresholds, lookbackH: 0 } }), null, 'look-back off is a valid model');
});

const withWeights = (w: Partial<FraudModel['weights']>): FraudModel => ({ ...m, weights: { ...m.weights, ...w } });
const withAllowances = (a: Record<string, number>): FraudModel => ({ ...m, allowances: { ...m.allowances, ...a } } as FraudModel);

t.test('model validation: bias and every weight are bounded (finite is not enough: 1e308 − 1e308 is NaN)', async (t) => {
  t.match(validateModel(withWeights({ redeemHour: 1e308 })), /weights\.redeemHour must be a number in \[-100, 100\]/);
  t.match(validateModel(withWeights({ redeemDay: -1e308 })), /weights\.redeemDay must be a number in \[-100, 100\]/);
  t.match(validateModel(withWeights({ sharedIp: 100.5 })), /weights\.sharedIp/);
  t.equal(validateModel(withWeights({ sharedIp: 100, typos: -100 })), null, 'the bounds themselves are allowed');
  t.match(validateModel({ ...m, bias: 51 }), /bias must be a number in \[-50, 50\]/);
  t.match(validateModel({ ...m, bias: -1e9 }), /bias/);
  t.equal(validateModel({ ...m, bias: -50 }), null);
  t.match(validateModel({ ...m, cap: 1e6 }), /cap must be a number in \[1, 100\]/);
});

t.test('model validation: each allowance has its range; an honest single redemption can never be flagged by an allowed model', async (t) => {
  for (const [k, v] of [
    ['redeemHour', 0], ['redeemDay', 0], ['redeemTotal', 0], ['scatteredCodes', 0], ['sharedPhone', 0], ['sharedDevice', 0], ['sharedIp', 0],
    ['answerPrint', 0], ['campaignBurst', 0.5], ['newOnDevice', 0], ['typos', 0], ['printSpan', 0],
  ] as const) {
    t.match(validateModel(withAllowances({ [k]: v })), new RegExp(`^allowances\\.${k} must be an? (integer|number) in \\[1, `), `${k} = ${v}`);
  }
  t.match(validateModel(withAllowances({ nightFrom: 24 })), /allowances\.nightFrom must be an integer in \[0, 23\]/);
  t.match(validateModel(withAllowances({ nightTo: -1 })), /allowances\.nightTo/);
  t.match(validateModel(withAllowances({ nightFrom: 1.5 })), /allowances\.nightFrom must be an integer/);
  t.match(validateModel(withAllowances({ redeemDay: 2.5 })), /allowances\.redeemDay must be an integer/, 'counts are integers');
  t.match(validateModel(withAllowances({ newAccountMin: 1e12 })), /allowances\.newAccountMin must be an integer in \[0, 43200\]/);
  t.match(validateModel(withAllowances({ redeemHour: 0 })), /this redemption/, 'the message says why the minimum is not 0');
  t.equal(validateModel(withAllowances({ redeemHour: 1.5, campaignBurst: 1.2, wrongRate: 2.5 })), null, 'rates may be fractional');
  t.equal(validateModel(withAllowances({ unknownCodes: 0, newAccountMin: 0, nightFrom: 0, nightTo: 0 })), null, 'zero where zero is honest');

  // The lowest model validateModel lets through: every allowance at its minimum, every weight at the top, bias too.
  const lowest: FraudModel = {
    ...m, bias: 50, weights: Object.fromEntries(FEATURES.map((k) => [k, 100])) as FraudModel['weights'],
    allowances: Object.fromEntries(ALLOWANCES.map((k) => [k, ALLOWANCE_LIMITS[k].min])) as unknown as FraudModel['allowances'],
  };
  lowest.allowances.nightFrom = 1; lowest.allowances.nightTo = 6;
  t.equal(validateModel(lowest), null);
  const flat: FraudModel = { ...lowest, bias: -4 };
  const honest = { ...cleanFeatures(), sharedPhone: 1, sharedDevice: 1, sharedIp: 1, answerPrint: 1, newOnDevice: 1, sharedName: 2, nameAnswers: 0 };
  t.same(score(honest, flat).reasons, [], 'one redemption, one account on its phone, device and IP, its own answers, a namesake: nothing counts');
});

t.test('model validation: hold thresholds by kind only for prize kinds; cool-down counts', async (t) => {
  const byKind = (h: Record<string, number>) => ({ ...m, thresholds: { ...m.thresholds, holdByKind: { ...m.thresholds.holdByKind, ...h } } }) as FraudModel;
  t.match(validateModel(byKind({ constructor: 0.3 })), /thresholds\.holdByKind\.constructor is not a prize kind/);
  t.match(validateModel(byKind({ gold: 0.3 })), /holdByKind\.gold is not a prize kind \(points, coupon, topup, cash, physical\)/);
  t.equal(validateModel(byKind({ physical: 0.3 })), null);
  t.match(validateModel({ ...m, cooldown: { ...m.cooldown, windowH: 0 } }), /cooldown\.windowH/);
  t.match(validateModel({ ...m, cooldown: { ...m.cooldown, free: -1 } }), /cooldown\.free/);
});

t.test('score: a model whose z overflows (saved before the bounds) scores 1 and never allows a heavy user', async (t) => {
  const broken = withWeights({ redeemHour: 1e308, redeemDay: -1e308 });
  const heavy = f({ redeemHour: 30, redeemDay: 40 });
  const s = score(heavy, broken);
  t.equal(s.score, 1, 'Infinity − Infinity is NaN: treated as 1');
  t.equal(s.sharingOnly, false);
  for (const kind of [null, 'points', 'cash']) t.not(decide(s, broken, kind), 'allow', String(kind));
  t.ok(s.reasons.every((r) => Number.isFinite(r.contribution)), 'reasons stay finite (they are stored as JSON)');
  t.equal(score(f({ redeemHour: 30 }), withWeights({ redeemHour: 1e308 })).score, 1, '+Infinity: 1');
  t.equal(score(f({ redeemDay: 40 }), withWeights({ redeemDay: -1e308 })).score, 1, '−Infinity: not a number to trust, 1');
  t.equal(score(cleanFeatures(), broken).score, floor, 'a user without those signals scores as before');
  t.not(decide({ ...s, score: Number.NaN }, m, 'points'), 'allow', 'decide: a NaN score is not a pass');
});

t.test('cost: scoring stays in the microseconds', async (t) => {
  const vectors = Array.from({ length: 1000 }, (_, i) => f({ unknownCodes: i % 5, redeemHour: (i % 9) + 1, sharedPhone: i % 4, hour: i % 24 }));
  const start = process.hrtime.bigint();
  let sink = 0;
  for (let r = 0; r < 50; r++) for (const v of vectors) sink += score(v, m).score;
  const perCallUs = Number(process.hrtime.bigint() - start) / 1000 / 50_000;
  t.ok(sink > 0);
  t.ok(perCallUs < 50, `${perCallUs.toFixed(2)} µs per score()`);
});

t.test('shared identifiers: a family on one phone and a busy wifi IP stay allowed; an IP alone weighs far less than a device', async (t) => {
  // Three accounts on one phone, eight on one IP (carrier NAT / office wifi): allowed, even for cash.
  const family = score(f({ sharedDevice: 2, sharedIp: 6 }), m);
  t.equal(family.reasons.length, 0, 'within both allowances: no contribution');
  t.equal(decide(score(f({ sharedDevice: 3, sharedIp: 8 }), m), m, 'cash'), 'allow');
  // The same excess of accounts counts much more on a device than on an IP.
  const onDevice = score(f({ sharedDevice: m.allowances.sharedDevice + 2 }), m).score;
  const onIp = score(f({ sharedIp: m.allowances.sharedIp + 2 }), m).score;
  t.ok(onDevice > onIp * 2, `device ${onDevice} vs IP ${onIp}`);
  t.equal(decide(score(f({ sharedIp: m.allowances.sharedIp + 4 }), m), m, 'points'), 'allow', 'an IP alone does not hold a points prize');
});

t.test('a farm (eight accounts on two phones behind one IP) is held for any prize once its accounts are seen', async (t) => {
  const s = score(f({ sharedDevice: 4, sharedIp: 8 }), m);
  t.equal(decide(s, m, 'points'), 'hold', `score ${s.score}`);
  t.equal(s.reasons[0]?.feature, 'sharedDevice');
  t.ok(s.reasons.some((r) => r.feature === 'sharedIp'));
  t.not(decide(s, m, 'points'), 'block', 'sharing alone never blocks');
});

t.test('a model saved before sharedIp existed (no allowance for it) scores it with the default allowance', async (t) => {
  const { sharedIp: _drop, ...allowances } = m.allowances;
  const old = { ...m, allowances } as unknown as FraudModel;
  t.equal(score(f({ sharedIp: 6 }), old).reasons.length, 0);
  t.equal(score(f({ sharedIp: 9 }), old).reasons[0]?.feature, 'sharedIp');
});

t.test('top-ups are held as early as cash: a seventh code within the hour holds a top-up or cash prize, not points; a six-pack holds nothing', async (t) => {
  const seventh = score(f({ redeemHour: 7, redeemDay: 7, redeemTotal: 7 }), m);
  t.equal(decide(seventh, m, 'topup'), 'hold', `score ${seventh.score}`);
  t.equal(decide(seventh, m, 'cash'), 'hold');
  t.equal(decide(seventh, m, 'points'), 'allow');
  const sixPack = score(f({ redeemHour: 6, redeemDay: 6, redeemTotal: 6 }), m);
  for (const kind of ['points', 'topup', 'cash']) t.equal(decide(sixPack, m, kind), 'allow', `${kind} ${sixPack.score}`);
});

t.test('sharing alone holds but never blocks; with another signal strong enough it blocks', async (t) => {
  const farm = score(f({ sharedDevice: 9, sharedIp: 20, newOnDevice: 8 }), m);
  t.ok(farm.score >= m.thresholds.block, `score ${farm.score} is past the block threshold`);
  t.equal(farm.sharingOnly, true);
  t.equal(decide(farm, m, 'points'), 'hold', 'a reviewer decides');
  const guessingFarm = score(f({ sharedDevice: 9, unknownCodes: 8 }), m);
  t.equal(guessingFarm.sharingOnly, false);
  t.equal(decide(guessingFarm, m, 'points'), 'block');
  t.equal(score(f({ unknownCodes: 8 }), m).sharingOnly, false, 'no sharing signal: nothing to discount');
});

t.test('signal: new accounts on one phone within a day — a partner counts a little, the third holds (capped: never blocks alone)', async (t) => {
  t.equal(score(f({ newOnDevice: 1 }), m).reasons.length, 0, 'the owner');
  t.equal(decide(score(f({ newOnDevice: 2, sharedDevice: 2 }), m), m, 'cash'), 'allow', 'the owner and a partner');
  const third = score(f({ newOnDevice: 3, sharedDevice: 3 }), m);
  t.ok(third.reasons.some((r) => r.feature === 'newOnDevice'), 'named among the reasons');
  t.equal(decide(third, m, 'points'), 'hold');
  t.same(score(f({ newOnDevice: 30 }), m).score, score(f({ newOnDevice: 3 }), m).score, 'capped at two beyond the allowance');
  t.equal(decide(score(f({ newOnDevice: 30, sharedDevice: 30 }), m), m, 'points'), 'hold', 'a device alone never blocks');
});

t.test('signal: a shared name — beyond what chance explains it holds alone, never blocks alone; the excess is over a frequency-aware allowance', async (t) => {
  // Few names typed in the window (the simulation's scale): two namesakes are chance, a third is not.
  t.equal(sharedNameAllowance(10, 0.001), 2);
  t.equal(score(f({ sharedName: 2, nameAnswers: 5 }), m).reasons.length, 0, 'two namesakes never count');
  const third = score(f({ sharedName: 3, nameAnswers: 5 }), m);
  t.equal(third.reasons[0]?.feature, 'sharedName', 'named as the top reason');
  t.equal(third.reasons[0]?.contribution, m.weights.sharedName, 'an excess of one over the allowance');
  for (const kind of ['points', 'topup', 'cash']) t.equal(decide(third, m, kind), 'hold', `alone it holds ${kind}`);
  // However large the cluster, a name alone never blocks (namesakes of a farm's name are people too).
  const big = score(f({ sharedName: 60, nameAnswers: 60 }), m);
  t.ok(big.score >= m.thresholds.block, `score ${big.score} is past the block threshold`);
  t.equal(big.sharingOnly, true);
  t.equal(decide(big, m, 'points'), 'hold', 'a reviewer decides');
  t.equal(decide(score(f({ sharedName: 5, nameAnswers: 5, unknownCodes: 8 }), m), m, 'points'), 'block', 'with guessing it blocks');
  t.ok(score(f({ sharedName: 6, nameAnswers: 5 }), m).score > third.score, 'more namesakes, higher score');
});

t.test('shared name: the allowance rises with the names typed in the window (Poisson tail of the most common name\'s share)', async (t) => {
  // λ = names × share; the allowance is the smallest k ≥ 2 with P(X ≥ k | λ) < 1e-4.
  const expected: Array<[number, number]> = [[1, 2], [14, 2], [15, 3], [50, 3], [100, 4], [1000, 7], [3000, 12], [10_000, 25]];
  for (const [names, allowance] of expected) t.equal(sharedNameAllowance(names, 0.001), allowance, `${names} names in the window`);
  let previous = 0;
  const dips: number[] = [];
  for (let n = 0; n <= 400_000; n += n < 1000 ? 7 : 997) {
    const a = sharedNameAllowance(n, 0.001);
    if (a < previous) dips.push(n);
    previous = a;
  }
  t.same(dips, [], 'monotone in the volume, across the switch to the normal quantile (λ = 200)');
  t.ok(sharedNameAllowance(400_000, 0.001) >= 400 + 3.719 * 20, 'large volumes: at least the normal quantile');
  t.equal(score(f({ sharedName: 3, nameAnswers: 20 }), m).reasons.length, 0, 'three namesakes among 20 names: chance');
  t.equal(score(f({ sharedName: 4, nameAnswers: 20 }), m).reasons[0]?.feature, 'sharedName', 'four: not');
  t.equal(score(f({ sharedName: 12, nameAnswers: 3000 }), m).reasons.length, 0, '1,500 names an hour: twelve namesakes in two hours are chance');
  t.equal(score(f({ sharedName: 13, nameAnswers: 3000 }), m).reasons[0]?.feature, 'sharedName');
  t.equal(score(f({ sharedName: 6, nameAnswers: 188 }), m).reasons[0]?.feature, 'sharedName', '… six in 7.5 minutes (188 names) are not');
  // A larger share (ops: a regional campaign) raises it too.
  const regional = withAllowances({ sharedNameShare: 0.01 });
  t.equal(score(f({ sharedName: 4, nameAnswers: 20 }), regional).reasons.length, 0);
  // The bounded count: below `nameAnswersExplaining` names the cluster counts, from it on it does not.
  for (const accounts of [3, 4, 5, 8, 13, 40]) {
    const n = nameAnswersExplaining(accounts, 0.001);
    t.ok(sharedNameAllowance(n - 1, 0.001) < accounts && sharedNameAllowance(n, 0.001) >= accounts, `${accounts} accounts: chance from ${n} names`);
  }
  t.equal(nameAnswersExplaining(2, 0.001), 0, 'two accounts: chance at any volume');
});

t.test('shared name: the share and the window are edited as allowances, within their ranges', async (t) => {
  t.equal(validateModelPatch({ allowances: { sharedNameShare: 0.002, sharedNameWindowMin: 60 } }), null);
  t.match(validateModelPatch({ allowances: { sharedNameShare: 0 } }), /allowances\.sharedNameShare must be a number in \[0\.00001, 0\.1\]/);
  t.match(validateModelPatch({ allowances: { sharedNameShare: 0.5 } }), /sharedNameShare/);
  t.match(validateModelPatch({ allowances: { sharedNameWindowMin: 0 } }), /allowances\.sharedNameWindowMin must be an integer in \[1, 10080\]/);
  t.match(validateModelPatch({ allowances: { sharedNameWindowMin: 90.5 } }), /must be an integer/);
  const { sharedNameShare: _s, ...allowances } = m.allowances;
  const old = { ...m, allowances } as unknown as FraudModel;
  t.equal(score(f({ sharedName: 3, nameAnswers: 5 }), old).reasons[0]?.feature, 'sharedName', 'a model saved before the allowance existed uses the default');
});

t.test('names: normalised (spaces, width, case) and generic forms not counted', async (t) => {
  t.equal(normaliseName('  张  伟 '), '张伟');
  t.equal(normaliseName('ＺＨＡＮＧ　Wei'), 'zhang wei');
  t.equal(normaliseName('艾力・买买提'), '艾力·买买提');
  for (const name of ['张伟', '王丽丽', '欧阳娜娜', 'Zhang Wei', '艾力·买买提']) t.ok(countedName(name), name);
  for (const name of ['张', 'a', '王先生', '欧阳女士', '李小姐', '刘老师', '王总', '李哥', '张姐', '小王', '老李', '阿强', '丽丽', '先生', '美女', 'tony', 'Kevin', '匿名']) {
    t.equal(countedName(name), null, `${name}: generic`);
  }
});
