/**
 * The phone top-up sandbox: a local provider speaking the protocol of server/src/fulfilment/topup.ts, idempotent
 * by outNo, with knobs to make the next calls succeed, fail, stay pending, or time out — a timed-out call hangs
 * longer than the client waits and then really succeeds (or fails), so "query after timeout" is exercised.
 *
 *   POST /orders {outNo, phone, amountFen}    GET /orders/:outNo
 *   POST /__sandbox/topup/next {outcome: success|fail|pending|timeout, count?, then?: success|fail, delayMs?, reason?}
 *   GET  /__sandbox/topup/orders              POST /__sandbox/topup/orders/:outNo/{succeed,fail}
 */
import { randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { TOPUP_FACE_VALUES_FEN } from '../../fulfilment/topup.ts';

export type TopupOrderStatus = 'pending' | 'success' | 'failed';

export interface TopupOrder {
  outNo: string;
  phone: string;
  amountFen: number;
  status: TopupOrderStatus;
  providerRef: string;
  reason?: string;
  /** Recharge requests received for this order (repeats included). */
  requests: number;
  /** Times money actually moved for this order: must never exceed 1. */
  charges: number;
  createdAt: string;
  updatedAt: string;
}

export interface TopupNext {
  outcome: 'success' | 'fail' | 'pending' | 'timeout';
  /** timeout: the final outcome after the hang (default success). */
  then?: 'success' | 'fail';
  /** timeout: how long to hang before answering (default 3000 ms). */
  delayMs?: number;
  reason?: string;
}

export interface TopupSandboxOptions {
  /** When set, requests need `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  now?: () => number;
}

export class TopupSandboxState {
  readonly orders = new Map<string, TopupOrder>();
  readonly next: TopupNext[] = [];
  private hangs = new Set<{ timer: NodeJS.Timeout; finish: () => void }>();
  private inflight = new Set<Promise<unknown>>();

  constructor(readonly opts: TopupSandboxOptions = {}) {}

  now(): number {
    return (this.opts.now ?? Date.now)();
  }

  settle(order: TopupOrder, outcome: 'success' | 'fail', reason?: string) {
    order.updatedAt = new Date(this.now()).toISOString();
    if (outcome === 'success') {
      order.status = 'success';
      order.charges += 1;
      delete order.reason;
    } else {
      order.status = 'failed';
      order.reason = reason ?? 'CARRIER_BUSY';
    }
  }

  /** Apply the next knob (or success) to an order that is being attempted. */
  attempt(order: TopupOrder): Promise<void> {
    const knob = this.next.shift() ?? { outcome: 'success' as const };
    order.status = 'pending';
    if (knob.outcome === 'success' || knob.outcome === 'fail') {
      this.settle(order, knob.outcome, knob.reason);
      return Promise.resolve();
    }
    if (knob.outcome === 'pending') return Promise.resolve();
    // timeout: the order is accepted (pending) now, settles after the hang, and only then is the request answered.
    const p = new Promise<void>((resolve) => {
      const entry = {
        finish: () => {
          clearTimeout(entry.timer);
          this.hangs.delete(entry);
          if (order.status === 'pending') this.settle(order, knob.then ?? 'success', knob.reason);
          resolve();
        },
        timer: setTimeout(() => entry.finish(), knob.delayMs ?? 3000),
      };
      this.hangs.add(entry);
    });
    this.inflight.add(p);
    void p.finally(() => this.inflight.delete(p));
    return p;
  }

  /** End every hang now (settling its order); used on close. */
  finishAll() {
    for (const h of [...this.hangs]) h.finish();
  }

  /** Resolves when no hanging request is left. */
  async idle(): Promise<void> {
    while (this.inflight.size > 0) await Promise.allSettled([...this.inflight]);
  }
}

const publicOrder = (o: TopupOrder) => ({
  outNo: o.outNo,
  status: o.status,
  providerRef: o.providerRef,
  amountFen: o.amountFen,
  phone: o.phone,
  ...(o.reason !== undefined ? { reason: o.reason } : {}),
});

export function topupSandboxPlugin(state: TopupSandboxState): FastifyPluginAsync {
  return async (app: FastifyInstance) => {
    app.addHook('onClose', async () => state.finishAll());

    const err = (reply: FastifyReply, status: number, code: string, message: string) => reply.code(status).send({ code, message });

    await app.register(async (api) => {
      api.addHook('preHandler', async (req, reply) => {
        if (state.opts.apiKey && req.headers.authorization !== `Bearer ${state.opts.apiKey}`) return err(reply, 401, 'UNAUTHORIZED', '鉴权失败');
        return undefined;
      });

      api.post('/orders', async (req, reply) => {
        const b = req.body as { outNo?: unknown; phone?: unknown; amountFen?: unknown } | undefined;
        if (!b || typeof b.outNo !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(b.outNo)) return err(reply, 400, 'INVALID_PARAM', 'outNo 须为1-64位字母、数字、下划线或短横线');
        if (typeof b.phone !== 'string' || !/^1[3-9]\d{9}$/.test(b.phone)) return err(reply, 400, 'INVALID_PHONE', '手机号格式不正确');
        if (typeof b.amountFen !== 'number' || !TOPUP_FACE_VALUES_FEN.includes(b.amountFen)) {
          return err(reply, 400, 'FACE_VALUE_NOT_SUPPORTED', `不支持的充值面额，仅支持 ${TOPUP_FACE_VALUES_FEN.map((f) => f / 100).join('/')} 元`);
        }
        const now = new Date(state.now()).toISOString();
        let order = state.orders.get(b.outNo);
        if (order) {
          order.requests += 1;
          if (order.phone !== b.phone || order.amountFen !== b.amountFen) return err(reply, 409, 'ORDER_CONFLICT', '订单号已存在且参数不一致');
          // Idempotent: a pending or successful order is returned as it is; a failed one is attempted again.
          if (order.status !== 'failed') return publicOrder(order);
        } else {
          order = { outNo: b.outNo, phone: b.phone, amountFen: b.amountFen, status: 'pending', providerRef: `TP${Date.now()}${randomBytes(4).toString('hex')}`, requests: 1, charges: 0, createdAt: now, updatedAt: now };
          state.orders.set(order.outNo, order);
        }
        await state.attempt(order);
        return publicOrder(order);
      });

      api.get('/orders/:outNo', async (req, reply) => {
        const order = state.orders.get((req.params as { outNo: string }).outNo);
        if (!order) return err(reply, 404, 'ORDER_NOT_FOUND', '订单不存在');
        return publicOrder(order);
      });
    });

    // ---- Sandbox-only knobs (no auth) ----
    app.post('/__sandbox/topup/next', async (req: FastifyRequest, reply: FastifyReply) => {
      const b = (req.body ?? {}) as Partial<TopupNext> & { count?: unknown };
      const count = b.count === undefined ? 1 : Number(b.count);
      const outcomes = ['success', 'fail', 'pending', 'timeout'];
      if (!outcomes.includes(String(b.outcome)) || !Number.isInteger(count) || count < 0 || (b.then !== undefined && b.then !== 'success' && b.then !== 'fail')) {
        return reply.code(400).send({ ok: false, error: 'expected {outcome: success|fail|pending|timeout, count?, then?: success|fail, delayMs?, reason?}' });
      }
      for (let i = 0; i < count; i++) {
        state.next.push({
          outcome: b.outcome as TopupNext['outcome'],
          ...(b.then ? { then: b.then } : {}),
          ...(typeof b.delayMs === 'number' ? { delayMs: b.delayMs } : {}),
          ...(typeof b.reason === 'string' ? { reason: b.reason } : {}),
        });
      }
      return { ok: true, pending: state.next.length };
    });
    app.get('/__sandbox/topup/orders', async () => [...state.orders.values()]);
    for (const [name, outcome] of [['succeed', 'success'], ['fail', 'fail']] as const) {
      app.post(`/__sandbox/topup/orders/:outNo/${name}`, async (req, reply) => {
        const order = state.orders.get((req.params as { outNo: string }).outNo);
        if (!order) return reply.code(404).send({ ok: false, error: 'no such order' });
        if (order.status !== 'pending') return reply.code(409).send({ ok: false, error: `order is ${order.status}` });
        state.settle(order, outcome);
        return { ok: true, order };
      });
    }
  };
}
