// Cash prize: the winner confirms the WeChat Pay merchant transfer here. Opened from the customer-service message
// link `pages/prize/confirm?f=<fulfilment id>&t=<token>`; the token (HMAC from the server) authorises these calls, so the
// page works without a member session.
import type { MpTransferView } from '../../../shared/transfers';
import { ApiError } from '../../services/api';
import { getTransfer, transferConfirmed } from '../../services/transfers';

type TransferView = MpTransferView;

type Status = 'loading' | 'waiting' | 'done' | 'other' | 'error';

function reason(err: unknown): string {
  if (err instanceof ApiError && err.status === 403) return '链接无效或已过期';
  if (err instanceof ApiError && err.status === 0) return '网络异常，请稍后再试';
  return '服务暂时不可用，请稍后再试';
}

function yuan(fen: number): string {
  return (fen / 100).toFixed(2);
}

function deadline(iso: string | null): string {
  if (!iso) return '';
  const d = new Date(iso);
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${d.getMonth() + 1}月${d.getDate()}日 ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

const TITLES: Record<string, string> = {
  waiting_user: '恭喜您获得现金红包',
  succeeded: '已转入您的微信零钱',
  cancelled: '红包已撤回，可在公众号回复“领奖”重新领取',
  failed: '发放未成功，工作人员会尽快处理',
};

Page({
  data: {
    status: 'loading' as Status,
    amountText: '',
    title: '',
    deadlineText: '',
    message: '',
    busy: false,
    id: '',
    token: '',
  },

  onLoad(query: Record<string, string | undefined>) {
    const id = query['f'] ?? '';
    const token = query['t'] ?? '';
    if (!/^\d+$/.test(id) || !token) {
      this.setData({ status: 'error', message: '链接无效或已过期' });
      return;
    }
    this.setData({ id, token });
    this.load();
  },

  load() {
    getTransfer(this.data.id, this.data.token)
      .then((v) => this.show(v))
      .catch((err: unknown) => this.setData({ status: 'error', message: reason(err) }));
  },

  show(v: TransferView) {
    const status: Status = v.state === 'waiting_user' && v.package ? 'waiting' : v.state === 'succeeded' ? 'done' : 'other';
    this.setData({
      status,
      amountText: yuan(v.amountFen),
      title: TITLES[v.state] ?? '红包处理中，请稍后查看',
      deadlineText: status === 'waiting' ? deadline(v.expiresAt) : '',
      message: '',
      busy: false,
    });
    if (status === 'waiting') this.params = v;
  },

  params: null as TransferView | null,

  onConfirm() {
    const p = this.params;
    if (!p || !p.mchId || !p.package) return;
    if (!wx.canIUse('requestMerchantTransfer')) {
      wx.showModal({ title: '提示', content: '您的微信版本过低，请升级后再领取。', showCancel: false });
      return;
    }
    this.setData({ busy: true });
    wx.requestMerchantTransfer({
      mchId: p.mchId,
      package: p.package,
      ...(p.appId ? { appId: p.appId } : {}),
      ...(p.openId ? { openId: p.openId } : {}),
      success: () => {
        // WeChat's answer is not proof of payment: ask the server, which asks WeChat Pay.
        transferConfirmed(this.data.id, this.data.token)
          .then((v) => this.show(v))
          .catch(() => this.setData({ busy: false, message: '已确认，到账结果请稍后查看' }));
      },
      fail: () => this.setData({ busy: false, message: '未完成确认，可再次点击“确认收款”' }),
    });
  },
});
