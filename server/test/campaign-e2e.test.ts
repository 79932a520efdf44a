/**
 * The whole on-pack journey through public interfaces: ops create and publish a campaign and generate a batch
 * (ops API), the printer's CSV is exported, consumers redeem by chat (signed webhook), answer the golden questions,
 * win, and the prize is delivered (fulfilment jobs against the WeChat Pay and top-up sandboxes), with the follow-up
 * customer-service messages; ops then read the counters and the redemptions export.
 */
import t from 'tap';
import { parse } from 'csv-parse/sync';
import { adminHeaders, buildTestApp } from './helpers.ts';

const DAY = 86_400_000;

async function setup(t: { teardown(fn: () => unknown): void }, prizes: unknown[]) {
  const ctx = await buildTestApp(t);
  const admin = await adminHeaders(ctx.app);
  const api = async (method: 'GET' | 'POST', url: string, payload?: unknown) => {
    const res = await ctx.app.inject({ method, url, headers: admin, ...(payload === undefined ? {} : { payload: payload as object }) });
    if (res.statusCode >= 300) throw new Error(`${method} ${url}: ${res.statusCode} ${res.body}`);
    return res;
  };
  const created = (await api('POST', '/api/ops/campaigns', {
    name: '开盖扫码赢好礼', startsAt: new Date(Date.now() - DAY).toISOString(), endsAt: new Date(Date.now() + 30 * DAY).toISOString(),
    unlockMin: 2, lossPoints: 1, prizes,
    questions: [
      { key: 'name', kind: 'text', prompt: '请问怎么称呼您？', required: true, minLength: 2, maxLength: 20 },
      { key: 'occupation', kind: 'choice', prompt: '您的职业是？', options: ['学生', '上班族', '个体经营', '其他'] },
      { key: 'region', kind: 'region', prompt: '您在哪个城市？' },
    ],
  })).json();
  const batch = (await api('POST', `/api/ops/campaigns/${created.id}/batches`, { count: 20, name: '首批' })).json();
  await api('POST', `/api/ops/campaigns/${created.id}/publish`);
  const csv = (await api('GET', `/api/ops/batches/${batch.id}/codes.csv`)).body;
  const rows = parse(csv.replace(/^\uFEFF/, ''), { columns: true }) as Array<{ code: string }>;
  const codes = rows.map((r) => r.code);
  const csTexts = async (openid: string): Promise<string[]> => {
    const calls = (await (await fetch(`${ctx.sandbox.url}/__sandbox/calls?path=/cgi-bin/message/custom/send&touser=${openid}`)).json()) as Array<{ errcode: number; body: any }>;
    return calls.filter((c) => c.errcode === 0).map((c) => c.body.text?.content ?? '');
  };
  const settle = async () => {
    await ctx.services.bot.drain();
    await ctx.services.fulfilment.idle();
    await ctx.services.bot.drain();
  };
  return { ...ctx, api, campaignId: created.id as number, batch, codes, csTexts, settle };
}

t.test('cash: redeem, answer, win, confirm the transfer in the mini program, paid once, told so', async (t) => {
  const s = await setup(t, [{ name: '现金红包 8.88元', kind: 'cash', value: 888, weight: 1, totalStock: 5 }]);
  t.equal(s.codes.length, 20);

  let r = await s.sim.text('oWinner', s.codes[0]!);
  t.match(r.content, /兑奖码验证成功/);
  t.match(r.content, /第1题：请问怎么称呼您？/);
  r = await s.sim.text('oWinner', '赵六');
  t.match(r.content, /第2题/);
  r = await s.sim.text('oWinner', '2');
  t.match(r.content, /恭喜您抽中【现金红包 8\.88元】/);
  t.match(r.content, /在小程序中确认收款/);
  await s.settle();

  const [job] = (await s.api('GET', `/api/ops/fulfilments?campaignId=${s.campaignId}`)).json() as any[];
  t.match(job, { kind: 'cash', amount: 888, state: 'waiting_user', openid: 'oWinner' });
  const messages = await s.csTexts('oWinner');
  const link = messages.find((m) => /data-miniprogram-path/.test(m));
  t.ok(link, 'the winner is sent to the mini program to confirm');
  const path = /data-miniprogram-path="([^"]+)"/.exec(link!)![1]!;
  const q = new URLSearchParams(path.split('?')[1]);

  // The mini program asks for the wx.requestMerchantTransfer parameters, the user confirms, WeChat Pay notifies.
  const params = (await s.app.inject({ method: 'GET', url: `/api/mp/transfers/${q.get('f')}?t=${q.get('t')}` })).json();
  t.match(params, { state: 'waiting_user', package: /.+/, openId: 'oWinner' });
  const bill = [...s.paySandbox.state.bills.values()][0]!;
  await fetch(`${s.paySandbox.url}/__sandbox/pay/bills/${bill.out_bill_no}/confirm`, { method: 'POST' });
  await s.settle();
  const done = (await s.api('GET', `/api/ops/fulfilments/${job.id}`)).json();
  t.equal(done.state, 'succeeded');
  t.match((await s.csTexts('oWinner')).at(-1), /已转入您的微信零钱/);
  t.equal(s.paySandbox.state.bills.size, 1, 'one bill: paid once');

  // Ops: counters and the export.
  const k = (await s.api('GET', `/api/ops/campaigns/${s.campaignId}/counters`)).json();
  t.match(k, { codes: { printed: 20 }, redeemed: 1, draws: 1, wins: 1 });
  const exported = parse((await s.api('GET', `/api/ops/campaigns/${s.campaignId}/redemptions.csv`)).body.replace(/^\uFEFF/, ''), { columns: true }) as any[];
  t.match(exported, [{ openid: 'oWinner', batch_name: '首批', answers_completed: '2', draw_result: '现金红包 8.88元', fulfilment_state: 'succeeded' }]);
});

t.test('top-up: a winner without a phone is asked for one in chat, then charged once and told', async (t) => {
  const s = await setup(t, [{ name: '10元话费', kind: 'topup', value: 1000, weight: 1, totalStock: 5 }]);
  await s.sim.text('oPhone', s.codes[0]!);
  await s.sim.text('oPhone', '钱七');
  let r = await s.sim.text('oPhone', '学生');
  t.match(r.content, /恭喜您抽中【10元话费】/);
  await s.settle();
  t.match((await s.csTexts('oPhone')).join('\n'), /手机号/, 'asked for a phone number');
  // While the phone is awaited, another pack code is still a code (letters and digits are not a phone attempt).
  r = await s.sim.text('oPhone', s.codes[1]!.replace(/(.{4})(.{4})/, '$1-$2-'));
  t.match(r.content, /恭喜您抽中【10元话费】/);

  r = await s.sim.text('oPhone', '1391234');
  t.notMatch(r.content ?? '', /已收到/, 'an invalid number is not taken');
  r = await s.sim.text('oPhone', '139-1234-5678');
  await s.settle();
  const jobs = (await s.api('GET', `/api/ops/fulfilments?campaignId=${s.campaignId}`)).json() as any[];
  t.equal(jobs.length, 2);
  t.ok(jobs.every((j) => j.kind === 'topup' && j.state === 'succeeded'), 'both top-ups went through once the phone was given');
  const orders = [...s.topupSandbox.state.orders.values()];
  t.equal(orders.length, 2);
  t.ok(orders.every((o: any) => o.phone === '13912345678' && o.amountFen === 1000 && o.charges === 1), 'each charged once');
  t.match((await s.csTexts('oPhone')).join('\n'), /充值/);
});

t.test('a loss: a consolation point, no fulfilment job', async (t) => {
  // The law wants a real prize on the table; at these odds (1 in 10⁹) the draw is a loss.
  const s = await setup(t, [{ name: '100积分', kind: 'points', value: 100, weight: 1 }, { name: '谢谢参与', kind: 'thanks', weight: 1_000_000_000 }]);
  await s.sim.text('oLoser', s.codes[0]!);
  await s.sim.text('oLoser', '孙八');
  const r = await s.sim.text('oLoser', '其他');
  t.match(r.content, /很遗憾，这次没有中奖/);
  t.match(r.content, /本次获得 1 积分，当前积分 1/);
  await s.settle();
  t.same((await s.api('GET', `/api/ops/fulfilments?campaignId=${s.campaignId}`)).json(), []);
});
