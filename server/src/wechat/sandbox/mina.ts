/**
 * The mini-program part of the WeChat sandbox (§5.9): jscode2session, getuserphonenumber, getwxacodeunlimit and
 * subscribeMessage.send with the official shapes and error codes, plus the sandbox-only endpoints that mint the
 * codes WeChat would hand the mini program (`wx.login`, the phone-number button), as WeChat DevTools does.
 * Codes are single-use and live 5 minutes; session_key is random and never useful outside this sandbox.
 */
import { randomBytes } from 'node:crypto';
import { deflateSync } from 'node:zlib';

/** The sandbox mini program's identity; config.ts uses the same defaults in sandbox mode. */
export const SANDBOX_MINIPROGRAM = { appId: 'wx0sandboxmini0001', appSecret: 'sandbox-mini-secret-0000' } as const;

const CODE_TTL_MS = 5 * 60_000;
// §7: code2Session, 100 calls per minute per user.
const LOGIN_PER_MINUTE = 100;

interface LoginCode { openid: string; unionid: string | null; expiresAt: number; used: boolean }
interface PhoneCode { phoneNumber: string; countryCode: string; openid: string | null; expiresAt: number; used: boolean }

const SCENE = /^[0-9A-Za-z!#$&'()*+,/:;=?@\-._~]{1,32}$/;

export class MinaSandbox {
  private loginCodes = new Map<string, LoginCode>();
  private phoneCodes = new Map<string, PhoneCode>();
  private loginCalls = new Map<string, number[]>();
  /** openid → templates the user accepted (one send per acceptance). */
  readonly subscriptions = new Map<string, Map<string, number>>();

  constructor(readonly appId: string, readonly appSecret: string, private readonly now: () => number) {}

  /** What `wx.login` returns in the mini program: a code for this (chosen or new) user. */
  mintLoginCode(openid?: string, unionid?: string | null): { code: string; openid: string; unionid: string | null } {
    const id = openid ?? `oMP${randomBytes(19).toString('base64url')}`;
    const code = randomBytes(16).toString('hex');
    this.loginCodes.set(code, { openid: id, unionid: unionid ?? null, expiresAt: this.now() + CODE_TTL_MS, used: false });
    return { code, openid: id, unionid: unionid ?? null };
  }

  /** What the phone-number button's bindgetphonenumber event carries: `e.detail.code`. */
  mintPhoneCode(phoneNumber: string, countryCode = '86', openid: string | null = null): { code: string } {
    const code = randomBytes(32).toString('hex');
    this.phoneCodes.set(code, { phoneNumber, countryCode, openid, expiresAt: this.now() + CODE_TTL_MS, used: false });
    return { code };
  }

  /** The one-time grant `wx.requestSubscribeMessage` gives when the user accepts. */
  acceptSubscription(openid: string, templateId: string) {
    const m = this.subscriptions.get(openid) ?? new Map<string, number>();
    m.set(templateId, (m.get(templateId) ?? 0) + 1);
    this.subscriptions.set(openid, m);
  }

  code2Session(q: Record<string, string | undefined>): Record<string, unknown> | number {
    if (q.grant_type !== 'authorization_code') return 40002;
    if (q.appid !== this.appId) return 40013;
    if (q.secret !== this.appSecret) return 40125;
    const c = q.js_code ? this.loginCodes.get(q.js_code) : undefined;
    if (!c || c.used || c.expiresAt <= this.now()) return 40029;
    const now = this.now();
    const recent = (this.loginCalls.get(c.openid) ?? []).filter((t) => t > now - 60_000);
    if (recent.length >= LOGIN_PER_MINUTE) return 45011;
    recent.push(now);
    this.loginCalls.set(c.openid, recent);
    c.used = true;
    const out: Record<string, unknown> = { session_key: randomBytes(16).toString('base64'), openid: c.openid };
    if (c.unionid) out.unionid = c.unionid;
    return { ...out, errcode: 0, errmsg: 'ok' };
  }

  phoneNumber(body: any): Record<string, unknown> | number {
    if (typeof body.code !== 'string' || !body.code) return 47001;
    const c = this.phoneCodes.get(body.code);
    if (!c || c.used || c.expiresAt <= this.now()) return 40029;
    if (body.openid !== undefined && c.openid !== null && body.openid !== c.openid) return 40003;
    c.used = true;
    const phoneNumber = c.countryCode === '86' ? c.phoneNumber : `+${c.countryCode}${c.phoneNumber}`;
    return {
      errcode: 0, errmsg: 'ok',
      phone_info: { phoneNumber, purePhoneNumber: c.phoneNumber, countryCode: Number(c.countryCode), watermark: { timestamp: Math.floor(this.now() / 1000), appid: this.appId } },
    };
  }

  /** A PNG, or an errcode. */
  unlimitedCode(body: any): Buffer | number {
    if (typeof body.scene !== 'string' || !SCENE.test(body.scene)) return 47001;
    if (body.page !== undefined && (typeof body.page !== 'string' || body.page.startsWith('/') || body.page.includes('?') || body.page === '')) return 41030;
    const width = body.width ?? 430;
    if (!Number.isInteger(width) || width < 280 || width > 1280) return 47001;
    return codeImage(`${body.page ?? ''}|${body.scene}`, width);
  }

  subscribeSend(body: any): Record<string, unknown> | number {
    if (typeof body.touser !== 'string' || !body.touser) return 40003;
    if (typeof body.template_id !== 'string' || !body.template_id) return 40037;
    if (!body.data || typeof body.data !== 'object') return 47003;
    const m = this.subscriptions.get(body.touser);
    const left = m?.get(body.template_id) ?? 0;
    if (left <= 0) return 43101;
    m!.set(body.template_id, left - 1);
    return { errcode: 0, errmsg: 'ok', msgid: Math.floor(Math.random() * 1e15) };
  }
}

// ---- A real PNG without an image library: 8-bit grayscale, a block pattern derived from the text. ----

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(buf: Buffer): number {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}

export function codeImage(text: string, width: number): Buffer {
  const cells = 21;
  const cell = Math.max(1, Math.floor(width / cells));
  const size = cell * cells;
  // Deterministic bits from the text (FNV-1a stream), so the same scene gives the same image.
  let h = 0x811c9dc5;
  for (const ch of Buffer.from(text, 'utf8')) h = Math.imul(h ^ ch, 0x01000193) >>> 0;
  const bits: boolean[] = [];
  for (let i = 0; i < cells * cells; i++) {
    h = Math.imul(h ^ i, 0x01000193) >>> 0;
    bits.push(((h >>> 13) & 1) === 1);
  }
  const raw = Buffer.alloc((size + 1) * size, 255);
  for (let y = 0; y < size; y++) {
    raw[y * (size + 1)] = 0; // filter: none
    for (let x = 0; x < size; x++) if (bits[Math.floor(y / cell) * cells + Math.floor(x / cell)]) raw[y * (size + 1) + 1 + x] = 0;
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(size, 0);
  ihdr.writeUInt32BE(size, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 0; // grayscale
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}
