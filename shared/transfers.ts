/** The mini program's view of a cash prize transfer (GET /api/mp/transfers/:id), shared by server and mini program. */

export type FulfilmentStateName =
  | 'pending' | 'running' | 'waiting_phone' | 'waiting_user' | 'unknown' | 'succeeded' | 'failed' | 'cancelled' | 'held';

/** The wx.requestMerchantTransfer parameters (mchId, appId, package, openId) are present only while confirmable. */
export interface MpTransferView {
  id: number;
  state: FulfilmentStateName;
  amountFen: number;
  expiresAt: string | null;
  mchId?: string;
  appId?: string;
  package?: string;
  openId?: string;
}
