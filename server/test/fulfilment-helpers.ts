/**
 * Shared by the fulfilment tests: an app on a manual clock with the WeChat Pay and top-up sandboxes, jobs inserted
 * exactly as the draw inserts them, a second service instance on the same database, and WeChat Pay's transfer
 * notifications built and signed as WeChat Pay does.
 */
import { fulfilments } from '../src/fulfilment/tables.ts';
import { campaigns } from '../src/campaigns/tables.ts';
import { manualClock } from '../src/platform/clock.ts';
import { createFulfilmentService, type FulfilmentFaults } from '../src/fulfilment/service.ts';
import { createPayFromConfig, createTopupFromConfig, fulfilmentConfigFrom } from '../src/fulfilment/wiring.ts';
import { createNonce, encryptNotificationResource, signRsaSha256, unixSeconds } from '../src/wechat/pay/crypto.ts';
import { SANDBOX_PAY, sandboxApiV3Key, sandboxPayKeys } from '../src/wechat/sandbox/pay-keys.ts';
import { buildTestApp } from './helpers.ts';

type Kind = 'points' | 'coupon' | 'topup' | 'cash' | 'physical';
let drawSeq = 0;

export async function setup(t: Parameters<typeof buildTestApp>[0], env: Record<string, string> = {}) {
  const clock = manualClock(new Date());
  const ctx = await buildTestApp(t, { clock, env: { TOPUP_TIMEOUT_MS: '300', ...env } });
  const f = ctx.services.fulfilment;
  const { db } = ctx.database;

  /** A job exactly as the draw inserts it. */
  async function job(kind: Kind, amount: number, openid: string, extra: { campaignId?: number; prizeId?: number } = {}) {
    const drawId = 1000 + ++drawSeq;
    const now = clock.now();
    const [row] = await db.insert(fulfilments).values({
      sourceKey: `draw:${drawId}`, drawId, campaignId: extra.campaignId ?? null, openid, prizeId: extra.prizeId ?? null, kind, amount,
      state: 'pending', nextAttemptAt: now, outNo: `D${drawId}`, createdAt: now, updatedAt: now,
    }).returning();
    return row!;
  }

  async function campaign(over: Partial<typeof campaigns.$inferInsert> = {}) {
    const now = clock.now();
    const [c] = await db.insert(campaigns).values({
      name: '开盖扫码赢红包', status: 'live', startsAt: new Date(now.getTime() - 86_400_000), endsAt: new Date(now.getTime() + 30 * 86_400_000), ...over,
    }).returning();
    return c!;
  }

  const get = async (id: number) => (await f.get(id))!;
  const csTexts = async (openid: string): Promise<string[]> => {
    const calls = (await (await fetch(`${ctx.sandbox.url}/__sandbox/calls?path=/cgi-bin/message/custom/send&touser=${openid}`)).json()) as Array<{ errcode: number; body: any }>;
    return calls.filter((c) => c.errcode === 0).map((c) => c.body.text?.content ?? '');
  };
  const payControl = async (path: string, body?: unknown) => {
    const res = await fetch(`${ctx.paySandbox.url}${path}`, body === undefined ? { method: 'POST' } : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return { status: res.status, json: (await res.json()) as any };
  };
  const topupNext = async (body: Record<string, unknown>) => {
    const res = await fetch(`${ctx.topupSandbox.url}/__sandbox/topup/next`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    if (res.status !== 200) throw new Error(await res.text());
  };
  /** A second service on the same database and providers (another instance, or this one after a restart). */
  const instance = (faults?: FulfilmentFaults) => createFulfilmentService({
    database: ctx.database, clock, log: ctx.app.log, ledger: ctx.services.ledger, phones: ctx.services.phones, messaging: ctx.services.messaging,
    dialogs: ctx.services.dialogs, pay: createPayFromConfig(ctx.config), topup: createTopupFromConfig(ctx.config), config: fulfilmentConfigFrom(ctx.config),
    ...(faults ? { faults } : {}),
  });
  return { ...ctx, clock, f, db, job, campaign, get, csTexts, payControl, topupNext, instance };
}

/** WeChat Pay's transfer notifications about `j`'s bill, built and signed as WeChat Pay does (or tampered with). */
export function notifications(s: { app: { inject: (o: any) => Promise<any> }; config: { wechat: { appId: string } } }, j: { outNo: string; openid: string; amount: number },
  bill: { transfer_bill_no: string; create_time: string; update_time: string }) {
  const apiV3Key = sandboxApiV3Key(s.config.wechat.appId);
  const keys = sandboxPayKeys();
  const envelope = (state: string, over: Record<string, unknown> = {}) => {
    const resource = { out_bill_no: j.outNo, transfer_bill_no: bill.transfer_bill_no, state, mch_id: SANDBOX_PAY.mchid, transfer_amount: j.amount, openid: j.openid, create_time: bill.create_time, update_time: bill.update_time, ...over };
    return { id: 'EV-forge', create_time: bill.create_time, resource_type: 'encrypt-resource', event_type: 'MCHTRANSFER.BILL.FINISHED', summary: '商家转账单据终态通知',
      resource: { original_type: 'mch_payment', ...encryptNotificationResource(JSON.stringify(resource), apiV3Key, { associatedData: 'mch_payment' }) } };
  };
  const headers = (body: string, over: { key?: string; ts?: string; serial?: string } = {}) => {
    const ts = over.ts ?? unixSeconds();
    const nonce = createNonce();
    return {
      'content-type': 'application/json',
      'wechatpay-timestamp': ts,
      'wechatpay-nonce': nonce,
      'wechatpay-serial': over.serial ?? SANDBOX_PAY.publicKeyId,
      'wechatpay-signature': signRsaSha256(`${ts}\n${nonce}\n${body}\n`, over.key ?? keys.platformPrivateKeyPem),
    };
  };
  const post = (body: string, h: Record<string, string>) => s.app.inject({ method: 'POST', url: '/pay/notify/transfer', headers: h, payload: body });
  return { envelope, headers, post };
}

