/**
 * A member's mobile number: validated as a mainland number, stored sealed (AES-256-GCM with PII_KEY,
 * base64(iv | tag | ciphertext)) plus an HMAC-SHA256 lookup hash, never in the clear.
 */
import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto';
import { eq } from 'drizzle-orm';
import type { Db } from '../db/client.ts';
import { AppError } from '../platform/errors.ts';
import { systemClock, type Clock } from '../platform/clock.ts';
import { members } from './tables.ts';

const MOBILE = /^1[3-9]\d{9}$/;
const IV_BYTES = 12;
const TAG_BYTES = 16;

/**
 * The 11-digit number from what a user typed: spaces, dashes, dots and brackets are ignored, and a +86 / 0086 / 86
 * country prefix is dropped. null unless the result is a mainland mobile number.
 */
export function normalisePhone(input: string): string | null {
  if (typeof input !== 'string') return null;
  // Full-width digits and plus (typed with a Chinese IME) → ASCII.
  let s = input.replace(/[\uFF10-\uFF19\uFF0B]/g, (c) => String.fromCharCode(c.charCodeAt(0) - 0xfee0)).trim();
  s = s.replace(/[\s\-.()（）\u2010-\u2015]/g, '');
  if (s.startsWith('+86')) s = s.slice(3);
  else if (s.startsWith('0086')) s = s.slice(4);
  else if (s.length === 13 && s.startsWith('86')) s = s.slice(2);
  return MOBILE.test(s) ? s : null;
}

/** 138****8000 */
export function maskPhone(phone: string): string {
  return phone.length === 11 ? `${phone.slice(0, 3)}****${phone.slice(7)}` : '****';
}

function checkKey(key: Buffer) {
  if (!Buffer.isBuffer(key) || key.length !== 32) throw new TypeError('PII key must be 32 bytes');
}

/** AES-256-GCM, a fresh 12-byte IV per value: base64(iv | tag | ciphertext). */
export function sealPii(plaintext: string, key: Buffer): string {
  checkKey(key);
  const iv = randomBytes(IV_BYTES);
  const c = createCipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
  const ct = Buffer.concat([c.update(plaintext, 'utf8'), c.final()]);
  return Buffer.concat([iv, c.getAuthTag(), ct]).toString('base64');
}

/** The inverse; throws when the value was altered or sealed with another key. */
export function unsealPii(sealed: string, key: Buffer): string {
  checkKey(key);
  const raw = Buffer.from(sealed, 'base64');
  if (raw.length < IV_BYTES + TAG_BYTES) throw new Error('sealed value too short');
  const d = createDecipheriv('aes-256-gcm', key, raw.subarray(0, IV_BYTES), { authTagLength: TAG_BYTES });
  d.setAuthTag(raw.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
  return Buffer.concat([d.update(raw.subarray(IV_BYTES + TAG_BYTES)), d.final()]).toString('utf8');
}

/** HMAC-SHA256(PII_KEY, phone), hex: equal phones have equal hashes, without decrypting anything. */
export function phoneHash(phone: string, key: Buffer): string {
  checkKey(key);
  return createHmac('sha256', key).update(phone, 'utf8').digest('hex');
}

export function createPhones(deps: { db: Db; piiKey: Buffer; clock?: Clock }) {
  const { db, piiKey } = deps;
  const clock = deps.clock ?? systemClock;
  checkKey(piiKey);

  return {
    normalise: normalisePhone,
    mask: maskPhone,
    hash: (phone: string) => phoneHash(phone, piiKey),

    /**
     * Bind (or replace) a member's phone. Accepts user input (`+86 138-0013-8000`); an invalid number is an
     * AppError VALIDATION. Returns the normalised number.
     */
    async bind(openid: string, input: string): Promise<{ phone: string; masked: string; changed: boolean }> {
      const phone = normalisePhone(input);
      if (!phone) throw new AppError('VALIDATION', '请输入正确的11位中国大陆手机号', { reason: 'invalid_phone' });
      const hash = phoneHash(phone, piiKey);
      const [current] = await db.select({ phoneHash: members.phoneHash }).from(members).where(eq(members.openid, openid));
      if (current?.phoneHash === hash) return { phone, masked: maskPhone(phone), changed: false };
      const now = clock.now();
      // A typed number is unverified: only WeChat's phone component verifies (members/service.ts).
      const values = { phoneSealed: sealPii(phone, piiKey), phoneHash: hash, phoneBoundAt: now, phoneVerified: false };
      await db.insert(members).values({ openid, ...values, createdAt: now }).onConflictDoUpdate({ target: members.openid, set: values });
      return { phone, masked: maskPhone(phone), changed: true };
    },

    /** The member's phone in the clear, or null when none is bound. */
    async get(openid: string): Promise<string | null> {
      const [row] = await db.select({ phoneSealed: members.phoneSealed }).from(members).where(eq(members.openid, openid));
      return row?.phoneSealed ? unsealPii(row.phoneSealed, piiKey) : null;
    },

    /** Members with this phone (shared-phone checks), by hash. */
    async openidsWithPhone(input: string): Promise<string[]> {
      const phone = normalisePhone(input);
      if (!phone) return [];
      const rows = await db.select({ openid: members.openid }).from(members).where(eq(members.phoneHash, phoneHash(phone, piiKey)));
      return rows.map((r) => r.openid);
    },
  };
}
export type Phones = ReturnType<typeof createPhones>;
