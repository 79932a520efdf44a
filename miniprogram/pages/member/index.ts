// Member centre: tier, progress to the next tier, benefits, points; phone binding (which makes a follower a member),
// daily check-in, and the way to every other member page.
import type { MemberCentre, MemberMe } from '../../../shared/members';
import { ApiError } from '../../services/api';
import { benefitsOf, bindPhone, centre, checkIn, TIER_NAMES } from '../../services/member';

interface TierBlock {
  rollingPoints: number;
  nextName: string;
  need: number;
  percent: number;
  benefits: string[];
}

function tierBlock(c: MemberCentre): TierBlock {
  const percent = c.next ? Math.min(100, Math.floor((c.rollingPoints / Math.max(c.next.minPoints, 1)) * 100)) : 100;
  return { rollingPoints: c.rollingPoints, nextName: c.next ? c.next.name : '', need: c.toNext, percent, benefits: benefitsOf(c.tier) };
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
    expiring: '',
    checkedIn: false,
    binding: false,
  },

  onLoad() {
    this.load();
  },

  onPullDownRefresh() {
    this.load().then(() => wx.stopPullDownRefresh());
  },

  load(): Promise<void> {
    return centre()
      .then((c) => {
        this.showMember(c.member);
        this.setData({
          tierName: c.tier.name || TIER_NAMES[c.tier.key],
          tier: tierBlock(c),
          expiring: c.expiring.points > 0 && c.expiring.on ? `${c.expiring.points} 积分将于 ${c.expiring.on} 过期` : '',
          checkedIn: c.checkedInToday,
        });
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
      .then((r) => this.setData({ points: r.balance, checkedIn: true, notice: r.firstToday ? `签到成功，获得 ${r.points} 积分` : '今天已经签到过了' }))
      .catch((err: unknown) => this.setData({ notice: err instanceof ApiError ? err.message : '签到失败，请稍后再试' }));
  },

  onNavigate(e: WechatMiniprogram.BaseEvent) {
    const url = String(e.currentTarget.dataset['url'] ?? '');
    if (url) wx.navigateTo({ url });
  },
});
