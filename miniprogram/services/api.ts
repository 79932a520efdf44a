// The only caller of wx.request. Every page goes page → services/*.ts → here.
// - Login is transparent: the first call logs in (wx.login → POST /api/mp/login); concurrent calls share that login.
// - A 401 refreshes the session once (refresh token, else a fresh wx.login) and retries the call once.
// - A non-2xx answer becomes an ApiError carrying the server's { code, message, details }; the message is what the
//   member reads (the server answers members in Chinese), a network failure reads "网络异常".
import type { MpLoginResponse, MpSession, MemberMe } from '../../shared/members';
import { config } from '../config';

export type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = 'ApiError';
  }

  /** `details.reason` of a refusal (e.g. 'typo', 'locked'), when the server gave one. */
  get reason(): string | undefined {
    const d = this.details as { reason?: unknown } | undefined;
    return typeof d?.reason === 'string' ? d.reason : undefined;
  }
}

interface StoredSession {
  token: string;
  expiresAt: string;
  refreshToken: string;
}

const STORAGE_KEY = 'mp.session';
let session: StoredSession | null | undefined; // undefined: not read from storage yet
let member: MemberMe | null = null;
let pendingLogin: Promise<StoredSession> | null = null;
const memberListeners: Array<(m: MemberMe) => void> = [];

function stored(): StoredSession | null {
  if (session === undefined) {
    const s = wx.getStorageSync(STORAGE_KEY) as StoredSession | '' | undefined;
    session = s && typeof s === 'object' && s.token ? s : null;
  }
  return session;
}

function keep(s: MpSession): StoredSession {
  session = { token: s.token, expiresAt: s.expiresAt, refreshToken: s.refreshToken };
  wx.setStorageSync(STORAGE_KEY, session);
  return session;
}

interface Raw {
  statusCode: number;
  data: unknown;
  contentType?: string;
}

// fraud (issue 4): a mini program gets no hardware id, and its storage is per WeChat account, so the device is
// described by what every account on that phone sees alike. The server counts it only together with the client IP.
let device: string | undefined;
function deviceFingerprint(): string {
  if (device === undefined) {
    try {
      const i = wx.getSystemInfoSync();
      device = [i.brand, i.model, i.system, i.platform, `${i.screenWidth}x${i.screenHeight}@${i.pixelRatio}`, i.version].join('|').replace(/\s+/g, '_').slice(0, 128);
    } catch {
      device = '';
    }
  }
  return device;
}

function send(method: Method, path: string, data: unknown, token: string | null, binary = false): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const header: Record<string, string> = { 'content-type': 'application/json' };
    if (token) header['authorization'] = `Bearer ${token}`;
    const fp = deviceFingerprint();
    if (fp) header['x-mp-device'] = fp;
    wx.request({
      url: `${config.apiBase}${path}`,
      method,
      header,
      // Fastify refuses an empty JSON body: POSTs without data still send {}.
      data: (data ?? (method === 'GET' || method === 'DELETE' ? undefined : {})) as WechatMiniprogram.IAnyObject | undefined,
      dataType: binary ? '其他' : 'json',
      responseType: binary ? 'arraybuffer' : 'text',
      success: (res) => {
        const h = res.header as Record<string, string> | undefined;
        resolve({ statusCode: res.statusCode, data: res.data, contentType: h?.['content-type'] ?? h?.['Content-Type'] });
      },
      fail: (err) => reject(new ApiError(0, 'NETWORK', '网络异常，请检查网络后重试', err)),
    });
  });
}

function failure(res: Raw): ApiError {
  const body = (res.data && typeof res.data === 'object' ? res.data : {}) as { code?: unknown; message?: unknown; details?: unknown };
  const code = typeof body.code === 'string' ? body.code : `HTTP_${res.statusCode}`;
  const fallback = res.statusCode >= 500 ? '服务暂时不可用，请稍后再试' : '请求失败，请稍后再试';
  const message = typeof body.message === 'string' && body.message ? body.message : fallback;
  return new ApiError(res.statusCode, code, message, body.details);
}

function wxLogin(): Promise<string> {
  return new Promise((resolve, reject) => {
    wx.login({
      success: (r) => (r.code ? resolve(r.code) : reject(new ApiError(0, 'WX_LOGIN', '微信登录失败，请重试'))),
      fail: () => reject(new ApiError(0, 'WX_LOGIN', '微信登录失败，请重试')),
    });
  });
}

async function freshLogin(): Promise<StoredSession> {
  const code = await wxLogin();
  const inviteCode = pendingInvite;
  const res = await send('POST', '/api/mp/login', inviteCode ? { code, inviteCode } : { code }, null);
  if (res.statusCode !== 200) throw failure(res);
  const body = res.data as MpLoginResponse;
  pendingInvite = null;
  setMember(body.member);
  return keep(body);
}

async function refreshOrLogin(): Promise<StoredSession> {
  const current = stored();
  if (current?.refreshToken) {
    const res = await send('POST', '/api/mp/session/refresh', { refreshToken: current.refreshToken }, null);
    if (res.statusCode === 200) return keep(res.data as MpSession);
    if (res.statusCode === 0 || res.statusCode >= 500) throw failure(res);
    // A used or expired refresh token: log in again.
  }
  return freshLogin();
}

/**
 * One login at a time: every caller that finds no session (or a rejected one) waits for the same login. `rejected` is
 * the token a 401 came back for; if the session has changed since, someone else already logged in again.
 */
function login(rejected: string | null): Promise<StoredSession> {
  const current = stored();
  if (current && current.token !== rejected) return Promise.resolve(current);
  if (!pendingLogin) {
    pendingLogin = (rejected ? refreshOrLogin() : freshLogin()).finally(() => {
      pendingLogin = null;
    });
  }
  return pendingLogin;
}

let pendingInvite: string | null = null;

export interface RequestOptions {
  /** Routes that need no session (none of the member pages use this). */
  anonymous?: boolean;
}

async function authorised(method: Method, path: string, data: unknown, opts: RequestOptions, binary: boolean): Promise<Raw> {
  if (opts.anonymous) return send(method, path, data, null, binary);
  let s = await login(null);
  let res = await send(method, path, data, s.token, binary);
  if (res.statusCode === 401) {
    s = await login(s.token);
    res = await send(method, path, data, s.token, binary);
  }
  return res;
}

export async function request<T>(method: Method, path: string, data?: unknown, opts: RequestOptions = {}): Promise<T> {
  const res = await authorised(method, path, data, opts, false);
  if (res.statusCode >= 200 && res.statusCode < 300) return res.data as T;
  throw failure(res);
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
function base64(buf: ArrayBuffer): string {
  const b = new Uint8Array(buf);
  let out = '';
  for (let i = 0; i < b.length; i += 3) {
    const n = (b[i]! << 16) | ((b[i + 1] ?? 0) << 8) | (b[i + 2] ?? 0);
    out += B64[(n >> 18) & 63]! + B64[(n >> 12) & 63]! + (i + 1 < b.length ? B64[(n >> 6) & 63]! : '=') + (i + 2 < b.length ? B64[n & 63]! : '=');
  }
  return out;
}

/** An image behind the session (e.g. my invite code): a data URL for `<image src>`, which cannot send headers. */
export async function image(path: string): Promise<string> {
  const res = await authorised('GET', path, undefined, {}, true);
  if (res.statusCode !== 200 || !(res.data instanceof ArrayBuffer)) {
    let body: unknown = {};
    if (res.data instanceof ArrayBuffer) {
      try {
        body = JSON.parse(String.fromCharCode(...new Uint8Array(res.data)));
      } catch {
        body = {};
      }
    }
    throw failure({ statusCode: res.statusCode, data: body });
  }
  return `data:${(res.contentType ?? 'image/png').split(';')[0]};base64,${base64(res.data)}`;
}

export const api = {
  get: <T>(path: string) => request<T>('GET', path),
  post: <T>(path: string, body?: unknown) => request<T>('POST', path, body),
  put: <T>(path: string, body?: unknown) => request<T>('PUT', path, body),
  del: <T>(path: string) => request<T>('DELETE', path),
};

/** The member as of the last login (or profile fetch); pages subscribe to re-render. */
export function currentMember(): MemberMe | null {
  return member;
}

export function setMember(m: MemberMe): void {
  member = m;
  for (const fn of memberListeners) fn(m);
}

export function onMemberChange(fn: (m: MemberMe) => void): () => void {
  memberListeners.push(fn);
  return () => {
    const i = memberListeners.indexOf(fn);
    if (i >= 0) memberListeners.splice(i, 1);
  };
}

/** An invite code the mini program was opened with (scene of the invite code image): sent with the next login. */
export function rememberInvite(code: string): void {
  if (/^[A-Za-z0-9]{4,16}$/.test(code)) pendingInvite = code;
}

/** Forget the session (after deleting the account). */
export function logout(): void {
  wx.removeStorageSync(STORAGE_KEY);
  session = undefined; // read from storage again, as after a restart of the mini program
  member = null;
}

/** Log in now (app launch), so the first page's calls do not wait for it. */
export async function ensureLogin(): Promise<void> {
  await login(null);
}

/** Query string from defined values. */
export function qs(params: Record<string, string | number | undefined>): string {
  const parts = Object.entries(params).filter(([, v]) => v !== undefined).map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`);
  return parts.length ? `?${parts.join('&')}` : '';
}
