/**
 * Configuration: parsed once at boot from the environment, validated with ajv, frozen.
 * Nothing else in the server reads process.env.
 */
import { Ajv } from 'ajv';
import { createHash, createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { SANDBOX_PAY, sandboxApiV3Key } from './wechat/sandbox/pay-keys.ts';
import { SANDBOX_MINIPROGRAM } from './wechat/sandbox/mina.ts';

const SANDBOX_DEFAULTS = {
  WECHAT_APPID: 'wx0sandbox0000001',
  WECHAT_TOKEN: 'sandboxtoken',
  // 43 characters, as WeChat issues EncodingAESKey.
  WECHAT_ENCODING_AES_KEY: 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG',
  OPS_ADMIN_PASSWORD: 'sandbox-admin',
} as const;

const schema = {
  type: 'object',
  additionalProperties: true,
  properties: {
    NODE_ENV: { type: 'string', enum: ['development', 'production', 'test'], default: 'development' },
    PORT: { type: 'integer', minimum: 0, maximum: 65535, default: 3000 },
    HOST: { type: 'string', minLength: 1, default: '0.0.0.0' },
    PUBLIC_URL: { type: 'string', pattern: '^https?://' },
    LOG_LEVEL: { type: 'string', enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], default: 'info' },
    TRUST_PROXY: { type: 'string', pattern: '^(true|false|[0-9a-fA-F.:/, ]+)$', default: 'false' },
    DATABASE_URL: { type: 'string', pattern: '^postgres(ql)?://' },
    DATA_DIR: { type: 'string', minLength: 1, default: './data' },
    DB_POOL_SIZE: { type: 'integer', minimum: 1, maximum: 200, default: 16 },
    WECHAT_SANDBOX: { type: 'boolean' },
    WECHAT_APPID: { type: 'string', pattern: '^wx[0-9a-zA-Z]{8,30}$' },
    WECHAT_APPSECRET: { type: 'string', minLength: 16 },
    WECHAT_TOKEN: { type: 'string', pattern: '^[A-Za-z0-9]{3,32}$' },
    WECHAT_ENCODING_AES_KEY: { type: 'string', pattern: '^[A-Za-z0-9]{43}$' },
    WECHAT_API_BASE: { type: 'string', pattern: '^https?://' },
    WEBHOOK_TIMESTAMP_WINDOW_S: { type: 'integer', minimum: 1, default: 300 },
    WEBHOOK_BODY_LIMIT: { type: 'integer', minimum: 1024, maximum: 10485760, default: 65536 },
    WEBHOOK_REPLY_BUDGET_MS: { type: 'integer', minimum: 1, maximum: 4900, default: 4000 },
    WEBHOOK_REQUIRE_ENCRYPTION: { type: 'boolean', default: false },
    RULES_CACHE_TTL_MS: { type: 'integer', minimum: 0, default: 3000 },
    OPS_ADMIN_PASSWORD: { type: 'string', minLength: 8 },
    OPS_TOKEN_TTL_S: { type: 'integer', minimum: 60, default: 43200 },
    PII_KEY: { type: 'string', pattern: '^[A-Za-z0-9+/]{43}=$' },
    CODE_KEY: { type: 'string', pattern: '^[A-Za-z0-9+/]{43}=$' },
    JOBS_ENABLED: { type: 'boolean', default: true },
    // fraud: anti-fraud scoring (defaults of model version 1; ops edit later versions in the ops API)
    FRAUD_ENABLED: { type: 'boolean' },
    FRAUD_CACHE_TTL_MS: { type: 'integer', minimum: 0, maximum: 600000, default: 2000 },
    FRAUD_HOLD_PERMILLE: { type: 'integer', minimum: 1, maximum: 1000, default: 500 },
    FRAUD_BLOCK_PERMILLE: { type: 'integer', minimum: 1, maximum: 1000, default: 920 },
    FRAUD_CASH_HOLD_PERMILLE: { type: 'integer', minimum: 1, maximum: 1000, default: 250 },
    // WeChat Pay (merchant transfer for cash prizes) and the phone top-up provider: see .env.example.
    WECHATPAY_MCHID: { type: 'string', pattern: '^[0-9]{6,20}$' },
    WECHATPAY_SERIAL: { type: 'string', pattern: '^[0-9A-Fa-f]{8,64}$' },
    WECHATPAY_PRIVATE_KEY_PATH: { type: 'string', minLength: 1 },
    WECHATPAY_PUBLIC_KEY_ID: { type: 'string', pattern: '^PUB_KEY_ID_[0-9A-Za-z_]+$' },
    WECHATPAY_PUBLIC_KEY_PATH: { type: 'string', minLength: 1 },
    WECHATPAY_PLATFORM_CERT_PATH: { type: 'string', minLength: 1 },
    WECHATPAY_APIV3_KEY: { type: 'string', pattern: '^[\\x21-\\x7e]{32}$' },
    WECHATPAY_API_BASE: { type: 'string', pattern: '^https?://[^?#]+$' },
    WECHATPAY_NOTIFY_URL: { type: 'string', pattern: '^https?://[^?#]+$' },
    WECHATPAY_TIMEOUT_MS: { type: 'integer', minimum: 100, maximum: 60000, default: 10000 },
    TRANSFER_APPID: { type: 'string', pattern: '^wx[0-9a-zA-Z]{8,30}$' },
    TRANSFER_SCENE_ID: { type: 'string', pattern: '^[0-9]{1,36}$', default: '1000' },
    TRANSFER_ACTIVITY_NAME: { type: 'string', minLength: 1, maxLength: 64 },
    TRANSFER_REWARD_DESC: { type: 'string', minLength: 1, maxLength: 64 },
    TRANSFER_REMARK: { type: 'string', minLength: 1, maxLength: 32, default: '扫码抽奖现金奖励' },
    WECHAT_MINIPROGRAM_APPID: { type: 'string', pattern: '^wx[0-9a-zA-Z]{8,30}$' },
    // members: mini-program login (code2Session needs the mini program's own secret) and its session lifetimes.
    WECHAT_MINIPROGRAM_APPSECRET: { type: 'string', minLength: 16 },
    MP_SESSION_TTL_S: { type: 'integer', minimum: 60, maximum: 604800, default: 7200 },
    MP_REFRESH_TTL_S: { type: 'integer', minimum: 3600, maximum: 31536000, default: 2592000 },
    MP_POINTS_EXPIRY_TEMPLATE_ID: { type: 'string', minLength: 1, maxLength: 128 },
    TOPUP_API_BASE: { type: 'string', pattern: '^https?://[^?#]+$' },
    TOPUP_API_KEY: { type: 'string', minLength: 8 },
    TOPUP_TIMEOUT_MS: { type: 'integer', minimum: 100, maximum: 60000, default: 10000 },
    // commerce (mall, orders, coupons, recommendations)
    WECHATPAY_JSAPI_NOTIFY_URL: { type: 'string', pattern: '^https?://[^?#]+$' },
    MALL_PAY_TTL_MIN: { type: 'integer', minimum: 5, maximum: 1440, default: 30 },
    COUPON_QR_TTL_S: { type: 'integer', minimum: 30, maximum: 86400, default: 300 },
  },
} as const;

export interface Config {
  readonly env: 'development' | 'production' | 'test';
  readonly port: number;
  readonly host: string;
  /** Where the outside world reaches this server (used in banners and sandbox links). */
  readonly publicUrl: string | undefined;
  readonly logLevel: string;
  /** Fastify trustProxy: true (any hop), false, or the proxies' addresses/CIDRs — the client IP feeds anti-fraud. */
  readonly trustProxy: boolean | string;
  readonly db: { readonly url: string | undefined; readonly dataDir: string; readonly poolSize: number };
  readonly wechat: {
    readonly sandbox: boolean;
    readonly appId: string;
    readonly appSecret: string;
    readonly token: string;
    readonly encodingAesKey: string | undefined;
    /** undefined in sandbox mode until the server knows its own address. */
    readonly apiBase: string | undefined;
  };
  readonly webhook: {
    readonly timestampWindowS: number; readonly bodyLimit: number; readonly replyBudgetMs: number;
    /**
     * Safe mode only: refuse pushes without encrypt_type=aes. A plaintext push's signature covers the timestamp and
     * nonce but not the body, so anyone holding a signed URL (a log, a proxy) could post any body within the window.
     */
    readonly requireEncryption: boolean;
  };
  readonly rulesCacheTtlMs: number;
  readonly ops: { readonly adminPassword: string; readonly adminPasswordIsDefault: boolean; readonly tokenTtlS: number };
  /** 32-byte key for field encryption of personal data (phone numbers). */
  readonly piiKey: Buffer;
  /** 32-byte secret of the pack codes: the database stores HMAC(CODE_KEY, code), and generated batches are re-derived from it. */
  readonly codeKey: Buffer;
  readonly jobsEnabled: boolean;
  /**
   * WeChat Pay merchant transfer (cash prizes). `sandbox`: the local simulator with the keys in server/sandbox-keys/
   * (PEMs undefined here: app.ts loads them); `live`: WECHATPAY_MCHID and every credential set; `off`: not
   * configured outside the sandbox (cash prizes then fail visibly for ops).
   */
  readonly wechatPay: {
    readonly mode: 'sandbox' | 'live' | 'off';
    readonly mchid: string | undefined;
    /** Serial number of the merchant API certificate (apiclient_cert.pem). */
    readonly serialNo: string | undefined;
    readonly privateKeyPem: string | undefined;
    /** Public-key mode (微信支付公钥): its `PUB_KEY_ID_…` and PEM. */
    readonly publicKeyId: string | undefined;
    readonly publicKeyPem: string | undefined;
    /** Legacy platform-certificate mode: the certificate PEM and its serial. */
    readonly platformCertPem: string | undefined;
    readonly platformCertSerial: string | undefined;
    readonly apiV3Key: string | undefined;
    /** undefined in sandbox mode until the server knows its own address (then `<self>/sandbox/pay`). */
    readonly apiBase: string | undefined;
    /** undefined in sandbox mode until the server knows its own address (then `<self>/pay/notify/transfer`). */
    readonly notifyUrl: string | undefined;
    readonly timeoutMs: number;
    /** `appid` of transfer bills: the AppID the winners' openids belong to (default WECHAT_APPID). */
    readonly appId: string;
    readonly transfer: {
      readonly sceneId: string;
      /** 活动名称 report info; default: the campaign's name. */
      readonly activityName: string | undefined;
      /** 奖励说明 report info; default: `现金红包X元`. */
      readonly rewardDesc: string | undefined;
      /** transfer_remark shown to the user (≤ 32 characters). */
      readonly remark: string;
    };
  };
  /** The mini program winners confirm cash transfers in (linked from customer-service messages). */
  readonly miniprogram: {
    readonly appId: string | undefined;
    /** members: code2Session and the mini program's access_token; undefined outside the sandbox until configured. */
    readonly appSecret: string | undefined;
    /** members: lifetime of a session (access) token and of its refresh token. */
    readonly sessionTtlS: number;
    readonly refreshTtlS: number;
    /** members: subscribe-message template for the points-expiry reminder (fields thing1, number2, date3). */
    readonly pointsExpiryTemplateId: string | undefined;
  };
  /** Phone top-up provider; apiBase undefined in sandbox mode until the server knows its address (`<self>/sandbox/topup`). */
  readonly topup: { readonly apiBase: string | undefined; readonly apiKey: string | undefined; readonly timeoutMs: number };
  /** commerce: points + cash payments (JSAPI notify URL; undefined in sandbox mode → `<self>/pay/notify/jsapi`), coupon QR lifetime. */
  readonly commerce: { readonly jsapiNotifyUrl: string | undefined; readonly payTtlMinutes: number; readonly couponQrTtlS: number };
  /** fraud: scoring on/off, cache TTL of model/blacklist/flagged users, and version 1's thresholds (0–1). */
  readonly fraud: { readonly enabled: boolean; readonly cacheTtlMs: number; readonly hold: number; readonly block: number; readonly cashHold: number };
}

export class ConfigError extends Error {
  constructor(readonly variable: string, message: string) {
    super(`Invalid configuration: ${variable} ${message}`);
    this.name = 'ConfigError';
  }
}

const BOOL = /^(1|true|yes|on)$/i;
const BOOL_FALSE = /^(0|false|no|off)$/i;

/** Coerce env strings to the types the schema declares; anything odd is left for ajv to name. */
function coerce(env: Record<string, string | undefined>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, def] of Object.entries(schema.properties)) {
    const raw = env[key];
    if (raw === undefined || raw === '') continue;
    if (def.type === 'integer') out[key] = /^-?\d+$/.test(raw.trim()) ? Number(raw) : raw;
    else if (def.type === 'boolean') out[key] = BOOL.test(raw) ? true : BOOL_FALSE.test(raw) ? false : raw;
    else out[key] = raw;
  }
  return out;
}

const ajv = new Ajv({ useDefaults: true, allErrors: false, strict: false });
const validate = ajv.compile(schema);

/**
 * Parse and validate the environment. Throws ConfigError naming the first bad variable.
 * WECHAT_SANDBOX defaults to on when no app secret is configured; outside the sandbox every secret is required.
 */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const values = coerce(env);
  if (!validate(values)) {
    const err = validate.errors![0]!;
    const variable = err.instancePath.replace(/^\//, '') || String((err.params as { missingProperty?: string }).missingProperty ?? '?');
    const raw = env[variable];
    throw new ConfigError(variable, `${err.message ?? 'is invalid'}${raw !== undefined ? ` (got "${raw.length > 60 ? raw.slice(0, 60) + '…' : raw}")` : ''}`);
  }
  const v = values as Record<string, any>;
  const sandbox: boolean = v.WECHAT_SANDBOX ?? !v.WECHAT_APPSECRET;
  if (!sandbox) {
    for (const name of ['WECHAT_APPID', 'WECHAT_APPSECRET', 'WECHAT_TOKEN', 'OPS_ADMIN_PASSWORD', 'PII_KEY', 'CODE_KEY']) {
      if (v[name] === undefined) throw new ConfigError(name, 'is required when WECHAT_SANDBOX is off');
    }
  }
  if (v.WEBHOOK_REQUIRE_ENCRYPTION && !v.WECHAT_ENCODING_AES_KEY && !sandbox) {
    throw new ConfigError('WEBHOOK_REQUIRE_ENCRYPTION', 'needs WECHAT_ENCODING_AES_KEY (safe mode)');
  }
  const appId: string = v.WECHAT_APPID ?? SANDBOX_DEFAULTS.WECHAT_APPID;
  const piiKey = v.PII_KEY
    ? Buffer.from(v.PII_KEY, 'base64')
    : // Sandbox only: a fixed, derived key so local data stays readable across restarts.
      createHash('sha256').update(`sandbox-pii:${appId}`).digest();
  const codeKey = v.CODE_KEY ? Buffer.from(v.CODE_KEY, 'base64') : createHash('sha256').update(`sandbox-codes:${appId}`).digest();
  const wechatPay = loadWechatPay(v, sandbox, appId);
  return Object.freeze({
    env: v.NODE_ENV,
    port: v.PORT,
    host: v.HOST,
    publicUrl: v.PUBLIC_URL,
    logLevel: v.LOG_LEVEL,
    trustProxy: v.TRUST_PROXY === 'true' ? true : v.TRUST_PROXY === 'false' ? false : v.TRUST_PROXY,
    db: Object.freeze({ url: v.DATABASE_URL, dataDir: v.DATA_DIR, poolSize: v.DB_POOL_SIZE }),
    wechat: Object.freeze({
      sandbox,
      appId,
      appSecret: v.WECHAT_APPSECRET ?? 'sandbox-app-secret-0000',
      token: v.WECHAT_TOKEN ?? SANDBOX_DEFAULTS.WECHAT_TOKEN,
      encodingAesKey: v.WECHAT_ENCODING_AES_KEY ?? (sandbox ? SANDBOX_DEFAULTS.WECHAT_ENCODING_AES_KEY : undefined),
      apiBase: v.WECHAT_API_BASE ?? (sandbox ? undefined : 'https://api.weixin.qq.com'),
    }),
    webhook: Object.freeze({
      timestampWindowS: v.WEBHOOK_TIMESTAMP_WINDOW_S,
      bodyLimit: v.WEBHOOK_BODY_LIMIT,
      replyBudgetMs: v.WEBHOOK_REPLY_BUDGET_MS,
      requireEncryption: v.WEBHOOK_REQUIRE_ENCRYPTION,
    }),
    rulesCacheTtlMs: v.RULES_CACHE_TTL_MS,
    ops: Object.freeze({
      adminPassword: v.OPS_ADMIN_PASSWORD ?? SANDBOX_DEFAULTS.OPS_ADMIN_PASSWORD,
      adminPasswordIsDefault: v.OPS_ADMIN_PASSWORD === undefined,
      tokenTtlS: v.OPS_TOKEN_TTL_S,
    }),
    piiKey,
    codeKey,
    jobsEnabled: v.JOBS_ENABLED,
    wechatPay,
    miniprogram: Object.freeze({
      appId: v.WECHAT_MINIPROGRAM_APPID ?? (sandbox ? SANDBOX_MINIPROGRAM.appId : undefined),
      appSecret: v.WECHAT_MINIPROGRAM_APPSECRET ?? (sandbox ? SANDBOX_MINIPROGRAM.appSecret : undefined),
      sessionTtlS: v.MP_SESSION_TTL_S,
      refreshTtlS: v.MP_REFRESH_TTL_S,
      pointsExpiryTemplateId: v.MP_POINTS_EXPIRY_TEMPLATE_ID,
    }),
    topup: Object.freeze({ apiBase: v.TOPUP_API_BASE, apiKey: v.TOPUP_API_KEY, timeoutMs: v.TOPUP_TIMEOUT_MS }),
    // commerce (mall, orders, coupons, recommendations)
    commerce: Object.freeze({ jsapiNotifyUrl: v.WECHATPAY_JSAPI_NOTIFY_URL, payTtlMinutes: v.MALL_PAY_TTL_MIN, couponQrTtlS: v.COUPON_QR_TTL_S }),
    // fraud
    fraud: Object.freeze({
      // On by default; off by default under NODE_ENV=test, so other capabilities' tests (one user redeeming twenty codes a second) are not scored as resellers.
      enabled: v.FRAUD_ENABLED ?? v.NODE_ENV !== 'test', cacheTtlMs: v.FRAUD_CACHE_TTL_MS,
      hold: v.FRAUD_HOLD_PERMILLE / 1000, block: Math.max(v.FRAUD_BLOCK_PERMILLE, v.FRAUD_HOLD_PERMILLE) / 1000, cashHold: v.FRAUD_CASH_HOLD_PERMILLE / 1000,
    }),
  });
}

/** A PEM file named by an env variable, checked to parse; a ConfigError names the variable otherwise. */
function readPem(variable: string, file: string, kind: 'private' | 'public' | 'certificate'): { pem: string; serial?: string } {
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(variable, `cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'}: ${file})`);
  }
  try {
    if (kind === 'private') createPrivateKey(pem);
    else if (kind === 'public') createPublicKey(pem);
    else return { pem, serial: new X509Certificate(pem).serialNumber };
  } catch {
    throw new ConfigError(variable, `is not a PEM ${kind === 'certificate' ? 'certificate' : `${kind} key`} (${file})`);
  }
  return { pem };
}

/**
 * WeChat Pay is optional: outside the sandbox it is `off` unless WECHATPAY_MCHID is set, and then every credential
 * is required (a half-configured payer is refused at boot rather than at the first cash prize).
 */
function loadWechatPay(v: Record<string, any>, sandbox: boolean, appId: string): Config['wechatPay'] {
  const live = v.WECHATPAY_MCHID !== undefined;
  const mode: Config['wechatPay']['mode'] = live ? 'live' : sandbox ? 'sandbox' : 'off';
  const transfer = Object.freeze({
    sceneId: v.TRANSFER_SCENE_ID,
    activityName: v.TRANSFER_ACTIVITY_NAME,
    rewardDesc: v.TRANSFER_REWARD_DESC,
    remark: v.TRANSFER_REMARK,
  });
  const common = { timeoutMs: v.WECHATPAY_TIMEOUT_MS as number, appId: (v.TRANSFER_APPID ?? appId) as string, transfer };
  if (!live) {
    // The sandbox's identity (server/src/wechat/sandbox/pay-keys.ts); its PEMs are loaded by app.ts.
    return Object.freeze({
      mode,
      mchid: sandbox ? SANDBOX_PAY.mchid : undefined,
      serialNo: sandbox ? SANDBOX_PAY.merchantSerial : undefined,
      privateKeyPem: undefined,
      publicKeyId: sandbox ? SANDBOX_PAY.publicKeyId : undefined,
      publicKeyPem: undefined,
      platformCertPem: undefined,
      platformCertSerial: undefined,
      apiV3Key: sandbox ? sandboxApiV3Key(appId) : undefined,
      apiBase: v.WECHATPAY_API_BASE,
      notifyUrl: v.WECHATPAY_NOTIFY_URL,
      ...common,
    });
  }
  for (const name of ['WECHATPAY_SERIAL', 'WECHATPAY_PRIVATE_KEY_PATH', 'WECHATPAY_APIV3_KEY', 'WECHATPAY_NOTIFY_URL']) {
    if (v[name] === undefined) throw new ConfigError(name, 'is required when WECHATPAY_MCHID is set');
  }
  if (!v.WECHATPAY_PLATFORM_CERT_PATH && !(v.WECHATPAY_PUBLIC_KEY_ID && v.WECHATPAY_PUBLIC_KEY_PATH)) {
    const missing = v.WECHATPAY_PUBLIC_KEY_ID ? 'WECHATPAY_PUBLIC_KEY_PATH' : 'WECHATPAY_PUBLIC_KEY_ID';
    throw new ConfigError(missing, 'is required when WECHATPAY_MCHID is set (or WECHATPAY_PLATFORM_CERT_PATH for the legacy certificate mode)');
  }
  if (!sandbox && !String(v.WECHATPAY_NOTIFY_URL).startsWith('https://')) {
    throw new ConfigError('WECHATPAY_NOTIFY_URL', `must be an https URL (got "${v.WECHATPAY_NOTIFY_URL}")`);
  }
  const cert = v.WECHATPAY_PLATFORM_CERT_PATH ? readPem('WECHATPAY_PLATFORM_CERT_PATH', v.WECHATPAY_PLATFORM_CERT_PATH, 'certificate') : undefined;
  return Object.freeze({
    mode,
    mchid: v.WECHATPAY_MCHID,
    serialNo: v.WECHATPAY_SERIAL,
    privateKeyPem: readPem('WECHATPAY_PRIVATE_KEY_PATH', v.WECHATPAY_PRIVATE_KEY_PATH, 'private').pem,
    publicKeyId: v.WECHATPAY_PUBLIC_KEY_PATH ? v.WECHATPAY_PUBLIC_KEY_ID : undefined,
    publicKeyPem: v.WECHATPAY_PUBLIC_KEY_PATH && v.WECHATPAY_PUBLIC_KEY_ID ? readPem('WECHATPAY_PUBLIC_KEY_PATH', v.WECHATPAY_PUBLIC_KEY_PATH, 'public').pem : undefined,
    platformCertPem: cert?.pem,
    platformCertSerial: cert?.serial,
    apiV3Key: v.WECHATPAY_APIV3_KEY,
    apiBase: v.WECHATPAY_API_BASE ?? 'https://api.mch.weixin.qq.com',
    notifyUrl: v.WECHATPAY_NOTIFY_URL,
    ...common,
  });
}

/** A copy of a config with overrides, for tests and the sandbox address known only after listen. */
export function withOverrides(config: Config, patch: { wechat?: Partial<Config['wechat']>; webhook?: Partial<Config['webhook']>; db?: Partial<Config['db']> } & Partial<Omit<Config, 'wechat' | 'webhook' | 'db'>>): Config {
  return Object.freeze({
    ...config,
    ...patch,
    wechat: Object.freeze({ ...config.wechat, ...patch.wechat }),
    webhook: Object.freeze({ ...config.webhook, ...patch.webhook }),
    db: Object.freeze({ ...config.db, ...patch.db }),
  }) as Config;
}
