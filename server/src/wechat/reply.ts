/**
 * Passive replies (被动回复) as XML. To and From are swapped relative to the inbound message.
 * @see https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Passive_user_reply_message.html
 */
import type { ReplyMessage } from '../../../shared/replies.ts';
import { buildXml, type XmlFields } from './xml.ts';
import { MsgCrypt, wechatSignature } from './crypto.ts';

/** What WeChat accepts as "no reply, do not retry". */
export const SUCCESS = 'success';

export function buildReplyXml(reply: ReplyMessage, toUser: string, fromUser: string, createTime: number): string {
  const head: XmlFields = { ToUserName: toUser, FromUserName: fromUser, CreateTime: createTime, MsgType: reply.type };
  switch (reply.type) {
    case 'text':
      return buildXml({ ...head, Content: reply.content });
    case 'image':
      return buildXml({ ...head, Image: { MediaId: reply.mediaId } });
    case 'voice':
      return buildXml({ ...head, Voice: { MediaId: reply.mediaId } });
    case 'video':
      return buildXml({ ...head, Video: { MediaId: reply.mediaId, Title: reply.title, Description: reply.description } });
    case 'music':
      return buildXml({
        ...head,
        Music: { Title: reply.title, Description: reply.description, MusicUrl: reply.musicUrl, HQMusicUrl: reply.hqMusicUrl, ThumbMediaId: reply.thumbMediaId },
      });
    case 'news':
      return buildXml({
        ...head,
        ArticleCount: reply.articles.length,
        Articles: reply.articles.map((a) => ({ Title: a.title, Description: a.description ?? '', PicUrl: a.picUrl ?? '', Url: a.url ?? '' })),
      });
  }
}

/** The safe-mode reply envelope: Encrypt, MsgSignature over (token, TimeStamp, Nonce, Encrypt). */
export function encryptReply(crypt: MsgCrypt, token: string, plainXml: string, timestamp: string, nonce: string, random?: Buffer): string {
  const encrypt = crypt.encrypt(plainXml, random);
  const signature = wechatSignature(token, timestamp, nonce, encrypt);
  return `<xml>\n<Encrypt><![CDATA[${encrypt}]]></Encrypt>\n<MsgSignature><![CDATA[${signature}]]></MsgSignature>\n<TimeStamp>${timestamp}</TimeStamp>\n<Nonce><![CDATA[${nonce}]]></Nonce>\n</xml>`;
}
