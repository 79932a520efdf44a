/**
 * The WeChat Pay sandbox: a local simulator of the merchant-transfer (商家转账) part of api.mch.weixin.qq.com,
 * with API v3 request-signature checks, signed responses (public-key mode, `PUB_KEY_ID_…`), the official error
 * shape (`{"code","message"}`, shared/wechat-protocol.md §6.9), idempotency by out_bill_no, and encrypted,
 * signed `MCHTRANSFER.BILL.FINISHED` notifications (§6.3, §6.6).
 *
 * The user's side (confirming in wx.requestMerchantTransfer, the bill failing or expiring unconfirmed) is driven
 * through POST /__sandbox/pay/bills/:outBillNo/{confirm,fail,expire}, as platform.ts's /__sandbox/* knobs.
 *
 * JSAPI payment (§6.4): prepay (idempotent by out_trade_no and body), query, close, and the user paying through
 * POST /__sandbox/pay/request-payment (the wx.requestPayment object, paySign checked) or
 * /__sandbox/pay/transactions/:outTradeNo/pay, which send a signed, encrypted TRANSACTION.SUCCESS notification.
 * Refunds (§6.5) start PROCESSING; POST /__sandbox/pay/refunds/:outRefundNo/{succeed,abnormal} finishes them (REFUND.*).
 * Mount under a prefix: requests may be signed over the path with or without it (`/v3/…` as in production).
 */
import { constants, randomBytes, randomUUID, verify } from 'node:crypto';
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import {
  AUTH_SCHEMA,
  DEFAULT_MAX_SKEW_SECONDS,
  createNonce,
  encryptNotificationResource,
  loadRsaPrivateKey,
  loadRsaPublicKey,
  signRsaSha256,
  unixSeconds,
} from '../pay/crypto.ts';

export interface PaySandboxOptions {
  mchid: string;
  /** The merchant API key's public half: verifies our requests. */
  merchantPublicKeyPem: string;
  /** Signs responses and notifications, as WeChat Pay's public-key mode. */
  platformPrivateKeyPem: string;
  /** `PUB_KEY_ID_…`, sent as `Wechatpay-Serial`. */
  platformPublicKeyId: string;
  /** 32 bytes; encrypts notification resources. */
  apiV3Key: string;
  /** The real API wants https; tests with a loopback receiver turn this on. */
  allowHttpNotifyUrl?: boolean;
  /** Milliseconds since the epoch. */
  now?: () => number;
}

export type BillState = 'ACCEPTED' | 'PROCESSING' | 'WAIT_USER_CONFIRM' | 'TRANSFERING' | 'SUCCESS' | 'FAIL' | 'CANCELING' | 'CANCELLED';

export interface TransferBill {
  mch_id: string;
  appid: string;
  out_bill_no: string;
  transfer_bill_no: string;
  transfer_scene_id: string;
  openid: string;
  transfer_amount: number;
  transfer_remark: string;
  notify_url?: string;
  state: BillState;
  fail_reason?: string;
  package_info: string;
  create_time: string;
  update_time: string;
  /** Canonical JSON of the creating request, for the idempotency check. */
  requestKey: string;
}

export interface SentNotification {
  seq: number;
  id: string;
  at: string;
  url: string;
  out_bill_no: string;
  state: BillState;
  /** HTTP status the receiver answered; null when the request failed (see error). */
  status: number | null;
  error?: string;
  /** The raw envelope as sent. */
  body: string;
}

export interface InjectedFailure {
  status: 500 | 429;
  code: 'SYSTEM_ERROR' | 'FREQUENCY_LIMITED';
}

const TERMINAL = new Set<BillState>(['SUCCESS', 'FAIL', 'CANCELLED']);

export type TradeState = 'NOTPAY' | 'SUCCESS' | 'CLOSED' | 'REFUND';

export interface SandboxRefund {
  refund_id: string;
  out_refund_no: string;
  out_trade_no: string;
  transaction_id: string;
  status: 'PROCESSING' | 'SUCCESS' | 'ABNORMAL' | 'CLOSED';
  refund: number;
  total: number;
  notify_url?: string;
  create_time: string;
  success_time?: string;
  requestKey: string;
}

/** A JSAPI order (POST /v3/pay/transactions/jsapi). */
export interface JsapiTransaction {
  appid: string;
  mchid: string;
  out_trade_no: string;
  description: string;
  notify_url: string;
  attach?: string;
  time_expire?: string;
  total: number;
  payer_openid: string;
  prepay_id: string;
  trade_state: TradeState;
  transaction_id?: string;
  success_time?: string;
  requestKey: string;
}

/** RFC 3339 in Beijing time, as WeChat Pay writes times: `2025-01-22T15:44:23+08:00`. */
export function rfc3339(ms: number): string {
  return `${new Date(ms + 8 * 3_600_000).toISOString().slice(0, 19)}+08:00`;
}

/** JSON with object keys sorted, so equal requests compare equal whatever the key order. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

const digits = (n: number) => Array.from(randomBytes(n), (b) => String(b % 10)).join('');

export class PaySandboxState {
  readonly bills = new Map<string, TransferBill>();
  /** JSAPI orders by out_trade_no. */
  readonly transactions = new Map<string, JsapiTransaction>();
  /** Refunds by out_refund_no. */
  readonly refunds = new Map<string, SandboxRefund>();
  readonly notifications: SentNotification[] = [];
  /** Every /v3 request as `METHOD path` (query-before-retry is visible to tests). */
  readonly calls: string[] = [];
  /** Failures to answer the next /v3 calls with. */
  readonly failNext: InjectedFailure[] = [];
  readonly merchantKey;
  readonly platformKey;
  private pending = new Set<Promise<unknown>>();
  private seq = 0;

  constructor(readonly opts: PaySandboxOptions) {
    this.merchantKey = loadRsaPublicKey(opts.merchantPublicKeyPem);
    this.platformKey = loadRsaPrivateKey(opts.platformPrivateKeyPem);
    if (!opts.platformPublicKeyId.startsWith('PUB_KEY_ID_')) throw new TypeError('platformPublicKeyId must start with PUB_KEY_ID_');
    if (Buffer.byteLength(opts.apiV3Key, 'utf8') !== 32) throw new TypeError('apiV3Key must be 32 bytes');
  }

  now(): number {
    return (this.opts.now ?? Date.now)();
  }

  /** The Wechatpay-* headers for a body, signed with the platform key. */
  signHeaders(body: string): Record<string, string> {
    const ts = unixSeconds(this.now());
    const nonce = createNonce();
    return {
      'Wechatpay-Timestamp': ts,
      'Wechatpay-Nonce': nonce,
      'Wechatpay-Serial': this.opts.platformPublicKeyId,
      'Wechatpay-Signature': signRsaSha256(`${ts}\n${nonce}\n${body}\n`, this.platformKey),
    };
  }

  /** Move a bill to a new state; a terminal state sends MCHTRANSFER.BILL.FINISHED when it has a notify_url. */
  transition(bill: TransferBill, state: BillState, failReason?: string): Promise<SentNotification | undefined> {
    bill.state = state;
    bill.update_time = rfc3339(this.now());
    if (failReason !== undefined) bill.fail_reason = failReason;
    if (!TERMINAL.has(state) || !bill.notify_url) return Promise.resolve(undefined);
    const p = this.notify(bill);
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
    return p;
  }

  private async notify(bill: TransferBill): Promise<SentNotification> {
    const resource = {
      out_bill_no: bill.out_bill_no,
      transfer_bill_no: bill.transfer_bill_no,
      state: bill.state,
      mch_id: bill.mch_id,
      transfer_amount: bill.transfer_amount,
      openid: bill.openid,
      ...(bill.fail_reason !== undefined ? { fail_reason: bill.fail_reason } : {}),
      create_time: bill.create_time,
      update_time: bill.update_time,
    };
    const id = randomUUID();
    const body = JSON.stringify({
      id,
      create_time: rfc3339(this.now()),
      resource_type: 'encrypt-resource',
      event_type: 'MCHTRANSFER.BILL.FINISHED',
      summary: '商家转账单据终态通知',
      resource: { original_type: 'mch_payment', ...encryptNotificationResource(JSON.stringify(resource), this.opts.apiV3Key, { associatedData: 'mch_payment' }) },
    });
    const sent: SentNotification = { seq: ++this.seq, id, at: rfc3339(this.now()), url: bill.notify_url!, out_bill_no: bill.out_bill_no, state: bill.state, status: null, body };
    this.notifications.push(sent);
    await this.deliver(sent);
    return sent;
  }

  /** The user paid (wx.requestPayment succeeded): SUCCESS, then TRANSACTION.SUCCESS to its notify_url. */
  payTransaction(t: JsapiTransaction): Promise<SentNotification> {
    t.trade_state = 'SUCCESS';
    t.transaction_id = `4200${digits(24)}`;
    t.success_time = rfc3339(this.now());
    const id = randomUUID();
    const body = JSON.stringify({
      id,
      create_time: rfc3339(this.now()),
      resource_type: 'encrypt-resource',
      event_type: 'TRANSACTION.SUCCESS',
      summary: '支付成功',
      resource: { original_type: 'transaction', ...encryptNotificationResource(JSON.stringify(publicTransaction(t)), this.opts.apiV3Key, { associatedData: 'transaction' }) },
    });
    const sent: SentNotification = { seq: ++this.seq, id, at: rfc3339(this.now()), url: t.notify_url, out_bill_no: t.out_trade_no, state: 'SUCCESS', status: null, body };
    this.notifications.push(sent);
    const p = this.deliver(sent);
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
    return p;
  }

  /** The bank finished the refund: SUCCESS (or ABNORMAL), then REFUND.* to its notify_url. */
  finishRefund(r: SandboxRefund, status: 'SUCCESS' | 'ABNORMAL' = 'SUCCESS'): Promise<SentNotification | undefined> {
    r.status = status;
    if (status === 'SUCCESS') r.success_time = rfc3339(this.now());
    if (!r.notify_url) return Promise.resolve(undefined);
    const t = this.transactions.get(r.out_trade_no);
    const resource = {
      mchid: this.opts.mchid, out_trade_no: r.out_trade_no, transaction_id: r.transaction_id, out_refund_no: r.out_refund_no, refund_id: r.refund_id,
      refund_status: status, ...(r.success_time ? { success_time: r.success_time } : {}), user_received_account: '支付用户零钱',
      amount: { total: r.total, refund: r.refund, payer_total: t?.total ?? r.total, payer_refund: r.refund },
    };
    const id = randomUUID();
    const body = JSON.stringify({
      id, create_time: rfc3339(this.now()), resource_type: 'encrypt-resource', event_type: `REFUND.${status}`, summary: status === 'SUCCESS' ? '退款成功' : '退款异常',
      resource: { original_type: 'refund', ...encryptNotificationResource(JSON.stringify(resource), this.opts.apiV3Key, { associatedData: 'refund' }) },
    });
    const sent: SentNotification = { seq: ++this.seq, id, at: rfc3339(this.now()), url: r.notify_url, out_bill_no: r.out_refund_no, state: 'SUCCESS', status: null, body };
    this.notifications.push(sent);
    const p = this.deliver(sent);
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
    return p;
  }

  /** POST (or re-POST, with fresh signature headers) a notification; records the receiver's status. */
  async deliver(n: SentNotification): Promise<SentNotification> {
    try {
      const res = await fetch(n.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'user-agent': 'Mozilla/4.0', ...this.signHeaders(n.body) },
        body: n.body,
        signal: AbortSignal.timeout(5000),
      });
      await res.arrayBuffer().catch(() => undefined);
      n.status = res.status;
      delete n.error;
    } catch (e) {
      n.status = null;
      n.error = (e as Error).message;
    }
    return n;
  }

  /** Resolves when every notification in flight has been answered. */
  async idle(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }
}

type Problem = [status: number, code: string, message: string];
const PARAM = (message: string): Problem => [400, 'PARAM_ERROR', message];

/** Request validation as the real initiate API (§6.6); undefined when the body is acceptable. */
function validateTransfer(b: any, allowHttp: boolean): Problem | undefined {
  if (!b || typeof b !== 'object' || Array.isArray(b)) return PARAM('请求体不是合法的JSON对象');
  const str = (k: string, max: number) => typeof b[k] === 'string' && b[k].length > 0 && [...b[k]].length <= max;
  if (!str('appid', 32)) return PARAM('输入源“/body/appid”映射到字段“AppID”必填性规则校验失败');
  if (typeof b.out_bill_no !== 'string' || !/^[A-Za-z0-9]{1,32}$/.test(b.out_bill_no)) return PARAM('商户单号out_bill_no只能由数字、大小写字母组成，长度1-32');
  if (typeof b.transfer_scene_id !== 'string' || !/^\d{1,36}$/.test(b.transfer_scene_id)) return PARAM('转账场景ID transfer_scene_id 不合法');
  if (!str('openid', 64)) return PARAM('输入源“/body/openid”映射到字段“收款用户OpenID”必填性规则校验失败');
  if (!Number.isSafeInteger(b.transfer_amount)) return PARAM('转账金额transfer_amount必须为整数，单位为分');
  if (b.transfer_amount < 10) return PARAM('转账金额不能低于0.1元');
  if (b.transfer_amount >= 200_000 && typeof b.user_name !== 'string') return PARAM('转账金额>=2000元时，收款用户姓名user_name必填');
  if (!str('transfer_remark', 32)) return PARAM('转账备注transfer_remark必填，且不能超过32个字符');
  if (b.notify_url !== undefined) {
    let u: URL | undefined;
    try {
      u = new URL(String(b.notify_url));
    } catch {
      u = undefined;
    }
    const schemeOk = u?.protocol === 'https:' || (allowHttp && u?.protocol === 'http:');
    if (typeof b.notify_url !== 'string' || !u || !schemeOk || u.search !== '' || b.notify_url.includes('?')) {
      return PARAM('notify_url必须为https地址，且不能携带参数');
    }
  }
  const infos = b.transfer_scene_report_infos;
  const entryOk = (i: any) => i && typeof i === 'object' && typeof i.info_type === 'string' && i.info_type !== '' && typeof i.info_content === 'string' && i.info_content !== '';
  if (!Array.isArray(infos) || infos.length === 0 || !infos.every(entryOk)) return PARAM('需传入转账场景报备信息,请检查');
  // 现金营销 (1000) needs 活动名称 and 奖励说明.
  if (b.transfer_scene_id === '1000' && !['活动名称', '奖励说明'].every((t) => infos.some((i: any) => i.info_type === t))) {
    return PARAM('需传入转账场景报备信息,请检查');
  }
  return undefined;
}

function parseJson(raw: unknown): { ok: true; value: any } | { ok: false } {
  const text = typeof raw === 'string' ? raw : '';
  if (text === '') return { ok: true, value: undefined };
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return { ok: false };
  }
}

/** Parse `WECHATPAY2-SHA256-RSA2048 k="v",…`; undefined unless the scheme and all five parameters are there. */
function parseAuthorization(h: string | undefined): Record<'mchid' | 'nonce_str' | 'signature' | 'timestamp' | 'serial_no', string> | undefined {
  if (!h || !h.startsWith(`${AUTH_SCHEMA} `)) return undefined;
  const p: Record<string, string> = {};
  for (const m of h.slice(AUTH_SCHEMA.length + 1).matchAll(/\s*(\w+)="([^"]*)"\s*(?:,|$)/g)) p[m[1]!] = m[2]!;
  const { mchid, nonce_str, signature, timestamp, serial_no } = p;
  if (!mchid || !nonce_str || !signature || !timestamp || !serial_no) return undefined;
  return { mchid, nonce_str, signature, timestamp, serial_no };
}

const BILL_PATH = '/v3/fund-app/mch-transfer/transfer-bills';
const JSAPI_PATH = '/v3/pay/transactions/jsapi';
const TRADE_PATH = '/v3/pay/transactions/out-trade-no';
const REFUND_PATH = '/v3/refund/domestic/refunds';

function publicRefund(r: SandboxRefund) {
  return {
    refund_id: r.refund_id, out_refund_no: r.out_refund_no, transaction_id: r.transaction_id, out_trade_no: r.out_trade_no, channel: 'ORIGINAL',
    user_received_account: '支付用户零钱', ...(r.success_time ? { success_time: r.success_time } : {}), create_time: r.create_time, status: r.status,
    funds_account: 'AVAILABLE', amount: { total: r.total, refund: r.refund, payer_total: r.total, payer_refund: r.refund, settlement_refund: r.refund, settlement_total: r.total, discount_refund: 0, currency: 'CNY' },
  };
}

/** Request validation of the JSAPI prepay (§6.4); undefined when acceptable. */
function validateJsapi(b: any, mchid: string, allowHttp: boolean): Problem | undefined {
  if (!b || typeof b !== 'object' || Array.isArray(b)) return PARAM('请求体不是合法的JSON对象');
  if (typeof b.appid !== 'string' || !/^wx[0-9A-Za-z]{8,30}$/.test(b.appid)) return PARAM('输入源“/body/appid”映射到字段“公众账号ID”必填性规则校验失败');
  if (b.mchid !== mchid) return PARAM('商户号mchid与请求头中的不一致');
  if (typeof b.description !== 'string' || b.description === '' || [...b.description].length > 127) return PARAM('description必填，且长度不超过127个字符');
  if (typeof b.out_trade_no !== 'string' || !/^[A-Za-z0-9_\-|*]{6,32}$/.test(b.out_trade_no)) return PARAM('out_trade_no只能由数字、大小写字母_-|*组成，长度6-32');
  if (b.time_expire !== undefined && (typeof b.time_expire !== 'string' || Number.isNaN(Date.parse(b.time_expire)))) return PARAM('time_expire格式错误');
  let u: URL | undefined;
  try {
    u = new URL(String(b.notify_url));
  } catch {
    u = undefined;
  }
  if (typeof b.notify_url !== 'string' || !u || !(u.protocol === 'https:' || (allowHttp && u.protocol === 'http:')) || b.notify_url.includes('?')) {
    return PARAM('notify_url必须为https地址，且不能携带参数');
  }
  if (!b.amount || !Number.isSafeInteger(b.amount.total) || b.amount.total < 1) return PARAM('amount.total必须为大于0的整数，单位为分');
  if (b.amount.currency !== undefined && b.amount.currency !== 'CNY') return PARAM('currency只支持CNY');
  if (!b.payer || typeof b.payer.openid !== 'string' || b.payer.openid === '') return PARAM('payer.openid必填');
  return undefined;
}

/** A transaction as the query API and the notification resource describe it. */
function publicTransaction(t: JsapiTransaction) {
  return {
    appid: t.appid,
    mchid: t.mchid,
    out_trade_no: t.out_trade_no,
    ...(t.transaction_id ? { transaction_id: t.transaction_id } : {}),
    trade_type: 'JSAPI',
    trade_state: t.trade_state,
    trade_state_desc: t.trade_state === 'SUCCESS' ? '支付成功' : t.trade_state === 'CLOSED' ? '订单已关闭' : '订单未支付',
    ...(t.trade_state === 'SUCCESS' ? { bank_type: 'OTHERS', success_time: t.success_time } : {}),
    ...(t.attach !== undefined ? { attach: t.attach } : {}),
    payer: { openid: t.payer_openid },
    amount: { total: t.total, ...(t.trade_state === 'SUCCESS' ? { payer_total: t.total } : {}), currency: 'CNY', payer_currency: 'CNY' },
  };
}

export function paySandboxPlugin(state: PaySandboxState): FastifyPluginAsync {
  return async (app: FastifyInstance) => {
    // Keep the raw body: the request signature covers the exact bytes.
    app.removeContentTypeParser('application/json');
    app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => done(null, String(body)));
    app.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => done(null, String(body)));

    // Every answer is signed like WeChat Pay's.
    app.addHook('onSend', async (_req, reply, payload) => {
      const body = typeof payload === 'string' ? payload : Buffer.isBuffer(payload) ? payload.toString('utf8') : '';
      reply.headers({ ...state.signHeaders(body), 'Request-ID': randomBytes(16).toString('hex').toUpperCase() });
      return payload;
    });

    const fail = (reply: FastifyReply, [status, code, message]: Problem) => reply.code(status).send({ code, message });

    await app.register(async (v3) => {
      const prefix = v3.prefix;

      v3.addHook('preHandler', async (req, reply) => {
        const auth = parseAuthorization(req.headers.authorization);
        if (!auth) return fail(reply, [401, 'SIGN_ERROR', 'Http头Authorization值格式错误，请参考《微信支付商户REST API签名规则》']);
        if (auth.mchid !== state.opts.mchid) return fail(reply, [401, 'SIGN_ERROR', '商户号与签名信息不匹配']);
        if (!/^\d{1,10}$/.test(auth.timestamp) || Math.abs(state.now() / 1000 - Number(auth.timestamp)) > DEFAULT_MAX_SKEW_SECONDS) {
          return fail(reply, [401, 'SIGN_ERROR', 'Http头Authorization中的timestamp与当前时间相差超过5分钟']);
        }
        const body = typeof req.body === 'string' ? req.body : '';
        const paths = [req.url];
        if (prefix && req.url.startsWith(prefix)) paths.push(req.url.slice(prefix.length));
        const sig = Buffer.from(auth.signature, 'base64');
        const ok = paths.some((p) => {
          const message = `${req.method}\n${p}\n${auth.timestamp}\n${auth.nonce_str}\n${body}\n`;
          try {
            return verify('sha256', Buffer.from(message, 'utf8'), { key: state.merchantKey, padding: constants.RSA_PKCS1_PADDING }, sig);
          } catch {
            return false;
          }
        });
        if (!ok) return fail(reply, [401, 'SIGN_ERROR', '签名错误，请检查后再试']);
        state.calls.push(`${req.method} ${prefix && req.url.startsWith(prefix) ? req.url.slice(prefix.length) : req.url}`);
        const injected = state.failNext.shift();
        if (injected) return fail(reply, [injected.status, injected.code, injected.code === 'SYSTEM_ERROR' ? '系统错误，请使用相同参数稍后重新调用' : '频率超限，请降低请求频率']);
        return undefined;
      });

      const createResponse = (b: TransferBill) => ({
        out_bill_no: b.out_bill_no,
        transfer_bill_no: b.transfer_bill_no,
        create_time: b.create_time,
        state: b.state,
        ...(b.fail_reason !== undefined ? { fail_reason: b.fail_reason } : {}),
        ...(b.state === 'WAIT_USER_CONFIRM' ? { package_info: b.package_info } : {}),
      });

      v3.post(BILL_PATH, async (req, reply) => {
        const parsed = parseJson(req.body);
        if (!parsed.ok) return fail(reply, PARAM('请求体不是合法的JSON'));
        const b = parsed.value;
        const problem = validateTransfer(b, state.opts.allowHttpNotifyUrl === true);
        if (problem) return fail(reply, problem);
        const requestKey = canonical(b);
        const existing = state.bills.get(b.out_bill_no);
        if (existing) {
          if (existing.requestKey !== requestKey) return fail(reply, [400, 'INVALID_REQUEST', '商户单号已存在，且请求参数与原单据不一致，不可更换参数']);
          return createResponse(existing);
        }
        const now = rfc3339(state.now());
        const bill: TransferBill = {
          mch_id: state.opts.mchid,
          appid: b.appid,
          out_bill_no: b.out_bill_no,
          transfer_bill_no: `1330000${now.slice(0, 10).replace(/-/g, '')}${digits(20)}`,
          transfer_scene_id: b.transfer_scene_id,
          openid: b.openid,
          transfer_amount: b.transfer_amount,
          transfer_remark: b.transfer_remark,
          ...(b.notify_url !== undefined ? { notify_url: b.notify_url as string } : {}),
          state: 'WAIT_USER_CONFIRM',
          package_info: randomBytes(60).toString('base64'),
          create_time: now,
          update_time: now,
          requestKey,
        };
        state.bills.set(bill.out_bill_no, bill);
        return createResponse(bill);
      });

      v3.get(`${BILL_PATH}/out-bill-no/:outBillNo`, async (req, reply) => {
        const bill = state.bills.get((req.params as { outBillNo: string }).outBillNo);
        if (!bill) return fail(reply, [404, 'RESOURCE_NOT_EXISTS', '记录不存在']);
        return publicBill(bill);
      });

      // ---- JSAPI (§6.4) ----
      v3.post(JSAPI_PATH, async (req, reply) => {
        const parsed = parseJson(req.body);
        if (!parsed.ok) return fail(reply, PARAM('请求体不是合法的JSON'));
        const b = parsed.value;
        const problem = validateJsapi(b, state.opts.mchid, state.opts.allowHttpNotifyUrl === true);
        if (problem) return fail(reply, problem);
        const requestKey = canonical(b);
        const existing = state.transactions.get(b.out_trade_no);
        if (existing) {
          if (existing.trade_state === 'SUCCESS' || existing.trade_state === 'REFUND') return fail(reply, [400, 'ORDERPAID', '该订单已支付']);
          if (existing.trade_state === 'CLOSED') return fail(reply, [400, 'ORDER_CLOSED', '订单已关闭']);
          if (existing.requestKey !== requestKey) return fail(reply, [400, 'INVALID_REQUEST', '201 商户订单号重复']);
          return { prepay_id: existing.prepay_id };
        }
        const t: JsapiTransaction = {
          appid: b.appid, mchid: b.mchid, out_trade_no: b.out_trade_no, description: b.description, notify_url: b.notify_url,
          ...(b.attach !== undefined ? { attach: b.attach as string } : {}),
          ...(b.time_expire !== undefined ? { time_expire: b.time_expire as string } : {}),
          total: b.amount.total, payer_openid: b.payer.openid,
          prepay_id: `wx${rfc3339(state.now()).slice(0, 19).replace(/\D/g, '')}${randomBytes(9).toString('hex')}`,
          trade_state: 'NOTPAY', requestKey,
        };
        state.transactions.set(t.out_trade_no, t);
        return { prepay_id: t.prepay_id };
      });

      v3.get(`${TRADE_PATH}/:outTradeNo`, async (req, reply) => {
        const q = req.query as { mchid?: string };
        if (q.mchid !== state.opts.mchid) return fail(reply, PARAM('mchid与请求不一致'));
        const t = state.transactions.get((req.params as { outTradeNo: string }).outTradeNo);
        if (!t) return fail(reply, [404, 'ORDER_NOT_EXIST', '订单不存在']);
        return publicTransaction(t);
      });

      v3.post(`${TRADE_PATH}/:outTradeNo/close`, async (req, reply) => {
        const parsed = parseJson(req.body);
        if (!parsed.ok || parsed.value?.mchid !== state.opts.mchid) return fail(reply, PARAM('mchid必填且与请求一致'));
        const t = state.transactions.get((req.params as { outTradeNo: string }).outTradeNo);
        if (!t) return fail(reply, [404, 'ORDER_NOT_EXIST', '订单不存在']);
        if (t.trade_state === 'SUCCESS' || t.trade_state === 'REFUND') return fail(reply, [400, 'ORDERPAID', '该订单已支付']);
        t.trade_state = 'CLOSED';
        return reply.code(204).send();
      });

      // ---- Refunds (§6.5) ----
      v3.post(REFUND_PATH, async (req, reply) => {
        const parsed = parseJson(req.body);
        if (!parsed.ok) return fail(reply, PARAM('请求体不是合法的JSON'));
        const b = parsed.value;
        if (!b || typeof b.out_refund_no !== 'string' || !/^[A-Za-z0-9_\-|*@]{1,64}$/.test(b.out_refund_no)) return fail(reply, PARAM('out_refund_no不合法'));
        if (typeof b.out_trade_no !== 'string') return fail(reply, PARAM('out_trade_no与transaction_id必填其一'));
        if (!b.amount || !Number.isSafeInteger(b.amount.refund) || b.amount.refund < 1 || !Number.isSafeInteger(b.amount.total)) return fail(reply, PARAM('amount.refund与amount.total必须为正整数'));
        const requestKey = canonical(b);
        const existing = state.refunds.get(b.out_refund_no);
        if (existing) {
          if (existing.requestKey !== requestKey) return fail(reply, [400, 'INVALID_REQUEST', '退款单号已存在，且请求参数与原退款单不一致']);
          return publicRefund(existing);
        }
        const t = state.transactions.get(b.out_trade_no);
        if (!t) return fail(reply, [404, 'RESOURCE_NOT_EXISTS', '订单不存在']);
        if (t.trade_state !== 'SUCCESS' && t.trade_state !== 'REFUND') return fail(reply, [400, 'INVALID_REQUEST', '订单未支付，不能退款']);
        if (b.amount.total !== t.total) return fail(reply, [400, 'INVALID_REQUEST', '订单金额total与原订单不一致']);
        const refunded = [...state.refunds.values()].filter((r) => r.out_trade_no === t.out_trade_no && r.status !== 'CLOSED').reduce((n, r) => n + r.refund, 0);
        if (refunded + b.amount.refund > t.total) return fail(reply, [400, 'NOT_ENOUGH', '退款金额超过订单可退金额']);
        const r: SandboxRefund = {
          refund_id: `5030${digits(25)}`, out_refund_no: b.out_refund_no, out_trade_no: t.out_trade_no, transaction_id: t.transaction_id!, status: 'PROCESSING',
          refund: b.amount.refund, total: t.total, ...(b.notify_url ? { notify_url: b.notify_url as string } : {}), create_time: rfc3339(state.now()), requestKey,
        };
        state.refunds.set(r.out_refund_no, r);
        t.trade_state = 'REFUND';
        return publicRefund(r);
      });

      v3.get(`${REFUND_PATH}/:outRefundNo`, async (req, reply) => {
        const r = state.refunds.get((req.params as { outRefundNo: string }).outRefundNo);
        if (!r) return fail(reply, [404, 'RESOURCE_NOT_EXISTS', '退款单不存在']);
        return publicRefund(r);
      });

      v3.post(`${BILL_PATH}/out-bill-no/:outBillNo/cancel`, async (req, reply) => {
        const bill = state.bills.get((req.params as { outBillNo: string }).outBillNo);
        if (!bill) return fail(reply, [404, 'RESOURCE_NOT_EXISTS', '记录不存在']);
        if (bill.state !== 'WAIT_USER_CONFIRM' && bill.state !== 'ACCEPTED') {
          return fail(reply, [400, 'INVALID_REQUEST', `单据状态为${bill.state}，不允许撤销`]);
        }
        void state.transition(bill, 'CANCELLED');
        return { out_bill_no: bill.out_bill_no, transfer_bill_no: bill.transfer_bill_no, state: bill.state, update_time: bill.update_time };
      });
    });

    // ---- Sandbox-only endpoints (no auth): the user's side and failure injection. ----
    const control = (name: string, from: BillState[], to: BillState, defaultReason?: string) => {
      app.post(`/__sandbox/pay/bills/:outBillNo/${name}`, async (req: FastifyRequest, reply: FastifyReply) => {
        const bill = state.bills.get((req.params as { outBillNo: string }).outBillNo);
        if (!bill) return reply.code(404).send({ ok: false, error: 'no such bill' });
        if (!from.includes(bill.state)) return reply.code(409).send({ ok: false, error: `bill is ${bill.state}` });
        const parsed = parseJson(req.body);
        const reason = parsed.ok && typeof parsed.value?.fail_reason === 'string' ? parsed.value.fail_reason : defaultReason;
        const notification = await state.transition(bill, to, reason);
        return { ok: true, bill: publicBill(bill), notification: notification ?? null };
      });
    };
    control('confirm', ['WAIT_USER_CONFIRM', 'TRANSFERING'], 'SUCCESS');
    control('fail', ['ACCEPTED', 'PROCESSING', 'WAIT_USER_CONFIRM', 'TRANSFERING'], 'FAIL', 'PAYEE_ACCOUNT_ABNORMAL');
    control('expire', ['ACCEPTED', 'WAIT_USER_CONFIRM'], 'CANCELLED');

    // The user paying in WeChat: either check the wx.requestPayment object like the WeChat client would (paySign
    // over the transaction's appid with the merchant key), or just pay an order by out_trade_no.
    const pay = async (reply: FastifyReply, t: JsapiTransaction | undefined) => {
      if (!t) return reply.code(404).send({ ok: false, error: 'no such transaction' });
      if (t.trade_state !== 'NOTPAY') return reply.code(409).send({ ok: false, error: `transaction is ${t.trade_state}` });
      if (t.time_expire && Date.parse(t.time_expire) <= state.now()) return reply.code(409).send({ ok: false, error: 'transaction expired' });
      const notification = await state.payTransaction(t);
      return { ok: true, transaction: publicTransaction(t), notification };
    };
    app.post('/__sandbox/pay/transactions/:outTradeNo/pay', async (req, reply) => pay(reply, state.transactions.get((req.params as { outTradeNo: string }).outTradeNo)));
    app.post('/__sandbox/pay/request-payment', async (req, reply) => {
      const parsed = parseJson(req.body);
      const b = parsed.ok ? parsed.value : undefined;
      if (!b || typeof b.package !== 'string' || !b.package.startsWith('prepay_id=') || typeof b.paySign !== 'string' || b.signType !== 'RSA'
        || typeof b.timeStamp !== 'string' || typeof b.nonceStr !== 'string') {
        return reply.code(400).send({ ok: false, errMsg: 'requestPayment:fail invalid params' });
      }
      const prepayId = b.package.slice('prepay_id='.length);
      const t = [...state.transactions.values()].find((x) => x.prepay_id === prepayId);
      if (!t) return reply.code(404).send({ ok: false, errMsg: 'requestPayment:fail prepay_id not found' });
      if (typeof b.openid === 'string' && b.openid !== t.payer_openid) return reply.code(403).send({ ok: false, errMsg: 'requestPayment:fail payer is not the user' });
      let signed = false;
      try {
        signed = verify('sha256', Buffer.from(`${t.appid}\n${b.timeStamp}\n${b.nonceStr}\n${b.package}\n`, 'utf8'),
          { key: state.merchantKey, padding: constants.RSA_PKCS1_PADDING }, Buffer.from(b.paySign, 'base64'));
      } catch {
        signed = false;
      }
      if (!signed) return reply.code(400).send({ ok: false, errMsg: 'requestPayment:fail 支付验证签名失败' });
      return pay(reply, t);
    });
    app.get('/__sandbox/pay/transactions', async () => [...state.transactions.values()].map(publicTransaction));
    // The bank's side of a refund: it succeeds (or goes abnormal) and WeChat Pay notifies.
    for (const [name, status] of [['succeed', 'SUCCESS'], ['abnormal', 'ABNORMAL']] as const) {
      app.post(`/__sandbox/pay/refunds/:outRefundNo/${name}`, async (req, reply) => {
        const r = state.refunds.get((req.params as { outRefundNo: string }).outRefundNo);
        if (!r) return reply.code(404).send({ ok: false, error: 'no such refund' });
        if (r.status !== 'PROCESSING') return reply.code(409).send({ ok: false, error: `refund is ${r.status}` });
        const notification = await state.finishRefund(r, status);
        return { ok: true, refund: publicRefund(r), notification: notification ?? null };
      });
    }

    app.get('/__sandbox/pay/bills', async () => [...state.bills.values()].map(publicBill));
    app.get('/__sandbox/pay/notifications', async () => state.notifications);
    app.post('/__sandbox/pay/notifications/:seq/resend', async (req, reply) => {
      const n = state.notifications.find((x) => x.seq === Number((req.params as { seq: string }).seq));
      if (!n) return reply.code(404).send({ ok: false, error: 'no such notification' });
      return { ok: true, notification: await state.deliver(n) };
    });
    app.post('/__sandbox/pay/fail-next', async (req, reply) => {
      const parsed = parseJson(req.body);
      const b = parsed.ok ? parsed.value : undefined;
      const count = Number(b?.count ?? 1);
      const status = b?.status === 429 ? 429 : b?.status === 500 || b?.status === undefined ? 500 : undefined;
      const code = b?.code ?? (status === 429 ? 'FREQUENCY_LIMITED' : 'SYSTEM_ERROR');
      if (!Number.isInteger(count) || count < 0 || !status || (code !== 'SYSTEM_ERROR' && code !== 'FREQUENCY_LIMITED')) {
        return reply.code(400).send({ ok: false, error: 'expected {count, status: 500|429, code: SYSTEM_ERROR|FREQUENCY_LIMITED}' });
      }
      for (let i = 0; i < count; i++) state.failNext.push({ status, code });
      return { ok: true, pending: state.failNext.length };
    });
  };
}

/** A bill as the query API returns it. */
function publicBill(b: TransferBill) {
  return {
    mch_id: b.mch_id,
    out_bill_no: b.out_bill_no,
    transfer_bill_no: b.transfer_bill_no,
    appid: b.appid,
    state: b.state,
    transfer_amount: b.transfer_amount,
    transfer_remark: b.transfer_remark,
    ...(b.fail_reason !== undefined ? { fail_reason: b.fail_reason } : {}),
    openid: b.openid,
    create_time: b.create_time,
    update_time: b.update_time,
  };
}
