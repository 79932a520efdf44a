/**
 * The mini-program server APIs (§5.9): code2Session with the AppID and secret, the rest with the mini program's own
 * access_token (a second token manager row keyed by its AppID). session_key stays inside this module's caller and
 * is never returned to the client or logged.
 */
import { TOKEN_ERRCODES } from './constants.ts';
import { WeChatApiError, WeChatTransportError } from './errors.ts';
import type { TokenManager } from './token.ts';

export interface Code2Session { openid: string; unionid: string | null; sessionKey: string }
export interface PhoneInfo { phoneNumber: string; purePhoneNumber: string; countryCode: string }

export interface MinaClientOptions {
  appId: string;
  appSecret: string;
  baseUrl: string;
  tokens: TokenManager;
  timeoutMs?: number;
  onApiError?(path: string, errcode: number): void;
}

export function createMinaClient(opts: MinaClientOptions) {
  const base = opts.baseUrl.replace(/\/+$/, '');
  const timeoutMs = opts.timeoutMs ?? 10_000;

  async function call(path: string, init: { method: 'GET' | 'POST'; query?: Record<string, string>; body?: unknown }, withToken: boolean): Promise<{ json?: any; binary?: Buffer; contentType: string }> {
    let token = withToken ? await opts.tokens.get() : undefined;
    for (let refreshed = false; ; refreshed = true) {
      const url = new URL(base + path);
      for (const [k, v] of Object.entries(init.query ?? {})) url.searchParams.set(k, v);
      if (token) url.searchParams.set('access_token', token);
      let res: Response;
      try {
        res = await fetch(url, {
          method: init.method,
          headers: init.body === undefined ? {} : { 'Content-Type': 'application/json' },
          body: init.body === undefined ? null : JSON.stringify(init.body),
          signal: AbortSignal.timeout(timeoutMs),
        });
      } catch (err) {
        throw new WeChatTransportError(path, (err as Error).message);
      }
      if (res.status < 200 || res.status > 299) throw new WeChatTransportError(path, `HTTP ${res.status}`);
      const contentType = res.headers.get('content-type') ?? '';
      const buf = Buffer.from(await res.arrayBuffer());
      // getwxacodeunlimit answers an image on success and JSON on failure: branch on Content-Type.
      if (!/json|text\/plain/i.test(contentType) && contentType !== '') return { binary: buf, contentType };
      let json: any;
      try {
        json = JSON.parse(buf.toString('utf8'));
      } catch {
        throw new WeChatTransportError(path, 'response is not JSON');
      }
      const errcode = typeof json?.errcode === 'number' ? json.errcode : 0;
      if (errcode === 0) return { json, contentType };
      opts.onApiError?.(path, errcode);
      if (token && !refreshed && TOKEN_ERRCODES.has(errcode)) {
        token = await opts.tokens.refreshAfterRejection(token);
        continue;
      }
      throw new WeChatApiError(errcode, String(json.errmsg ?? ''), path);
    }
  }

  return {
    appId: opts.appId,

    /** jscode2session. Errors: 40029 invalid/used code, 45011 rate limit, 40226 blocked high-risk user. */
    async code2Session(jsCode: string): Promise<Code2Session> {
      const { json } = await call('/sns/jscode2session', {
        method: 'GET', query: { appid: opts.appId, secret: opts.appSecret, js_code: jsCode, grant_type: 'authorization_code' },
      }, false);
      if (typeof json?.openid !== 'string' || typeof json.session_key !== 'string') throw new WeChatTransportError('/sns/jscode2session', 'unexpected response');
      return { openid: json.openid, unionid: typeof json.unionid === 'string' && json.unionid ? json.unionid : null, sessionKey: json.session_key };
    },

    /** getuserphonenumber: each code once, within 5 minutes. countryCode arrives as a number or a string. */
    async phoneNumber(code: string, openid?: string): Promise<PhoneInfo> {
      const { json } = await call('/wxa/business/getuserphonenumber', { method: 'POST', body: openid ? { code, openid } : { code } }, true);
      const p = json?.phone_info;
      if (!p || typeof p.purePhoneNumber !== 'string') throw new WeChatTransportError('/wxa/business/getuserphonenumber', 'unexpected response');
      return { phoneNumber: String(p.phoneNumber ?? p.purePhoneNumber), purePhoneNumber: p.purePhoneNumber, countryCode: String(p.countryCode ?? '86') };
    },

    /** wxacode.getUnlimited: the image bytes. */
    async unlimitedCode(body: { scene: string; page?: string; check_path?: boolean; env_version?: 'release' | 'trial' | 'develop'; width?: number }): Promise<{ image: Buffer; contentType: string }> {
      const res = await call('/wxa/getwxacodeunlimit', { method: 'POST', body }, true);
      if (!res.binary) throw new WeChatTransportError('/wxa/getwxacodeunlimit', 'expected an image');
      return { image: res.binary, contentType: res.contentType };
    },

    /** subscribeMessage.send; 43101 when the user has no (remaining) subscription for the template. */
    async subscribeSend(body: { touser: string; template_id: string; page?: string; data: Record<string, { value: string }>; miniprogram_state?: 'developer' | 'trial' | 'formal'; lang?: string }): Promise<void> {
      await call('/cgi-bin/message/subscribe/send', { method: 'POST', body }, true);
    },
  };
}
export type MinaClient = ReturnType<typeof createMinaClient>;
