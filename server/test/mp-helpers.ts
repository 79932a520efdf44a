/**
 * Mini-program test helpers: log in and bind a phone exactly as the mini program does — the sandbox mints the
 * codes WeChat would give it (wx.login, the phone-number button), and the app sees only those codes.
 */
import { randomBytes } from 'node:crypto';
import type { BindPhoneResponse, MemberMe } from '../../shared/members.ts';

/** What buildTestApp returns (only the parts used here). */
export interface MpHarness {
  app: { inject: (o: any) => Promise<{ statusCode: number; json(): any; body: string }> };
  sandbox: { url: string };
}

export interface MpLoginOptions {
  /** Mini-program openid (default: a fresh one). */
  openid?: string;
  /** unionid (default: none); give the follower's unionid to link to the official account. */
  unionid?: string | null;
  inviteCode?: string;
}

export interface MpLoggedIn {
  token: string;
  refreshToken: string;
  /** { authorization: 'Bearer …' } */
  headers: { authorization: string };
  /** The mini-program openid the sandbox logged in. */
  mpOpenid: string;
  member: MemberMe;
}

async function sandboxPost(h: MpHarness, path: string, body: unknown): Promise<any> {
  const res = await fetch(`${h.sandbox.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const json = await res.json() as any;
  if (!json.ok) throw new Error(`sandbox ${path}: ${json.error ?? res.status}`);
  return json;
}

/** A fresh mini-program openid (28 characters, as WeChat's). */
export const newMpOpenid = () => `oMP${randomBytes(19).toString('base64url')}`;

/** A wx.login code for this identity. */
export async function mintLoginCode(h: MpHarness, openid = newMpOpenid(), unionid: string | null = null): Promise<string> {
  return (await sandboxPost(h, '/__sandbox/mina/login-code', { openid, unionid })).code;
}

/** A phone-number button code for this number. */
export async function mintPhoneCode(h: MpHarness, phone: string, opts: { countryCode?: string; openid?: string } = {}): Promise<string> {
  return (await sandboxPost(h, '/__sandbox/mina/phone-code', { phoneNumber: phone, countryCode: opts.countryCode, openid: opts.openid })).code;
}

/** Log a mini-program user in through POST /api/mp/login. */
export async function mpLogin(h: MpHarness, opts: MpLoginOptions = {}): Promise<MpLoggedIn> {
  const mpOpenid = opts.openid ?? newMpOpenid();
  const code = await mintLoginCode(h, mpOpenid, opts.unionid ?? null);
  const res = await h.app.inject({ method: 'POST', url: '/api/mp/login', payload: { code, ...(opts.inviteCode ? { inviteCode: opts.inviteCode } : {}) } });
  if (res.statusCode !== 200) throw new Error(`mpLogin: ${res.statusCode} ${res.body}`);
  const body = res.json();
  return { token: body.token, refreshToken: body.refreshToken, headers: { authorization: `Bearer ${body.token}` }, mpOpenid, member: body.member };
}

/** Bind a phone through POST /api/mp/me/phone with a phone-number code; throws unless 200. */
export async function mpBindPhone(h: MpHarness, token: string, phone: string): Promise<BindPhoneResponse> {
  const code = await mintPhoneCode(h, phone);
  const res = await h.app.inject({ method: 'POST', url: '/api/mp/me/phone', headers: { authorization: `Bearer ${token}` }, payload: { code } });
  if (res.statusCode !== 200) throw new Error(`mpBindPhone: ${res.statusCode} ${res.body}`);
  return res.json();
}
