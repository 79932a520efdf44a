/** WeChat's message types and event names in one place (spelling as WeChat sends them). */
export const MSG_TYPES = ['text', 'image', 'voice', 'video', 'shortvideo', 'location', 'link', 'event'] as const;

export const EVENTS = {
  subscribe: 'subscribe',
  unsubscribe: 'unsubscribe',
  scan: 'SCAN',
  location: 'LOCATION',
  click: 'CLICK',
  view: 'VIEW',
  scancodePush: 'scancode_push',
  scancodeWaitmsg: 'scancode_waitmsg',
  picSysphoto: 'pic_sysphoto',
  picPhotoOrAlbum: 'pic_photo_or_album',
  picWeixin: 'pic_weixin',
  locationSelect: 'location_select',
  viewMiniprogram: 'view_miniprogram',
  templateSendJobFinish: 'TEMPLATESENDJOBFINISH',
  massSendJobFinish: 'MASSSENDJOBFINISH',
  subscribeMsgPopup: 'subscribe_msg_popup_event',
  subscribeMsgChange: 'subscribe_msg_change_event',
  subscribeMsgSent: 'subscribe_msg_sent_event',
} as const;

/** Prefix of EventKey on a subscribe through a parametric QR code. */
export const QR_SCENE_PREFIX = 'qrscene_';

/** Errors after which the access_token is refreshed once and the call retried once. */
export const TOKEN_ERRCODES = new Set([40001, 40014, 42001]);
/** Customer-service window closed / quota used: never retried into. */
export const CS_WINDOW_ERRCODES = new Set([45015, 45047]);
