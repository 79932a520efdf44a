/**
 * Plays the WeChat platform's side of the webhook: builds the XML WeChat would push for a user action,
 * signs it (and encrypts it in safe mode), posts it, tells the sandbox what the user did (that is what opens
 * the customer-service window), and decodes the passive reply. Used by `npm run chat`, the tests and the benches.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { MsgCrypt, wechatSignature } from '../crypto.ts';
import { buildXml, child, children, leaf, parseWechatXml, type XmlFields } from '../xml.ts';

export interface Transport {
  post(pathAndQuery: string, body: string, contentType: string): Promise<{ status: number; body: string }>;
}

export function httpTransport(baseUrl: string): Transport {
  return {
    async post(pathAndQuery, body, contentType) {
      const res = await fetch(baseUrl.replace(/\/+$/, '') + pathAndQuery, { method: 'POST', headers: { 'content-type': contentType }, body });
      return { status: res.status, body: await res.text() };
    },
  };
}

export interface SimulatorOptions {
  transport: Transport;
  token: string;
  appId: string;
  encodingAesKey?: string | undefined;
  /** Sandbox base URL (…/sandbox); when set, user actions are reported to it. */
  sandboxUrl?: string | undefined;
  /** The account's original id. */
  accountId?: string;
  encrypt?: boolean;
  /** Compatible mode: plaintext fields and Encrypt side by side. */
  compatible?: boolean;
  now?: () => number;
}

export interface PassiveReply {
  status: number;
  /** The raw HTTP body. */
  raw: string;
  /** Decrypted reply XML, or null for `success` / empty. */
  xml: string | null;
  msgType?: string;
  content?: string;
  mediaId?: string;
  articles?: Array<{ title: string; description: string; picUrl: string; url: string }>;
  fields: Record<string, string>;
}

type Action = 'message' | 'menu' | 'follow' | 'scan' | 'payment' | 'unsubscribe';

export class WeChatSimulator {
  private readonly crypt: MsgCrypt | undefined;
  private seq = 0;
  readonly accountId: string;

  constructor(readonly opts: SimulatorOptions) {
    this.crypt = opts.encodingAesKey ? new MsgCrypt(opts.encodingAesKey, opts.appId) : undefined;
    this.accountId = opts.accountId ?? 'gh_sandbox00001';
  }

  private now(): number {
    return this.opts.now?.() ?? Date.now();
  }

  /** A 64-bit MsgId, beyond 2^53 like real ones. */
  newMsgId(): string {
    return (6_000_000_000_000_000_000n + BigInt(Date.now()) * 1000n + BigInt(++this.seq % 1000)).toString();
  }

  private base(openid: string, msgType: string): XmlFields {
    return { ToUserName: this.accountId, FromUserName: openid, CreateTime: Math.floor(this.now() / 1000), MsgType: msgType };
  }

  text(openid: string, content: string, msgId = this.newMsgId()) {
    return this.push(buildXml({ ...this.base(openid, 'text'), Content: content, MsgId: msgId }), openid, 'message');
  }
  image(openid: string, mediaId = 'MEDIA_' + randomBytes(6).toString('hex')) {
    return this.push(buildXml({ ...this.base(openid, 'image'), PicUrl: 'http://mmbiz.qpic.cn/sandbox.jpg', MediaId: mediaId, MsgId: this.newMsgId() }), openid, 'message');
  }
  voice(openid: string, recognition?: string) {
    return this.push(buildXml({ ...this.base(openid, 'voice'), MediaId: 'MEDIA_voice', Format: 'amr', Recognition: recognition, MsgId: this.newMsgId() }), openid, 'message');
  }
  location(openid: string, lat: string, lng: string, label: string) {
    return this.push(buildXml({ ...this.base(openid, 'location'), Location_X: lat, Location_Y: lng, Scale: 15, Label: label, MsgId: this.newMsgId() }), openid, 'message');
  }
  subscribe(openid: string, scene?: string) {
    const fields: XmlFields = { ...this.base(openid, 'event'), Event: 'subscribe' };
    if (scene !== undefined) Object.assign(fields, { EventKey: `qrscene_${scene}`, Ticket: 'gQH47joAAAAAAAAAASxodHRwOi8vd2VpeGluLnFxLmNvbS9xL2taZ2Z3TVRtNzJXV1Brb3ZhYmJJAAIEZ23sUwMEmm3sUw==' });
    return this.push(buildXml(fields), openid, 'follow');
  }
  unsubscribe(openid: string) {
    return this.push(buildXml({ ...this.base(openid, 'event'), Event: 'unsubscribe' }), openid, 'unsubscribe');
  }
  scan(openid: string, scene: string) {
    return this.push(buildXml({ ...this.base(openid, 'event'), Event: 'SCAN', EventKey: scene, Ticket: 'TICKET' }), openid, 'scan');
  }
  click(openid: string, key: string) {
    return this.push(buildXml({ ...this.base(openid, 'event'), Event: 'CLICK', EventKey: key }), openid, 'menu');
  }
  scancode(openid: string, key: string, result: string, waitmsg = true) {
    return this.push(buildXml({
      ...this.base(openid, 'event'), Event: waitmsg ? 'scancode_waitmsg' : 'scancode_push', EventKey: key,
      ScanCodeInfo: { ScanType: 'qrcode', ScanResult: result },
    }), openid, 'menu');
  }

  /** Post a ready XML document as WeChat would (signed, encrypted in safe mode). */
  async push(xml: string, openid?: string, action?: Action, overrides: { timestamp?: string; nonce?: string; query?: Record<string, string> } = {}): Promise<PassiveReply> {
    if (openid && action) await this.reportAction(openid, action);
    const timestamp = overrides.timestamp ?? String(Math.floor(this.now() / 1000));
    const nonce = overrides.nonce ?? String(randomInt(1e9));
    const query: Record<string, string> = { signature: wechatSignature(this.opts.token, timestamp, nonce), timestamp, nonce };
    if (openid) query.openid = openid;
    let body = xml;
    if (this.opts.encrypt) {
      if (!this.crypt) throw new Error('safe mode needs encodingAesKey');
      const encrypt = this.crypt.encrypt(xml);
      body = this.opts.compatible
        ? xml.replace(/<\/xml>\s*$/, `<Encrypt><![CDATA[${encrypt}]]></Encrypt></xml>`)
        : `<xml><ToUserName><![CDATA[${this.accountId}]]></ToUserName><Encrypt><![CDATA[${encrypt}]]></Encrypt></xml>`;
      query.encrypt_type = 'aes';
      query.msg_signature = wechatSignature(this.opts.token, timestamp, nonce, encrypt);
    }
    Object.assign(query, overrides.query);
    const res = await this.opts.transport.post(`/wechat?${new URLSearchParams(query)}`, body, 'text/xml');
    return this.decode(res);
  }

  /** Tell the sandbox what the user did, as the real platform would know it. */
  async reportAction(openid: string, action: Action) {
    if (!this.opts.sandboxUrl) return;
    await fetch(`${this.opts.sandboxUrl.replace(/\/+$/, '')}/__sandbox/user-action`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ openid, action }),
    });
  }

  decode(res: { status: number; body: string }): PassiveReply {
    const out: PassiveReply = { status: res.status, raw: res.body, xml: null, fields: {} };
    if (res.status !== 200 || res.body === '' || res.body === 'success') return out;
    let xml = res.body;
    const envelope = parseWechatXml(res.body);
    const encrypt = leaf(envelope, 'Encrypt');
    if (encrypt !== undefined) {
      if (!this.crypt) throw new Error('encrypted reply but no key');
      const expected = wechatSignature(this.opts.token, leaf(envelope, 'TimeStamp') ?? '', leaf(envelope, 'Nonce') ?? '', encrypt);
      if (expected !== leaf(envelope, 'MsgSignature')) throw new Error('reply MsgSignature does not verify');
      xml = this.crypt.decrypt(encrypt);
    }
    const node = parseWechatXml(xml);
    out.xml = xml;
    for (const [k, v] of Object.entries(node)) if (typeof v?.[0] === 'string') out.fields[k] = v[0];
    out.msgType = out.fields.MsgType;
    if (out.fields.Content !== undefined) out.content = out.fields.Content;
    const media = child(node, 'Image') ?? child(node, 'Voice') ?? child(node, 'Video');
    if (media) out.mediaId = leaf(media, 'MediaId');
    if (out.msgType === 'news') {
      out.articles = children(child(node, 'Articles'), 'item').map((i) => ({
        title: leaf(i, 'Title') ?? '', description: leaf(i, 'Description') ?? '', picUrl: leaf(i, 'PicUrl') ?? '', url: leaf(i, 'Url') ?? '',
      }));
    }
    return out;
  }
}
