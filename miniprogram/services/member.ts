// The member: who I am, phone binding, tier and progress, points history, check-in, profile and privacy, invites.
// Types come from shared/members.ts. Where that file has no DTO yet (tier progress, points history, profile, consent,
// export, deletion, invites), the Expected* shapes below are what these pages are built against; they move to
// shared/members.ts with the endpoints.
import type { BindPhoneResponse, MemberMe, TierName } from '../../shared/members';
import { api, logout, qs, setMember } from './api';

export async function me(): Promise<MemberMe> {
  const m = await api.get<MemberMe>('/api/mp/me');
  setMember(m);
  return m;
}

/** `code` is e.detail.code of `<button open-type="getPhoneNumber">`. */
export async function bindPhone(code: string): Promise<BindPhoneResponse> {
  const r = await api.post<BindPhoneResponse>('/api/mp/me/phone', { code });
  setMember(r.member);
  return r;
}

export const TIER_NAMES: Record<TierName, string> = { normal: '普通会员', silver: '银卡会员', gold: '金卡会员', diamond: '钻石会员' };

/** Expected: GET /api/mp/me/tier. */
export interface ExpectedTierView {
  tier: TierName;
  /** Points counted for the tier (rolling window). */
  tierPoints: number;
  next: { tier: TierName; points: number } | null;
  benefits: { pointsMultiplier: number; monthlyCoupon: string | null; reservedItems: boolean; descriptions: string[] };
}
export const tierView = () => api.get<ExpectedTierView>('/api/mp/me/tier');

/** Expected: GET /api/mp/points?before=<id>&limit=<n>. */
export interface ExpectedPointsEntry {
  id: number;
  delta: number;
  balanceAfter: number;
  reason: string;
  createdAt: string;
}
export interface ExpectedPointsPage {
  balance: number;
  /** Points that expire within the reminder window, and when. */
  expiring: { points: number; at: string } | null;
  entries: ExpectedPointsEntry[];
}
export const pointsHistory = (before?: number, limit = 20) => api.get<ExpectedPointsPage>(`/api/mp/points${qs({ before, limit })}`);

/** Expected: POST /api/mp/checkin. */
export const checkIn = () => api.post<{ points: number; balance: number; already: boolean }>('/api/mp/checkin');

/** Expected: GET/PUT /api/mp/me/profile — the golden-question answers shared with the chat flow. */
export interface ExpectedProfile {
  answers: Array<{ key: string; prompt: string; display: string; answeredAt: string }>;
}
export const profile = () => api.get<ExpectedProfile>('/api/mp/me/profile');

/** Expected: POST /api/mp/me/consent {version}. */
export const giveConsent = (version: string) => api.post<MemberMe>('/api/mp/me/consent', { version });

/** Expected: GET /api/mp/me/export — all my data as JSON. */
export const exportMyData = () => api.get<Record<string, unknown>>('/api/mp/me/export');

/** Expected: DELETE /api/mp/me — personal data erased, the ledger kept anonymised; the session ends. */
export async function deleteAccount(): Promise<void> {
  await api.del<unknown>('/api/mp/me');
  logout();
}

/** Expected: GET /api/mp/invite. */
export interface ExpectedInvite {
  code: string;
  /** The mini-program code image (wxacode.getUnlimited), as a data: URL or an https URL. */
  image: string;
  invited: number;
  rewarded: number;
  rewardPoints: number;
}
export const myInvite = () => api.get<ExpectedInvite>('/api/mp/invite');

/** What a ledger reason reads as. */
export const REASON_TEXT: Record<string, string> = {
  lottery_prize: '抽奖奖品', lottery_consolation: '抽奖参与奖', follow: '关注公众号', bind_phone: '绑定手机号', profile: '完善资料',
  redemption: '扫码兑奖', checkin: '每日签到', interaction: '互动奖励', purchase: '购物积分', invite: '邀请好友', mall: '积分商城兑换',
  mall_refund: '订单取消退回', expiry: '积分过期', draw: '抽奖',
};
