/**
 * WeChat message signatures and WXBizMsgCrypt (safe/compatible mode), on node:crypto.
 * @see https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Message_encryption_and_decryption_instructions.html
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** sha1 of the sorted, concatenated parts (URL verification: token, timestamp, nonce; safe mode adds Encrypt). */
export function wechatSignature(...parts: string[]): string {
  // Plain sort compares UTF-16 code units, which equals the official byte-wise sort for ASCII inputs.
  return createHash('sha1').update([...parts].sort().join('')).digest('hex');
}

/** `a` (from the request) equals the hex digest `b`, in constant time; anything that is not hex is simply unequal. */
export function safeEqualHex(a: string | undefined, b: string): boolean {
  // Hex only: a non-ASCII string of the right length in characters has more bytes, and timingSafeEqual would throw.
  if (typeof a !== 'string' || a.length !== b.length || !/^[0-9a-fA-F]*$/.test(a)) return false;
  return timingSafeEqual(Buffer.from(a.toLowerCase()), Buffer.from(b));
}

export class MsgCryptError extends Error {
  /** WXBizMsgCrypt's ierror codes: -40004 bad key, -40005 appid mismatch, -40007 decrypt, -40008 bad buffer. */
  constructor(readonly code: number, message: string) {
    super(message);
    this.name = 'MsgCryptError';
  }
}

// PKCS#7 to 32-byte blocks, not AES's 16: Node's built-in padding is wrong for this protocol.
const BLOCK = 32;

export class MsgCrypt {
  private readonly key: Buffer;
  private readonly iv: Buffer;

  constructor(encodingAesKey: string, private readonly appId: string) {
    const key = Buffer.from(encodingAesKey + '=', 'base64');
    if (encodingAesKey.length !== 43 || key.length !== 32) throw new MsgCryptError(-40004, 'EncodingAESKey must be 43 characters decoding to 32 bytes');
    this.key = key;
    this.iv = key.subarray(0, 16);
  }

  /** Base64(AES-256-CBC(random16 ‖ uint32be(len) ‖ msg ‖ appid), PKCS#7/32). */
  encrypt(message: string, random: Buffer = randomBytes(16)): string {
    const msg = Buffer.from(message, 'utf8');
    const len = Buffer.alloc(4);
    len.writeUInt32BE(msg.length);
    const body = Buffer.concat([random, len, msg, Buffer.from(this.appId, 'utf8')]);
    const pad = BLOCK - (body.length % BLOCK);
    const cipher = createCipheriv('aes-256-cbc', this.key, this.iv);
    cipher.setAutoPadding(false);
    return Buffer.concat([cipher.update(Buffer.concat([body, Buffer.alloc(pad, pad)])), cipher.final()]).toString('base64');
  }

  /** Decrypt and check the trailing appid (-40005 when it is not ours). */
  decrypt(encrypted: string): string {
    let plain: Buffer;
    try {
      const raw = Buffer.from(encrypted, 'base64');
      if (raw.length === 0 || raw.length % 16 !== 0) throw new Error('ciphertext length');
      const decipher = createDecipheriv('aes-256-cbc', this.key, this.iv);
      decipher.setAutoPadding(false);
      plain = Buffer.concat([decipher.update(raw), decipher.final()]);
    } catch {
      throw new MsgCryptError(-40007, 'decrypt failed');
    }
    const pad = plain[plain.length - 1]!;
    if (pad < 1 || pad > BLOCK || pad > plain.length) throw new MsgCryptError(-40008, 'bad padding');
    const body = plain.subarray(0, plain.length - pad);
    if (body.length < 20) throw new MsgCryptError(-40008, 'buffer too short');
    const len = body.readUInt32BE(16);
    if (20 + len > body.length) throw new MsgCryptError(-40008, 'bad message length');
    const appId = body.subarray(20 + len).toString('utf8');
    if (appId !== this.appId) throw new MsgCryptError(-40005, 'appid mismatch');
    return body.subarray(20, 20 + len).toString('utf8');
  }
}
