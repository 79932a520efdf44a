/**
 * Inbound messages and events as one discriminated union. Only whitelisted fields are copied out of the
 * parsed XML (never spread it: xml2js can return own keys named __proto__ or constructor).
 * @see https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Receiving_standard_messages.html
 * @see https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Receiving_event_pushes.html
 */
import { EVENTS, QR_SCENE_PREFIX } from './constants.ts';
import { child, children, leaf, type XmlNode } from './xml.ts';

interface Base {
  /** The account's original id (gh_…). */
  toUser: string;
  /** The user's openid. */
  fromUser: string;
  /** Unix seconds, as sent. */
  createTime: string;
}
interface WithMsgId { msgId: string }

export type InboundMessage =
  | (Base & WithMsgId & { kind: 'text'; content: string; msgDataId?: string; idx?: string })
  | (Base & WithMsgId & { kind: 'image'; picUrl: string; mediaId: string })
  | (Base & WithMsgId & { kind: 'voice'; mediaId: string; format: string; recognition?: string })
  | (Base & WithMsgId & { kind: 'video' | 'shortvideo'; mediaId: string; thumbMediaId: string })
  | (Base & WithMsgId & { kind: 'location'; locationX: string; locationY: string; scale: string; label: string })
  | (Base & WithMsgId & { kind: 'link'; title: string; description: string; url: string });

export type InboundEvent =
  /** scene: the QR scene value without the qrscene_ prefix, when followed through a parametric QR code. */
  | (Base & { kind: 'subscribe'; eventKey?: string; scene?: string; ticket?: string })
  | (Base & { kind: 'unsubscribe' })
  | (Base & { kind: 'scan'; scene: string; ticket?: string })
  | (Base & { kind: 'location_report'; latitude: string; longitude: string; precision: string })
  | (Base & { kind: 'click'; eventKey: string })
  | (Base & { kind: 'view'; url: string; menuId?: string })
  | (Base & { kind: 'scancode'; event: 'scancode_push' | 'scancode_waitmsg'; eventKey: string; scanType: string; scanResult: string })
  | (Base & { kind: 'pics'; event: 'pic_sysphoto' | 'pic_photo_or_album' | 'pic_weixin'; eventKey: string; count: string; picMd5Sums: string[] })
  | (Base & { kind: 'location_select'; eventKey: string; locationX: string; locationY: string; scale: string; label: string; poiname: string })
  | (Base & { kind: 'view_miniprogram'; pagePath: string; menuId?: string })
  | (Base & { kind: 'template_send_finished'; msgId: string; status: string })
  | (Base & {
      kind: 'mass_send_finished'; msgId: string; status: string;
      totalCount: string; filterCount: string; sentCount: string; errorCount: string;
      copyrightCheck?: { count: string; checkState: string; results: Array<Record<string, string>> };
      articleUrls: Array<{ articleIdx: string; articleUrl: string }>;
    })
  | (Base & { kind: 'subscribe_msg_popup'; items: Array<{ templateId: string; status: string; popupScene: string }> })
  | (Base & { kind: 'subscribe_msg_change'; items: Array<{ templateId: string; status: string }> })
  | (Base & { kind: 'subscribe_msg_sent'; items: Array<{ templateId: string; msgId: string; errorCode: string; errorStatus: string }> });

/** A message or event we do not model: logged and answered `success`. */
export type InboundUnknown = Base & { kind: 'unknown'; msgType: string; event?: string; msgId?: string; eventKey?: string };

export type Inbound = InboundMessage | InboundEvent | InboundUnknown;

export class InboundError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InboundError';
  }
}

const req = (node: XmlNode, name: string): string => {
  const v = leaf(node, name);
  if (v === undefined) throw new InboundError(`missing <${name}>`);
  return v;
};
const opt = (node: XmlNode, name: string): string | undefined => leaf(node, name);
const str = (node: XmlNode | undefined, name: string): string => (node ? leaf(node, name) ?? '' : '');

/** Turn a parsed `<xml>` node into the typed union. Throws InboundError when the envelope is incomplete. */
export function toInbound(x: XmlNode): Inbound {
  const base: Base = { toUser: req(x, 'ToUserName'), fromUser: req(x, 'FromUserName'), createTime: req(x, 'CreateTime') };
  if (!/^\d{1,12}$/.test(base.createTime)) throw new InboundError('CreateTime must be unix seconds');
  if (base.fromUser.length === 0 || base.fromUser.length > 128) throw new InboundError('FromUserName must be an openid');
  const msgType = req(x, 'MsgType');
  const msgId = opt(x, 'MsgId');
  const withId = () => {
    if (!msgId) throw new InboundError('missing <MsgId>');
    return { ...base, msgId };
  };
  switch (msgType) {
    case 'text': {
      const m: InboundMessage = { ...withId(), kind: 'text', content: req(x, 'Content') };
      const msgDataId = opt(x, 'MsgDataId');
      const idx = opt(x, 'Idx');
      if (msgDataId !== undefined) m.msgDataId = msgDataId;
      if (idx !== undefined) m.idx = idx;
      return m;
    }
    case 'image':
      return { ...withId(), kind: 'image', picUrl: str(x, 'PicUrl'), mediaId: req(x, 'MediaId') };
    case 'voice': {
      const m: InboundMessage = { ...withId(), kind: 'voice', mediaId: req(x, 'MediaId'), format: str(x, 'Format') };
      const recognition = opt(x, 'Recognition');
      if (recognition !== undefined) m.recognition = recognition;
      return m;
    }
    case 'video':
    case 'shortvideo':
      return { ...withId(), kind: msgType, mediaId: req(x, 'MediaId'), thumbMediaId: str(x, 'ThumbMediaId') };
    case 'location':
      return { ...withId(), kind: 'location', locationX: str(x, 'Location_X'), locationY: str(x, 'Location_Y'), scale: str(x, 'Scale'), label: str(x, 'Label') };
    case 'link':
      return { ...withId(), kind: 'link', title: str(x, 'Title'), description: str(x, 'Description'), url: str(x, 'Url') };
    case 'event':
      return toEvent(x, base);
    default:
      return unknown(x, base, msgType);
  }
}

function toEvent(x: XmlNode, base: Base): Inbound {
  const event = req(x, 'Event');
  const eventKey = opt(x, 'EventKey');
  switch (event) {
    case EVENTS.subscribe: {
      const e: InboundEvent = { ...base, kind: 'subscribe' };
      if (eventKey) {
        e.eventKey = eventKey;
        if (eventKey.startsWith(QR_SCENE_PREFIX)) e.scene = eventKey.slice(QR_SCENE_PREFIX.length);
      }
      const ticket = opt(x, 'Ticket');
      if (ticket) e.ticket = ticket;
      return e;
    }
    case EVENTS.unsubscribe:
      return { ...base, kind: 'unsubscribe' };
    case EVENTS.scan: {
      const e: InboundEvent = { ...base, kind: 'scan', scene: eventKey ?? '' };
      const ticket = opt(x, 'Ticket');
      if (ticket) e.ticket = ticket;
      return e;
    }
    case EVENTS.location:
      return { ...base, kind: 'location_report', latitude: str(x, 'Latitude'), longitude: str(x, 'Longitude'), precision: str(x, 'Precision') };
    case EVENTS.click:
      return { ...base, kind: 'click', eventKey: eventKey ?? '' };
    case EVENTS.view: {
      const e: InboundEvent = { ...base, kind: 'view', url: eventKey ?? '' };
      const menuId = opt(x, 'MenuId');
      if (menuId) e.menuId = menuId;
      return e;
    }
    case EVENTS.scancodePush:
    case EVENTS.scancodeWaitmsg: {
      const info = child(x, 'ScanCodeInfo');
      return { ...base, kind: 'scancode', event, eventKey: eventKey ?? '', scanType: str(info, 'ScanType'), scanResult: str(info, 'ScanResult') };
    }
    case EVENTS.picSysphoto:
    case EVENTS.picPhotoOrAlbum:
    case EVENTS.picWeixin: {
      const info = child(x, 'SendPicsInfo');
      const items = children(child(info, 'PicList'), 'item');
      return { ...base, kind: 'pics', event, eventKey: eventKey ?? '', count: str(info, 'Count'), picMd5Sums: items.map((i) => str(i, 'PicMd5Sum')) };
    }
    case EVENTS.locationSelect: {
      const info = child(x, 'SendLocationInfo');
      return {
        ...base, kind: 'location_select', eventKey: eventKey ?? '',
        locationX: str(info, 'Location_X'), locationY: str(info, 'Location_Y'), scale: str(info, 'Scale'), label: str(info, 'Label'), poiname: str(info, 'Poiname'),
      };
    }
    case EVENTS.viewMiniprogram: {
      const e: InboundEvent = { ...base, kind: 'view_miniprogram', pagePath: eventKey ?? '' };
      const menuId = opt(x, 'MenuId');
      if (menuId) e.menuId = menuId;
      return e;
    }
    case EVENTS.templateSendJobFinish:
      // Note the capital ID: MsgID, not MsgId.
      return { ...base, kind: 'template_send_finished', msgId: str(x, 'MsgID'), status: str(x, 'Status') };
    case EVENTS.massSendJobFinish: {
      const cc = child(x, 'CopyrightCheckResult');
      const urls = child(x, 'ArticleUrlResult');
      const e: InboundEvent = {
        ...base, kind: 'mass_send_finished', msgId: str(x, 'MsgID'), status: str(x, 'Status'),
        totalCount: str(x, 'TotalCount'), filterCount: str(x, 'FilterCount'), sentCount: str(x, 'SentCount'), errorCount: str(x, 'ErrorCount'),
        articleUrls: children(child(urls, 'ResultList'), 'item').map((i) => ({ articleIdx: str(i, 'ArticleIdx'), articleUrl: str(i, 'ArticleUrl') })),
      };
      if (cc) {
        const fields = ['ArticleIdx', 'UserDeclareState', 'AuditState', 'OriginalArticleUrl', 'OriginalArticleType', 'CanReprint', 'NeedReplaceContent', 'NeedShowReprintSource'];
        e.copyrightCheck = {
          count: str(cc, 'Count'), checkState: str(cc, 'CheckState'),
          results: children(child(cc, 'ResultList'), 'item').map((i) => Object.fromEntries(fields.map((f) => [f, str(i, f)]))),
        };
      }
      return e;
    }
    case EVENTS.subscribeMsgPopup:
      return {
        ...base, kind: 'subscribe_msg_popup',
        items: children(child(x, 'SubscribeMsgPopupEvent'), 'List').map((l) => ({ templateId: str(l, 'TemplateId'), status: str(l, 'SubscribeStatusString'), popupScene: str(l, 'PopupScene') })),
      };
    case EVENTS.subscribeMsgChange:
      return {
        ...base, kind: 'subscribe_msg_change',
        items: children(child(x, 'SubscribeMsgChangeEvent'), 'List').map((l) => ({ templateId: str(l, 'TemplateId'), status: str(l, 'SubscribeStatusString') })),
      };
    case EVENTS.subscribeMsgSent:
      return {
        ...base, kind: 'subscribe_msg_sent',
        items: children(child(x, 'SubscribeMsgSentEvent'), 'List').map((l) => ({ templateId: str(l, 'TemplateId'), msgId: str(l, 'MsgID'), errorCode: str(l, 'ErrorCode'), errorStatus: str(l, 'ErrorStatus') })),
      };
    default:
      return unknown(x, base, 'event', event);
  }
}

function unknown(x: XmlNode, base: Base, msgType: string, event?: string): InboundUnknown {
  const u: InboundUnknown = { ...base, kind: 'unknown', msgType: msgType.slice(0, 64) };
  if (event !== undefined) u.event = event.slice(0, 64);
  const msgId = opt(x, 'MsgId');
  if (msgId) u.msgId = msgId;
  const eventKey = opt(x, 'EventKey');
  if (eventKey) u.eventKey = eventKey;
  return u;
}

/** Messages carry a MsgId; events don't. */
export function msgIdOf(m: Inbound): string | undefined {
  if ('msgId' in m && m.kind !== 'template_send_finished' && m.kind !== 'mass_send_finished') return m.msgId;
  return undefined;
}

/** Event name as WeChat spells it, for events; undefined for messages. */
export function eventNameOf(m: Inbound): string | undefined {
  switch (m.kind) {
    case 'subscribe': return EVENTS.subscribe;
    case 'unsubscribe': return EVENTS.unsubscribe;
    case 'scan': return EVENTS.scan;
    case 'location_report': return EVENTS.location;
    case 'click': return EVENTS.click;
    case 'view': return EVENTS.view;
    case 'scancode': case 'pics': return m.event;
    case 'location_select': return EVENTS.locationSelect;
    case 'view_miniprogram': return EVENTS.viewMiniprogram;
    case 'template_send_finished': return EVENTS.templateSendJobFinish;
    case 'mass_send_finished': return EVENTS.massSendJobFinish;
    case 'subscribe_msg_popup': return EVENTS.subscribeMsgPopup;
    case 'subscribe_msg_change': return EVENTS.subscribeMsgChange;
    case 'subscribe_msg_sent': return EVENTS.subscribeMsgSent;
    case 'unknown': return m.event;
    default: return undefined;
  }
}

/** The key an event carries (menu key, QR scene, URL), for the interaction log. */
export function eventKeyOf(m: Inbound): string | undefined {
  switch (m.kind) {
    case 'subscribe': return m.scene ?? m.eventKey;
    case 'scan': return m.scene;
    case 'click': case 'scancode': case 'pics': case 'location_select': return m.eventKey;
    case 'view': return m.url;
    case 'view_miniprogram': return m.pagePath;
    case 'unknown': return m.eventKey;
    default: return undefined;
  }
}

/**
 * Dedup key for WeChat's retries: messages by MsgId (scoped to the user: MsgId alone is not unique
 * across users, WxJava#333), events by FromUserName + CreateTime + Event (+ key).
 */
export function dedupKeyOf(m: Inbound): string {
  const msgId = msgIdOf(m);
  if (msgId) return `m:${m.fromUser}:${msgId}`;
  // Job-finish events carry the job's MsgID: two jobs can finish in the same second for one user.
  if (m.kind === 'template_send_finished' || m.kind === 'mass_send_finished') return `j:${m.fromUser}:${m.createTime}:${m.kind}:${m.msgId}:${m.status}`;
  return `e:${m.fromUser}:${m.createTime}:${eventNameOf(m) ?? m.kind}:${eventKeyOf(m) ?? ''}`;
}
