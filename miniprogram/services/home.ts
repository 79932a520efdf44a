// The home page: recommendations (Engineer B's /api/mp/recommendations; every card shown is an impression server-side,
// every tap a click) and the campaign banner.
import type { MpRecommendation } from '../../shared/mall';
import { api } from './api';

export const recommendations = (limit = 6) => api.get<MpRecommendation[]>(`/api/mp/recommendations?limit=${limit}`);
export const recordClick = (itemId: number, ruleId: number | null) => api.post<{ ok: boolean }>('/api/mp/recommendations/click', { itemId, ruleId });
