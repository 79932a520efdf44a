/**
 * The official-account API client: co-wechat-api's endpoint catalogue, with our own transport underneath —
 * a configurable base URL (the sandbox, or api.weixin.qq.com), the shared database token (stable_token),
 * one refresh-and-retry on 40001/40014/42001, backoff on -1, lossless 64-bit ids, typed errors.
 */
import API from 'co-wechat-api';
import type { CustomerMessage } from '../../../shared/replies.ts';
import { TOKEN_ERRCODES } from './constants.ts';
import { WeChatApiError, WeChatTransportError } from './errors.ts';
import { parseJsonLossless } from './json.ts';
import type { StableTokenFetcher, TokenManager } from './token.ts';

const OFFICIAL = 'https://api.weixin.qq.com/';
const BUSY_RETRIES = [200, 800];

export interface ApiClientHooks {
  /** Called for every non-zero errcode (metrics). */
  onApiError?(path: string, errcode: number): void;
  sleep?(ms: number): Promise<void>;
  timeoutMs?: number;
}

/** POST stable_token. Lives outside the class: the token manager needs it before any client call. */
export function stableTokenFetcher(baseUrl: string, appId: string, secret: string, hooks: ApiClientHooks = {}): StableTokenFetcher {
  return async (forceRefresh) => {
    const body = JSON.stringify({ grant_type: 'client_credential', appid: appId, secret, force_refresh: forceRefresh });
    const data = await httpJson(`${trimSlash(baseUrl)}/cgi-bin/stable_token`, { method: 'POST', data: body, headers: { 'Content-Type': 'application/json' } }, hooks.timeoutMs);
    if (data.errcode) {
      hooks.onApiError?.('/cgi-bin/stable_token', data.errcode);
      throw new WeChatApiError(data.errcode, String(data.errmsg ?? ''), '/cgi-bin/stable_token');
    }
    if (typeof data.access_token !== 'string' || typeof data.expires_in !== 'number') throw new WeChatTransportError('/cgi-bin/stable_token', 'unexpected response');
    return { access_token: data.access_token, expires_in: data.expires_in };
  };
}

export class WeChatApiClient extends API {
  private readonly base: string;

  constructor(appId: string, secret: string, baseUrl: string, private readonly tokens: TokenManager, private readonly hooks: ApiClientHooks = {}) {
    super(appId, secret);
    this.base = trimSlash(baseUrl) + '/';
    // co-wechat-api composes URLs from these prefixes (and a few hard-coded ones, rewritten in request()).
    this.prefix = this.base + 'cgi-bin/';
    this.snsPrefix = this.base + 'sns/';
    this.wxaPrefix = this.base + 'wxa/';
    this.customservicePrefix = this.base + 'customservice/';
    this.payPrefix = this.base + 'pay/';
    this.merchantPrefix = this.base + 'merchant/';
  }

  override async ensureAccessToken() {
    return { accessToken: await this.tokens.get() };
  }

  override async getAccessToken() {
    return { accessToken: await this.tokens.get(), expireTime: Date.now() };
  }

  /** Replaces co-wechat-api's transport. */
  override async request(url: string, opts: { method?: string; data?: string | Buffer; headers?: Record<string, string> } = {}): Promise<any> {
    let target = url.startsWith(OFFICIAL) ? this.base + url.slice(OFFICIAL.length) : url;
    const path = new URL(target).pathname;
    let refreshed = false;
    for (let attempt = 0; ; attempt++) {
      const data = await httpJson(target, opts, this.hooks.timeoutMs);
      const errcode = typeof data?.errcode === 'number' ? data.errcode : 0;
      if (errcode === 0) return data;
      this.hooks.onApiError?.(path, errcode);
      const u = new URL(target);
      const token = u.searchParams.get('access_token');
      if (TOKEN_ERRCODES.has(errcode) && token && !refreshed) {
        refreshed = true;
        u.searchParams.set('access_token', await this.tokens.refreshAfterRejection(token));
        target = u.toString();
        continue;
      }
      if (errcode === -1 && attempt < BUSY_RETRIES.length) {
        // 系统繁忙: back off with jitter, then try again.
        const wait = BUSY_RETRIES[attempt]!;
        await (this.hooks.sleep ?? sleep)(wait / 2 + Math.random() * wait);
        continue;
      }
      throw new WeChatApiError(errcode, String(data.errmsg ?? ''), path);
    }
  }

  /**
   * user/info (§5.4): whether the user follows, and the unionid when the account is bound to an open-platform account.
   * Nickname, avatar and region are no longer returned (2021-12-27), so nothing else is read.
   */
  async followerInfo(openid: string): Promise<{ subscribed: boolean; unionid: string | null }> {
    const data = await this.getUser({ openid, lang: 'zh_CN' });
    return { subscribed: Number(data?.subscribe) === 1, unionid: typeof data?.unionid === 'string' && data.unionid ? data.unionid : null };
  }

  /** message/custom/send through co-wechat-api's senders. */
  async sendCustomerMessage(openid: string, m: CustomerMessage): Promise<void> {
    switch (m.type) {
      case 'text': await this.sendText(openid, m.content); return;
      case 'image': await this.sendImage(openid, m.mediaId); return;
      case 'voice': await this.sendVoice(openid, m.mediaId); return;
      case 'video': await this.sendVideo(openid, m.mediaId, ''); return;
      case 'music':
        await this.sendMusic(openid, { title: m.title, description: m.description, musicurl: m.musicUrl, hqmusicurl: m.hqMusicUrl, thumb_media_id: m.thumbMediaId });
        return;
      case 'news':
        await this.sendNews(openid, m.articles.map((a) => ({ title: a.title, description: a.description, url: a.url, picurl: a.picUrl })));
        return;
      case 'miniprogrampage':
        await this.sendMiniProgram(openid, { title: m.title, appid: m.appid, pagepath: m.pagepath, thumb_media_id: m.thumbMediaId });
        return;
    }
  }
}

async function httpJson(url: string, opts: { method?: string; data?: string | Buffer; headers?: Record<string, string> }, timeoutMs = 10_000): Promise<any> {
  const path = new URL(url).pathname;
  let res: Response;
  try {
    res = await fetch(url, {
      method: opts.method ?? 'GET',
      headers: { Accept: 'application/json', ...opts.headers },
      body: opts.data ?? null,
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (err) {
    throw new WeChatTransportError(path, (err as Error).message);
  }
  const text = await res.text();
  if (res.status < 200 || res.status > 299) throw new WeChatTransportError(path, `HTTP ${res.status}`);
  try {
    return parseJsonLossless(text);
  } catch {
    throw new WeChatTransportError(path, 'response is not JSON');
  }
}

const trimSlash = (s: string) => s.replace(/\/+$/, '');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
