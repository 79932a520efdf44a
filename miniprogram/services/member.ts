// The member: who I am, phone binding, tier and progress, points history, check-in, profile and privacy, invites.
// Types come from shared/members.ts. Where that file has no DTO yet (profile, consent, export, deletion, invites), the
// Expected* shapes below are what these pages are built against; they move to shared/members.ts with the endpoints.
import type { BindPhoneResponse, CheckInResponse, MemberCentre, MemberMe, PointsHistory, Tier, TierName } from '../../shared/members';
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

/** Tier, progress to the next tier, benefits, points, what expires next. */
export async function centre(): Promise<MemberCentre> {
  const c = await api.get<MemberCentre>('/api/mp/me/centre');
  setMember(c.member);
  return c;
}

/** Newest first; pass `nextBefore` of the previous page as `before`. */
export const pointsHistory = (before?: number, limit = 20) => api.get<PointsHistory>(`/api/mp/me/points${qs({ before, limit })}`);

export const checkIn = () => api.post<CheckInResponse>('/api/mp/me/checkin');

/** What a tier gives, as the member reads it. */
export function benefitsOf(t: Tier): string[] {
  const out: string[] = [];
  if (t.multiplierPct > 100) out.push(`消费积分 ${t.multiplierPct / 100} 倍`);
  if (t.monthlyCoupon) out.push(`每月赠送「${t.monthlyCoupon.title}」`);
  if (t.reservedItems) out.push('会员专享兑换商品');
  if (out.length === 0) out.push('积分兑换好礼、参与会员活动');
  return out;
}

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
