// Home: the live campaign's banner (→ redeem), recommendations chosen for this member (every card shown is recorded as
// an impression by the server, every tap as a click), and the way to the member centre.
import type { MpRecommendation } from '../../../shared/mall';
import type { MpLiveCampaigns } from '../../../shared/mp-redeem';
import { ApiError } from '../../services/api';
import { liveCampaigns } from '../../services/redeem';
import { recommendations, recordClick } from '../../services/home';

interface Card {
  itemId: number;
  ruleId: number | null;
  kind: string;
  title: string;
  description: string;
  imageUrl: string;
  link: string;
  badge: string;
}

const toCard = (r: MpRecommendation): Card => ({
  itemId: r.itemId, ruleId: r.ruleId, kind: r.kind, title: r.title, description: r.description, imageUrl: r.imageUrl ?? '', link: r.link ?? '',
  badge: r.kind === 'event' ? (r.city ? `${r.city}活动` : '活动') : r.reason || '为您推荐',
});

Page({
  data: {
    loading: true,
    error: '',
    banner: null as null | { id: number; name: string; prizes: string; endsAt: string },
    cards: [] as Card[],
  },

  onLoad() {
    this.load();
  },

  onPullDownRefresh() {
    this.load().then(() => wx.stopPullDownRefresh());
  },

  load(): Promise<void> {
    return Promise.all([liveCampaigns(), recommendations(6)])
      .then(([campaigns, recs]: [MpLiveCampaigns, MpRecommendation[]]) => {
        const c = campaigns[0];
        this.setData({
          loading: false,
          error: '',
          banner: c ? { id: c.id, name: c.name, prizes: c.prizes.slice(0, 3).join('、'), endsAt: c.endsAt.slice(0, 10) } : null,
          cards: recs.map(toCard),
        });
      })
      .catch((err: unknown) => this.setData({ loading: false, error: err instanceof ApiError ? err.message : '加载失败，请下拉重试' }));
  },

  onBanner() {
    wx.navigateTo({ url: '/pages/redeem/index' });
  },

  onCard(e: WechatMiniprogram.BaseEvent) {
    const card = this.data.cards[Number(e.currentTarget.dataset['index'])];
    if (!card) return;
    // The click is recorded whether or not there is somewhere to go.
    recordClick(card.itemId, card.ruleId).catch(() => undefined);
    if (card.link.startsWith('/pages/')) wx.navigateTo({ url: card.link });
  },

  onMember() {
    wx.navigateTo({ url: '/pages/member/index' });
  },
});
