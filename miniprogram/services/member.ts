// The member: who I am, phone binding, tier and progress, points history, check-in, profile and privacy, invites.
// Types come from shared/members.ts.
import type { BindPhoneResponse, CheckInResponse, ConsentBody, InviteView, MemberCentre, MemberMe, PointsHistory, ProfileView, Tier, TierName } from '../../shared/members';
import { api, image, logout, qs, setMember } from './api';

type Consent = ConsentBody & { at: string };

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

/** The golden-question profile (shared with the chat flow) and the questions for the form. */
export const profile = () => api.get<ProfileView>('/api/mp/me/profile');

/** Answers as the member typed or picked them (an option's text, a number, "广东深圳"); all or nothing. */
export const updateProfile = (answers: Record<string, string>) => api.put<ProfileView>('/api/mp/me/profile', { answers });

export const giveConsent = (version: string) => api.put<Consent>('/api/mp/me/consent', { version });

/** All my data, as JSON (PIPL). */
export const exportMyData = () => api.get<Record<string, unknown>>('/api/mp/me/export');

/** Personal data erased, the ledger kept anonymised; the session ends here too. */
export async function deleteAccount(): Promise<void> {
  await api.post<{ deleted: true }>('/api/mp/me/delete', { confirm: true });
  logout();
}

export const myInvite = () => api.get<InviteView>('/api/mp/me/invite');

/** The invite's mini-program code image (wxacode.getUnlimited) as a data URL. */
export const inviteImage = (imagePath: string) => image(imagePath);
