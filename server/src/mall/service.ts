/**
 * The points mall: items, orders and their state machine, paid in points (through the ledger) and, for points +
 * cash items, WeChat Pay JSAPI.
 *
 * Order states (every move is a conditional UPDATE … WHERE state IN (…), recorded in mall_order_events):
 *   awaiting_payment ─paid notify / query SUCCESS→ paid ─ship→ shipped ─complete→ fulfilled
 *   paid (points only) is reached at once; coupon items are issued in the same transaction → fulfilled
 *   awaiting_payment | paid (no cash taken, not shipped) ─cancel→ cancelled (points credited back, stock released)
 *   paid with cash ─cancel→ refund_pending (points back now) ─REFUND.SUCCESS / query→ refunded; the cash goes back
 *   through the refund API (out_refund_no `MALLR…`, queried before it is ever asked again); a payment that arrives
 *   after the order was cancelled goes the same way
 *
 * Exactly-once rules:
 * - a client key per order: (openid, client_key) is unique, so a double-submitted order is one order;
 * - stock is taken by `UPDATE mall_items SET stock = stock - q WHERE stock >= q` inside the order's transaction;
 * - per-member limits by a conditional upsert on mall_member_counts in the same transaction;
 * - points are debited through the ledger with key `mall:order:<id>` and credited back with `mall:order:<id>:cancel`;
 * - a payment notification moves awaiting_payment → paid once; a replay finds the order paid and changes nothing.
 * - WeChat Pay: an answer we could not read (timeout, 5xx) leaves the order awaiting payment; the next attempt
 *   queries by out_trade_no before it prepays again, with the same out_trade_no and the same body.
 */
import { randomInt } from 'node:crypto';
import { and, desc, eq, inArray, lt, sql, type SQL } from 'drizzle-orm';
import type { Database, Tx } from '../db/client.ts';
import { rowsOf } from '../db/retry.ts';
import { AppError } from '../platform/errors.ts';
import type { Clock } from '../platform/clock.ts';
import type { Ledger } from '../members/ledger.ts';
import { userCoupons } from '../members/tables.ts';
import { sealPii, unsealPii } from '../members/phones.ts';
import { PayApiError, PayNotificationError, PayUnknownError, type PayClient, type PayRefund, type PayTransaction, type RefundNotification } from '../wechat/pay/client.ts';
import type { RequestPaymentParams } from '../wechat/pay/crypto.ts';
import { mallItems, mallMemberCounts, mallOrderEvents, mallOrders, type MallCouponSpec, type MallItem, type MallItemKind, type MallOrder, type OrderState } from './tables.ts';

export interface ShippingAddress {
  name: string;
  phone: string;
  province: string;
  city: string;
  district?: string | undefined;
  detail: string;
}

export interface OrderingMember {
  memberId: number;
  openid: string;
  mpOpenid: string;
}

export interface ItemInput {
  kind: MallItemKind;
  title: string;
  description?: string | undefined;
  imageUrl?: string | null | undefined;
  points: number;
  cashFen?: number | undefined;
  stock: number;
  perMemberLimit?: number | null | undefined;
  minTier?: string | null | undefined;
  coupon?: MallCouponSpec | null | undefined;
  status?: 'draft' | 'active' | 'archived' | undefined;
  position?: number | undefined;
}

export interface MallConfig {
  /** The mini program's AppID (JSAPI appid, and the appId paySign covers). */
  miniprogramAppId: string | undefined;
  /** Where WeChat Pay posts TRANSACTION.SUCCESS (`…/pay/notify/jsapi`). */
  notifyUrl: string | undefined;
  /** How long a points + cash order waits for its payment (WeChat's time_expire). */
  payTtlMinutes: number;
  piiKey: Buffer;
  /** Tier codes from lowest to highest (minTier compares by position). */
  tiers: readonly string[];
}

export type NotifyOutcome = { status: number; code: 'SUCCESS' | 'FAIL'; message: string };

const COUPON_ALPHABET = '23456789ABCDEFGHJKMNPQRSTUVWXYZ';
const PREPAY_VALID_MS = 110 * 60_000; // prepay_id lives 2 h; ask again a little before

/** Goods are shipped: physical gifts, samples, and points + cash items that are not a coupon. */
export const needsAddress = (item: Pick<MallItem, 'kind' | 'coupon'>) => item.kind === 'physical' || item.kind === 'sample' || (item.kind === 'points_cash' && !item.coupon);

export const outTradeNoOf = (orderId: number) => `MALL${String(orderId).padStart(10, '0')}`;
export const outRefundNoOf = (orderId: number) => `MALLR${String(orderId).padStart(10, '0')}`;
const ledgerKey = (orderId: number) => `mall:order:${orderId}`;

/** RFC 3339 in Beijing time, as WeChat Pay writes and reads times. */
function rfc3339(d: Date): string {
  return `${new Date(d.getTime() + 8 * 3_600_000).toISOString().slice(0, 19)}+08:00`;
}

export function createMallService(deps: { database: Database; clock: Clock; ledger: Ledger; pay: PayClient | null; config: MallConfig; log?: { warn(o: unknown, m?: string): void } }) {
  const { database, clock, ledger, pay, config } = deps;
  const { db } = database;

  function checkItem(input: ItemInput) {
    const cash = input.cashFen ?? 0;
    if (input.kind === 'points_cash' && !(cash > 0)) throw new AppError('VALIDATION', 'A points + cash item needs cashFen > 0');
    if (input.kind !== 'points_cash' && cash !== 0) throw new AppError('VALIDATION', 'Only points + cash items have a cash price');
    if (input.kind !== 'points_cash' && !(input.points > 0)) throw new AppError('VALIDATION', 'A points item needs points > 0');
    if (input.kind === 'coupon' && !input.coupon) throw new AppError('VALIDATION', 'A coupon item needs coupon {title, valueFen, validDays}');
    if (input.minTier && !config.tiers.includes(input.minTier)) throw new AppError('VALIDATION', `Unknown tier ${input.minTier} (known: ${config.tiers.join(', ')})`);
  }

  async function event(tx: Tx, orderId: number, from: OrderState | null, to: OrderState, note: string | null) {
    await tx.insert(mallOrderEvents).values({ orderId, fromState: from, toState: to, note, at: clock.now() });
  }

  /** Move an order from one of `from` to `to`; undefined when it was not in one of them (someone else moved it). */
  async function move(tx: Tx, orderId: number, from: OrderState[], to: OrderState, set: Partial<typeof mallOrders.$inferInsert>, note: string | null): Promise<MallOrder | undefined> {
    const [before] = rowsOf<{ state: OrderState }>(await tx.execute(sql`SELECT state FROM mall_orders WHERE id = ${orderId} FOR UPDATE`));
    if (!before || !from.includes(before.state)) return undefined;
    const [row] = await tx.update(mallOrders).set({ ...set, state: to, updatedAt: clock.now() })
      .where(and(eq(mallOrders.id, orderId), inArray(mallOrders.state, from))).returning();
    if (row) await event(tx, orderId, before.state, to, note);
    return row;
  }

  async function issueCoupon(tx: Tx, order: MallOrder, spec: MallCouponSpec): Promise<number> {
    const now = clock.now();
    const sourceKey = ledgerKey(order.id);
    for (let i = 0; i < 5; i++) {
      const code = Array.from({ length: 12 }, () => COUPON_ALPHABET[randomInt(COUPON_ALPHABET.length)]).join('');
      await tx.insert(userCoupons).values({
        openid: order.openid, sourceKey, couponCode: code, title: spec.title, valueFen: spec.valueFen,
        storeIds: spec.storeIds && spec.storeIds.length > 0 ? spec.storeIds : null,
        status: 'issued', issuedAt: now, expiresAt: new Date(now.getTime() + spec.validDays * 86_400_000),
      }).onConflictDoNothing();
      const [c] = await tx.select({ id: userCoupons.id }).from(userCoupons).where(eq(userCoupons.sourceKey, sourceKey));
      if (c) return c.id;
    }
    throw new AppError('INTERNAL', 'could not issue a unique coupon code');
  }

  /** What happens once an order is paid: coupons are issued at once; goods wait for ops to ship them. */
  async function fulfilPaid(tx: Tx, order: MallOrder): Promise<MallOrder> {
    if (order.kind !== 'coupon' && order.kind !== 'points_cash') return order;
    const [item] = await tx.select().from(mallItems).where(eq(mallItems.id, order.itemId));
    if (!item?.coupon) return order;
    const couponId = await issueCoupon(tx, order, item.coupon);
    return (await move(tx, order.id, ['paid'], 'fulfilled', { couponId }, `coupon ${couponId} issued`)) ?? order;
  }

  /** Tier order: member_tiers.position (members' tiers, ops-editable) when set up, else the configured list. */
  async function tierRanks(memberId: number): Promise<{ have: number; rank: (tier: string) => number }> {
    const rows = await database.query<{ key: string; position: number }>(sql`SELECT key, position FROM member_tiers`);
    const pos = new Map(rows.map((r) => [r.key, Number(r.position)]));
    const rank = (tier: string) => pos.get(tier) ?? config.tiers.indexOf(tier);
    const [m] = await database.query<{ tier: string | null }>(sql`SELECT tier FROM members WHERE id = ${memberId}`);
    return { have: rank(m?.tier ?? config.tiers[0]!), rank };
  }

  async function tierAllows(memberId: number, minTier: string | null): Promise<boolean> {
    if (!minTier) return true;
    const { have, rank } = await tierRanks(memberId);
    return have >= rank(minTier);
  }

  async function byClientKey(openid: string, clientKey: string): Promise<MallOrder | undefined> {
    const [o] = await db.select().from(mallOrders).where(and(eq(mallOrders.openid, openid), eq(mallOrders.clientKey, clientKey)));
    return o;
  }

  class Duplicate extends Error {}

  /** Points back, stock back, limit count back, state moved: one transaction. */
  async function cancelInTx(tx: Tx, order: MallOrder, from: OrderState[], to: 'cancelled' | 'refund_pending', note: string): Promise<MallOrder | undefined> {
    const row = await move(tx, order.id, from, to, {}, note);
    if (!row) return undefined;
    await tx.update(mallItems).set({ stock: sql`${mallItems.stock} + ${order.quantity}`, sold: sql`${mallItems.sold} - ${order.quantity}`, updatedAt: clock.now() }).where(eq(mallItems.id, order.itemId));
    await tx.update(mallMemberCounts).set({ quantity: sql`greatest(${mallMemberCounts.quantity} - ${order.quantity}, 0)` })
      .where(and(eq(mallMemberCounts.openid, order.openid), eq(mallMemberCounts.itemId, order.itemId)));
    if (order.points > 0) await ledger.credit(order.openid, order.points, `${ledgerKey(order.id)}:cancel`, 'mall_cancel', { orderId: order.id }, tx);
    return row;
  }

  /** Settle a verified, paid transaction against its order (notify or query); idempotent. */
  async function settlePaid(t: PayTransaction): Promise<MallOrder | undefined> {
    const settled = await settle(t);
    return settled?.state === 'refund_pending' ? refund(settled) : settled;
  }

  async function settle(t: PayTransaction): Promise<MallOrder | undefined> {
    const [order] = await db.select().from(mallOrders).where(eq(mallOrders.outTradeNo, t.out_trade_no));
    if (!order) return undefined;
    if (t.amount?.total !== order.cashFen || (pay && t.mchid !== pay.mchid) || t.appid !== config.miniprogramAppId) {
      // Not what we asked for: never mark it paid; leave it for ops (and WeChat keeps a record).
      deps.log?.warn({ orderId: order.id, outTradeNo: t.out_trade_no, total: t.amount?.total, appid: t.appid }, 'mall payment does not match its order');
      throw new AppError('CONFLICT', `payment for ${t.out_trade_no} does not match the order`);
    }
    return db.transaction(async (tx) => {
      const paid = await move(tx, order.id, ['awaiting_payment'], 'paid', { transactionId: t.transaction_id ?? null, paidAt: t.success_time ? new Date(t.success_time) : clock.now() },
        `paid ${t.transaction_id ?? ''}`.trim());
      if (paid) return fulfilPaid(tx, paid);
      // Paid after we cancelled it (the close lost the race): the cash must go back; ops see it as refund_pending.
      const late = await move(tx, order.id, ['cancelled'], 'refund_pending', { transactionId: t.transaction_id ?? null, paidAt: clock.now() }, 'paid after cancellation: refund the cash');
      if (late) return late;
      const [now] = await tx.select().from(mallOrders).where(eq(mallOrders.id, order.id));
      return now;
    });
  }

  async function noteOn(orderId: number, note: string) {
    await db.update(mallOrders).set({ note, updatedAt: clock.now() }).where(eq(mallOrders.id, orderId));
  }

  async function refunded(order: MallOrder, r: Pick<PayRefund, 'refund_id' | 'status'>): Promise<MallOrder> {
    const row = await db.transaction((tx) => move(tx, order.id, ['refund_pending'], 'refunded', {}, `cash refunded (${r.refund_id})`));
    return row ?? order;
  }

  /**
   * Give the cash of a refund_pending order back: query first (a refund asked for before may exist), ask only when
   * WeChat Pay has none, always with the same out_refund_no. Unknown outcomes are left for the next attempt.
   */
  async function refund(order: MallOrder): Promise<MallOrder> {
    if (order.state !== 'refund_pending' || order.cashFen === 0 || !order.outTradeNo || !pay) return order;
    const outRefundNo = outRefundNoOf(order.id);
    try {
      let r = await pay.queryRefund(outRefundNo);
      r ??= await pay.createRefund({
        out_trade_no: order.outTradeNo, out_refund_no: outRefundNo, reason: '积分商城订单取消',
        ...(config.notifyUrl ? { notify_url: config.notifyUrl } : {}), amount: { refund: order.cashFen, total: order.cashFen, currency: 'CNY' },
      });
      if (r.status === 'SUCCESS') return refunded(order, r);
      if (r.status === 'ABNORMAL' || r.status === 'CLOSED') await noteOn(order.id, `refund ${r.status}: ops must refund by hand`);
    } catch (err) {
      if (err instanceof PayApiError) await noteOn(order.id, `refund refused: ${err.code}`);
      else if (!(err instanceof PayUnknownError)) throw err;
    }
    const [now] = await db.select().from(mallOrders).where(eq(mallOrders.id, order.id));
    return now ?? order;
  }

  function requirePay(): PayClient {
    if (!pay || !config.miniprogramAppId || !config.notifyUrl) throw new AppError('CONFLICT', 'WeChat Pay is not configured: points + cash items cannot be paid');
    return pay;
  }

  function prepayBody(order: MallOrder) {
    return {
      appid: config.miniprogramAppId!,
      description: order.title.slice(0, 120),
      out_trade_no: order.outTradeNo!,
      ...(order.payExpiresAt ? { time_expire: rfc3339(order.payExpiresAt) } : {}),
      notify_url: config.notifyUrl!,
      amount: { total: order.cashFen, currency: 'CNY' as const },
      payer: { openid: order.mpOpenid! },
    };
  }

  /**
   * The wx.requestPayment parameters for an order awaiting payment. Asks WeChat Pay for a prepay_id when there is
   * none (or it is about to lapse); when an earlier attempt's outcome is unknown it queries first.
   */
  async function payment(order: MallOrder, queryFirst: boolean): Promise<{ order: MallOrder; payment: RequestPaymentParams | null }> {
    if (order.state !== 'awaiting_payment' || order.cashFen === 0) return { order, payment: null };
    const client = requirePay();
    const now = clock.now();
    if (order.prepayId && order.prepayAt && now.getTime() - order.prepayAt.getTime() < PREPAY_VALID_MS) {
      return { order, payment: client.requestPaymentParams(config.miniprogramAppId!, order.prepayId) };
    }
    if (order.payExpiresAt && order.payExpiresAt <= now) throw new AppError('CONFLICT', '订单已超时，请重新下单', { reason: 'payment_expired' });
    if (queryFirst) {
      const t = await client.queryTransactionByOutTradeNo(order.outTradeNo!).catch((err) => {
        if (err instanceof PayUnknownError) throw new AppError('WECHAT_API', '支付服务繁忙，请稍后再试');
        throw err;
      });
      if (t?.trade_state === 'SUCCESS') return { order: (await settlePaid(t)) ?? order, payment: null };
      if (t?.trade_state === 'CLOSED') throw new AppError('CONFLICT', '订单已关闭，请重新下单', { reason: 'closed' });
    }
    let prepayId: string;
    try {
      ({ prepay_id: prepayId } = await client.jsapiPrepay(prepayBody(order)));
    } catch (err) {
      if (err instanceof PayApiError) {
        if (err.code === 'ORDERPAID') {
          const t = await client.queryTransactionByOutTradeNo(order.outTradeNo!);
          if (t?.trade_state === 'SUCCESS') return { order: (await settlePaid(t)) ?? order, payment: null };
        }
        throw new AppError('WECHAT_API', `WeChat Pay refused the order: ${err.code}`, { code: err.code });
      }
      if (err instanceof PayUnknownError) throw new AppError('WECHAT_API', '支付服务繁忙，请稍后重试支付', { reason: err.reason });
      throw err;
    }
    const [row] = await db.update(mallOrders).set({ prepayId, prepayAt: now, updatedAt: now })
      .where(and(eq(mallOrders.id, order.id), eq(mallOrders.state, 'awaiting_payment'))).returning();
    return { order: row ?? order, payment: client.requestPaymentParams(config.miniprogramAppId!, prepayId) };
  }

  async function getOwned(openid: string, orderId: number): Promise<MallOrder> {
    const [o] = await db.select().from(mallOrders).where(and(eq(mallOrders.id, orderId), eq(mallOrders.openid, openid)));
    if (!o) throw new AppError('NOT_FOUND', `没有订单 ${orderId}`);
    return o;
  }

  /**
   * Cancel (the member or ops): an unpaid JSAPI order is closed at WeChat Pay first (after a query: a paid one is
   * settled instead); paid goods that have not shipped are cancelled too (cash then waits for a refund).
   */
  async function cancel(order: MallOrder, note: string): Promise<MallOrder> {
    if (order.state === 'cancelled' || order.state === 'refund_pending' || order.state === 'refunded') return order;
    if (order.state === 'awaiting_payment' && order.outTradeNo && pay) {
      // Even without a prepay_id on our side: a prepay whose answer was lost may exist at WeChat Pay.
      try {
        const t = await pay.queryTransactionByOutTradeNo(order.outTradeNo);
        if (t?.trade_state === 'SUCCESS') {
          await settlePaid(t);
          throw new AppError('CONFLICT', '订单已支付，无法取消', { reason: 'paid' });
        }
        if (t && t.trade_state === 'NOTPAY') await pay.closeTransaction(order.outTradeNo);
      } catch (err) {
        if (err instanceof PayUnknownError) throw new AppError('WECHAT_API', '支付服务繁忙，请稍后再取消');
        if (err instanceof PayApiError && err.code === 'ORDERPAID') throw new AppError('CONFLICT', '订单已支付，无法取消', { reason: 'paid' });
        if (!(err instanceof PayApiError)) throw err;
      }
    }
    if (order.state !== 'awaiting_payment' && order.state !== 'paid') throw new AppError('CONFLICT', `订单状态为 ${order.state}，无法取消`, { state: order.state });
    if (order.couponId !== null) throw new AppError('CONFLICT', '优惠券已发放，无法取消');
    // Only from the state this cancel was decided on (and its target worked out from): an unpaid order whose payment
    // landed meanwhile (the query said USERPAYING, the notification came before this transaction) is not cancelled
    // as unpaid — that gave the points back and kept the cash with no refund; the member or ops see it paid.
    const from: OrderState[] = [order.state];
    const to = order.state === 'paid' && order.cashFen > 0 ? 'refund_pending' : 'cancelled';
    const row = await db.transaction((tx) => cancelInTx(tx, order, from, to, note));
    if (row?.state === 'refund_pending') return refund(row);
    if (!row) {
      const [now] = await db.select().from(mallOrders).where(eq(mallOrders.id, order.id));
      if (now && (now.state === 'cancelled' || now.state === 'refund_pending')) return now;
      throw new AppError('CONFLICT', `订单状态为 ${now?.state ?? order.state}，无法取消`, { state: now?.state });
    }
    return row;
  }

  return {
    // ---- items (ops) ----
    async createItem(input: ItemInput): Promise<MallItem> {
      checkItem(input);
      const now = clock.now();
      const [row] = await db.insert(mallItems).values({
        kind: input.kind, title: input.title, description: input.description ?? '', imageUrl: input.imageUrl ?? null, points: input.points,
        cashFen: input.cashFen ?? 0, stock: input.stock, perMemberLimit: input.perMemberLimit ?? null, minTier: input.minTier ?? null,
        coupon: input.coupon ?? null, status: input.status ?? 'draft', position: input.position ?? 0, createdAt: now, updatedAt: now,
      }).returning();
      return row!;
    },

    /** Stock changes are relative (`stockDelta`) so a concurrent sale is never overwritten. */
    async updateItem(id: number, patch: Partial<Omit<ItemInput, 'stock'>> & { stockDelta?: number | undefined }): Promise<MallItem> {
      const [current] = await db.select().from(mallItems).where(eq(mallItems.id, id));
      if (!current) throw new AppError('NOT_FOUND', `No mall item ${id}`);
      const { stockDelta, ...fields } = patch;
      const merged: ItemInput = { ...current, ...Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined)) } as ItemInput;
      checkItem(merged);
      const set: Record<string, unknown> = { ...Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined)), updatedAt: clock.now() };
      if (stockDelta) set.stock = sql`${mallItems.stock} + ${stockDelta}`;
      const [row] = await db.update(mallItems).set(set).where(and(eq(mallItems.id, id), stockDelta && stockDelta < 0 ? sql`${mallItems.stock} + ${stockDelta} >= 0` : sql`true`)).returning();
      if (!row) throw new AppError('CONFLICT', `Stock of item ${id} cannot go below zero`);
      return row;
    },

    async getItem(id: number): Promise<MallItem | undefined> {
      const [row] = await db.select().from(mallItems).where(eq(mallItems.id, id));
      return row;
    },

    async listItems(opts: { status?: 'draft' | 'active' | 'archived' | undefined } = {}): Promise<MallItem[]> {
      return db.select().from(mallItems).where(opts.status ? eq(mallItems.status, opts.status) : undefined).orderBy(mallItems.position, mallItems.id);
    },

    /** Active items with what this member may still order of each. */
    async catalogue(member: OrderingMember) {
      const items = await db.select().from(mallItems).where(eq(mallItems.status, 'active')).orderBy(mallItems.position, mallItems.id);
      const held = await db.select().from(mallMemberCounts).where(eq(mallMemberCounts.openid, member.openid));
      const { have, rank } = await tierRanks(member.memberId);
      return items.map((item) => {
        const mine = held.find((h) => h.itemId === item.id)?.quantity ?? 0;
        return { item, remainingForMe: item.perMemberLimit === null ? null : Math.max(0, item.perMemberLimit - mine), tierOk: !item.minTier || have >= rank(item.minTier) };
      });
    },

    // ---- orders (member) ----
    /**
     * Place an order. The same clientKey returns the first order (`duplicate: true`) whatever happened since.
     * Points + cash orders come back awaiting payment with the wx.requestPayment parameters.
     */
    async placeOrder(member: OrderingMember, input: { itemId: number; quantity: number; clientKey: string; address?: ShippingAddress | undefined }) {
      const prior = await byClientKey(member.openid, input.clientKey);
      if (prior) {
        if (prior.itemId !== input.itemId || prior.quantity !== input.quantity) throw new AppError('CONFLICT', 'clientKey was used for a different order', { reason: 'client_key_reused', orderId: prior.id });
        return { ...(await payment(prior, true).catch(() => ({ order: prior, payment: null }))), duplicate: true };
      }
      const [item] = await db.select().from(mallItems).where(eq(mallItems.id, input.itemId));
      if (!item || item.status !== 'active') throw new AppError('NOT_FOUND', '商品不存在或已下架');
      if (needsAddress(item) && !input.address) throw new AppError('VALIDATION', '请填写收货地址', { reason: 'address_required' });
      if (!(await tierAllows(member.memberId, item.minTier))) throw new AppError('FORBIDDEN', '该商品为会员等级专享', { reason: 'tier', minTier: item.minTier });
      if (item.kind === 'points_cash') requirePay();
      const now = clock.now();
      const q = input.quantity;
      let order: MallOrder;
      try {
        order = await db.transaction(async (tx) => {
          // The member's points account first: linking a follower and deleting an account take it before the
          // per-member counts, and an order taking the counts first could deadlock with them.
          if (item.points > 0 || item.perMemberLimit !== null) {
            await tx.execute(sql`INSERT INTO points_accounts (openid, balance, updated_at) VALUES (${member.openid}, 0, ${now}) ON CONFLICT (openid) DO NOTHING`);
            await tx.execute(sql`SELECT 1 FROM points_accounts WHERE openid = ${member.openid} FOR UPDATE`);
          }
          const [row] = await tx.insert(mallOrders).values({
            openid: member.openid, memberId: member.memberId, mpOpenid: member.mpOpenid, clientKey: input.clientKey, itemId: item.id, kind: item.kind,
            title: item.title, quantity: q, points: item.points * q, cashFen: item.cashFen * q, state: item.cashFen > 0 ? 'awaiting_payment' : 'paid',
            addressSealed: input.address ? sealPii(JSON.stringify(input.address), config.piiKey) : null,
            payExpiresAt: item.cashFen > 0 ? new Date(now.getTime() + config.payTtlMinutes * 60_000) : null,
            createdAt: now, updatedAt: now,
          }).onConflictDoNothing().returning();
          // The same clientKey committed meanwhile (a double submit racing us): that order is the answer.
          if (!row) throw new Duplicate();
          const taken = rowsOf<{ id: number }>(await tx.execute(sql`
            UPDATE mall_items SET stock = stock - ${q}, sold = sold + ${q}, updated_at = ${now}
            WHERE id = ${item.id} AND status = 'active' AND stock >= ${q} RETURNING id`));
          if (taken.length === 0) throw new AppError('CONFLICT', '库存不足', { reason: 'sold_out' });
          if (item.perMemberLimit !== null) {
            const counted = rowsOf<{ quantity: number }>(await tx.execute(sql`
              INSERT INTO mall_member_counts (openid, item_id, quantity) SELECT ${member.openid}, ${item.id}, ${q} WHERE ${q} <= ${item.perMemberLimit}
              ON CONFLICT (openid, item_id) DO UPDATE SET quantity = mall_member_counts.quantity + ${q}
              WHERE mall_member_counts.quantity + ${q} <= ${item.perMemberLimit} RETURNING quantity`));
            if (counted.length === 0) throw new AppError('CONFLICT', `每人限兑 ${item.perMemberLimit} 件`, { reason: 'limit_reached', limit: item.perMemberLimit });
          }
          if (row.points > 0) await ledger.debit(member.openid, row.points, ledgerKey(row.id), 'mall_order', { orderId: row.id, itemId: item.id }, tx);
          const [withNo] = item.cashFen > 0
            ? await tx.update(mallOrders).set({ outTradeNo: outTradeNoOf(row.id) }).where(eq(mallOrders.id, row.id)).returning()
            : [row];
          await event(tx, row.id, null, withNo!.state, null);
          return withNo!.state === 'paid' ? fulfilPaid(tx, withNo!) : withNo!;
        });
      } catch (err) {
        if (err instanceof Duplicate) {
          const first = await byClientKey(member.openid, input.clientKey);
          if (first) return { order: first, payment: null, duplicate: true };
        }
        if (err instanceof AppError && err.code === 'VALIDATION' && (err.details as { reason?: string } | undefined)?.reason === 'insufficient_points') {
          throw new AppError('VALIDATION', '积分不足', err.details);
        }
        throw err;
      }
      if (order.state !== 'awaiting_payment') return { order, payment: null, duplicate: false };
      try {
        return { ...(await payment(order, false)), duplicate: false };
      } catch (err) {
        // A verified refusal: nothing will ever be paid for this order, so give the points and stock back now.
        if (err instanceof AppError && err.code === 'WECHAT_API' && (err.details as { code?: string } | undefined)?.code) {
          await cancel(order, `prepay refused: ${(err.details as { code: string }).code}`).catch(() => undefined);
        }
        throw err;
      }
    },

    /** The wx.requestPayment parameters again (the member closed the pay sheet, or prepay's answer was lost). */
    async pay(member: OrderingMember, orderId: number) {
      const order = await getOwned(member.openid, orderId);
      if (order.state !== 'awaiting_payment') throw new AppError('CONFLICT', `订单状态为 ${order.state}，无需支付`, { state: order.state });
      return payment(order, true);
    },

    /** The member says wx.requestPayment succeeded: never trusted, but a reason to query WeChat Pay now. */
    async paid(member: OrderingMember, orderId: number): Promise<MallOrder> {
      const order = await getOwned(member.openid, orderId);
      if (order.state !== 'awaiting_payment' || !order.outTradeNo || !pay) return order;
      const t = await pay.queryTransactionByOutTradeNo(order.outTradeNo).catch(() => null);
      if (t?.trade_state === 'SUCCESS') return (await settlePaid(t)) ?? order;
      return order;
    },

    async cancelMine(member: OrderingMember, orderId: number): Promise<MallOrder> {
      const order = await getOwned(member.openid, orderId);
      if (order.state === 'shipped' || order.state === 'fulfilled') throw new AppError('CONFLICT', '订单已发货或已完成，无法取消', { state: order.state });
      return cancel(order, 'cancelled by the member');
    },

    async myOrders(openid: string, limit = 50): Promise<MallOrder[]> {
      return db.select().from(mallOrders).where(eq(mallOrders.openid, openid)).orderBy(desc(mallOrders.id)).limit(Math.min(200, Math.max(1, limit)));
    },

    getOwned,

    address(order: MallOrder): ShippingAddress | null {
      return order.addressSealed ? (JSON.parse(unsealPii(order.addressSealed, config.piiKey)) as ShippingAddress) : null;
    },

    // ---- orders (ops) ----
    async listOrders(f: { state?: OrderState | undefined; itemId?: number | undefined; beforeId?: number | undefined; limit: number }): Promise<MallOrder[]> {
      const where: SQL[] = [];
      if (f.state) where.push(eq(mallOrders.state, f.state));
      if (f.itemId) where.push(eq(mallOrders.itemId, f.itemId));
      if (f.beforeId) where.push(lt(mallOrders.id, f.beforeId));
      return db.select().from(mallOrders).where(where.length ? and(...where) : undefined).orderBy(desc(mallOrders.id)).limit(f.limit);
    },

    async getOrder(id: number): Promise<MallOrder | undefined> {
      const [o] = await db.select().from(mallOrders).where(eq(mallOrders.id, id));
      return o;
    },

    async events(orderId: number) {
      return db.select().from(mallOrderEvents).where(eq(mallOrderEvents.orderId, orderId)).orderBy(mallOrderEvents.id);
    },

    async ship(id: number, shipping: { carrier: string; trackingNo: string }): Promise<MallOrder> {
      const row = await db.transaction((tx) => move(tx, id, ['paid'], 'shipped', { shipping }, `shipped ${shipping.carrier} ${shipping.trackingNo}`));
      if (!row) throw new AppError('CONFLICT', `Order ${id} is not paid and waiting to ship`);
      return row;
    },

    async complete(id: number, note?: string): Promise<MallOrder> {
      const row = await db.transaction((tx) => move(tx, id, ['paid', 'shipped'], 'fulfilled', {}, note ?? 'completed by ops'));
      if (!row) throw new AppError('CONFLICT', `Order ${id} cannot be completed from its state`);
      return row;
    },

    async cancelByOps(id: number, note?: string): Promise<MallOrder> {
      const [order] = await db.select().from(mallOrders).where(eq(mallOrders.id, id));
      if (!order) throw new AppError('NOT_FOUND', `No order ${id}`);
      return cancel(order, note ? `cancelled by ops: ${note}` : 'cancelled by ops');
    },

    /** Ops refunded the cash by hand (merchant platform; e.g. after REFUND.ABNORMAL): refund_pending → refunded. */
    async markRefunded(id: number, note?: string): Promise<MallOrder> {
      const row = await db.transaction((tx) => move(tx, id, ['refund_pending'], 'refunded', {}, note ?? 'cash refunded'));
      if (!row) throw new AppError('CONFLICT', `Order ${id} is not waiting for a refund`);
      return row;
    },

    // ---- WeChat Pay ----
    /** POST /pay/notify/jsapi: verify (signature on the raw body, freshness), decrypt (tag checked), settle once. */
    async handlePayNotification(headers: Record<string, string | string[] | undefined>, rawBody: string): Promise<NotifyOutcome> {
      if (!pay) return { status: 404, code: 'FAIL', message: 'WeChat Pay is not configured' };
      let parsed: { eventType: string; resource: unknown };
      try {
        parsed = pay.parseNotification(headers, rawBody);
      } catch (err) {
        if (err instanceof PayNotificationError) {
          deps.log?.warn({ reason: err.reason }, 'mall pay notification refused');
          return { status: 401, code: 'FAIL', message: `verification failed: ${err.reason}` };
        }
        throw err;
      }
      if (parsed.eventType.startsWith('REFUND.')) {
        const r = parsed.resource as RefundNotification;
        const [order] = r && typeof r.out_trade_no === 'string' ? await db.select().from(mallOrders).where(eq(mallOrders.outTradeNo, r.out_trade_no)) : [];
        if (order && r.out_refund_no === outRefundNoOf(order.id)) {
          if (r.refund_status === 'SUCCESS') await refunded(order, { refund_id: r.refund_id, status: 'SUCCESS' });
          else await noteOn(order.id, `refund ${r.refund_status}: ops must refund by hand`);
        }
        return { status: 200, code: 'SUCCESS', message: '成功' };
      }
      if (parsed.eventType !== 'TRANSACTION.SUCCESS') return { status: 200, code: 'SUCCESS', message: '成功' };
      const t = parsed.resource as PayTransaction;
      if (!t || typeof t.out_trade_no !== 'string' || t.trade_state !== 'SUCCESS') return { status: 400, code: 'FAIL', message: 'unexpected resource' };
      try {
        const order = await settlePaid(t);
        if (!order) deps.log?.warn({ outTradeNo: t.out_trade_no }, 'payment notification for an unknown order');
      } catch (err) {
        if (err instanceof AppError && err.code === 'CONFLICT') return { status: 200, code: 'SUCCESS', message: '成功' };
        return { status: 500, code: 'FAIL', message: '处理失败' };
      }
      return { status: 200, code: 'SUCCESS', message: '成功' };
    },

    /** Jobs: refunds still owed (asked again only after a query finds none). */
    async runRefunds(limit = 100): Promise<number> {
      const due = await db.select().from(mallOrders).where(and(eq(mallOrders.state, 'refund_pending'), sql`${mallOrders.cashFen} > 0`)).limit(limit);
      let n = 0;
      for (const order of due) if ((await refund(order)).state === 'refunded') n++;
      return n;
    },

    /** Jobs: points + cash orders past their payment deadline are queried, closed and cancelled (points back). */
    async expireUnpaid(limit = 100): Promise<number> {
      const due = await db.select().from(mallOrders)
        .where(and(eq(mallOrders.state, 'awaiting_payment'), lt(mallOrders.payExpiresAt, new Date(clock.now().getTime() - 60_000)))).limit(limit);
      let n = 0;
      for (const order of due) {
        try {
          const row = await cancel(order, 'payment deadline passed');
          if (row.state === 'cancelled') n++;
        } catch {
          // paid meanwhile, or WeChat Pay busy: the next run looks again
        }
      }
      return n;
    },
  };
}
export type MallService = ReturnType<typeof createMallService>;
