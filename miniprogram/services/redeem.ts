// On-pack redemption: a code → the golden questions as a form → the draw (/api/mp/redemptions…).
import type { MpAnswerValue, MpLiveCampaigns, MpRedemption, MpRedemptionList } from '../../shared/mp-redeem';
import { api } from './api';

export const redeemCode = (code: string, via: 'scan' | 'typed') => api.post<MpRedemption>('/api/mp/redemptions', { code, via });

export const getRedemption = (id: string) => api.get<MpRedemption>(`/api/mp/redemptions/${encodeURIComponent(id)}`);

export const submitAnswers = (id: string, answers: Record<string, MpAnswerValue>) =>
  api.post<MpRedemption>(`/api/mp/redemptions/${encodeURIComponent(id)}/answers`, { answers });

export const draw = (id: string) => api.post<MpRedemption>(`/api/mp/redemptions/${encodeURIComponent(id)}/draw`);

export const myRedemptions = () => api.get<MpRedemptionList>('/api/mp/redemptions');

export const liveCampaigns = () => api.get<MpLiveCampaigns>('/api/mp/campaigns');
