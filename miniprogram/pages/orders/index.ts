// My mall orders: state, pay an unpaid points + cash order (parameters fetched again; the server queries WeChat Pay
// before it answers), cancel (points come back).
import type { MpOrder } from '../../../shared/mall';
import { ApiError } from '../../services/api';
import { cancel, orders, ORDER_STATE_TEXT, payAgain, payOrder, yuan } from '../../services/mall';

interface Row {
  id: number;
  title: string;
  price: string;
  stateText: string;
  canPay: boolean;
  canCancel: boolean;
  shipping: string;
  at: string;
}

const toRow = (o: MpOrder): Row => ({
  id: o.id,
  title: o.quantity > 1 ? `${o.title} ×${o.quantity}` : o.title,
  price: o.cashFen > 0 ? `${o.points} 积分 + ¥${yuan(o.cashFen)}` : `${o.points} 积分`,
  stateText: ORDER_STATE_TEXT[o.state],
  canPay: o.state === 'awaiting_payment',
  canCancel: o.state === 'awaiting_payment' || (o.state === 'paid' && o.kind !== 'coupon'),
  shipping: o.shipping ? `${o.shipping.carrier} ${o.shipping.trackingNo}` : '',
  at: new Date(new Date(o.createdAt).getTime() + 8 * 3_600_000).toISOString().slice(0, 16).replace('T', ' '),
});

function confirm(content: string): Promise<boolean> {
  return new Promise((resolve) => {
    wx.showModal({ title: '提示', content, success: (r) => resolve(r.confirm), fail: () => resolve(false) });
  });
}

Page({
  data: {
    loading: true,
    error: '',
    notice: '',
    rows: [] as Row[],
    busyId: 0,
  },

  onShow() {
    this.load();
  },

  onPullDownRefresh() {
    this.load().then(() => wx.stopPullDownRefresh());
  },

  load(): Promise<void> {
    return orders()
      .then((list) => this.setData({ loading: false, error: '', rows: list.map(toRow) }))
      .catch((err: unknown) => this.setData({ loading: false, error: err instanceof ApiError ? err.message : '加载失败，请下拉重试' }));
  },

  async onPay(e: WechatMiniprogram.BaseEvent) {
    const id = Number(e.currentTarget.dataset['id']);
    if (this.data.busyId) return;
    this.setData({ busyId: id, notice: '' });
    try {
      const r = await payAgain(id);
      if (!r.payment) {
        this.setData({ busyId: 0, notice: r.order.state === 'awaiting_payment' ? '订单暂时无法支付，请稍后再试' : '订单已支付' });
      } else {
        const p = await payOrder(r.order, r.payment);
        this.setData({ busyId: 0, notice: p.paidInWeChat ? (p.order.state === 'awaiting_payment' ? '支付结果确认中' : '支付成功') : '支付未完成' });
      }
    } catch (err) {
      this.setData({ busyId: 0, notice: err instanceof ApiError ? err.message : '网络异常，请稍后再试' });
    }
    await this.load();
  },

  async onCancel(e: WechatMiniprogram.BaseEvent) {
    const id = Number(e.currentTarget.dataset['id']);
    if (this.data.busyId || !(await confirm('确定取消这个订单吗？积分将退回您的账户。'))) return;
    this.setData({ busyId: id, notice: '' });
    try {
      await cancel(id);
      this.setData({ busyId: 0, notice: '订单已取消，积分已退回' });
    } catch (err) {
      this.setData({ busyId: 0, notice: err instanceof ApiError ? err.message : '网络异常，请稍后再试' });
    }
    await this.load();
  },
});
