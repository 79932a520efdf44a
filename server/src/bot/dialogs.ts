/**
 * Multi-turn dialogs: one active dialog per user, owned by a capability flow (`campaign.code`,
 * `campaign.question`, `fulfilment.phone` …). The webhook reads the active dialog together with the dedup claim,
 * so a message costs no extra round trip to find out whether it answers a question. State lives in the
 * database: a dialog survives restarts and any instance can continue it; it ends at `expiresAt`.
 */
import { and, eq, inArray, sql } from 'drizzle-orm';
import type { Database } from '../db/client.ts';
import { dialogs } from './tables.ts';

export interface ActiveDialog {
  flow: string;
  state: unknown;
  expiresAt: Date;
}

export function createDialogStore(database: Database) {
  const { db } = database;
  return {
    async get(openid: string, now: Date): Promise<ActiveDialog | null> {
      const [row] = await db.select().from(dialogs).where(and(eq(dialogs.openid, openid), sql`${dialogs.expiresAt} > ${now.toISOString()}`));
      return row ? { flow: row.flow, state: row.state, expiresAt: row.expiresAt } : null;
    },

    /** Start or continue a dialog (replaces any other flow's dialog of this user). */
    async set(openid: string, flow: string, state: unknown, expiresAt: Date, now: Date): Promise<void> {
      await db.insert(dialogs).values({ openid, flow, state, expiresAt, updatedAt: now })
        .onConflictDoUpdate({ target: dialogs.openid, set: { flow, state, expiresAt, updatedAt: now } });
    },

    /**
     * Compare-and-set: move the dialog on only if `flow` still owns it with exactly the state `expected` (jsonb
     * equality), i.e. no other message (here or on another instance) moved it since it was read; `next` null ends
     * it. Returns whether it did. A message that loses reads the dialog again and answers what it asks now.
     */
    async swap(openid: string, flow: string, expected: unknown, next: unknown | null, expiresAt: Date, now: Date): Promise<boolean> {
      const where = and(eq(dialogs.openid, openid), eq(dialogs.flow, flow), sql`${dialogs.state} = ${JSON.stringify(expected)}::jsonb`);
      const rows = next === null
        ? await db.delete(dialogs).where(where).returning({ openid: dialogs.openid })
        : await db.update(dialogs).set({ state: next, expiresAt, updatedAt: now }).where(where).returning({ openid: dialogs.openid });
      return rows.length > 0;
    },

    /**
     * End the user's dialog; with `flow` (one or several), only if one of them still owns it: a dialog another flow
     * started since it was read (another message, another instance) stays.
     */
    async clear(openid: string, flow?: string | readonly string[]): Promise<void> {
      const owner = flow === undefined ? undefined : typeof flow === 'string' ? eq(dialogs.flow, flow) : inArray(dialogs.flow, [...flow]);
      await db.delete(dialogs).where(owner ? and(eq(dialogs.openid, openid), owner) : eq(dialogs.openid, openid));
    },
  };
}
export type DialogStore = ReturnType<typeof createDialogStore>;
