/**
 * A small WeChat Pay API v3 client over fetch for JSAPI / mini-program payment (prepay, query, close, the
 * wx.requestPayment paySign; §6.4) and merchant transfer (商家转账, shared/wechat-protocol.md §6.6):
 * create / query / cancel transfer bills, and MCHTRANSFER.BILL.FINISHED notifications. Requests are signed and
 * every answer's signature is verified (public-key or platform-certificate mode) with crypto.ts.
 *
 * Outcomes: a verified 2xx is a result; a verified 4xx is a PayApiError (the request was refused); anything else —
 * timeout, network error, 5xx, 429, an answer whose signature does not verify — is a PayUnknownError: the bill may
 * or may not exist, so query it before any retry, and never retry with a new out_bill_no (§6.6, §6.9).
 */
import {
  buildRequestPaymentParams,
  createPayVerifier,
  decryptNotificationResource,
  PayDecryptError,
  PayVerifyError,
  readPayHeaders,
  signRequest,
  type KeyInput,
  type PayVerifier,
  type RequestPaymentParams,
} from './crypto.ts';

export const TRANSFER_BILLS_PATH = '/v3/fund-app/mch-transfer/transfer-bills';
export const JSAPI_PREPAY_PATH = '/v3/pay/transactions/jsapi';
export const TRANSACTIONS_OUT_TRADE_NO_PATH = '/v3/pay/transactions/out-trade-no';

// ---- JSAPI / mini-program payment (§6.4) ----

export type TradeState = 'SUCCESS' | 'REFUND' | 'NOTPAY' | 'CLOSED' | 'REVOKED' | 'USERPAYING' | 'PAYERROR';

export const REFUNDS_PATH = '/v3/refund/domestic/refunds';
export type RefundStatus = 'SUCCESS' | 'CLOSED' | 'PROCESSING' | 'ABNORMAL';

/** POST /v3/refund/domestic/refunds (§6.5); idempotent by out_refund_no. */
export interface RefundInput {
  out_trade_no: string;
  out_refund_no: string;
  reason?: string;
  notify_url?: string;
  amount: { refund: number; total: number; currency: 'CNY' };
}

export interface PayRefund {
  refund_id: string;
  out_refund_no: string;
  transaction_id: string;
  out_trade_no: string;
  status: RefundStatus;
  success_time?: string;
  create_time: string;
  amount: { refund: number; total: number; payer_total?: number; payer_refund?: number; currency?: string };
}

/** The decrypted resource of REFUND.SUCCESS / REFUND.ABNORMAL / REFUND.CLOSED. */
export interface RefundNotification {
  mchid: string;
  out_trade_no: string;
  transaction_id: string;
  out_refund_no: string;
  refund_id: string;
  refund_status: RefundStatus;
  success_time?: string;
  amount: { total: number; refund: number };
}

/** The body of POST /v3/pay/transactions/jsapi (minus mchid, added by the client). */
export interface JsapiPrepayInput {
  /** The AppID the payer's openid belongs to: the mini program's for wx.requestPayment. */
  appid: string;
  /** ≤ 127 characters, shown in the user's bill. */
  description: string;
  /** 6–32 of [A-Za-z0-9_-|*]; unique per merchant; the same number and body return the same prepay_id. */
  out_trade_no: string;
  /** RFC 3339, e.g. 2018-06-08T10:34:56+08:00. */
  time_expire?: string;
  attach?: string;
  notify_url: string;
  amount: { total: number; currency?: 'CNY' };
  payer: { openid: string };
}

/** A transaction as query and the TRANSACTION.SUCCESS notification describe it. */
export interface PayTransaction {
  appid: string;
  mchid: string;
  out_trade_no: string;
  transaction_id?: string;
  trade_type?: string;
  trade_state: TradeState;
  trade_state_desc?: string;
  bank_type?: string;
  attach?: string;
  success_time?: string;
  payer?: { openid: string };
  amount?: { total: number; payer_total?: number; currency?: string; payer_currency?: string };
}

export type TransferBillState = 'ACCEPTED' | 'PROCESSING' | 'WAIT_USER_CONFIRM' | 'TRANSFERING' | 'SUCCESS' | 'FAIL' | 'CANCELING' | 'CANCELLED';
export const TERMINAL_BILL_STATES: ReadonlySet<TransferBillState> = new Set(['SUCCESS', 'FAIL', 'CANCELLED']);

export interface TransferSceneReportInfo {
  info_type: string;
  info_content: string;
}

/** The request body of POST /v3/fund-app/mch-transfer/transfer-bills (minus appid, added by the client). */
export interface CreateTransferBillInput {
  out_bill_no: string;
  transfer_scene_id: string;
  openid: string;
  /** fen */
  transfer_amount: number;
  /** ≤ 32 characters, shown to the user. */
  transfer_remark: string;
  notify_url?: string;
  user_recv_perception?: string;
  transfer_scene_report_infos: TransferSceneReportInfo[];
  /** Already RSA-OAEP encrypted (encryptSensitiveField); required from 2000 yuan. */
  user_name?: string;
}

export interface TransferBillCreated {
  out_bill_no: string;
  transfer_bill_no: string;
  create_time: string;
  state: TransferBillState;
  fail_reason?: string;
  package_info?: string;
}

export interface TransferBill {
  mch_id: string;
  out_bill_no: string;
  transfer_bill_no: string;
  appid: string;
  state: TransferBillState;
  transfer_amount: number;
  transfer_remark: string;
  fail_reason?: string;
  openid?: string;
  create_time: string;
  update_time: string;
}

export interface TransferBillCancelled {
  out_bill_no: string;
  transfer_bill_no: string;
  state: TransferBillState;
  update_time: string;
}

/** The decrypted resource of MCHTRANSFER.BILL.FINISHED. */
export interface TransferBillNotification {
  out_bill_no: string;
  transfer_bill_no: string;
  state: TransferBillState;
  mch_id: string;
  transfer_amount: number;
  openid: string;
  fail_reason?: string;
  create_time: string;
  update_time: string;
}

/** WeChat Pay refused the request (a verified 4xx): `{code, message, detail?}` (§6.9). Do not branch on message. */
export class PayApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly detail?: unknown,
  ) {
    super(`WeChat Pay ${status} ${code}: ${message}`);
    this.name = 'PayApiError';
  }
}

export type PayUnknownReason = 'timeout' | 'network' | 'server_error' | 'rate_limited' | 'verify_failed' | 'bad_response';

/** The outcome is unknown: the call may have taken effect. Query by out_bill_no before anything else. */
export class PayUnknownError extends Error {
  constructor(
    readonly reason: PayUnknownReason,
    message: string,
    readonly status?: number,
    readonly code?: string,
  ) {
    super(message);
    this.name = 'PayUnknownError';
  }
}

/** A notification that must be refused (answer 4xx/5xx so WeChat Pay retries): bad signature, stale, undecryptable. */
export class PayNotificationError extends Error {
  constructor(readonly reason: string, message: string) {
    super(message);
    this.name = 'PayNotificationError';
  }
}

export interface PayClientOptions {
  /** https://api.mch.weixin.qq.com, or the sandbox (`…/sandbox/pay`). A path prefix is kept in requests. */
  baseUrl: string;
  mchid: string;
  /** Serial number of the merchant API certificate. */
  serialNo: string;
  privateKey: KeyInput;
  /** WeChat Pay public key (public-key mode) or platform certificates (legacy mode); at least one. */
  publicKeys?: Record<string, KeyInput>;
  platformCertificates?: Record<string, string | Buffer>;
  apiV3Key: string;
  /** The AppID the openids belong to (`appid` of transfer bills). */
  appId: string;
  timeoutMs?: number;
  fetch?: typeof fetch;
  /** Wall clock for signature freshness (ms). */
  now?: () => number;
}

export function createPayClient(opts: PayClientOptions) {
  const base = new URL(opts.baseUrl.replace(/\/+$/, ''));
  const basePath = base.pathname === '/' ? '' : base.pathname;
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const doFetch = opts.fetch ?? fetch;
  const verifier: PayVerifier = createPayVerifier({
    ...(opts.publicKeys ? { publicKeys: opts.publicKeys } : {}),
    ...(opts.platformCertificates ? { platformCertificates: opts.platformCertificates } : {}),
    ...(opts.now ? { now: opts.now } : {}),
  });

  async function call<T>(method: 'GET' | 'POST', path: string, payload?: unknown): Promise<{ status: number; data: T | undefined }> {
    const body = payload === undefined ? '' : JSON.stringify(payload);
    const pathWithQuery = basePath + path;
    const { authorization } = signRequest({
      method,
      pathWithQuery,
      body,
      mchid: opts.mchid,
      serialNo: opts.serialNo,
      privateKey: opts.privateKey,
      ...(opts.now ? { timestamp: Math.floor(opts.now() / 1000) } : {}),
    });
    let res: Response;
    let text: string;
    try {
      res = await doFetch(`${base.origin}${pathWithQuery}`, {
        method,
        headers: {
          authorization,
          accept: 'application/json',
          'user-agent': 'wechat-brand-backend/0.1',
          ...(method === 'POST' ? { 'content-type': 'application/json' } : {}),
        },
        ...(method === 'POST' ? { body } : {}),
        signal: AbortSignal.timeout(timeoutMs),
      });
      text = await res.text();
    } catch (err) {
      const e = err as Error;
      if (e.name === 'TimeoutError' || e.name === 'AbortError') throw new PayUnknownError('timeout', `WeChat Pay did not answer ${method} ${path} within ${timeoutMs} ms`);
      throw new PayUnknownError('network', `WeChat Pay unreachable (${method} ${path}): ${e.message}`);
    }
    const headers: Record<string, string> = {};
    res.headers.forEach((v, k) => (headers[k] = v));
    // Verify before trusting anything in the answer, errors included (a forged 4xx must not make us give up).
    try {
      verifier.verify({ ...readPayHeaders(headers), body: text });
    } catch (err) {
      const reason = err instanceof PayVerifyError ? err.reason : 'error';
      throw new PayUnknownError('verify_failed', `WeChat Pay answer to ${method} ${path} failed verification (${reason}), HTTP ${res.status}`, res.status);
    }
    let json: any;
    try {
      json = text === '' ? undefined : JSON.parse(text);
    } catch {
      throw new PayUnknownError('bad_response', `WeChat Pay answered ${res.status} with non-JSON to ${method} ${path}`, res.status);
    }
    if (res.status >= 200 && res.status < 300) return { status: res.status, data: json as T };
    const code = typeof json?.code === 'string' ? json.code : `HTTP_${res.status}`;
    const message = typeof json?.message === 'string' ? json.message : '';
    if (res.status >= 500) throw new PayUnknownError('server_error', `WeChat Pay ${res.status} ${code}: ${message}`, res.status, code);
    if (res.status === 429 || code === 'FREQUENCY_LIMITED') throw new PayUnknownError('rate_limited', `WeChat Pay ${res.status} ${code}: ${message}`, res.status, code);
    throw new PayApiError(res.status, code, message, json?.detail);
  }

  return {
    mchid: opts.mchid,
    appId: opts.appId,

    /**
     * JSAPI prepay → prepay_id (valid 2 hours). Idempotent by out_trade_no with the same body; a PayUnknownError means
     * the order may exist: query it (queryTransactionByOutTradeNo) before calling again, with the same out_trade_no.
     */
    async jsapiPrepay(input: JsapiPrepayInput): Promise<{ prepay_id: string }> {
      const { data } = await call<{ prepay_id: string }>('POST', JSAPI_PREPAY_PATH, { ...input, mchid: opts.mchid, amount: { currency: 'CNY', ...input.amount } });
      if (!data || typeof data.prepay_id !== 'string' || data.prepay_id === '') throw new PayUnknownError('bad_response', 'jsapi prepay answer without prepay_id');
      return data;
    },

    /** The transaction, or null when WeChat Pay has no order with that out_trade_no (404 ORDER_NOT_EXIST). */
    async queryTransactionByOutTradeNo(outTradeNo: string): Promise<PayTransaction | null> {
      try {
        const { data } = await call<PayTransaction>('GET', `${TRANSACTIONS_OUT_TRADE_NO_PATH}/${encodeURIComponent(outTradeNo)}?mchid=${encodeURIComponent(opts.mchid)}`);
        if (!data || typeof data.trade_state !== 'string') throw new PayUnknownError('bad_response', 'transaction query answer without trade_state');
        return data;
      } catch (err) {
        if (err instanceof PayApiError && err.status === 404) return null;
        throw err;
      }
    },

    /** Close an unpaid order (204). A paid order is refused (400 ORDERPAID): query, it is paid. */
    async closeTransaction(outTradeNo: string): Promise<void> {
      await call<undefined>('POST', `${TRANSACTIONS_OUT_TRADE_NO_PATH}/${encodeURIComponent(outTradeNo)}/close`, { mchid: opts.mchid });
    },

    /** Refund a paid order (all or part). A PayUnknownError: query by out_refund_no before asking again, same number. */
    async createRefund(input: RefundInput): Promise<PayRefund> {
      const { data } = await call<PayRefund>('POST', REFUNDS_PATH, input);
      if (!data || typeof data.status !== 'string') throw new PayUnknownError('bad_response', 'refund answer without status');
      return data;
    },

    /** The refund, or null when WeChat Pay has none with that out_refund_no. */
    async queryRefund(outRefundNo: string): Promise<PayRefund | null> {
      try {
        const { data } = await call<PayRefund>('GET', `${REFUNDS_PATH}/${encodeURIComponent(outRefundNo)}`);
        if (!data || typeof data.status !== 'string') throw new PayUnknownError('bad_response', 'refund query answer without status');
        return data;
      } catch (err) {
        if (err instanceof PayApiError && err.status === 404) return null;
        throw err;
      }
    },

    /** The wx.requestPayment object for a prepay_id: paySign with the merchant key over the mini program's appId. */
    requestPaymentParams(appId: string, prepayId: string): RequestPaymentParams {
      return buildRequestPaymentParams(appId, prepayId, opts.privateKey, opts.now ? { timeStamp: String(Math.floor(opts.now() / 1000)) } : {});
    },

    /** Create a bill (idempotent by out_bill_no: the same body returns the same bill, incl. package_info). */
    async createTransferBill(input: CreateTransferBillInput): Promise<TransferBillCreated> {
      const { data } = await call<TransferBillCreated>('POST', TRANSFER_BILLS_PATH, { appid: opts.appId, ...input });
      if (!data || typeof data.state !== 'string' || typeof data.out_bill_no !== 'string') throw new PayUnknownError('bad_response', 'transfer-bills answer without state');
      return data;
    },

    /** The bill, or null when WeChat Pay has none with that out_bill_no (RESOURCE_NOT_EXISTS / NOT_FOUND). */
    async queryTransferBillByOutNo(outBillNo: string): Promise<TransferBill | null> {
      try {
        const { data } = await call<TransferBill>('GET', `${TRANSFER_BILLS_PATH}/out-bill-no/${encodeURIComponent(outBillNo)}`);
        if (!data || typeof data.state !== 'string') throw new PayUnknownError('bad_response', 'transfer bill query answer without state');
        return data;
      } catch (err) {
        if (err instanceof PayApiError && err.status === 404) return null;
        throw err;
      }
    },

    /** Ask to cancel a bill the user has not confirmed; asynchronous (CANCELING → CANCELLED): query afterwards. */
    async cancelTransferBill(outBillNo: string): Promise<TransferBillCancelled> {
      const { data } = await call<TransferBillCancelled>('POST', `${TRANSFER_BILLS_PATH}/out-bill-no/${encodeURIComponent(outBillNo)}/cancel`);
      if (!data || typeof data.state !== 'string') throw new PayUnknownError('bad_response', 'cancel answer without state');
      return data;
    },

    /**
     * Verify (signature + timestamp) and decrypt (GCM tag checked) a notification, from the raw body exactly as
     * received. Throws PayNotificationError for anything that must be refused. `event_type` tells what it is.
     */
    parseNotification(headers: Record<string, string | string[] | undefined>, rawBody: string): { id: string; eventType: string; resource: unknown } {
      try {
        verifier.verify({ ...readPayHeaders(headers), body: rawBody });
      } catch (err) {
        throw new PayNotificationError(err instanceof PayVerifyError ? err.reason : 'bad_signature', (err as Error).message);
      }
      let envelope: any;
      try {
        envelope = JSON.parse(rawBody);
      } catch {
        throw new PayNotificationError('bad_input', 'notification body is not JSON');
      }
      if (!envelope || typeof envelope !== 'object' || typeof envelope.event_type !== 'string' || !envelope.resource || typeof envelope.resource !== 'object') {
        throw new PayNotificationError('bad_input', 'notification without event_type or resource');
      }
      let plaintext: string;
      try {
        plaintext = decryptNotificationResource(envelope.resource, opts.apiV3Key);
      } catch (err) {
        throw new PayNotificationError(err instanceof PayDecryptError ? err.reason : 'decrypt_failed', (err as Error).message);
      }
      let resource: unknown;
      try {
        resource = JSON.parse(plaintext);
      } catch {
        throw new PayNotificationError('bad_input', 'decrypted resource is not JSON');
      }
      return { id: String(envelope.id ?? ''), eventType: envelope.event_type, resource };
    },
  };
}
export type PayClient = ReturnType<typeof createPayClient>;
