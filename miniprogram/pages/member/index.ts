// Member centre: tier, progress to the next tier, benefits, points; phone binding (which makes a follower a member),
// daily check-in, and the way to every other member page.
import type { MemberMe } from '../../../shared/members';
import { ApiError } from '../../services/api';
import { bindPhone, checkIn, me, tierView, TIER_NAMES, type ExpectedTierView } from '../../services/member';

interface TierBlock {
  tierPoints: number;
  nextName: string;
  need: number;
  percent: number;
  benefits: string[];
}

function tierBlock(t: ExpectedTierView): TierBlock {
  const need = t.next ? Math.max(t.next.points - t.tierPoints, 0) : 0;
  const percent = t.next ? Math.min(100, Math.floor((t.tierPoints / Math.max(t.next.points, 1)) * 100)) : 100;
  const benefits = [...t.benefits.descriptions];
  if (benefits.length === 0) {
    if (t.benefits.pointsMultiplier > 1) benefits.push(`消费积分 ${t.benefits.pointsMultiplier} 倍`);
    if (t.benefits.monthlyCoupon) benefits.push(`每月赠送${t.benefits.monthlyCoupon}`);
    if (t.benefits.reservedItems) benefits.push('会员专享兑换商品');
  }
  return { tierPoints: t.tierPoints, nextName: t.next ? TIER_NAMES[t.next.tier] : '', need, percent, benefits };
}

Page({
  data: {
    loading: true,
    error: '',
    notice: '',
    tierName: '',
    points: 0,
    isMember: false,
    following: false,
    phoneMasked: '',
    memberSince: '',
    tier: null as TierBlock | null,
    binding: false,
  },

  onLoad() {
    this.load();
  },

  onPullDownRefresh() {
    this.load().then(() => wx.stopPullDownRefresh());
  },

  load(): Promise<void> {
    return me()
      .then((m) => {
        this.showMember(m);
        return tierView().then(
          (t) => this.setData({ tier: tierBlock(t) }),
          // No tier details from the server: the member centre still shows tier and points.
          () => this.setData({ tier: null }),
        );
      })
      .catch((err: unknown) => this.setData({ loading: false, error: err instanceof ApiError ? err.message : '加载失败，请下拉重试' }));
  },

  showMember(m: MemberMe) {
    this.setData({
      loading: false,
      error: '',
      tierName: TIER_NAMES[m.tier],
      points: m.points,
      isMember: m.isMember,
      following: m.following,
      phoneMasked: m.phoneMasked ?? '',
      memberSince: m.memberSince ? m.memberSince.slice(0, 10) : '',
    });
  },

  onPhone(e: WechatMiniprogram.CustomEvent<{ code?: string; errMsg?: string }>) {
    const code = e.detail.code;
    if (!code) {
      this.setData({ notice: '需要授权手机号才能成为会员' });
      return;
    }
    this.setData({ binding: true, notice: '' });
    bindPhone(code)
      .then((r) => {
        this.showMember(r.member);
        this.setData({ binding: false, notice: r.becameMember ? '恭喜您成为品牌会员！' : r.member.following ? '手机号已绑定' : '手机号已绑定，关注公众号即可成为会员' });
      })
      .catch((err: unknown) => this.setData({ binding: false, notice: err instanceof ApiError ? err.message : '绑定失败，请稍后再试' }));
  },

  onCheckIn() {
    checkIn()
      .then((r) => this.setData({ points: r.balance, notice: r.already ? '今天已经签到过了' : `签到成功，获得 ${r.points} 积分` }))
      .catch((err: unknown) => this.setData({ notice: err instanceof ApiError && err.status !== 404 ? err.message : '签到暂未开放' }));
  },

  onNavigate(e: WechatMiniprogram.BaseEvent) {
    const url = String(e.currentTarget.dataset['url'] ?? '');
    if (url) wx.navigateTo({ url });
  },
});
