// Cash prizes: the WeChat Pay merchant transfer a winner confirms (/api/mp/transfers/:id, authorised by the HMAC token
// of the chat link, so no member session is needed).
import type { MpTransferView } from '../../shared/transfers';
import { request } from './api';

const q = (token: string) => `?t=${encodeURIComponent(token)}`;

export const getTransfer = (id: string, token: string) => request<MpTransferView>('GET', `/api/mp/transfers/${id}${q(token)}`, undefined, { anonymous: true });

/** The member confirmed in WeChat: the server asks WeChat Pay (WeChat's answer is not proof of payment). */
export const transferConfirmed = (id: string, token: string) => request<MpTransferView>('POST', `/api/mp/transfers/${id}/confirmed${q(token)}`, undefined, { anonymous: true });
