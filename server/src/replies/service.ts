/**
 * Replies ops configure: keyword rules, the welcome and default replies, menu key actions and menus.
 * The webhook reads a cached snapshot (never older than RULES_CACHE_TTL_MS, refreshed ahead of that in the background,
 * and at once after a local write), so a text message costs no database read for matching.
 */
import type { FastifyBaseLogger } from 'fastify';
import type { ReplyMessage } from '../../../shared/replies.ts';
import type { MenuButton, MenuMatchRule } from '../../../shared/menus.ts';
import type { Db } from '../db/client.ts';
import { AppError } from '../platform/errors.ts';
import type { Clock } from '../platform/clock.ts';
import { createRefreshing } from '../platform/refreshing.ts';
import type { WeChatApiClient } from '../wechat/api-client.ts';
import { WeChatApiError } from '../wechat/errors.ts';
import { createRepliesRepo } from './repo.ts';
import type { KeywordRule } from './tables.ts';

export type KeyAction = { type: 'reply'; reply: ReplyMessage } | { type: 'flow'; flow: string };

export interface KeywordRuleInput {
  name: string;
  matchType: 'exact' | 'contains' | 'regex';
  pattern: string;
  priority?: number;
  reply: ReplyMessage;
  enabled?: boolean;
  startsAt?: string | null;
  endsAt?: string | null;
}

interface CompiledRule {
  rule: KeywordRule;
  test: (text: string) => boolean;
}

interface Snapshot {
  rules: CompiledRule[];
  welcome: ReplyMessage | undefined;
  fallback: ReplyMessage | undefined;
  keys: Map<string, KeyAction>;
}

const MAX_MATCH_INPUT = 2048;

function compile(rule: KeywordRule): CompiledRule {
  const pattern = rule.pattern.toLowerCase();
  switch (rule.matchType) {
    case 'exact':
      return { rule, test: (t) => t.trim().toLowerCase() === pattern };
    case 'contains':
      return { rule, test: (t) => t.toLowerCase().includes(pattern) };
    case 'regex': {
      const re = new RegExp(rule.pattern, 'iu');
      return { rule, test: (t) => re.test(t.slice(0, MAX_MATCH_INPUT)) };
    }
  }
}

function checkRegex(input: { matchType: string; pattern: string }) {
  if (input.matchType !== 'regex') return;
  try {
    new RegExp(input.pattern, 'iu');
  } catch (err) {
    throw new AppError('VALIDATION', `pattern is not a valid regular expression: ${(err as Error).message}`);
  }
}

function utf8Bytes(s: string | undefined) {
  return s === undefined ? 0 : Buffer.byteLength(s, 'utf8');
}

/** Byte limits JSON Schema cannot express (WeChat counts UTF-8 bytes): names ≤ 16 (sub-buttons ≤ 60), keys ≤ 128. */
export function checkMenuButtons(buttons: MenuButton[]) {
  const fail = (msg: string) => {
    throw new AppError('VALIDATION', msg);
  };
  if (buttons.length < 1 || buttons.length > 3) fail('a menu has 1 to 3 top-level buttons');
  for (const b of buttons) {
    const leaves = 'sub_button' in b ? b.sub_button : [b];
    if (utf8Bytes(b.name) > 16) fail(`button name "${b.name}" exceeds 16 bytes`);
    for (const l of leaves) {
      if ('sub_button' in b && utf8Bytes(l.name) > 60) fail(`sub-button name "${l.name}" exceeds 60 bytes`);
      const needsKey = ['click', 'scancode_push', 'scancode_waitmsg', 'pic_sysphoto', 'pic_photo_or_album', 'pic_weixin', 'location_select'].includes(l.type);
      if (needsKey && !l.key) fail(`button "${l.name}" of type ${l.type} needs a key`);
      if (utf8Bytes(l.key) > 128) fail(`key of "${l.name}" exceeds 128 bytes`);
      if ((l.type === 'view' || l.type === 'miniprogram') && !l.url) fail(`button "${l.name}" of type ${l.type} needs a url`);
      if (l.type === 'miniprogram' && (!l.appid || !l.pagepath)) fail(`button "${l.name}" needs appid and pagepath`);
    }
  }
}

export function createRepliesService(deps: { db: Db; clock: Clock; cacheTtlMs: number; wechat: () => WeChatApiClient; log?: Pick<FastifyBaseLogger, 'warn'> }) {
  const { db, clock, cacheTtlMs } = deps;
  const repo = createRepliesRepo(db);

  async function load(): Promise<Snapshot> {
    const [rules, settings, keys] = await Promise.all([repo.listRules(), repo.listSettings(), repo.listKeyActions()]);
    const get = (name: 'welcome' | 'default') => settings.find((s) => s.name === name && s.enabled)?.reply;
    return {
      rules: rules.filter((r) => r.enabled).map(compile),
      welcome: get('welcome'),
      fallback: get('default'),
      keys: new Map(keys.map((k) => [k.key, k.action])),
    };
  }

  // Refreshed ahead of expiry: no message waits for a reload under steady traffic (platform/refreshing.ts).
  const cache = createRefreshing(load, { ttlMs: cacheTtlMs, onBackgroundError: (err) => deps.log?.warn({ err }, 'reloading the reply rules failed') });
  const current = () => cache.get();
  const invalidate = () => cache.invalidate();

  return {
    invalidate,

    /** The first enabled rule, by priority, whose window is open and whose pattern matches. */
    async matchKeyword(text: string): Promise<ReplyMessage | undefined> {
      const now = clock.now();
      for (const { rule, test } of (await current()).rules) {
        if (rule.startsAt && rule.startsAt > now) continue;
        if (rule.endsAt && rule.endsAt <= now) continue;
        if (test(text)) return rule.reply;
      }
      return undefined;
    },
    welcome: async () => (await current()).welcome,
    fallback: async () => (await current()).fallback,
    keyAction: async (key: string) => (await current()).keys.get(key),

    // ---- Ops: keyword rules ----
    listRules: () => repo.listRules(),
    async createRule(input: KeywordRuleInput) {
      checkRegex(input);
      const row = await repo.insertRule({
        name: input.name, matchType: input.matchType, pattern: input.pattern, priority: input.priority ?? 0, reply: input.reply,
        enabled: input.enabled ?? true, startsAt: input.startsAt ? new Date(input.startsAt) : null, endsAt: input.endsAt ? new Date(input.endsAt) : null,
      });
      invalidate();
      return row;
    },
    async updateRule(id: number, input: Partial<KeywordRuleInput>) {
      const existing = await repo.getRule(id);
      if (!existing) throw new AppError('NOT_FOUND', `keyword rule ${id} not found`);
      checkRegex({ matchType: input.matchType ?? existing.matchType, pattern: input.pattern ?? existing.pattern });
      const { startsAt, endsAt, ...rest } = input;
      const row = await repo.updateRule(id, {
        ...rest,
        ...(startsAt !== undefined ? { startsAt: startsAt ? new Date(startsAt) : null } : {}),
        ...(endsAt !== undefined ? { endsAt: endsAt ? new Date(endsAt) : null } : {}),
      });
      invalidate();
      return row!;
    },
    async deleteRule(id: number) {
      const row = await repo.deleteRule(id);
      if (!row) throw new AppError('NOT_FOUND', `keyword rule ${id} not found`);
      invalidate();
      return row;
    },

    // ---- Ops: welcome / default ----
    listSettings: () => repo.listSettings(),
    async setReply(name: 'welcome' | 'default', reply: ReplyMessage, enabled = true) {
      const row = await repo.upsertSetting({ name, reply, enabled });
      invalidate();
      return row;
    },

    // ---- Ops: menu key actions ----
    listKeyActions: () => repo.listKeyActions(),
    async setKeyAction(key: string, action: KeyAction) {
      const row = await repo.upsertKeyAction({ key, action });
      invalidate();
      return row;
    },
    async deleteKeyAction(key: string) {
      const row = await repo.deleteKeyAction(key);
      if (!row) throw new AppError('NOT_FOUND', `menu key ${key} not found`);
      invalidate();
      return row;
    },

    // ---- Ops: menus ----
    listMenus: () => repo.listMenus(),
    async createMenu(input: { name: string; kind: 'default' | 'conditional'; buttons: MenuButton[]; matchRule?: MenuMatchRule }) {
      checkMenuButtons(input.buttons);
      if (input.kind === 'conditional' && !input.matchRule) throw new AppError('VALIDATION', 'a conditional menu needs a matchRule (tag_id and/or client_platform_type)');
      if (input.kind === 'default' && input.matchRule) throw new AppError('VALIDATION', 'the default menu has no matchRule');
      return repo.insertMenu({ name: input.name, kind: input.kind, buttons: input.buttons, matchRule: input.matchRule ?? null });
    },
    async updateMenu(id: number, input: { name?: string; buttons?: MenuButton[]; matchRule?: MenuMatchRule }) {
      const existing = await repo.getMenu(id);
      if (!existing) throw new AppError('NOT_FOUND', `menu ${id} not found`);
      if (input.buttons) checkMenuButtons(input.buttons);
      return (await repo.updateMenu(id, input))!;
    },
    async deleteMenu(id: number) {
      const row = await repo.deleteMenu(id);
      if (!row) throw new AppError('NOT_FOUND', `menu ${id} not found`);
      return row;
    },

    /**
     * Publish to WeChat: the default menu through menu/create (which also drops every conditional menu
     * on WeChat's side), then each conditional menu through menu/addconditional, newest last.
     */
    async publishMenus() {
      const all = await repo.listMenus();
      const base = all.filter((m) => m.kind === 'default').at(-1);
      if (!base) throw new AppError('VALIDATION', 'define a default menu before publishing (WeChat requires one for conditional menus)');
      const wechat = deps.wechat();
      // Conditional menus published before are removed by their menuid, so publishing twice leaves no duplicates.
      for (const m of all.filter((x) => x.wechatMenuId)) {
        await wechat.delConditionalMenu(m.wechatMenuId!).catch((err: unknown) => {
          if (!(err instanceof WeChatApiError && err.errcode === 65301)) throw err; // 65301: already gone
        });
        await repo.updateMenu(m.id, { wechatMenuId: null });
      }
      await wechat.createMenu({ button: base.buttons });
      const at = clock.now();
      await repo.updateMenu(base.id, { publishedAt: at });
      const published: Array<{ id: number; menuid: string }> = [];
      for (const m of all.filter((x) => x.kind === 'conditional')) {
        const res = await wechat.addConditionalMenu({ button: m.buttons, matchrule: m.matchRule });
        const menuid = String(res.menuid);
        await repo.updateMenu(m.id, { wechatMenuId: menuid, publishedAt: at });
        published.push({ id: m.id, menuid });
      }
      return { defaultMenuId: base.id, conditional: published, publishedAt: at.toISOString() };
    },

    /** First start: the replies a new account needs, so the bot is never silent. */
    async seedDefaults(sandbox: boolean) {
      await repo.insertSettingIfMissing({ name: 'welcome', reply: { type: 'text', content: '欢迎关注！发送包装内的兑奖码即可参与抽奖，回复“帮助”查看更多。' } });
      await repo.insertSettingIfMissing({ name: 'default', reply: { type: 'text', content: '收到～回复“帮助”查看可以做什么，或点击下方菜单。' } });
      if (!sandbox) return;
      if ((await repo.listRules()).length === 0) {
        await repo.insertRule({ name: '帮助', matchType: 'exact', pattern: '帮助', priority: 10, reply: { type: 'text', content: '您可以：\n1. 发送包装内的兑奖码参与抽奖\n2. 点击菜单“会员中心”查看积分\n3. 回复“客服”联系人工客服' } });
      }
      if ((await repo.listKeyActions()).length === 0) {
        await repo.upsertKeyAction({ key: 'MEMBER_CENTER', action: { type: 'reply', reply: { type: 'text', content: '会员中心：打开小程序即可查看积分、等级和优惠券。' } } });
        // Flows are registered by capabilities (campaigns/chat.ts): redeem = wait for a code, draw = resume a draw.
        await repo.upsertKeyAction({ key: 'REDEEM', action: { type: 'flow', flow: 'redeem' } });
        await repo.upsertKeyAction({ key: 'SCAN_REDEEM', action: { type: 'flow', flow: 'redeem' } });
        await repo.upsertKeyAction({ key: 'DRAW', action: { type: 'flow', flow: 'draw' } });
      }
      if ((await repo.listMenus()).length === 0) {
        await repo.insertMenu({
          name: '默认菜单', kind: 'default',
          buttons: [
            { name: '兑奖', sub_button: [
              { type: 'click', name: '输入兑奖码', key: 'REDEEM' },
              { type: 'scancode_waitmsg', name: '扫码兑奖', key: 'SCAN_REDEEM' },
              { type: 'click', name: '继续抽奖', key: 'DRAW' },
            ] },
            { type: 'click', name: '会员中心', key: 'MEMBER_CENTER' },
            { name: '更多', sub_button: [{ type: 'view', name: '品牌官网', url: 'https://example.com/' }] },
          ],
        });
      }
      invalidate();
    },
  };
}
export type RepliesService = ReturnType<typeof createRepliesService>;
