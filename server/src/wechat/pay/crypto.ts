/**
 * WeChat Pay API v3 crypto on node:crypto: request signing, response/notification verification (WeChat Pay
 * public-key mode and legacy platform certificates), AEAD_AES_256_GCM notification decryption, client-side
 * paySign, and RSA-OAEP(SHA-1) for sensitive fields. Pure functions; no I/O, no framework.
 *
 * Written in-house because wechatpay-node-v3@2.2.1 never calls decipher.final() (the GCM tag is never checked),
 * has no public-key mode and no timestamp freshness check. See docs: shared/wechat-protocol.md §6.
 * @see https://pay.weixin.qq.com/doc/v3/merchant/4012365341 (签名与验签规则)
 */
import {
  X509Certificate,
  constants,
  createCipheriv,
  createDecipheriv,
  createPrivateKey,
  createPublicKey,
  privateDecrypt,
  publicEncrypt,
  randomBytes,
  sign,
  verify,
  type KeyObject,
} from 'node:crypto';

/** PEM text (string or Buffer) or an already parsed KeyObject. */
export type KeyInput = string | Buffer | KeyObject;

export const AUTH_SCHEMA = 'WECHATPAY2-SHA256-RSA2048';
export const PUB_KEY_ID_PREFIX = 'PUB_KEY_ID_';
export const SIGNTEST_PREFIX = 'WECHATPAY/SIGNTEST/';
export const DEFAULT_MAX_SKEW_SECONDS = 300;
const GCM_TAG_BYTES = 16;

// ---------------------------------------------------------------------------------------------------------------
// Keys

function isKeyObject(k: KeyInput): k is KeyObject {
  return typeof k === 'object' && !Buffer.isBuffer(k);
}

/** An RSA private key (PKCS#8 `BEGIN PRIVATE KEY` or PKCS#1 `BEGIN RSA PRIVATE KEY`). */
export function loadRsaPrivateKey(key: KeyInput): KeyObject {
  const k = isKeyObject(key) ? key : createPrivateKey(key);
  if (k.type !== 'private' || k.asymmetricKeyType !== 'rsa') throw new TypeError('expected an RSA private key');
  return k;
}

/** An RSA public key from a `BEGIN PUBLIC KEY` PEM, an X.509 certificate PEM, or a private key (its public half). */
export function loadRsaPublicKey(key: KeyInput): KeyObject {
  let k: KeyObject;
  if (isKeyObject(key)) k = key.type === 'private' ? createPublicKey(key) : key;
  else if (String(key).includes('-----BEGIN CERTIFICATE-----')) k = new X509Certificate(key).publicKey;
  else k = createPublicKey(key);
  if (k.asymmetricKeyType !== 'rsa') throw new TypeError('expected an RSA public key');
  return k;
}

// ---------------------------------------------------------------------------------------------------------------
// 6.1 Request signing

/** 32 upper-case hex characters from the CSPRNG. */
export function createNonce(): string {
  return randomBytes(16).toString('hex').toUpperCase();
}

/** Current Unix time in whole seconds, as the string WeChat Pay expects. */
export function unixSeconds(nowMs: number = Date.now()): string {
  return String(Math.floor(nowMs / 1000));
}

function assertLine(name: string, value: string): void {
  if (value === '' || /[\r\n]/.test(value)) throw new TypeError(`${name} must be a non-empty single line`);
}

function assertSecondsTimestamp(timestamp: string): void {
  // Milliseconds (13 digits) are a documented pitfall; WeChat Pay wants Unix seconds.
  if (!/^\d{1,10}$/.test(timestamp)) throw new TypeError('timestamp must be Unix seconds (at most 10 digits)');
}

/**
 * The request signing message: 5 lines, each ending in `\n` — method, path+query (no host), timestamp, nonce,
 * body (the exact bytes sent; empty for GET, so the message ends in `\n\n`).
 */
export function buildRequestMessage(method: string, pathWithQuery: string, timestamp: string | number, nonce: string, body = ''): string {
  const m = method.toUpperCase();
  const ts = String(timestamp);
  assertLine('method', m);
  assertLine('pathWithQuery', pathWithQuery);
  if (!pathWithQuery.startsWith('/')) throw new TypeError('pathWithQuery must be the absolute path (+ query) without scheme and host');
  assertSecondsTimestamp(ts);
  assertLine('nonce', nonce);
  if (m === 'GET' && body !== '') throw new TypeError('a GET request has an empty body');
  return `${m}\n${pathWithQuery}\n${ts}\n${nonce}\n${body}\n`;
}

/** base64( RSA-SHA256, PKCS#1 v1.5 ) over the UTF-8 bytes of `message`. Deterministic. */
export function signRsaSha256(message: string | Buffer, privateKey: KeyInput): string {
  const data = typeof message === 'string' ? Buffer.from(message, 'utf8') : message;
  return sign('sha256', data, { key: loadRsaPrivateKey(privateKey), padding: constants.RSA_PKCS1_PADDING }).toString('base64');
}

export interface AuthorizationParams {
  mchid: string;
  /** Serial number of the merchant API certificate (apiclient_cert.pem), not WeChat's. */
  serialNo: string;
  nonce: string;
  timestamp: string | number;
  signature: string;
}

/** The `Authorization` header value, parameters in WXPayUtility.buildAuthorization's order. */
export function buildAuthorization(p: AuthorizationParams): string {
  const fields: Array<[string, string]> = [
    ['mchid', p.mchid],
    ['nonce_str', p.nonce],
    ['signature', p.signature],
    ['timestamp', String(p.timestamp)],
    ['serial_no', p.serialNo],
  ];
  for (const [k, v] of fields) {
    if (v === '' || /["\r\n,]/.test(v)) throw new TypeError(`authorization ${k} must be non-empty and contain no quote, comma or newline`);
  }
  return `${AUTH_SCHEMA} ${fields.map(([k, v]) => `${k}="${v}"`).join(',')}`;
}

export interface SignRequestInput {
  method: string;
  pathWithQuery: string;
  body?: string;
  mchid: string;
  serialNo: string;
  privateKey: KeyInput;
  timestamp?: string | number;
  nonce?: string;
}

/** Everything needed to sign one request: message, signature and the Authorization header. */
export function signRequest(r: SignRequestInput): { authorization: string; timestamp: string; nonce: string; message: string; signature: string } {
  const timestamp = String(r.timestamp ?? unixSeconds());
  const nonce = r.nonce ?? createNonce();
  const message = buildRequestMessage(r.method, r.pathWithQuery, timestamp, nonce, r.body ?? '');
  const signature = signRsaSha256(message, r.privateKey);
  return { authorization: buildAuthorization({ mchid: r.mchid, serialNo: r.serialNo, nonce, timestamp, signature }), timestamp, nonce, message, signature };
}

// ---------------------------------------------------------------------------------------------------------------
// 6.2 Response and notification verification

export type PayVerifyReason = 'stale_timestamp' | 'unknown_serial' | 'bad_signature' | 'missing_header';

export class PayVerifyError extends Error {
  constructor(
    readonly reason: PayVerifyReason,
    message: string,
    /** True for WeChat Pay's deliberate `WECHATPAY/SIGNTEST/` probes: answer 4XX, but no need to alert. */
    readonly probe = false,
  ) {
    super(message);
    this.name = 'PayVerifyError';
  }
}

/** The message WeChat Pay signs on responses and notifications: `timestamp\nnonce\nrawBody\n`. */
export function buildVerifyMessage(timestamp: string, nonce: string, body: string | Buffer): Buffer {
  const raw = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  return Buffer.concat([Buffer.from(`${timestamp}\n${nonce}\n`, 'utf8'), raw, Buffer.from('\n', 'utf8')]);
}

export interface PaySignedMessage {
  /** `Wechatpay-Timestamp` */
  timestamp?: string | undefined;
  /** `Wechatpay-Nonce` */
  nonce?: string | undefined;
  /** `Wechatpay-Signature` (base64) */
  signature?: string | undefined;
  /** `Wechatpay-Serial`: a `PUB_KEY_ID_…` public-key ID or a platform-certificate serial */
  serial?: string | undefined;
  /** The raw body exactly as received. Never re-serialised JSON. */
  body: string | Buffer;
}

export type PayKeyMode = 'public_key' | 'platform_certificate';

export interface PayVerified {
  serial: string;
  mode: PayKeyMode;
  timestamp: number;
}

export interface PayVerifierOptions {
  /** WeChat Pay public keys (微信支付公钥) by ID; every ID must start with `PUB_KEY_ID_`. */
  publicKeys?: Record<string, KeyInput>;
  /** Legacy platform certificates (平台证书) by serial number; the serial must match the certificate's. */
  platformCertificates?: Record<string, string | Buffer>;
  /** Reject when |now − Wechatpay-Timestamp| ≥ this (WXPayUtility: 5 minutes). */
  maxSkewSeconds?: number;
  /** Milliseconds since the epoch. */
  now?: () => number;
}

export interface PayVerifier {
  /** Throws PayVerifyError unless the message is fresh, from a known key and correctly signed. */
  verify(m: PaySignedMessage): PayVerified;
  /** The configured key IDs / certificate serials. */
  readonly serials: readonly string[];
}

/** Certificate serials are hex; compare case-insensitively and without leading zeros. */
function normalizeCertSerial(serial: string): string {
  return serial.trim().toUpperCase().replace(/^0+(?=.)/, '');
}

export function createPayVerifier(opts: PayVerifierOptions): PayVerifier {
  const maxSkew = opts.maxSkewSeconds ?? DEFAULT_MAX_SKEW_SECONDS;
  if (!(maxSkew > 0)) throw new TypeError('maxSkewSeconds must be positive');
  const now = opts.now ?? Date.now;

  const publicKeys = new Map<string, KeyObject>();
  for (const [id, pem] of Object.entries(opts.publicKeys ?? {})) {
    if (!id.startsWith(PUB_KEY_ID_PREFIX)) throw new TypeError(`WeChat Pay public-key ID must start with ${PUB_KEY_ID_PREFIX}: ${id}`);
    publicKeys.set(id, loadRsaPublicKey(pem));
  }
  const certificates = new Map<string, KeyObject>();
  for (const [serial, pem] of Object.entries(opts.platformCertificates ?? {})) {
    if (serial.startsWith(PUB_KEY_ID_PREFIX)) throw new TypeError(`platform certificate serial looks like a public-key ID: ${serial}`);
    const cert = new X509Certificate(pem);
    if (normalizeCertSerial(cert.serialNumber) !== normalizeCertSerial(serial)) {
      throw new TypeError(`platform certificate serial ${cert.serialNumber} does not match its key ${serial}`);
    }
    const key = cert.publicKey;
    if (key.asymmetricKeyType !== 'rsa') throw new TypeError('platform certificate must hold an RSA key');
    certificates.set(normalizeCertSerial(serial), key);
  }
  if (publicKeys.size + certificates.size === 0) throw new TypeError('createPayVerifier needs at least one public key or platform certificate');
  const serials = Object.freeze([...publicKeys.keys(), ...Object.keys(opts.platformCertificates ?? {})]);

  return {
    serials,
    verify(m) {
      const { timestamp, nonce, signature, serial } = m;
      if (!timestamp || !nonce || !signature || !serial) {
        throw new PayVerifyError('missing_header', 'missing Wechatpay-Timestamp, -Nonce, -Signature or -Serial');
      }
      if (m.body === undefined || m.body === null) throw new PayVerifyError('missing_header', 'missing body');

      // (1) freshness; a malformed timestamp cannot be shown fresh.
      if (!/^\d{1,10}$/.test(timestamp)) throw new PayVerifyError('stale_timestamp', 'Wechatpay-Timestamp is not Unix seconds');
      const ts = Number(timestamp);
      if (Math.abs(now() / 1000 - ts) >= maxSkew) throw new PayVerifyError('stale_timestamp', `Wechatpay-Timestamp ${timestamp} outside ±${maxSkew}s`);

      // (2) key by Wechatpay-Serial prefix; the two modes never fall back to each other.
      const mode: PayKeyMode = serial.startsWith(PUB_KEY_ID_PREFIX) ? 'public_key' : 'platform_certificate';
      const key = mode === 'public_key' ? publicKeys.get(serial) : certificates.get(normalizeCertSerial(serial));
      if (!key) throw new PayVerifyError('unknown_serial', `unknown Wechatpay-Serial ${serial}`);

      // (3) deliberate wrong-signature probes.
      if (signature.startsWith(SIGNTEST_PREFIX)) throw new PayVerifyError('bad_signature', 'WECHATPAY/SIGNTEST probe', true);

      // (4) RSA-SHA256 PKCS#1 v1.5 over the raw body.
      if (!/^[A-Za-z0-9+/]+={0,2}$/.test(signature) || signature.length % 4 !== 0) {
        throw new PayVerifyError('bad_signature', 'Wechatpay-Signature is not base64');
      }
      let ok = false;
      try {
        ok = verify('sha256', buildVerifyMessage(timestamp, nonce, m.body), { key, padding: constants.RSA_PKCS1_PADDING }, Buffer.from(signature, 'base64'));
      } catch {
        ok = false;
      }
      if (!ok) throw new PayVerifyError('bad_signature', 'signature does not verify');
      return { serial, mode, timestamp: ts };
    },
  };
}

/** Pull the four `Wechatpay-*` headers out of Node/Fastify headers (any case; repeated headers count as missing). */
export function readPayHeaders(headers: Record<string, string | string[] | undefined>): Omit<PaySignedMessage, 'body'> {
  const lower = new Map<string, string | string[] | undefined>();
  for (const [k, v] of Object.entries(headers)) lower.set(k.toLowerCase(), v);
  const one = (name: string) => {
    const v = lower.get(name);
    return typeof v === 'string' ? v : undefined;
  };
  return {
    timestamp: one('wechatpay-timestamp'),
    nonce: one('wechatpay-nonce'),
    signature: one('wechatpay-signature'),
    serial: one('wechatpay-serial'),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// 6.3 AEAD_AES_256_GCM

export type PayDecryptReason = 'bad_key' | 'bad_input' | 'auth_failed';

export class PayDecryptError extends Error {
  constructor(readonly reason: PayDecryptReason, message: string) {
    super(message);
    this.name = 'PayDecryptError';
  }
}

/** Throws unless the APIv3 key is exactly 32 bytes (UTF-8). Call on configuration load. Never echoes the key. */
export function assertApiV3Key(key: string): void {
  if (typeof key !== 'string') throw new TypeError('APIv3 key must be a string');
  const n = Buffer.byteLength(key, 'utf8');
  if (n !== 32) throw new TypeError(`APIv3 key must be exactly 32 bytes, got ${n}`);
}

export interface EncryptedResource {
  ciphertext: string;
  /** May be empty. */
  associated_data?: string | undefined;
  nonce: string;
  /** When present, must be `AEAD_AES_256_GCM`. */
  algorithm?: string | undefined;
}

/** AES-GCM key from the APIv3 key: 32 bytes → AES-256 (production); 16 bytes → AES-128 (the official Go test vectors). */
function gcmKey(apiV3Key: string): { key: Buffer; cipher: 'aes-256-gcm' | 'aes-128-gcm' } {
  if (typeof apiV3Key !== 'string') throw new PayDecryptError('bad_key', 'APIv3 key must be a string');
  const key = Buffer.from(apiV3Key, 'utf8');
  if (key.length === 32) return { key, cipher: 'aes-256-gcm' };
  if (key.length === 16) return { key, cipher: 'aes-128-gcm' };
  throw new PayDecryptError('bad_key', `APIv3 key must be 32 bytes (16 only for test vectors), got ${key.length}`);
}

const STRICT_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * Decrypt a notification `resource` (or a /v3/certificates entry). The last 16 bytes of the base64-decoded
 * ciphertext are the GCM tag, and `final()` is called, so any change to ciphertext, tag, nonce, AAD or key throws
 * PayDecryptError('auth_failed'). Verify the notification signature before calling this.
 */
export function decryptNotificationResource(resource: EncryptedResource, apiV3Key: string): string {
  const { key, cipher } = gcmKey(apiV3Key);
  if (resource.algorithm !== undefined && resource.algorithm !== 'AEAD_AES_256_GCM') {
    throw new PayDecryptError('bad_input', `unsupported algorithm ${resource.algorithm}`);
  }
  const { ciphertext, nonce } = resource;
  const aad = resource.associated_data ?? '';
  if (typeof ciphertext !== 'string' || typeof nonce !== 'string' || typeof aad !== 'string') {
    throw new PayDecryptError('bad_input', 'ciphertext, nonce and associated_data must be strings');
  }
  if (nonce.length === 0) throw new PayDecryptError('bad_input', 'empty nonce');
  if (!STRICT_BASE64.test(ciphertext)) throw new PayDecryptError('bad_input', 'ciphertext is not base64');
  const raw = Buffer.from(ciphertext, 'base64');
  if (raw.length < GCM_TAG_BYTES) throw new PayDecryptError('bad_input', 'ciphertext shorter than the GCM tag');
  const body = raw.subarray(0, raw.length - GCM_TAG_BYTES);
  const tag = raw.subarray(raw.length - GCM_TAG_BYTES);
  try {
    const decipher = createDecipheriv(cipher, key, Buffer.from(nonce, 'utf8'), { authTagLength: GCM_TAG_BYTES });
    decipher.setAuthTag(tag);
    decipher.setAAD(Buffer.from(aad, 'utf8'));
    // final() is what checks the tag: without it a forged notification decrypts (wechatpay-node-v3@2.2.1's bug).
    return Buffer.concat([decipher.update(body), decipher.final()]).toString('utf8');
  } catch {
    throw new PayDecryptError('auth_failed', 'AES-GCM authentication failed');
  }
}

/** The inverse, for the local sandbox and tests: what WeChat Pay does to a notification resource. */
export function encryptNotificationResource(
  plaintext: string,
  apiV3Key: string,
  opts: { associatedData?: string; nonce?: string } = {},
): { algorithm: 'AEAD_AES_256_GCM'; ciphertext: string; associated_data: string; nonce: string } {
  const { key, cipher } = gcmKey(apiV3Key);
  // 12 alphanumeric characters, like WeChat Pay's nonces.
  const nonce = opts.nonce ?? randomBytes(9).toString('base64').replace(/[+/]/g, 'x');
  const associatedData = opts.associatedData ?? '';
  const c = createCipheriv(cipher, key, Buffer.from(nonce, 'utf8'), { authTagLength: GCM_TAG_BYTES });
  c.setAAD(Buffer.from(associatedData, 'utf8'));
  const enc = Buffer.concat([c.update(plaintext, 'utf8'), c.final(), c.getAuthTag()]);
  return { algorithm: 'AEAD_AES_256_GCM', ciphertext: enc.toString('base64'), associated_data: associatedData, nonce };
}

// ---------------------------------------------------------------------------------------------------------------
// 6.4 Client-side paySign

/** 4 lines, each ending in `\n`: appId, timeStamp, nonceStr, package (`prepay_id=…`; the bare prepay_id for APP). */
export function buildPaySignMessage(appId: string, timeStamp: string, nonceStr: string, pkg: string): string {
  assertLine('appId', appId);
  assertSecondsTimestamp(timeStamp);
  assertLine('nonceStr', nonceStr);
  assertLine('package', pkg);
  return `${appId}\n${timeStamp}\n${nonceStr}\n${pkg}\n`;
}

export interface JsapiPaySignInput {
  /** The AppID the openid belongs to: the mini program's for wx.requestPayment. */
  appId: string;
  timeStamp: string;
  nonceStr: string;
  /** `prepay_id=…` */
  package: string;
}

/** paySign for wx.requestPayment / WeixinJSBridge getBrandWCPayRequest, with the merchant API private key. */
export function jsapiPaySign(p: JsapiPaySignInput, merchantPrivateKey: KeyInput): string {
  return signRsaSha256(buildPaySignMessage(p.appId, p.timeStamp, p.nonceStr, p.package), merchantPrivateKey);
}

/** APP pay `sign`: line 4 is the bare prepay_id (the APP SDK's packageValue is `Sign=WXPay`). */
export function appPaySign(p: { appId: string; timeStamp: string; nonceStr: string; prepayId: string }, merchantPrivateKey: KeyInput): string {
  return signRsaSha256(buildPaySignMessage(p.appId, p.timeStamp, p.nonceStr, p.prepayId), merchantPrivateKey);
}

export interface RequestPaymentParams {
  timeStamp: string;
  nonceStr: string;
  package: string;
  signType: 'RSA';
  paySign: string;
}

/** The object the mini program passes to `wx.requestPayment` (add `appId` for the OA web bridge). */
export function buildRequestPaymentParams(
  appId: string,
  prepayId: string,
  merchantPrivateKey: KeyInput,
  opts: { timeStamp?: string; nonceStr?: string } = {},
): RequestPaymentParams {
  assertLine('prepayId', prepayId);
  if (prepayId.startsWith('prepay_id=')) throw new TypeError('pass the bare prepay_id; the "prepay_id=" prefix is added here');
  const timeStamp = opts.timeStamp ?? unixSeconds();
  const nonceStr = opts.nonceStr ?? createNonce();
  const pkg = `prepay_id=${prepayId}`;
  return { timeStamp, nonceStr, package: pkg, signType: 'RSA', paySign: jsapiPaySign({ appId, timeStamp, nonceStr, package: pkg }, merchantPrivateKey) };
}

// ---------------------------------------------------------------------------------------------------------------
// 6.6 Sensitive fields (transfer-bills user_name): RSA/ECB/OAEPWithSHA-1AndMGF1Padding

/**
 * Encrypt to WeChat Pay's public key (or platform certificate) with RSA-OAEP, SHA-1 and MGF1-SHA-1; base64.
 * Send `Wechatpay-Serial` naming the same key with the request.
 */
export function encryptSensitiveField(plaintext: string, wechatPayPublicKey: KeyInput): string {
  return publicEncrypt(
    { key: loadRsaPublicKey(wechatPayPublicKey), padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1' },
    Buffer.from(plaintext, 'utf8'),
  ).toString('base64');
}

/** The inverse (for tests and for sensitive fields WeChat Pay encrypts to the merchant key). */
export function decryptSensitiveField(ciphertextB64: string, privateKey: KeyInput): string {
  return privateDecrypt(
    { key: loadRsaPrivateKey(privateKey), padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1' },
    Buffer.from(ciphertextB64, 'base64'),
  ).toString('utf8');
}
