/**
 * The WeChat sandbox: a local simulator of the subset of api.weixin.qq.com this project calls, with the
 * official request and response shapes, error codes, token expiry, the customer-service window and quotas.
 * It records every call so tests and the chat client can see what was "sent to WeChat".
 *
 * WeChat knows what users do in the chat (that is what opens the customer-service window); here the chat
 * client and the test simulator tell the sandbox through POST /__sandbox/user-action before they post the
 * signed XML to the webhook, exactly as the real platform would observe it.
 */
import { randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { MinaSandbox, SANDBOX_MINIPROGRAM } from './mina.ts';

export interface SandboxOptions {
  appId: string;
  appSecret: string;
  /** The mini program beside the official account (its own AppID, secret and access_token). */
  miniProgram?: { appId: string; appSecret: string };
}

export interface RecordedCall {
  seq: number;
  at: string;
  method: string;
  path: string;
  /** Query without the access_token. */
  query: Record<string, string>;
  body: unknown;
  errcode: number;
}

type Scene = 'message' | 'menu' | 'follow' | 'scan' | 'payment';
interface Grant { expiresAt: number; quota: number | null; used: number }
interface SandboxUser {
  subscribed: boolean; grants: Partial<Record<Scene, Grant>>; acceptsMessages: boolean;
  /** Set when the account is bound to an open-platform account (user/info then returns it). */
  unionid?: string; subscribeTime?: number;
}

const HOUR = 3_600_000;
// §5.8: 5 in 48 h after a message; 3 in 1 min after a menu click, follow or scan; unlimited 48 h after payment.
const GRANTS: Record<Scene, { ttl: number; quota: number | null }> = {
  message: { ttl: 48 * HOUR, quota: 5 },
  menu: { ttl: 60_000, quota: 3 },
  follow: { ttl: 60_000, quota: 3 },
  scan: { ttl: 60_000, quota: 3 },
  payment: { ttl: 48 * HOUR, quota: null },
};

// §7 daily quotas of a new account, per API.
const DAILY_QUOTA: Record<string, number> = {
  '/cgi-bin/token': 2000,
  '/cgi-bin/stable_token': 500_000,
  '/cgi-bin/message/custom/send': 500_000,
  '/cgi-bin/message/template/send': 100_000,
  '/cgi-bin/menu/create': 1000,
  '/cgi-bin/user/info': 5_000_000,
  '/cgi-bin/menu/get': 10_000,
  '/cgi-bin/menu/delete': 1000,
  '/cgi-bin/menu/addconditional': 2000,
  '/cgi-bin/menu/delconditional': 2000,
};

const MSG = {
  41001: 'access_token missing',
  40001: 'invalid credential, access_token is invalid or not latest, could get access_token by getStableAccessToken, more details at https://mmbizurl.cn/s/JtxxFh33r',
  42001: 'access_token expired',
  40013: 'invalid appid',
  40125: 'invalid appsecret',
  40002: 'invalid grant_type',
  47001: 'data format error',
  45009: 'reach max api daily quota limit',
  45011: 'api minute-quota reach limit  mustslower  retry next minute',
  45015: 'response out of time limit or subscription is canceled',
  45047: 'out of response count limit',
  48002: 'api forbidden for user rejected',
  40003: 'invalid openid',
  40008: 'invalid message type',
  40016: 'invalid button size',
  40017: 'invalid button type',
  40018: 'invalid button name size',
  40019: 'invalid button key size',
  40023: 'invalid sub button size',
  40025: 'invalid sub button name size',
  40026: 'invalid sub button key size',
  40027: 'invalid sub button url size',
  40055: 'invalid button url domain',
  46003: 'menu no exist',
  65301: 'no such menuid',
  65303: 'there is no selfmenu, please create selfmenu first',
  65320: 'match rule contains privacy info, not supported',
  40037: 'invalid template_id',
  43004: 'require subscribe',
  40029: 'invalid code',
  41030: 'invalid page rid',
  43101: 'user refuse to accept the msg',
  47003: 'argument invalid!',
  [-1]: 'system error',
} as Record<number, string>;

export class SandboxState {
  private offsetMs = 0;
  private seq = 0;
  private tokens = new Map<string, number>();
  /** token → the AppID it was issued to (an official-account token is no good for mini-program APIs). */
  private tokenApp = new Map<string, string>();
  private stables = new Map<string, { token: string; expiresAt: number }>();
  private lastForce = new Map<string, number>();
  private forceToday = new Map<string, number>();
  readonly mina: MinaSandbox;
  readonly calls: RecordedCall[] = [];
  readonly counts = new Map<string, number>();
  readonly users = new Map<string, SandboxUser>();
  menu: { button: unknown[] } | undefined;
  conditional: Array<{ button: unknown[]; matchrule: Record<string, unknown>; menuid: string }> = [];
  /** Injected failures: path → errcodes to return on the next calls. */
  readonly failures = new Map<string, number[]>();
  private day = '';
  private daily = new Map<string, number>();

  constructor(readonly opts: SandboxOptions) {
    const mp = opts.miniProgram ?? SANDBOX_MINIPROGRAM;
    this.mina = new MinaSandbox(mp.appId, mp.appSecret, () => this.now());
  }

  now(): number {
    return Date.now() + this.offsetMs;
  }
  advance(ms: number) {
    this.offsetMs += ms;
  }

  issueToken(ttlS = 7200, appId = this.opts.appId): string {
    // Real tokens are 100+ characters; keep the shape.
    const token = `SBX_${randomBytes(48).toString('base64url')}`;
    this.tokens.set(token, this.now() + ttlS * 1000);
    this.tokenApp.set(token, appId);
    return token;
  }

  stableToken(force: boolean, appId = this.opts.appId): { token: string; expiresIn: number } | { errcode: number } {
    const now = this.now();
    if (force) {
      // 强制刷新模式每天限用 20 次且需间隔 30 秒
      if (now - (this.lastForce.get(appId) ?? 0) < 30_000) return { errcode: 45011 };
      const n = (this.forceToday.get(appId) ?? 0) + 1;
      this.forceToday.set(appId, n);
      if (n > 20) return { errcode: 45009 };
      this.lastForce.set(appId, now);
      const old = this.stables.get(appId);
      if (old) this.tokens.delete(old.token);
      this.stables.delete(appId);
    }
    // Normal mode returns the current token; the platform renews it 5 minutes before expiry.
    let stable = this.stables.get(appId);
    if (!stable || stable.expiresAt - now < 5 * 60_000) {
      const token = this.issueToken(7200, appId);
      stable = { token, expiresAt: this.tokens.get(token)! };
      this.stables.set(appId, stable);
    }
    return { token: stable.token, expiresIn: Math.floor((stable.expiresAt - now) / 1000) };
  }

  checkToken(token: string | undefined, appId = this.opts.appId): number {
    if (!token) return 41001;
    const exp = this.tokens.get(token);
    if (exp === undefined || this.tokenApp.get(token) !== appId) return 40001;
    if (exp <= this.now()) return 42001;
    return 0;
  }

  expireAllTokens() {
    for (const k of this.tokens.keys()) this.tokens.set(k, this.now() - 1);
    // The stable tokens expired too: normal mode hands out new ones on the next call.
    for (const s of this.stables.values()) s.expiresAt = this.now() - 1;
  }

  user(openid: string): SandboxUser {
    let u = this.users.get(openid);
    if (!u) {
      u = { subscribed: true, grants: {}, acceptsMessages: true };
      this.users.set(openid, u);
    }
    return u;
  }

  /** What the platform observes when the user acts: (un)follow and customer-service grants. */
  userAction(openid: string, action: Scene | 'unsubscribe') {
    const u = this.user(openid);
    if (action === 'unsubscribe') {
      u.subscribed = false;
      u.grants = {};
      return;
    }
    if (action === 'follow') {
      u.subscribed = true;
      u.subscribeTime = Math.floor(this.now() / 1000);
    }
    const g = GRANTS[action];
    u.grants[action] = { expiresAt: this.now() + g.ttl, quota: g.quota, used: 0 };
  }

  /** Consume one customer-service message from the user's grants, as WeChat does; 0 when allowed. */
  consumeCsQuota(openid: string): number {
    const u = this.users.get(openid);
    if (!u || !u.subscribed) return 45015;
    if (!u.acceptsMessages) return 48002;
    const now = this.now();
    const open = (Object.values(u.grants) as Grant[]).filter((g) => g.expiresAt > now);
    if (open.length === 0) return 45015;
    const usable = open.filter((g) => g.quota === null || g.used < g.quota).sort((a, b) => a.expiresAt - b.expiresAt);
    if (usable.length === 0) return 45047;
    usable[0]!.used++;
    return 0;
  }

  /** Daily quota and injected failures for a path; 0 when the call may proceed. */
  gate(path: string): number {
    const injected = this.failures.get(path);
    if (injected && injected.length > 0) return injected.shift()!;
    const today = new Date(this.now()).toISOString().slice(0, 10);
    if (today !== this.day) {
      this.day = today;
      this.daily.clear();
      this.forceToday.clear();
    }
    const n = (this.daily.get(path) ?? 0) + 1;
    this.daily.set(path, n);
    const limit = DAILY_QUOTA[path];
    return limit !== undefined && n > limit ? 45009 : 0;
  }

  record(req: FastifyRequest, errcode: number) {
    const url = new URL(req.url, 'http://sandbox');
    const query: Record<string, string> = {};
    for (const [k, v] of url.searchParams) if (k !== 'access_token' && k !== 'secret') query[k] = v;
    const path = url.pathname.replace(/^.*?(\/cgi-bin\/|\/sns\/|\/wxa\/)/, '$1');
    this.counts.set(path, (this.counts.get(path) ?? 0) + 1);
    this.calls.push({ seq: ++this.seq, at: new Date(this.now()).toISOString(), method: req.method, path, query, body: redact(req.body), errcode });
    if (this.calls.length > 20_000) this.calls.splice(0, 10_000);
  }
}

function redact(body: unknown): unknown {
  if (body && typeof body === 'object' && 'secret' in body) return { ...(body as object), secret: '***' };
  return body;
}

/** Marks a string that must be emitted as a bare (64-bit) JSON number. */
const BIG = '__bigint__';

const err = (errcode: number) => ({ errcode, errmsg: `${MSG[errcode] ?? 'error'} rid: ${randomBytes(6).toString('hex')}-${randomBytes(4).toString('hex')}` });

/** Byte length as WeChat counts it (UTF-8). */
const bytes = (s: unknown) => (typeof s === 'string' ? Buffer.byteLength(s, 'utf8') : 0);

const CLICK_TYPES = new Set(['click', 'scancode_push', 'scancode_waitmsg', 'pic_sysphoto', 'pic_photo_or_album', 'pic_weixin', 'location_select']);
const ALL_TYPES = new Set([...CLICK_TYPES, 'view', 'media_id', 'article_id', 'article_view_limited', 'miniprogram']);

/** menu/create validation with WeChat's error codes. */
export function validateMenu(body: any): number {
  const buttons = body?.button;
  if (!Array.isArray(buttons) || buttons.length < 1 || buttons.length > 3) return 40016;
  for (const b of buttons) {
    if (!b || typeof b !== 'object') return 40017;
    if (Array.isArray(b.sub_button) && b.sub_button.length > 0) {
      if (bytes(b.name) < 1 || bytes(b.name) > 16) return 40018;
      if (b.sub_button.length > 5) return 40023;
      for (const s of b.sub_button) {
        const code = validateLeaf(s, true);
        if (code) return code;
      }
    } else {
      const code = validateLeaf(b, false);
      if (code) return code;
    }
  }
  return 0;
}

function validateLeaf(b: any, sub: boolean): number {
  if (!b || !ALL_TYPES.has(b.type)) return 40017;
  const nameMax = sub ? 60 : 16;
  if (bytes(b.name) < 1 || bytes(b.name) > nameMax) return sub ? 40025 : 40018;
  if (CLICK_TYPES.has(b.type) && (bytes(b.key) < 1 || bytes(b.key) > 128)) return sub ? 40026 : 40019;
  if ((b.type === 'view' || b.type === 'miniprogram') && (bytes(b.url) < 1 || bytes(b.url) > 1024)) return sub ? 40027 : 40055;
  if (b.type === 'miniprogram' && (!b.appid || !b.pagepath)) return 40017;
  return 0;
}

const CS_TYPES: Record<string, (b: any) => boolean> = {
  text: (b) => typeof b.text?.content === 'string' && b.text.content.length > 0,
  image: (b) => typeof b.image?.media_id === 'string',
  voice: (b) => typeof b.voice?.media_id === 'string',
  video: (b) => typeof b.video?.media_id === 'string',
  music: (b) => typeof b.music?.thumb_media_id === 'string',
  news: (b) => Array.isArray(b.news?.articles) && b.news.articles.length === 1,
  mpnews: (b) => typeof b.mpnews?.media_id === 'string',
  msgmenu: (b) => Array.isArray(b.msgmenu?.list),
  miniprogrampage: (b) => typeof b.miniprogrampage?.appid === 'string' && typeof b.miniprogrampage?.pagepath === 'string',
};

export function sandboxPlugin(state: SandboxState): FastifyPluginAsync {
  return async (app: FastifyInstance) => {
    // WeChat answers JSON bodies it cannot parse with 47001, not an HTTP error.
    app.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => {
      const text = String(body);
      if (text.length === 0) return done(null, undefined);
      try {
        done(null, JSON.parse(text));
      } catch {
        done(null, { __invalidJson: true });
      }
    });
    app.removeContentTypeParser('application/json');
    app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
      try {
        done(null, String(body).length ? JSON.parse(String(body)) : undefined);
      } catch {
        done(null, { __invalidJson: true });
      }
    });

    const answer = (req: FastifyRequest, reply: FastifyReply, payload: Record<string, unknown>) => {
      const errcode = typeof payload.errcode === 'number' ? payload.errcode : 0;
      state.record(req, errcode);
      // 64-bit ids go out as bare numbers, as WeChat sends them.
      const json = JSON.stringify(payload).replace(new RegExp(`"${BIG}(\\d+)"`, 'g'), '$1');
      return reply.header('content-type', 'application/json; encoding=utf-8').send(json);
    };

    /** Common checks for token-bearing APIs: quota, token, JSON body. */
    const api = (method: 'GET' | 'POST', url: string, handler: (req: FastifyRequest, body: any) => Record<string, unknown>, appId = state.opts.appId) => {
      app.route({
        method,
        url,
        handler: async (req, reply) => {
          const path = url;
          const q = req.query as Record<string, string | undefined>;
          const tokenErr = state.checkToken(q.access_token, appId);
          if (tokenErr) return answer(req, reply, err(tokenErr));
          const gate = state.gate(path);
          if (gate) return answer(req, reply, err(gate));
          const body = req.body as any;
          if (method === 'POST' && (!body || typeof body !== 'object' || body.__invalidJson)) return answer(req, reply, err(47001));
          return answer(req, reply, handler(req, body));
        },
      });
    };

    app.get('/cgi-bin/token', async (req, reply) => {
      const q = req.query as Record<string, string | undefined>;
      if (q.grant_type !== 'client_credential') return answer(req, reply, err(40002));
      if (q.appid !== state.opts.appId) return answer(req, reply, err(40013));
      if (q.secret !== state.opts.appSecret) return answer(req, reply, err(40125));
      const gate = state.gate('/cgi-bin/token');
      if (gate) return answer(req, reply, err(gate));
      return answer(req, reply, { access_token: state.issueToken(), expires_in: 7200 });
    });

    app.post('/cgi-bin/stable_token', async (req, reply) => {
      const b = req.body as any;
      if (!b || typeof b !== 'object' || b.__invalidJson) return answer(req, reply, err(47001));
      if (b.grant_type !== 'client_credential') return answer(req, reply, err(40002));
      const secret = b.appid === state.opts.appId ? state.opts.appSecret : b.appid === state.mina.appId ? state.mina.appSecret : undefined;
      if (secret === undefined) return answer(req, reply, err(40013));
      if (b.secret !== secret) return answer(req, reply, err(40125));
      if (b.force_refresh !== undefined && typeof b.force_refresh !== 'boolean') return answer(req, reply, err(47001));
      const gate = state.gate('/cgi-bin/stable_token');
      if (gate) return answer(req, reply, err(gate));
      const got = state.stableToken(b.force_refresh === true, b.appid);
      if ('errcode' in got) return answer(req, reply, err(got.errcode));
      return answer(req, reply, { access_token: got.token, expires_in: got.expiresIn });
    });

    api('POST', '/cgi-bin/message/custom/send', (_req, b) => {
      if (typeof b.touser !== 'string' || !b.touser) return err(40003);
      const check = CS_TYPES[b.msgtype];
      if (!check || !check(b)) return err(40008);
      const code = state.consumeCsQuota(b.touser);
      return code ? err(code) : { errcode: 0, errmsg: 'ok' };
    });

    api('POST', '/cgi-bin/message/template/send', (_req, b) => {
      if (typeof b.touser !== 'string' || !b.touser) return err(40003);
      if (typeof b.template_id !== 'string' || !b.template_id) return err(40037);
      if (!b.data || typeof b.data !== 'object') return err(47001);
      const u = state.users.get(b.touser);
      if (u && !u.subscribed) return err(43004);
      // msgid is a 64-bit integer: emitted unquoted and beyond 2^53 on purpose.
      return { errcode: 0, errmsg: 'ok', msgid: `${BIG}${2n ** 60n + BigInt(state.calls.length)}` };
    });

    api('POST', '/cgi-bin/menu/create', (_req, b) => {
      const code = validateMenu(b);
      if (code) return err(code);
      state.menu = { button: b.button };
      return { errcode: 0, errmsg: 'ok' };
    });
    api('GET', '/cgi-bin/menu/get', () => {
      if (!state.menu) return err(46003);
      return { menu: { button: state.menu.button }, conditionalmenu: state.conditional };
    });
    api('GET', '/cgi-bin/menu/delete', () => {
      state.menu = undefined;
      state.conditional = [];
      return { errcode: 0, errmsg: 'ok' };
    });
    api('POST', '/cgi-bin/menu/addconditional', (_req, b) => {
      if (!state.menu) return err(65303);
      const rule = b.matchrule;
      if (!rule || typeof rule !== 'object') return err(47001);
      if (['sex', 'country', 'province', 'city', 'language'].some((k) => rule[k] !== undefined && rule[k] !== '')) return err(65320);
      const code = validateMenu(b);
      if (code) return err(code);
      const menuid = String(400_000_000 + state.conditional.length + Math.floor(Math.random() * 1000) * 1000);
      state.conditional.push({ button: b.button, matchrule: rule, menuid });
      return { menuid };
    });
    api('POST', '/cgi-bin/menu/delconditional', (_req, b) => {
      const idx = state.conditional.findIndex((m) => m.menuid === String(b.menuid));
      if (idx < 0) return err(65301);
      state.conditional.splice(idx, 1);
      return { errcode: 0, errmsg: 'ok' };
    });

    // ---- Mini program (§5.9) ----
    app.get('/sns/jscode2session', async (req, reply) => {
      const gate = state.gate('/sns/jscode2session');
      if (gate) return answer(req, reply, err(gate));
      const got = state.mina.code2Session(req.query as Record<string, string | undefined>);
      return answer(req, reply, typeof got === 'number' ? err(got) : got);
    });
    api('POST', '/wxa/business/getuserphonenumber', (_req, b) => {
      const got = state.mina.phoneNumber(b);
      return typeof got === 'number' ? err(got) : got;
    }, state.mina.appId);
    api('POST', '/cgi-bin/message/subscribe/send', (_req, b) => {
      const got = state.mina.subscribeSend(b);
      return typeof got === 'number' ? err(got) : got;
    }, state.mina.appId);
    app.post('/wxa/getwxacodeunlimit', async (req, reply) => {
      const q = req.query as Record<string, string | undefined>;
      const tokenErr = state.checkToken(q.access_token, state.mina.appId);
      if (tokenErr) return answer(req, reply, err(tokenErr));
      const gate = state.gate('/wxa/getwxacodeunlimit');
      if (gate) return answer(req, reply, err(gate));
      const b = req.body as any;
      if (!b || typeof b !== 'object' || b.__invalidJson) return answer(req, reply, err(47001));
      const got = state.mina.unlimitedCode(b);
      if (typeof got === 'number') return answer(req, reply, err(got));
      // Success is the image itself, not JSON: clients branch on Content-Type.
      state.record(req, 0);
      return reply.header('content-type', 'image/png').send(got);
    });

    // ---- Sandbox-only endpoints: what the platform saw, and knobs for tests. ----
    // What wx.login / the phone-number button / wx.requestSubscribeMessage give the mini program (as DevTools does).
    app.post('/__sandbox/mina/login-code', async (req) => {
      const b = (req.body ?? {}) as { openid?: unknown; unionid?: unknown };
      if (b.openid !== undefined && (typeof b.openid !== 'string' || !/^[A-Za-z0-9_-]{6,64}$/.test(b.openid))) return { ok: false, error: 'openid must be 6–64 characters [A-Za-z0-9_-]' };
      if (b.unionid !== undefined && b.unionid !== null && (typeof b.unionid !== 'string' || !/^[A-Za-z0-9_-]{6,64}$/.test(b.unionid))) return { ok: false, error: 'unionid must be 6–64 characters [A-Za-z0-9_-]' };
      return { ok: true, ...state.mina.mintLoginCode(b.openid as string | undefined, (b.unionid as string | null | undefined) ?? null) };
    });
    app.post('/__sandbox/mina/phone-code', async (req) => {
      const b = (req.body ?? {}) as { phoneNumber?: unknown; countryCode?: unknown; openid?: unknown };
      if (typeof b.phoneNumber !== 'string' || !/^\d{5,15}$/.test(b.phoneNumber)) return { ok: false, error: 'phoneNumber (digits) is required' };
      const cc = b.countryCode === undefined ? '86' : String(b.countryCode);
      return { ok: true, ...state.mina.mintPhoneCode(b.phoneNumber, cc, typeof b.openid === 'string' ? b.openid : null) };
    });
    app.post('/__sandbox/mina/subscribe', async (req) => {
      const b = (req.body ?? {}) as { openid?: unknown; templateId?: unknown };
      if (typeof b.openid !== 'string' || typeof b.templateId !== 'string') return { ok: false, error: 'openid and templateId are required' };
      state.mina.acceptSubscription(b.openid, b.templateId);
      return { ok: true };
    });
    // §5.4 user/info (2022 shape: no nickname, avatar or region); unionid only for a user given one below.
    api('GET', '/cgi-bin/user/info', (req) => {
      const q = req.query as Record<string, string | undefined>;
      if (!q.openid || !/^[A-Za-z0-9_-]{6,64}$/.test(q.openid)) return err(40003);
      const u = state.users.get(q.openid);
      if (!u?.subscribed) return { subscribe: 0, openid: q.openid };
      return {
        subscribe: 1, openid: q.openid, nickname: '', sex: 0, language: 'zh_CN', city: '', province: '', country: '', headimgurl: '',
        subscribe_time: u.subscribeTime ?? Math.floor(state.now() / 1000), ...(u.unionid ? { unionid: u.unionid } : {}),
        remark: '', groupid: 0, tagid_list: [], subscribe_scene: 'ADD_SCENE_SEARCH', qr_scene: 0, qr_scene_str: '',
      };
    });
    /** As if the official account were bound to an open-platform account: this user's unionid. */
    app.post('/__sandbox/user-profile', async (req) => {
      const b = req.body as { openid?: unknown; unionid?: unknown };
      if (typeof b?.openid !== 'string' || typeof b.unionid !== 'string' || !/^[A-Za-z0-9_-]{6,64}$/.test(b.unionid)) return { ok: false, error: 'openid and unionid (6–64 characters [A-Za-z0-9_-]) are required' };
      state.user(b.openid).unionid = b.unionid;
      return { ok: true };
    });
    app.post('/__sandbox/user-action', async (req) => {
      const b = req.body as { openid?: string; action?: string };
      const actions = ['message', 'menu', 'follow', 'scan', 'payment', 'unsubscribe'];
      if (!b?.openid || !actions.includes(String(b.action))) return { ok: false, error: `action must be one of ${actions.join(', ')}` };
      state.userAction(b.openid, b.action as Scene);
      return { ok: true };
    });
    app.get('/__sandbox/calls', async (req) => {
      const q = req.query as { path?: string; touser?: string; after?: string };
      const after = Number(q.after ?? 0);
      return state.calls.filter((c) =>
        c.seq > after && (!q.path || c.path === q.path) && (!q.touser || (c.body as any)?.touser === q.touser));
    });
    app.get('/__sandbox/stats', async () => ({ counts: Object.fromEntries(state.counts), menu: state.menu ?? null, conditional: state.conditional }));
    app.post('/__sandbox/control/expire-tokens', async () => {
      state.expireAllTokens();
      return { ok: true };
    });
    app.post('/__sandbox/control/advance', async (req) => {
      const ms = Number((req.body as { ms?: number })?.ms ?? 0);
      state.advance(ms);
      return { ok: true, now: new Date(state.now()).toISOString() };
    });
    app.post('/__sandbox/control/fail', async (req) => {
      const b = req.body as { path?: string; errcodes?: number[] };
      if (!b?.path || !Array.isArray(b.errcodes)) return { ok: false };
      state.failures.set(b.path, [...b.errcodes]);
      return { ok: true };
    });
  };
}
