// Points mall: items with stock and my remaining allowance; "兑换" confirms, asks for an address when the item ships
// (wx.chooseAddress), places the order (one client key per tap, so a retried tap is the same order) and, for points +
// cash items, opens WeChat Pay with the server's wx.requestPayment parameters. The server decides what was paid.
import type { MpMallItem, ShippingAddressDto } from '../../../shared/mall';
import { ApiError } from '../../services/api';
import { me } from '../../services/member';
import { items, newClientKey, payOrder, placeOrder, yuan } from '../../services/mall';

interface ItemView {
  id: number;
  title: string;
  description: string;
  imageUrl: string;
  price: string;
  stockText: string;
  disabled: boolean;
  reason: string;
}

const TIER_TEXT: Record<string, string> = { silver: '银卡', gold: '金卡', diamond: '钻石' };

function view(i: MpMallItem, balance: number): ItemView {
  const price = i.cashFen > 0 ? `${i.points} 积分 + ¥${yuan(i.cashFen)}` : `${i.points} 积分`;
  let reason = '';
  if (i.stock <= 0) reason = '已兑完';
  else if (!i.tierOk) reason = `${TIER_TEXT[i.minTier ?? ''] ?? ''}会员专享`;
  else if (i.remainingForMe !== null && i.remainingForMe <= 0) reason = '已达兑换上限';
  else if (balance < i.points) reason = '积分不足';
  return {
    id: i.id, title: i.title, description: i.description, imageUrl: i.imageUrl ?? '', price,
    stockText: i.remainingForMe !== null ? `剩余 ${i.stock} 件 · 每人限 ${i.perMemberLimit} 件` : `剩余 ${i.stock} 件`,
    disabled: reason !== '', reason,
  };
}

function chooseAddress(): Promise<ShippingAddressDto | null> {
  return new Promise((resolve) => {
    wx.chooseAddress({
      success: (a) => resolve({
        name: a.userName, phone: a.telNumber, province: a.provinceName, city: a.cityName,
        ...(a.countyName ? { district: a.countyName } : {}), detail: a.detailInfo,
      }),
      fail: () => resolve(null),
    });
  });
}

function confirm(content: string): Promise<boolean> {
  return new Promise((resolve) => {
    wx.showModal({ title: '确认兑换', content, success: (r) => resolve(r.confirm), fail: () => resolve(false) });
  });
}

Page({
  data: {
    loading: true,
    error: '',
    notice: '',
    balance: 0,
    items: [] as ItemView[],
    busyId: 0,
  },

  /** Raw items by id (not rendered). */
  byId: {} as Record<number, MpMallItem>,
  /** The client key of a tap still to succeed, by item: retrying the same tap must not order twice. */
  pendingKeys: {} as Record<number, string>,

  onLoad() {
    this.byId = {};
    this.pendingKeys = {};
    this.load();
  },

  onPullDownRefresh() {
    this.load().then(() => wx.stopPullDownRefresh());
  },

  load(): Promise<void> {
    return Promise.all([items(), me()])
      .then(([list, m]) => {
        this.byId = {};
        for (const i of list) this.byId[i.id] = i;
        this.setData({ loading: false, error: '', balance: m.points, items: list.map((i) => view(i, m.points)) });
      })
      .catch((err: unknown) => this.setData({ loading: false, error: err instanceof ApiError ? err.message : '加载失败，请下拉重试' }));
  },

  async onExchange(e: WechatMiniprogram.BaseEvent) {
    const id = Number(e.currentTarget.dataset['id']);
    const item = this.byId[id];
    if (!item || this.data.busyId) return;
    const price = item.cashFen > 0 ? `${item.points} 积分 + ¥${yuan(item.cashFen)}` : `${item.points} 积分`;
    if (!(await confirm(`使用 ${price} 兑换「${item.title}」？`))) return;
    let address: ShippingAddressDto | undefined;
    if (item.kind === 'physical' || item.kind === 'sample') {
      const a = await chooseAddress();
      if (!a) {
        this.setData({ notice: '需要收货地址才能寄送礼品' });
        return;
      }
      address = a;
    }
    const key = this.pendingKeys[id] ?? newClientKey();
    this.pendingKeys[id] = key;
    this.setData({ busyId: id, notice: '' });
    try {
      const r = await placeOrder(id, key, address);
      delete this.pendingKeys[id];
      let notice = item.kind === 'coupon' ? '兑换成功，券已放入“我的券”' : '兑换成功，我们会尽快为您寄出';
      if (r.payment) {
        const paid = await payOrder(r.order, r.payment);
        notice = !paid.paidInWeChat ? '支付未完成，可在“我的订单”中继续支付' : paid.order.state === 'awaiting_payment' ? '支付结果确认中，请稍后在“我的订单”查看' : '支付成功，兑换完成';
      }
      this.setData({ busyId: 0, notice });
      await this.load();
    } catch (err) {
      // A refusal is final for this tap (insufficient points, sold out…): the next tap is a new order.
      if (err instanceof ApiError && err.status >= 400 && err.status < 500) delete this.pendingKeys[id];
      this.setData({ busyId: 0, notice: err instanceof ApiError ? err.message : '网络异常，请稍后再试' });
    }
  },

  onOrders() {
    wx.navigateTo({ url: '/pages/orders/index' });
  },
});
