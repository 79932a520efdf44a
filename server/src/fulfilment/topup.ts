/**
 * Phone top-up (话费充值) providers. The contract every provider must honour (the sandbox in
 * server/src/wechat/sandbox/topup.ts implements it):
 *
 * - `recharge` is idempotent by `outNo`: for an order that is `success` or `pending` it returns that order and never
 *   charges again; an order that `failed` moved no money and is attempted again under the same `outNo`.
 * - A timeout, a network error or a 5xx is NOT a failure: the outcome is unknown (TopupUnknownError) and the caller
 *   must `query(outNo)` before doing anything else.
 * - `query` returns null only when the provider has no order with that `outNo` at all.
 *
 * HTTP protocol of the client below (JSON, optional `Authorization: Bearer <TOPUP_API_KEY>`):
 *   POST {base}/orders {outNo, phone, amountFen} → 200 {outNo, status, providerRef?, reason?} | 4xx {code, message}
 *   GET  {base}/orders/{outNo}                   → 200 {outNo, status, providerRef?, reason?} | 404
 */

/** Face values (fen) carriers sell: 10, 20, 30, 50 and 100 yuan. */
export const TOPUP_FACE_VALUES_FEN: readonly number[] = Object.freeze([1000, 2000, 3000, 5000, 10000]);

export function isTopupFaceValue(amountFen: number): boolean {
  return TOPUP_FACE_VALUES_FEN.includes(amountFen);
}

export type TopupStatus = 'success' | 'pending' | 'failed';

export interface TopupResult {
  status: TopupStatus;
  providerRef?: string;
  /** Why it failed (provider code). */
  reason?: string;
  /** A failure retrying cannot fix (bad number, unsupported face value, conflicting order): do not retry. */
  permanent?: boolean;
}

export interface TopupRequest {
  /** Our order number (the fulfilment's out_no). */
  outNo: string;
  /** 11-digit mainland mobile number. */
  phone: string;
  amountFen: number;
}

export interface TopupProvider {
  recharge(req: TopupRequest): Promise<TopupResult>;
  /** null: the provider has no such order. */
  query(outNo: string): Promise<TopupResult | null>;
}

/** The provider's answer is unknown (timeout, network, 5xx, unreadable answer): query before any retry. */
export class TopupUnknownError extends Error {
  constructor(readonly reason: 'timeout' | 'network' | 'server_error' | 'bad_response', message: string) {
    super(message);
    this.name = 'TopupUnknownError';
  }
}

const STATUSES = new Set<TopupStatus>(['success', 'pending', 'failed']);

function parseResult(body: unknown): TopupResult {
  const b = body as Record<string, unknown> | null;
  if (!b || typeof b !== 'object' || !STATUSES.has(b.status as TopupStatus)) throw new TopupUnknownError('bad_response', 'top-up provider answered without a valid status');
  return {
    status: b.status as TopupStatus,
    ...(typeof b.providerRef === 'string' ? { providerRef: b.providerRef } : {}),
    ...(typeof b.reason === 'string' ? { reason: b.reason } : {}),
    ...(b.permanent === true ? { permanent: true } : {}),
  };
}

export interface HttpTopupOptions {
  baseUrl: string;
  apiKey?: string | undefined;
  timeoutMs?: number;
  fetch?: typeof fetch;
}

export function createHttpTopupProvider(opts: HttpTopupOptions): TopupProvider {
  const base = opts.baseUrl.replace(/\/+$/, '');
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const doFetch = opts.fetch ?? fetch;

  async function call(method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; json: unknown }> {
    let res: Response;
    try {
      res = await doFetch(`${base}${path}`, {
        method,
        headers: {
          accept: 'application/json',
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
          ...(opts.apiKey ? { authorization: `Bearer ${opts.apiKey}` } : {}),
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (err) {
      const e = err as Error;
      if (e.name === 'TimeoutError' || e.name === 'AbortError') throw new TopupUnknownError('timeout', `top-up provider did not answer within ${timeoutMs} ms`);
      throw new TopupUnknownError('network', `top-up provider unreachable: ${e.message}`);
    }
    let text: string;
    try {
      text = await res.text();
    } catch (err) {
      throw new TopupUnknownError('network', `top-up provider answer interrupted: ${(err as Error).message}`);
    }
    if (res.status >= 500) throw new TopupUnknownError('server_error', `top-up provider answered ${res.status}`);
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      throw new TopupUnknownError('bad_response', `top-up provider answered ${res.status} with non-JSON`);
    }
    return { status: res.status, json };
  }

  return {
    async recharge(req) {
      if (!isTopupFaceValue(req.amountFen)) {
        return { status: 'failed', reason: 'FACE_VALUE_NOT_SUPPORTED', permanent: true };
      }
      const { status, json } = await call('POST', '/orders', { outNo: req.outNo, phone: req.phone, amountFen: req.amountFen });
      if (status === 200) return parseResult(json);
      const code = typeof (json as { code?: unknown })?.code === 'string' ? (json as { code: string }).code : `HTTP_${status}`;
      // 4xx: the provider refused the request itself; nothing was charged and the same request would fail again.
      if (status >= 400 && status < 500 && status !== 408 && status !== 429) return { status: 'failed', reason: code, permanent: true };
      throw new TopupUnknownError('server_error', `top-up provider answered ${status} ${code}`);
    },

    async query(outNo) {
      const { status, json } = await call('GET', `/orders/${encodeURIComponent(outNo)}`);
      if (status === 404) return null;
      if (status === 200) return parseResult(json);
      throw new TopupUnknownError('server_error', `top-up provider answered ${status} to a query`);
    },
  };
}
