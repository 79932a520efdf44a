import { asc, desc, eq } from 'drizzle-orm';
import type { Tx } from '../db/client.ts';
import { keywordRules, menuKeyActions, menus, replySettings } from './tables.ts';

export function createRepliesRepo(db: Tx) {
  return {
    listRules: () => db.select().from(keywordRules).orderBy(desc(keywordRules.priority), asc(keywordRules.id)),
    getRule: async (id: number) => (await db.select().from(keywordRules).where(eq(keywordRules.id, id)))[0],
    insertRule: async (v: typeof keywordRules.$inferInsert) => (await db.insert(keywordRules).values(v).returning())[0]!,
    updateRule: async (id: number, v: Partial<typeof keywordRules.$inferInsert>) =>
      (await db.update(keywordRules).set({ ...v, updatedAt: new Date() }).where(eq(keywordRules.id, id)).returning())[0],
    deleteRule: async (id: number) => (await db.delete(keywordRules).where(eq(keywordRules.id, id)).returning())[0],

    listSettings: () => db.select().from(replySettings),
    upsertSetting: async (v: typeof replySettings.$inferInsert) =>
      (await db.insert(replySettings).values(v).onConflictDoUpdate({ target: replySettings.name, set: { reply: v.reply, enabled: v.enabled ?? true, updatedAt: new Date() } }).returning())[0]!,
    insertSettingIfMissing: async (v: typeof replySettings.$inferInsert) => {
      await db.insert(replySettings).values(v).onConflictDoNothing();
    },

    listKeyActions: () => db.select().from(menuKeyActions).orderBy(asc(menuKeyActions.key)),
    upsertKeyAction: async (v: typeof menuKeyActions.$inferInsert) =>
      (await db.insert(menuKeyActions).values(v).onConflictDoUpdate({ target: menuKeyActions.key, set: { action: v.action, updatedAt: new Date() } }).returning())[0]!,
    deleteKeyAction: async (key: string) => (await db.delete(menuKeyActions).where(eq(menuKeyActions.key, key)).returning())[0],

    listMenus: () => db.select().from(menus).orderBy(asc(menus.id)),
    getMenu: async (id: number) => (await db.select().from(menus).where(eq(menus.id, id)))[0],
    insertMenu: async (v: typeof menus.$inferInsert) => (await db.insert(menus).values(v).returning())[0]!,
    updateMenu: async (id: number, v: Partial<typeof menus.$inferInsert>) =>
      (await db.update(menus).set({ ...v, updatedAt: new Date() }).where(eq(menus.id, id)).returning())[0],
    deleteMenu: async (id: number) => (await db.delete(menus).where(eq(menus.id, id)).returning())[0],
  };
}
export type RepliesRepo = ReturnType<typeof createRepliesRepo>;
