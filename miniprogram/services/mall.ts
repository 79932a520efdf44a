// Points mall and my orders (Engineer B's /api/mp/mall…): points orders, and points + cash orders paid with
// wx.requestPayment. The payment result in the mini program is never proof: the server asks WeChat Pay (…/paid).
import type { MpMallItem, MpOrder, OrderStateName, PlaceOrderResponse, RequestPaymentDto, ShippingAddressDto } from '../../shared/mall';
import { api, qs } from './api';

export const items = () => api.get<MpMallItem[]>('/api/mp/mall/items');
export const orders = (limit = 50) => api.get<MpOrder[]>(`/api/mp/mall/orders${qs({ limit })}`);
export const order = (id: number) => api.get<MpOrder>(`/api/mp/mall/orders/${id}`);
export const cancel = (id: number) => api.post<MpOrder>(`/api/mp/mall/orders/${id}/cancel`);
export const payAgain = (id: number) => api.post<{ order: MpOrder; payment: RequestPaymentDto | null }>(`/api/mp/mall/orders/${id}/pay`);
export const paid = (id: number) => api.post<MpOrder>(`/api/mp/mall/orders/${id}/paid`);

/** A key per tap of "兑换": the same tap retried (network, double tap) is the same order. */
export function newClientKey(): string {
  const rand = Math.random().toString(36).slice(2, 10);
  return `mp${Date.now().toString(36)}${rand}`;
}

export const placeOrder = (itemId: number, clientKey: string, address?: ShippingAddressDto, quantity = 1) =>
  api.post<PlaceOrderResponse>('/api/mp/mall/orders', { itemId, quantity, clientKey, ...(address ? { address } : {}) });

/** wx.requestPayment with the server's parameters; resolves false when the member cancelled or it failed. */
export function requestPayment(p: RequestPaymentDto): Promise<boolean> {
  return new Promise((resolve) => {
    wx.requestPayment({
      timeStamp: p.timeStamp,
      nonceStr: p.nonceStr,
      package: p.package,
      signType: p.signType,
      paySign: p.paySign,
      success: () => resolve(true),
      fail: () => resolve(false),
    });
  });
}

/** Pay a points + cash order: the payment sheet, then the server's own answer (it queries WeChat Pay). */
export async function payOrder(o: MpOrder, payment: RequestPaymentDto): Promise<{ paidInWeChat: boolean; order: MpOrder }> {
  const ok = await requestPayment(payment);
  if (!ok) return { paidInWeChat: false, order: o };
  return { paidInWeChat: true, order: await paid(o.id) };
}

export const ORDER_STATE_TEXT: Record<OrderStateName, string> = {
  awaiting_payment: '待支付', paid: '已支付', shipped: '已发货', fulfilled: '已完成', cancelled: '已取消', refund_pending: '退款中', refunded: '已退款',
};

export const yuan = (fen: number) => (fen / 100).toFixed(2);
