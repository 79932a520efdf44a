/**
 * Editing the anti-fraud model through the ops API (`POST /api/ops/fraud/models`): every out-of-range or unknown
 * field is a 400 naming it and saves nothing; a good edit still saves the next version; a version saved before the
 * limits existed keeps loading, and its next edit must bring it within range.
 */
import t from 'tap';
import { sql } from 'drizzle-orm';
import { DEFAULT_MODEL } from '../src/fraud/scoring.ts';
import { adminHeaders, buildTestApp } from './helpers.ts';

async function setup(t: Parameters<typeof buildTestApp>[0]) {
  const ctx = await buildTestApp(t, { env: { FRAUD_ENABLED: 'true', FRAUD_CACHE_TTL_MS: '0' } });
  const admin = await adminHeaders(ctx.app);
  const api = (method: 'GET' | 'POST', url: string, payload?: unknown) =>
    ctx.app.inject({ method, url, headers: admin, ...(payload === undefined ? {} : { payload: payload as object }) });
  return { ...ctx, api };
}

const BAD: Array<{ edit: Record<string, unknown>; field: RegExp; why: string }> = [
  { edit: { weights: { redeemHour: 1e308, redeemDay: -1e308 } }, field: /weights\.redeemHour must be a number in \[-100, 100\]/, why: 'weights overflowing z (NaN → allow)' },
  { edit: { weights: { redeemDay: -101 } }, field: /weights\.redeemDay/, why: 'a weight below -100' },
  { edit: { bias: 1e300 }, field: /^bias must be a number in \[-50, 50\]/, why: 'an unbounded bias' },
  { edit: { bias: -51 }, field: /^bias/, why: 'a bias below -50' },
  { edit: { allowances: { redeemHour: 0 } }, field: /allowances\.redeemHour must be a number in \[1, /, why: 'every user flagged after one redemption' },
  { edit: { allowances: { redeemDay: 0 } }, field: /allowances\.redeemDay must be an integer in \[1, /, why: 'daily count 0' },
  { edit: { allowances: { redeemTotal: 0 } }, field: /allowances\.redeemTotal/, why: 'campaign count 0' },
  { edit: { allowances: { scatteredCodes: 0 } }, field: /allowances\.scatteredCodes/, why: 'one pack counted as scattered' },
  { edit: { allowances: { sharedPhone: 0 } }, field: /allowances\.sharedPhone/, why: 'the account itself counted as sharing' },
  { edit: { allowances: { sharedDevice: 0 } }, field: /allowances\.sharedDevice/, why: 'sharedDevice 0' },
  { edit: { allowances: { sharedIp: 0 } }, field: /allowances\.sharedIp/, why: 'sharedIp 0' },
  { edit: { allowances: { answerPrint: 0 } }, field: /allowances\.answerPrint/, why: 'answerPrint 0' },
  { edit: { allowances: { campaignBurst: 0 } }, field: /allowances\.campaignBurst/, why: 'a normal campaign rate counted as a burst' },
  { edit: { allowances: { printSpan: 0 } }, field: /allowances\.printSpan must be an integer in \[1, /, why: 'every code its own neighbourhood' },
  { edit: { allowances: { nightFrom: 24 } }, field: /allowances\.nightFrom must be an integer in \[0, 23\]/, why: 'an hour that does not exist' },
  { edit: { allowances: { nightTo: 99 } }, field: /allowances\.nightTo/, why: 'nightTo 99' },
  { edit: { allowances: { redeemDay: 2.5 } }, field: /allowances\.redeemDay must be an integer/, why: 'a fractional count' },
  { edit: { allowances: { newAccountMin: 1e15 } }, field: /allowances\.newAccountMin/, why: 'an unbounded newAccountMin' },
  { edit: { allowances: { constructor: 3 } }, field: /allowances\.constructor is not an allowance \(unknownCodes, /, why: 'a prototype key' },
  { edit: { allowances: { toString: 3 } }, field: /allowances\.toString is not an allowance/, why: 'another prototype key' },
  { edit: { allowances: { redeemHours: 5 } }, field: /allowances\.redeemHours is not an allowance/, why: 'a misspelt allowance' },
  { edit: { weights: { constructor: 1 } }, field: /weights\.constructor is not a feature/, why: 'a prototype key as a weight' },
  { edit: { weights: { sharedPhon: 3 } }, field: /weights\.sharedPhon is not a feature/, why: 'a misspelt weight' },
];

t.test('each bad edit is a 400 naming the field and saves no version; a good edit saves the next version', async (t) => {
  const s = await setup(t);
  t.equal((await s.api('GET', '/api/ops/fraud/model')).json().version, 1);
  for (const b of BAD) {
    const res = await s.api('POST', '/api/ops/fraud/models', { ...b.edit, note: b.why });
    t.equal(res.statusCode, 400, res.statusCode === 400 ? b.why : `${b.why}: ${res.body.slice(0, 200)}`);
    t.match(res.json(), { code: 'VALIDATION', message: b.field }, b.why);
  }
  // holdByKind keys are prize kinds (the schema refuses the rest, also with a 400 naming the field).
  const kind = await s.api('POST', '/api/ops/fraud/models', { thresholds: { holdByKind: { constructor: 0.3 } } });
  t.equal(kind.statusCode, 400);
  t.match(kind.json().message, /holdByKind/);
  t.equal((await s.api('GET', '/api/ops/fraud/models')).json().length, 1, 'nothing saved');
  const audit = await s.database.query<{ n: number }>(sql`SELECT count(*)::int AS n FROM audit_log WHERE target_type = 'fraud_model'`);
  t.equal(Number(audit[0]!.n), 0, 'refused edits are not audited as saved');

  // A good edit (within every range, the bounds included) still saves the next version.
  const edit = {
    bias: -50, weights: { redeemHour: 100, redeemDay: -100, sharedIp: 0.5 },
    allowances: { redeemHour: 1, redeemDay: 1, redeemTotal: 1, scatteredCodes: 1, sharedPhone: 1, printSpan: 1, nightFrom: 0, nightTo: 23, campaignBurst: 1, unknownCodes: 0, newAccountMin: 0 },
    thresholds: { holdByKind: { physical: 0.4 } },
    note: 'edges',
  };
  const res = await s.api('POST', '/api/ops/fraud/models', edit);
  t.equal(res.statusCode, 201, res.statusCode === 201 ? 'saved' : res.body);
  t.equal(res.json().version, 2);
  const current = (await s.api('GET', '/api/ops/fraud/model')).json();
  t.equal(current.version, 2);
  t.match(current.model, { bias: -50, weights: { redeemHour: 100, redeemDay: -100, sharedIp: 0.5, blacklisted: DEFAULT_MODEL.weights.blacklisted }, allowances: edit.allowances, thresholds: { holdByKind: { physical: 0.4, cash: 0.25 } } });
  t.equal((await s.api('POST', '/api/ops/fraud/models', { allowances: { redeemHour: 2.5, wrongRate: 1.5 } })).statusCode, 201, 'rates may be fractional');
  t.equal((await s.api('GET', '/api/ops/fraud/models')).json().length, 3);
});

t.test('a version saved before the limits keeps loading; its next edit must bring it within range', async (t) => {
  const s = await setup(t);
  t.equal((await s.api('GET', '/api/ops/fraud/model')).json().version, 1, 'version 1 seeded');
  const { version: _v, ...body } = DEFAULT_MODEL;
  const old = { ...body, version: 2, weights: { ...body.weights, redeemHour: 1e308 }, allowances: { ...body.allowances, printSpan: 0 } };
  await s.database.query(sql`INSERT INTO fraud_models (version, model, note, created_by, created_at)
    VALUES (2, ${JSON.stringify(old)}::jsonb, 'saved before the limits', 'admin', now())`);
  const loaded = await s.api('GET', '/api/ops/fraud/model');
  t.equal(loaded.statusCode, 200);
  t.equal(loaded.json().version, 2, 'loads as saved');
  t.equal(loaded.json().model.weights.redeemHour, 1e308);

  const unrelated = await s.api('POST', '/api/ops/fraud/models', { thresholds: { hold: 0.6 } });
  t.equal(unrelated.statusCode, 422, 'the merged model is out of range');
  t.match(unrelated.json().message, /weights\.redeemHour must be a number in \[-100, 100\]/);
  t.equal((await s.api('POST', '/api/ops/fraud/models', { weights: { redeemHour: 1 } })).json().message, 'allowances.printSpan must be an integer in [1, 1000000] (below 1 every code is its own neighbourhood)');
  const fixed = await s.api('POST', '/api/ops/fraud/models', { weights: { redeemHour: 1 }, allowances: { printSpan: 50 }, note: 'back in range' });
  t.equal(fixed.statusCode, 201, fixed.statusCode === 201 ? 'saved' : fixed.body);
  t.equal(fixed.json().version, 3);
});

t.test('two edits at once are both kept: each saves a version, the later one merged over the earlier', async (t) => {
  const s = await setup(t);
  const [a, b] = await Promise.all([
    s.api('POST', '/api/ops/fraud/models', { weights: { typos: 1 }, note: 'A' }),
    s.api('POST', '/api/ops/fraud/models', { bias: -3, note: 'B' }),
  ]);
  t.same([a.statusCode, b.statusCode], [201, 201]);
  t.same([a.json().version, b.json().version].sort(), [2, 3], 'two versions saved');
  const latest = (await s.api('GET', '/api/ops/fraud/model')).json();
  t.equal(latest.version, 3);
  t.equal(latest.model?.weights?.typos ?? latest.weights?.typos, 1, "A's weight survives B's edit");
  t.equal(latest.model?.bias ?? latest.bias, -3, "B's bias survives A's edit");
});
