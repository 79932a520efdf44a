/**
 * WeChat custom menu definitions (§5.2): 1–3 top-level buttons, 1–5 sub-buttons each,
 * names ≤ 16 bytes (sub-buttons ≤ 60), keys ≤ 128 bytes, urls ≤ 1024 bytes.
 * Byte limits are checked by the service (JSON Schema counts characters).
 */
import { Type, type Static } from 'typebox';

export const MENU_BUTTON_TYPES = [
  'click', 'view', 'scancode_push', 'scancode_waitmsg', 'pic_sysphoto', 'pic_photo_or_album', 'pic_weixin',
  'location_select', 'media_id', 'article_id', 'article_view_limited', 'miniprogram',
] as const;

const LeafButton = Type.Object({
  type: Type.Unsafe<(typeof MENU_BUTTON_TYPES)[number]>({ type: 'string', enum: [...MENU_BUTTON_TYPES] }),
  name: Type.String({ minLength: 1, maxLength: 60 }),
  key: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
  url: Type.Optional(Type.String({ minLength: 1, maxLength: 1024 })),
  media_id: Type.Optional(Type.String()),
  article_id: Type.Optional(Type.String()),
  appid: Type.Optional(Type.String()),
  pagepath: Type.Optional(Type.String()),
}, { additionalProperties: false });

export const MenuButtonSchema = Type.Union([
  LeafButton,
  Type.Object({
    name: Type.String({ minLength: 1, maxLength: 16 }),
    sub_button: Type.Array(LeafButton, { minItems: 1, maxItems: 5 }),
  }, { additionalProperties: false }),
]);

/** Only tag and platform: WeChat rejects sex/region/language rules since 2021 (65320). */
export const MenuMatchRuleSchema = Type.Object({
  tag_id: Type.Optional(Type.String({ pattern: '^[0-9]+$' })),
  client_platform_type: Type.Optional(Type.Union([Type.Literal('1'), Type.Literal('2'), Type.Literal('3')])),
}, { additionalProperties: false, minProperties: 1 });

export type MenuButton = Static<typeof MenuButtonSchema>;
export type MenuMatchRule = Static<typeof MenuMatchRuleSchema>;
