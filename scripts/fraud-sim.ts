/**
 * npm run fraud-sim [-- --seed N --honest N --scale F]
 *
 * Drives a mixed population through the public webhook (signed like WeChat, by the sandbox simulator) against the
 * real app built in process (PGlite in memory, or a scratch PostgreSQL database with DATABASE_URL), on a manual
 * clock shared by the app and the simulator: three simulated days run in seconds, yet rates, cool-downs and account
 * ages are real. The campaign, its prizes and its codes are created through the public ops API.
 *
 * Populations (what each does is described in docs/FRAUD.md):
 *   honest    real consumers: 1–3 sittings of a pack (15 % two packs bought separately), or a six-pack in one
 *             sitting, 8 % typo first, human typing pace, diverse answers, mostly daytime; top-up winners give their
 *             own phone (some couples share one)
 *   guesser   scripts holding a leaked list (10 % valid codes among well-formed random ones), 1–3 s apart,
 *             waiting out every cool-down they are told about
 *   farm      account farms: 8 accounts per phone, new follows, 6 bought codes each at human pace, top-ups to the
 *             farm's phone, answers from a few operator-typed names
 *   reseller  one account redeeming bought codes in bursts of 15 (20 s apart), bursts two hours apart
 *   bot       accounts answering the golden questions identically, instantly
 *
 * Prints, per pattern: prizes that would have been won, paid, held, blocked; for honest users how many ever saw a hold
 * or a block. "Blocked" prizes are expected values: refused attempts with a valid code × the campaign's win rate.
 * FRAUD_SIM_DEBUG=1 also lists every attack prize that was paid (who, when, what, the recorded risk).
 */
import { parse } from 'csv-parse/sync';
import { sql } from 'drizzle-orm';
import { manualClock } from '../server/src/platform/clock.ts';
import { generateCodes } from '../server/src/campaigns/codes.ts';
import { WeChatSimulator } from '../server/src/wechat/sandbox/simulator.ts';
import { adminHeaders, buildTestApp } from '../server/test/helpers.ts';
import { mpBindPhone, mpLogin } from '../server/test/mp-helpers.ts';

type Pattern = 'honest' | 'guesser' | 'farm' | 'reseller' | 'bot';

const args = new Map<string, string>();
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i]!.replace(/^--/, ''), process.argv[i + 1] ?? '');
if (process.argv.includes('--help')) {
  console.log('npm run fraud-sim [-- --seed N --honest N --scale F]');
  process.exit(0);
}

/* ---- a seeded PRNG (mulberry32): the same population every run ---- */
let seed = Number(args.get('seed') ?? 42) >>> 0;
const rnd = () => {
  seed = (seed + 0x6d2b79f5) >>> 0;
  let x = seed;
  x = Math.imul(x ^ (x >>> 15), x | 1);
  x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
  return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
};
const pick = <T>(xs: readonly T[]) => xs[Math.floor(rnd() * xs.length)]!;
const between = (a: number, b: number) => a + rnd() * (b - a);

const SCALE = Number(args.get('scale') ?? 1);
const N = {
  honest: Math.round(Number(args.get('honest') ?? 400) * SCALE),
  guesser: Math.max(1, Math.round(5 * SCALE)),
  farm: Math.max(1, Math.round(3 * SCALE)),
  reseller: Math.max(1, Math.round(4 * SCALE)),
  bot: Math.max(1, Math.round(30 * SCALE)),
};
const FARM_SIZE = 8;

const SURNAMES = ['王', '李', '张', '刘', '陈', '杨', '黄', '赵', '吴', '周', '徐', '孙', '马', '朱', '胡', '郭', '何', '高', '林', '罗', '郑', '梁', '谢', '宋', '唐', '许', '韩', '冯', '邓', '曹'];
const GIVEN = ['伟', '芳', '娜', '敏', '静', '丽', '强', '磊', '军', '洋', '勇', '艳', '杰', '娟', '涛', '明', '超', '秀英', '霞', '平', '刚', '桂英', '建华', '文', '华', '红', '丹', '玲', '鹏', '浩'];
const CITIES: Array<[string, string]> = [['广东', '深圳'], ['广东', '广州'], ['浙江', '杭州'], ['江苏', '南京'], ['四川', '成都'], ['湖北', '武汉'], ['山东', '济南'], ['河南', '郑州'], ['福建', '厦门'], ['湖南', '长沙']];
const PRIZES = [
  { name: '50积分', kind: 'points', value: 50, weight: 30 },
  { name: '10元话费', kind: 'topup', value: 1000, weight: 10, totalStock: 3000 },
  { name: '现金红包 5元', kind: 'cash', value: 500, weight: 2, totalStock: 500 },
  { name: '谢谢参与', kind: 'thanks', weight: 58 },
];
const WIN_RATE = PRIZES.filter((p) => p.kind !== 'thanks').reduce((s, p) => s + p.weight, 0) / PRIZES.reduce((s, p) => s + p.weight, 0);

const teardowns: Array<() => unknown> = [];
const fakeT = { teardown: (fn: () => unknown) => void teardowns.push(fn) };

async function main() {
  const started = Date.now();
  // Shanghai 08:00 of the current day: the population's days start there.
  const start = new Date();
  start.setUTCHours(0, 0, 0, 0);
  const clock = manualClock(start);
  const ctx = await buildTestApp(fakeT, { clock, env: { FRAUD_ENABLED: 'true', RULES_CACHE_TTL_MS: '2000', FRAUD_CACHE_TTL_MS: '2000' } });
  const { app, services } = ctx;
  const admin = await adminHeaders(app);
  const api = async (method: 'GET' | 'POST', url: string, payload?: unknown) => {
    const res = await app.inject({ method, url, headers: admin, ...(payload === undefined ? {} : { payload: payload as object }) });
    if (res.statusCode >= 300) throw new Error(`${method} ${url}: ${res.statusCode} ${res.body}`);
    return res;
  };
  const DAY = 86_400_000;
  const campaign = (await api('POST', '/api/ops/campaigns', {
    name: '开盖扫码赢好礼', startsAt: new Date(start.getTime() - DAY).toISOString(), endsAt: new Date(start.getTime() + 30 * DAY).toISOString(),
    unlockMin: 2, prizes: PRIZES,
    questions: [
      { key: 'name', kind: 'text', prompt: '请问怎么称呼您？', required: true, minLength: 2, maxLength: 20 },
      { key: 'occupation', kind: 'choice', prompt: '您的职业是？', options: ['学生', '上班族', '个体经营', '其他'] },
      { key: 'region', kind: 'region', prompt: '您在哪个城市？' },
    ],
  })).json();
  // A print run much larger than what the population redeems: a consumer's pack carries a random code of it.
  const needed = 10 * (N.honest * 3 + N.guesser * 20 + N.farm * FARM_SIZE * 6 + N.reseller * 60 + N.bot * 2 + 200);
  const batch = (await api('POST', `/api/ops/campaigns/${campaign.id}/batches`, { count: needed, name: '模拟批次' })).json();
  await api('POST', `/api/ops/campaigns/${campaign.id}/publish`);
  const csv = (await api('GET', `/api/ops/batches/${batch.id}/codes.csv`)).body;
  const pool = (parse(csv.replace(/^\uFEFF/, ''), { columns: true }) as Array<{ code: string }>).map((r) => r.code);
  // Codes as they reach people. The batch's CSV is in print order, and packs leave the line in that order: a multipack
  // (six packs wrapped together off the line) carries print neighbours, while a pack bought on its own, anywhere, is a
  // random code of the run. Bought codes (resellers, farms) were harvested from many people's packs: random too.
  const used = new Uint8Array(pool.length);
  const takeCode = () => {
    let k = Math.floor(rnd() * pool.length);
    while (used[k]) k = (k + 1) % pool.length;
    used[k] = 1;
    return pool[k]!;
  };
  const takeRun = (n: number) => {
    for (;;) {
      const k = Math.floor(rnd() * (pool.length - n));
      if (used.subarray(k, k + n).some((u) => u === 1)) continue;
      used.fill(1, k, k + n);
      return pool.slice(k, k + n);
    }
  };

  const sim = new WeChatSimulator({
    transport: {
      async post(pathAndQuery, body, contentType) {
        const res = await app.inject({ method: 'POST', url: pathAndQuery, payload: body, headers: { 'content-type': contentType } });
        return { status: res.statusCode, body: res.body };
      },
    },
    // Not reported to the sandbox one by one (speed): customer-service messages then wait in the outbox, which the
    // figures do not depend on (a top-up's phone is recognised from the chat by the fulfilment interceptor).
    token: ctx.config.wechat.token, appId: ctx.config.wechat.appId, now: () => clock.now().getTime(),
  });

  /*
   * ---- actors on the shared clock ----
   * Every person or script is an actor that runs until it waits (`sleep`, `waitUntil`); then the actor whose wake-up
   * time is earliest resumes, with the clock set to that time. One actor runs at a time (deterministic for a seed),
   * and a script waiting out a 24-hour cool-down waits on its own: the others go on at their own times.
   */
  const timers: Array<{ at: number; seq: number; wake: () => void }> = [];
  let seq = 0;
  let endTurn: (() => void) | null = null;
  let failure: unknown;
  const passTurn = () => {
    const done = endTurn;
    endTurn = null;
    done?.();
  };
  const waitUntil = (time: number) => new Promise<void>((resume) => {
    timers.push({ at: Math.max(time, clock.now().getTime()), seq: seq++, wake: resume });
    passTurn();
  });
  const sleep = (ms: number) => waitUntil(clock.now().getTime() + ms);
  const at = (time: number, run: () => Promise<void>) => {
    timers.push({ at: time, seq: seq++, wake: () => void run().catch((err) => (failure ??= err)).finally(passTurn) });
  };

  const pattern = new Map<string, Pattern>();
  const sawRisk = new Set<string>();
  /** What each user at risk first saw (FRAUD_SIM_DEBUG). */
  const riskWhy = new Map<string, string>();
  const saw = (openid: string, why: string) => {
    sawRisk.add(openid);
    if (!riskWhy.has(openid)) riskWhy.set(openid, why);
  };
  const stats: Record<Pattern, { accounts: number; validAttempts: number; blockedValid: number; messages: number }> = {
    honest: { accounts: 0, validAttempts: 0, blockedValid: 0, messages: 0 }, guesser: { accounts: 0, validAttempts: 0, blockedValid: 0, messages: 0 },
    farm: { accounts: 0, validAttempts: 0, blockedValid: 0, messages: 0 }, reseller: { accounts: 0, validAttempts: 0, blockedValid: 0, messages: 0 },
    bot: { accounts: 0, validAttempts: 0, blockedValid: 0, messages: 0 },
  };
  const RISK = /审核中|暂时无法参与兑奖|后再试|操作过于频繁/;
  const REFUSED = /暂时无法参与兑奖|错误兑奖码的次数较多|操作过于频繁/;

  async function send(openid: string, text: string): Promise<string> {
    const p = pattern.get(openid)!;
    stats[p].messages++;
    const r = await sim.text(openid, text);
    const content = r.content ?? '';
    if (RISK.test(content)) saw(openid, `chat: ${content.slice(0, 40)}`);
    if (/话费】/.test(content) && !/审核中/.test(content)) phoneWanted.add(openid);
    return content;
  }
  const phoneWanted = new Set<string>();
  const phones = new Map<string, string>();
  const newPhone = () => `13${Math.floor(between(0, 9.99))}${String(Math.floor(rnd() * 1e8)).padStart(8, '0')}`;

  /** A valid code; counts a refused attempt as a blocked (expected) prize. */
  async function redeem(openid: string, code: string): Promise<string> {
    const p = pattern.get(openid)!;
    stats[p].validAttempts++;
    const reply = await send(openid, code);
    if (REFUSED.test(reply) && !/未找到/.test(reply)) stats[p].blockedValid++;
    return reply;
  }

  /** Answers what is asked, one question at a time, `delay()` ms apart; then gives the phone if a top-up asks for it. */
  async function answerAll(openid: string, reply: string, answers: { name: string; occupation: string; city: [string, string] }, delay: () => number, t0: number): Promise<number> {
    let t = t0;
    for (let guard = 0; guard < 6 && /第\d题|哪个城市/.test(reply); guard++) {
      t += delay();
      await waitUntil(t);
      if (/称呼/.test(reply)) reply = await send(openid, answers.name);
      else if (/职业/.test(reply)) reply = await send(openid, answers.occupation);
      else if (/哪个城市/.test(reply)) reply = await send(openid, answers.city[1]);
      else if (/城市/.test(reply)) reply = await send(openid, answers.city[0]);
      else reply = await send(openid, '跳过');
    }
    return t;
  }

  async function givePhoneIfAsked(openid: string) {
    if (!phoneWanted.has(openid)) return;
    phoneWanted.delete(openid);
    await services.fulfilment.idle();
    await sleep(Math.round(between(15_000, 90_000)));
    await send(openid, phones.get(openid) ?? newPhone());
    await services.fulfilment.idle();
  }

  /* ---- the mini program: the same people through /api/mp (login, redeem, the form, the draw) ---- */
  const OCCUPATIONS = ['学生', '上班族', '个体经营', '其他'];
  /** Phone models as the mini program describes them (x-mp-device): popular ones, shared by many honest people. */
  const MODELS = Array.from({ length: 14 }, (_, i) => [
    ['iPhone', 'Xiaomi', 'HUAWEI', 'OPPO', 'vivo', 'HONOR', 'iPhone'][i % 7], `M${100 + (i * 7) % 23}`, i % 2 ? 'Android_13' : 'iOS_17.5', i % 2 ? 'android' : 'ios',
    `${360 + (i % 3) * 30}x${780 + (i % 4) * 40}@3`, '8.0.49',
  ].join('|'));
  /** Carrier NAT / home broadband IPs of the honest mini-program users: several people behind one is normal. */
  const honestIps = Array.from({ length: 60 }, (_, i) => `117.136.${i % 40}.${10 + i}`);
  interface MpUser { mpOpenid: string; device: string; ip: string; token?: string; loggedAt?: number; phone?: string; bound?: boolean }
  const mpUsers = new Map<string, MpUser>();
  /** The person behind a mini-program openid (the server knows a mini-program user by that openid only). */
  const personOf = new Map<string, string>();
  /** The member's openid (the key of draws and fraud rows) is the mini-program openid: it belongs to the same pattern. */
  const addMp = (openid: string, u: MpUser) => {
    mpUsers.set(openid, u);
    pattern.set(u.mpOpenid, pattern.get(openid)!);
    personOf.set(u.mpOpenid, openid);
  };
  async function mpHeaders(openid: string) {
    const u = mpUsers.get(openid)!;
    // Sessions expire: log in again after a while, as wx.login does when the app is reopened.
    if (!u.token || clock.now().getTime() - (u.loggedAt ?? 0) > 30 * 60_000) {
      u.token = (await mpLogin(ctx, { openid: u.mpOpenid })).token;
      u.loggedAt = clock.now().getTime();
    }
    return { authorization: `Bearer ${u.token}`, 'x-mp-device': u.device, 'x-forwarded-for': u.ip };
  }
  async function mpCall(openid: string, url: string, payload: unknown = {}) {
    stats[pattern.get(openid)!].messages++;
    const res = await app.inject({ method: 'POST', url, headers: await mpHeaders(openid), payload: payload as object });
    return { status: res.statusCode, body: res.json() as any };
  }
  /** One valid code through the mini program: redeem, fill the form `formMs` later, draw; a top-up winner binds a phone. */
  async function mpRedeem(openid: string, code: string, answers: { name: string; occupation: string }, formMs: () => number): Promise<void> {
    const p = pattern.get(openid)!;
    stats[p].validAttempts++;
    let r = await mpCall(openid, '/api/mp/redemptions', { code });
    if (r.status !== 200) {
      if (r.status === 403 || /后再试|频繁/.test(r.body.message ?? '')) {
        saw(openid, `mp redeem ${r.status}: ${r.body.message ?? ''}`);
        if (r.status === 403) stats[p].blockedValid++;
      }
      return;
    }
    if (!r.body.unlocked) {
      const form: Record<string, string> = {};
      for (const q of r.body.questions as Array<{ key: string }>) {
        if (q.key === 'name') form.name = answers.name;
        if (q.key === 'occupation') form.occupation = OCCUPATIONS[Number(answers.occupation) - 1] ?? '其他';
      }
      await sleep(formMs());
      r = await mpCall(openid, `/api/mp/redemptions/${r.body.id}/answers`, { answers: form });
      if (r.status !== 200) return;
    }
    await sleep(between(1_000, 4_000));
    const d = await mpCall(openid, `/api/mp/redemptions/${r.body.id}/draw`);
    if (d.status !== 200) {
      if (d.status === 403) {
        saw(openid, 'mp draw 403');
        stats[p].blockedValid++;
      }
      return;
    }
    if (d.body.draw?.review === 'pending') saw(openid, 'mp draw held');
    const u = mpUsers.get(openid)!;
    if (d.body.draw?.next === 'topup_pending' && !u.bound && u.phone) {
      await sleep(between(10_000, 60_000));
      // One phone binds one member: a second account on a shared phone is refused (and the top-up waits).
      try {
        await mpBindPhone(ctx, (await mpHeaders(openid)).authorization.slice(7), u.phone);
        u.bound = true;
      } catch { /* refused: shared phone */ }
      await services.fulfilment.idle();
    }
  }

  const dayStart = (d: number) => start.getTime() + d * DAY;
  /** A daytime moment (Shanghai 08:00–23:00), rarely at night. */
  const activeTime = (d: number) => (rnd() < 0.03 ? dayStart(d) - 8 * 3_600_000 + between(17, 22) * 3_600_000 : dayStart(d) + between(0, 15) * 3_600_000);

  /* ---- honest consumers ---- */
  for (let i = 0; i < N.honest; i++) {
    const openid = `oHonest${i}`;
    pattern.set(openid, 'honest');
    stats.honest.accounts++;
    const answers = { name: pick(SURNAMES) + pick(GIVEN) + (rnd() < 0.4 ? pick(GIVEN) : ''), occupation: String(1 + Math.floor(rnd() * 4)), city: pick(CITIES) };
    if (rnd() < 0.06 && i > 0) phones.set(openid, phones.get(`oHonest${i - 1}`) ?? newPhone()); // a couple sharing a phone
    else phones.set(openid, newPhone());
    const r = rnd();
    const sessions = r < 0.6 ? 1 : r < 0.85 ? 2 : r < 0.95 ? 3 : 0; // 0: a six-pack in one sitting
    const human = () => between(4_000, 25_000);
    // 40 % use the mini program on their own phone (a popular model, a shared NAT IP); 5 % of those share the phone
    // and the wifi of the previous one (a family).
    const viaMp = rnd() < 0.4;
    if (viaMp) {
      const prev = [...mpUsers.entries()].reverse().find(([o]) => pattern.get(o) === 'honest')?.[1];
      const family = prev && rnd() < 0.05;
      addMp(openid, { mpOpenid: `oMPh${i}x${Math.floor(rnd() * 1e9)}`, device: family ? prev.device : pick(MODELS), ip: family ? prev.ip : pick(honestIps), phone: phones.get(openid)! });
    }
    const plan: Array<{ when: number; codes: number }> = sessions === 0
      ? [{ when: activeTime(Math.floor(rnd() * 3)), codes: 6 }]
      // 15 % of sittings bring two packs bought separately (two shops, a pack from home): two unrelated codes.
      : Array.from({ length: sessions }, (_, s) => ({ when: activeTime(Math.min(2, Math.floor(rnd() * 3) + s)), codes: rnd() < 0.15 ? -2 : 1 }));
    let first = true;
    for (const step of plan) {
      at(step.when, async () => {
        let t = clock.now().getTime();
        if (first) {
          first = false;
          await sim.subscribe(openid);
          t += between(20_000, 600_000);
        }
        const codes = step.codes === 6 ? takeRun(6) : Array.from({ length: Math.abs(step.codes) }, takeCode);
        for (const code of codes) {
          await waitUntil(t);
          if (viaMp) {
            if (rnd() < 0.08) {
              const k = Math.floor(rnd() * 12);
              await mpCall(openid, '/api/mp/redemptions', { code: code.slice(0, k) + (code[k] === 'A' ? 'B' : 'A') + code.slice(k + 1) });
              await sleep(between(10_000, 40_000));
            }
            await mpRedeem(openid, code, answers, () => 2 * human());
            t = clock.now().getTime() + between(40_000, 180_000);
            continue;
          }
          if (rnd() < 0.08) {
            // A misread character: the check character catches it; the person looks again and retypes.
            const k = Math.floor(rnd() * 12);
            const wrongChar = code[k] === 'A' ? 'B' : 'A';
            await send(openid, code.slice(0, k) + wrongChar + code.slice(k + 1));
            t += between(10_000, 40_000);
            await waitUntil(t);
          }
          const reply = await redeem(openid, code);
          t = await answerAll(openid, reply, answers, human, t);
          await givePhoneIfAsked(openid);
          t = clock.now().getTime() + between(40_000, 180_000);
        }
        first = false;
      });
    }
  }

  /* ---- guessing scripts with a leaked list ---- */
  for (let i = 0; i < N.guesser; i++) {
    const openid = `oGuess${i}`;
    pattern.set(openid, 'guesser');
    stats.guesser.accounts++;
    const leaked = Array.from({ length: 20 }, takeCode);
    const list = [...generateCodes(180), ...leaked].sort(() => rnd() - 0.5);
    const answers = { name: pick(SURNAMES) + pick(GIVEN), occupation: String(1 + Math.floor(rnd() * 4)), city: pick(CITIES) };
    at(activeTime(0), async () => {
      await sim.subscribe(openid);
      let t = clock.now().getTime() + 5_000;
      const valid = new Set(leaked);
      for (const code of list) {
        await waitUntil(t);
        const reply = valid.has(code) ? await redeem(openid, code) : await send(openid, code);
        const wait = /请于 (\d{4}-\d\d-\d\d \d\d:\d\d) 后再试/.exec(reply);
        if (wait) {
          // The script reads the cool-down and waits it out (a dumb one would just burn its list faster).
          t = Date.parse(`${wait[1]!.replace(' ', 'T')}:00+08:00`) + 61_000;
          if (t > start.getTime() + 3 * DAY) break;
          continue;
        }
        t = await answerAll(openid, reply, answers, () => between(500, 1500), clock.now().getTime());
        await givePhoneIfAsked(openid);
        t = clock.now().getTime() + between(1_000, 3_000);
      }
    });
  }

  /* ---- account farms ---- */
  // Farms 0 and 1 work through the mini program: the operator logs the 8 accounts in on two phones (the dual-app /
  // account-switching setup), all behind the farm's one broadband IP, and binds a distinct SIM's phone to each (the
  // platform refuses a shared one). Farm 2 works in chat and types the farm's one phone for every top-up.
  for (let f = 0; f < N.farm; f++) {
    const phone = newPhone();
    const names = [pick(SURNAMES) + pick(GIVEN), pick(SURNAMES) + pick(GIVEN), pick(SURNAMES) + pick(GIVEN)];
    const farmDay = Math.floor(rnd() * 2);
    const viaMp = f % 3 !== 2;
    const devices = [pick(MODELS), pick(MODELS)];
    const farmIp = `27.${100 + f}.${Math.floor(rnd() * 250)}.${Math.floor(rnd() * 250)}`;
    const setupAt = dayStart(farmDay) + between(0, 2) * 3_600_000;
    for (let a = 0; a < FARM_SIZE; a++) {
      const openid = `oFarm${f}_${a}`;
      pattern.set(openid, 'farm');
      stats.farm.accounts++;
      phones.set(openid, viaMp ? newPhone() : phone);
      const answers = { name: pick(names), occupation: String(1 + Math.floor(rnd() * 4)), city: pick(CITIES) };
      const codes = Array.from({ length: 6 }, takeCode);
      if (viaMp) addMp(openid, { mpOpenid: `oMPf${f}_${a}x${Math.floor(rnd() * 1e9)}`, device: devices[a % 2]!, ip: farmIp, phone: phones.get(openid)! });
      for (let s = 0; s < 3; s++) {
        at(setupAt + s * 0.5 * DAY + (s === 0 ? 0 : between(0, 2) * 3_600_000) + a * between(60_000, 300_000), async () => {
          if (s === 0 && !viaMp) await sim.subscribe(openid);
          let t = clock.now().getTime() + between(30_000, 120_000);
          for (const code of codes.slice(s * 2, s * 2 + 2)) {
            await waitUntil(t);
            if (viaMp) {
              await mpRedeem(openid, code, answers, () => between(4_000, 12_000));
            } else {
              const reply = await redeem(openid, code);
              t = await answerAll(openid, reply, answers, () => between(2_000, 6_000), t);
              await givePhoneIfAsked(openid);
            }
            t = clock.now().getTime() + between(30_000, 120_000);
          }
        });
      }
    }
  }

  /* ---- resellers: bursts of bought codes ---- */
  for (let i = 0; i < N.reseller; i++) {
    const openid = `oReseller${i}`;
    pattern.set(openid, 'reseller');
    stats.reseller.accounts++;
    const answers = { name: pick(SURNAMES) + pick(GIVEN), occupation: String(1 + Math.floor(rnd() * 4)), city: pick(CITIES) };
    const t0 = activeTime(0);
    // Half of them use the mini program (their own phone, a home IP): scanning is faster than typing codes.
    const viaMp = i % 2 === 1;
    if (viaMp) addMp(openid, { mpOpenid: `oMPr${i}x${Math.floor(rnd() * 1e9)}`, device: pick(MODELS), ip: pick(honestIps), phone: newPhone() });
    for (let b = 0; b < 4; b++) {
      const codes = Array.from({ length: 15 }, takeCode);
      at(t0 + b * 2 * 3_600_000, async () => {
        let t = clock.now().getTime();
        for (const code of codes) {
          await waitUntil(t);
          if (viaMp) {
            await mpRedeem(openid, code, answers, () => between(8_000, 20_000));
            t = clock.now().getTime() + between(15_000, 25_000);
            continue;
          }
          const reply = await redeem(openid, code);
          if (process.env.FRAUD_SIM_DEBUG) console.error(openid, b, new Date(clock.now().getTime() + 8 * 3_600_000).toISOString().slice(5, 16), reply.replace(/\n/g, ' ').slice(0, 40));
          t = await answerAll(openid, reply, answers, () => between(4_000, 10_000), t);
          await givePhoneIfAsked(openid);
          t = clock.now().getTime() + between(15_000, 25_000);
        }
      });
    }
  }

  /* ---- bots: identical instant answers ---- */
  for (let i = 0; i < N.bot; i++) {
    const openid = `oBot${i}`;
    pattern.set(openid, 'bot');
    stats.bot.accounts++;
    const answers = { name: '张伟', occupation: '2', city: ['广东', '深圳'] as [string, string] };
    const codes = [takeCode(), takeCode()];
    at(dayStart(1) + i * between(60_000, 240_000), async () => {
      await sim.subscribe(openid);
      let t = clock.now().getTime() + 3_000;
      for (const code of codes) {
        await waitUntil(t);
        const reply = await redeem(openid, code);
        t = await answerAll(openid, reply, answers, () => between(200, 800), t);
        await givePhoneIfAsked(openid);
        t = clock.now().getTime() + between(5_000, 20_000);
      }
    });
  }

  /* ---- run ---- */
  while (timers.length > 0 && failure === undefined) {
    let k = 0;
    for (let j = 1; j < timers.length; j++) if (timers[j]!.at < timers[k]!.at || (timers[j]!.at === timers[k]!.at && timers[j]!.seq < timers[k]!.seq)) k = j;
    const e = timers.splice(k, 1)[0]!;
    clock.set(new Date(Math.max(e.at, clock.now().getTime())));
    await new Promise<void>((done) => {
      endTurn = done;
      e.wake();
    });
  }
  if (failure !== undefined) throw failure;
  await services.bot.drain();
  await services.fulfilment.idle();

  /* ---- results ---- */
  const rows = await ctx.database.query<{ openid: string; won: number; held: number }>(sql`
    SELECT d.openid, count(*) FILTER (WHERE d.outcome = 'won')::int AS won,
      count(*) FILTER (WHERE d.outcome = 'won' AND EXISTS (SELECT 1 FROM fraud_reviews r WHERE r.draw_id = d.id))::int AS held
    FROM draws d GROUP BY d.openid`);
  const by: Record<Pattern, { won: number; held: number }> = { honest: { won: 0, held: 0 }, guesser: { won: 0, held: 0 }, farm: { won: 0, held: 0 }, reseller: { won: 0, held: 0 }, bot: { won: 0, held: 0 } };
  if (process.env.FRAUD_SIM_DEBUG) {
    // Every attack prize that was paid: who, when (Shanghai time), what, and the risk the redemption recorded.
    // With the user's stored signals at the end of the run (what a look-back could have seen, had it run then).
    const paid = await ctx.database.query<{ openid: string; at: string; kind: string; risk: unknown; n: number; job: string | null; st: unknown }>(sql`
      SELECT d.openid, d.created_at::text AS at, p.kind, r.risk,
        (SELECT count(*)::int FROM draws d2 WHERE d2.openid = d.openid AND d2.id <= d.id) AS n,
        (SELECT f.state FROM fulfilments f WHERE f.source_key = 'draw:' || d.id) AS job,
        (SELECT jsonb_build_object('phone', s.shared_phone, 'name', s.shared_name, 'device', s.shared_device, 'ip', s.shared_ip, 'flagged', s.flagged, 'at', s.updated_at::text)
           FROM fraud_user_state s WHERE s.openid = d.openid) AS st
      FROM draws d JOIN campaign_prizes p ON p.id = d.prize_id JOIN redemptions r ON r.id = d.redemption_id
      WHERE d.outcome = 'won' AND NOT EXISTS (SELECT 1 FROM fraud_reviews v WHERE v.draw_id = d.id) ORDER BY d.openid, d.id`);
    for (const r of paid) if (pattern.get(r.openid) && pattern.get(r.openid) !== 'honest') console.error('paid', pattern.get(r.openid), r.openid, `#${r.n}`, r.at.slice(5, 19), r.kind, r.job ?? '', JSON.stringify(r.risk), JSON.stringify(r.st));
  }
  for (const r of rows) {
    const p = pattern.get(r.openid);
    if (!p) continue;
    by[p].won += r.won;
    by[p].held += r.held;
  }
  const pct = (a: number, b: number) => (b === 0 ? '—' : `${((100 * a) / b).toFixed(1)} %`);
  const lines: string[] = [];
  lines.push(`fraud-sim: seed ${args.get('seed') ?? 42}, ${ctx.database.kind}, prize win rate ${(WIN_RATE * 100).toFixed(0)} %, model v${services.fraud.model().version}`);
  lines.push('');
  lines.push('| pattern | accounts | valid-code attempts | would have won | paid | held | blocked (expected) | held or blocked |');
  lines.push('|---|---:|---:|---:|---:|---:|---:|---:|');
  let attackWould = 0;
  let attackCaught = 0;
  for (const p of ['guesser', 'farm', 'reseller', 'bot', 'honest'] as Pattern[]) {
    const s = stats[p];
    const blocked = s.blockedValid * WIN_RATE;
    const would = by[p].won + blocked;
    const paid = by[p].won - by[p].held;
    if (p !== 'honest') {
      attackWould += would;
      attackCaught += by[p].held + blocked;
    }
    lines.push(`| ${p} | ${s.accounts} | ${s.validAttempts} | ${would.toFixed(1)} | ${paid} | ${by[p].held} | ${blocked.toFixed(1)} | ${pct(by[p].held + blocked, would)} |`);
  }
  // A prize held afterwards (look-back) is told by a customer-service message, not the reply: its review counts too.
  for (const r of await ctx.database.query<{ openid: string }>(sql`SELECT DISTINCT openid FROM fraud_reviews`)) saw(personOf.get(r.openid) ?? r.openid, 'review (look-back)');
  const honestRisk = [...sawRisk].filter((o) => pattern.get(o) === 'honest').length;
  if (process.env.FRAUD_SIM_DEBUG) for (const o of sawRisk) if (pattern.get(o) === 'honest') console.error('honest at risk', o, riskWhy.get(o));
  // Why an honest user was held or blocked (a reviewer would read the same reasons).
  const decisions = await ctx.database.query<{ openid: string; stage: string; decision: string; score: number; reasons: Array<{ feature: string; value: number }> }>(sql`
    SELECT openid, stage, decision, score, reasons FROM fraud_decisions WHERE decision <> 'allow' ORDER BY id`);
  const honestWhy = decisions.filter((d) => pattern.get(d.openid) === 'honest')
    .map((d) => `${d.decision} ${d.stage} ${Number(d.score).toFixed(2)} (${d.reasons.map((r) => `${r.feature}=${r.value}`).join(', ')})`);
  lines.push('');
  lines.push(`attack patterns: ${attackCaught.toFixed(1)} of ${attackWould.toFixed(1)} prizes held or blocked (${pct(attackCaught, attackWould)}); target ≥ 95 %`);
  lines.push(`honest users who ever saw a hold or a block: ${honestRisk} of ${stats.honest.accounts} (${pct(honestRisk, stats.honest.accounts)}); target ≤ 1 %`);
  if (honestWhy.length > 0) lines.push(`honest decisions: ${honestWhy.join('; ')}`);
  const msgs = Object.values(stats).reduce((s, x) => s + x.messages, 0);
  const cpu = process.cpuUsage();
  lines.push(`${msgs} webhook messages, ${((Date.now() - started) / 1000).toFixed(1)} s wall time, ${((cpu.user + cpu.system) / 1e6).toFixed(1)} s CPU (this process; the wall time depends on the machine's load)`);
  console.log(lines.join('\n'));
  for (const fn of teardowns.reverse()) await fn();
}

main().catch(async (err) => {
  console.error(err);
  for (const fn of teardowns.reverse()) await Promise.resolve(fn()).catch(() => undefined);
  process.exit(1);
});
