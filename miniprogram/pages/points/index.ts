// Points history: the balance, what expires next, every entry newest first, paged with "加载更多".
import type { PointsEntry } from '../../../shared/members';
import { ApiError } from '../../services/api';
import { centre, pointsHistory } from '../../services/member';

interface Row {
  id: number;
  title: string;
  delta: string;
  plus: boolean;
  balanceAfter: number;
  at: string;
}

/** Beijing time, as the member reads it: 2026-12-01 20:05. */
function beijing(iso: string): string {
  return new Date(new Date(iso).getTime() + 8 * 3_600_000).toISOString().slice(0, 16).replace('T', ' ');
}

const toRow = (e: PointsEntry): Row => ({
  id: e.id, title: e.title, delta: e.delta > 0 ? `+${e.delta}` : String(e.delta), plus: e.delta > 0, balanceAfter: e.balanceAfter, at: beijing(e.createdAt),
});

Page({
  data: {
    loading: true,
    error: '',
    balance: 0,
    expiring: '',
    rows: [] as Row[],
    nextBefore: null as number | null,
    loadingMore: false,
  },

  onLoad() {
    this.load();
  },

  onPullDownRefresh() {
    this.load().then(() => wx.stopPullDownRefresh());
  },

  onReachBottom() {
    this.onMore();
  },

  load(): Promise<void> {
    return Promise.all([pointsHistory(), centre()])
      .then(([h, c]) => {
        this.setData({
          loading: false, error: '', balance: h.balance, rows: h.entries.map(toRow), nextBefore: h.nextBefore,
          expiring: c.expiring.points > 0 && c.expiring.on ? `${c.expiring.points} 积分将于 ${c.expiring.on} 过期，请尽快使用` : '',
        });
      })
      .catch((err: unknown) => this.setData({ loading: false, error: err instanceof ApiError ? err.message : '加载失败，请下拉重试' }));
  },

  onMore() {
    const before = this.data.nextBefore;
    if (before === null || this.data.loadingMore) return;
    this.setData({ loadingMore: true });
    pointsHistory(before)
      .then((h) => this.setData({ loadingMore: false, rows: [...this.data.rows, ...h.entries.map(toRow)], nextBefore: h.nextBefore }))
      .catch(() => this.setData({ loadingMore: false }));
  },

  onMall() {
    wx.navigateTo({ url: '/pages/mall/index' });
  },
});
