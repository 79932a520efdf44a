// My coupons and the store QR (Engineer B's /api/mp/coupons…).
import type { CouponQr, MpCoupon } from '../../shared/mall';
import { api } from './api';

export const myCoupons = () => api.get<MpCoupon[]>('/api/mp/coupons');
export const couponQr = (id: number) => api.get<CouponQr>(`/api/mp/coupons/${id}/qr`);

export const COUPON_STATUS_TEXT: Record<MpCoupon['status'], string> = { issued: '可使用', used: '已使用', expired: '已过期', revoked: '已作废' };
