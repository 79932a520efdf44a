// My coupons: what I hold and where it can be used; "出示券码" shows the store QR (a signed, short-lived payload from
// the server, drawn as an image without a canvas) that store staff scan to redeem it, refreshed before it expires.
import type { MpCoupon } from '../../../shared/mall';
import { ApiError } from '../../services/api';
import { COUPON_STATUS_TEXT, couponQr, myCoupons } from '../../services/coupons';
import { yuan } from '../../services/mall';
import { qrDataUrl } from '../../utils/qr';

interface Row {
  id: number;
  title: string;
  value: string;
  code: string;
  statusText: string;
  usable: boolean;
  stores: string;
  until: string;
}

const day = (iso: string) => new Date(new Date(iso).getTime() + 8 * 3_600_000).toISOString().slice(0, 10);

const toRow = (c: MpCoupon): Row => ({
  id: c.id, title: c.title, value: c.valueFen > 0 ? `¥${yuan(c.valueFen)}` : '', code: c.couponCode, statusText: COUPON_STATUS_TEXT[c.status],
  usable: c.status === 'issued',
  stores: c.stores.length === 0 ? '全部门店可用' : `限 ${c.stores.map((s) => s.name).join('、')} 使用`,
  until: `有效期至 ${day(c.expiresAt)}`,
});

Page({
  data: {
    loading: true,
    error: '',
    rows: [] as Row[],
    shown: null as null | { id: number; title: string; code: string; image: string; payload: string; until: string },
    qrError: '',
  },

  refreshTimer: 0 as unknown as ReturnType<typeof setTimeout> | 0,

  onShow() {
    this.load();
  },

  onHide() {
    this.stopRefresh();
  },

  onUnload() {
    this.stopRefresh();
  },

  onPullDownRefresh() {
    this.load().then(() => wx.stopPullDownRefresh());
  },

  load(): Promise<void> {
    return myCoupons()
      .then((list) => this.setData({ loading: false, error: '', rows: list.map(toRow) }))
      .catch((err: unknown) => this.setData({ loading: false, error: err instanceof ApiError ? err.message : '加载失败，请下拉重试' }));
  },

  onShowQr(e: WechatMiniprogram.BaseEvent) {
    const id = Number(e.currentTarget.dataset['id']);
    const row = this.data.rows.find((r) => r.id === id);
    if (!row) return;
    this.fetchQr(row);
  },

  fetchQr(row: Row) {
    this.stopRefresh();
    couponQr(row.id)
      .then((q) => {
        const until = new Date(q.expiresAt);
        this.setData({
          qrError: '',
          shown: { id: row.id, title: row.title, code: row.code, image: qrDataUrl(q.qr), payload: q.qr, until: `${until.getHours()}:${String(until.getMinutes()).padStart(2, '0')} 前有效，过期自动刷新` },
        });
        // The payload is short-lived on purpose (a screenshot is useless later): fetch a new one just before it expires.
        const ms = Math.max(until.getTime() - Date.now() - 5_000, 5_000);
        this.refreshTimer = setTimeout(() => this.fetchQr(row), ms);
      })
      .catch((err: unknown) => this.setData({ qrError: err instanceof ApiError ? err.message : '二维码加载失败，请重试' }));
  },

  stopRefresh() {
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    this.refreshTimer = 0;
  },

  onCloseQr() {
    this.stopRefresh();
    this.setData({ shown: null, qrError: '' });
    this.load();
  },
});
