/**
 * Profile and privacy (PIPL): the golden-question profile shared with the chat (the campaigns' `profile_answers`,
 * read and written here with the chat's own answer reader), privacy consent with version and time, export of all
 * my data, and account deletion — personal data erased, the points ledger and campaign records kept anonymised.
 */
import { and, eq, sql } from 'drizzle-orm';
import type { Db, Tx } from '../db/client.ts';
import { AppError } from '../platform/errors.ts';
import type { Clock } from '../platform/clock.ts';
import { profileAnswers } from '../campaigns/tables.ts';
import { DEFAULT_GOLDEN_QUESTIONS } from '../campaigns/questions-defaults.ts';
import { readAnswer } from '../campaigns/questions.ts';
import { followers } from '../followers/tables.ts';
import type { GoldenQuestion } from '../../../shared/campaigns.ts';
import type { ProfileView } from '../../../shared/members.ts';
import { unsealPii } from './phones.ts';
import type { SessionService } from './sessions.ts';
import { memberEvents, members, type Member } from './tables.ts';

/**
 * Tables holding a person's rows by ledger openid. `keep`: the rows stay (money, points, prizes, audit), re-keyed to
 * an anonymous id; `erase`: deleted. Tables not present (a capability not installed) are skipped.
 */
const KEEP_ANONYMISED = ['points_ledger', 'points_accounts', 'points_lots', 'user_coupons', 'redemptions', 'draws', 'campaign_user_counters', 'mall_orders', 'mall_member_counts', 'rec_events', 'fulfilments'];
const ERASE = ['profile_answers', 'member_tags', 'dialogs', 'points_expiry_reminders', 'cs_outbox'];
const EXPORT = ['points_accounts', 'points_ledger', 'points_lots', 'user_coupons', 'redemptions', 'draws', 'profile_answers', 'mall_orders', 'member_tags', 'rec_events', 'fulfilments'];

const rows = <T = Record<string, unknown>>(res: unknown): T[] => (res as { rows: T[] }).rows;

export function createProfile(deps: {
  db: Db; clock: Clock; piiKey: Buffer; sessions: SessionService;
  /** The profile is complete (every profile question answered) — the earn rule's hook. */
  onCompleted?: (m: Member) => Promise<void>;
  questions?: () => GoldenQuestion[];
}) {
  const { db, clock, piiKey } = deps;
  const questions = deps.questions ?? (() => DEFAULT_GOLDEN_QUESTIONS);

  async function existingTables(tx: Tx, names: string[]): Promise<Set<string>> {
    const r = rows<{ table_name: string }>(await tx.execute(sql`SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_name IN (${sql.join(names.map((n) => sql`${n}`), sql`, `)})`));
    return new Set(r.map((x) => x.table_name));
  }

  async function view(m: Member): Promise<ProfileView> {
    const answers = await db.select().from(profileAnswers).where(eq(profileAnswers.openid, m.openid));
    const byKey = new Map(answers.map((a) => [a.questionKey, a]));
    const qs = questions();
    return {
      questions: qs,
      answers: answers.map((a) => ({ key: a.questionKey, value: a.value, display: a.display, source: a.source, answeredAt: a.answeredAt.toISOString() })),
      complete: qs.every((q) => byKey.has(q.key)),
    };
  }

  return {
    view,

    /**
     * Answer profile questions from the mini program's form: each answer is read exactly as the chat reads it
     * (an option's text or number, a number, "省份城市"), so both doors store the same values. All or nothing.
     */
    async update(m: Member, input: Record<string, string>): Promise<ProfileView> {
      const qs = new Map(questions().map((q) => [q.key, q]));
      const entries = Object.entries(input);
      if (entries.length === 0) throw new AppError('VALIDATION', '请至少回答一个问题', { reason: 'empty' });
      const parsed: Array<{ key: string; value: unknown; display: string }> = [];
      const errors: Record<string, string> = {};
      for (const [key, raw] of entries) {
        const q = qs.get(key);
        if (!q) { errors[key] = '没有这个问题'; continue; }
        const r = readAnswer(q, String(raw));
        if (r.kind === 'answer') parsed.push({ key, value: r.value, display: r.display });
        else if (r.kind === 'next') errors[key] = '请同时填写省份和城市，如：广东深圳';
        else if (r.kind === 'skip') continue;
        else errors[key] = r.reason;
      }
      if (Object.keys(errors).length > 0) throw new AppError('VALIDATION', Object.values(errors)[0]!, { reason: 'invalid_answers', fields: errors });
      const before = await view(m);
      const now = clock.now();
      await db.transaction(async (tx) => {
        for (const a of parsed) {
          await tx.insert(profileAnswers).values({ openid: m.openid, questionKey: a.key, value: a.value, display: a.display, campaignId: null, source: 'mini_program', answeredAt: now })
            .onConflictDoUpdate({ target: [profileAnswers.openid, profileAnswers.questionKey], set: { value: a.value, display: a.display, source: 'mini_program', answeredAt: now, campaignId: null } });
        }
      });
      const after = await view(m);
      if (!before.complete && after.complete) await deps.onCompleted?.(m);
      return after;
    },

    async consent(m: Member, version: string): Promise<{ version: string; at: string }> {
      const now = clock.now();
      await db.transaction(async (tx) => {
        await tx.update(members).set({ consentVersion: version, consentAt: now }).where(eq(members.id, m.id));
        await tx.insert(memberEvents).values({ memberId: m.id, kind: 'consent', detail: { version }, createdAt: now });
      });
      return { version, at: now.toISOString() };
    },

    /** Everything we hold about this person, in the clear (it is their own data), as JSON. */
    async exportAll(m: Member): Promise<Record<string, unknown>> {
      const phone = m.phoneSealed ? unsealPii(m.phoneSealed, piiKey) : null;
      const tables = await existingTables(db, EXPORT);
      const data: Record<string, unknown> = {};
      for (const t of EXPORT) {
        if (!tables.has(t)) continue;
        data[t] = rows(await db.execute(sql`SELECT * FROM ${sql.identifier(t)} WHERE openid = ${m.openid} ORDER BY 1 LIMIT 10000`));
      }
      const [follower] = await db.select().from(followers).where(eq(followers.openid, m.openid));
      const interactions = rows(await db.execute(sql`SELECT msg_type, event, event_key, sent_at, payload FROM interactions WHERE openid = ${m.openid} ORDER BY id DESC LIMIT 1000`));
      const events = await db.select().from(memberEvents).where(eq(memberEvents.memberId, m.id));
      return {
        exportedAt: clock.now().toISOString(),
        member: {
          memberId: m.id, openid: m.openid, mpOpenid: m.mpOpenid, unionid: m.unionid, phone, phoneBoundAt: m.phoneBoundAt, isMember: m.isMember, memberSince: m.memberSince,
          tier: m.tier, inviteCode: m.inviteCode, invitedBy: m.invitedBy, consent: m.consentVersion ? { version: m.consentVersion, at: m.consentAt } : null, createdAt: m.createdAt,
        },
        follower: follower ?? null,
        memberEvents: events,
        interactions,
        ...data,
      };
    },

    /**
     * Delete my account: phone, unionid, profile answers, tags and pending messages erased; sessions revoked; the
     * ledger, prizes and orders re-keyed to `deleted:<memberId>` (amounts kept for accounting, no link to a person);
     * shipping addresses erased. Logging in again later starts a new, empty member.
     */
    async deleteAccount(m: Member): Promise<void> {
      const anon = `deleted:${m.id}`;
      await db.transaction(async (tx) => {
        // Points account first, then the member row: the order an earn takes them in (no deadlock), and no credit slips in.
        await tx.execute(sql`SELECT 1 FROM points_accounts WHERE openid = ${m.openid} FOR UPDATE`);
        await tx.execute(sql`SELECT id FROM members WHERE id = ${m.id} FOR UPDATE`);
        const [cur] = await tx.select({ deletedAt: members.deletedAt }).from(members).where(eq(members.id, m.id));
        if (!cur || cur.deletedAt) throw new AppError('NOT_FOUND', '账号不存在或已注销');
        const present = await existingTables(tx, [...KEEP_ANONYMISED, ...ERASE]);
        for (const t of ERASE) if (present.has(t)) await tx.execute(sql`DELETE FROM ${sql.identifier(t)} WHERE openid = ${m.openid}`);
        if (present.has('mall_orders')) await tx.execute(sql`UPDATE mall_orders SET address_sealed = NULL, mp_openid = NULL WHERE openid = ${m.openid}`);
        for (const t of KEEP_ANONYMISED) if (present.has(t)) await tx.execute(sql`UPDATE ${sql.identifier(t)} SET openid = ${anon} WHERE openid = ${m.openid}`);
        await tx.update(followers).set({ unionid: null }).where(and(eq(followers.openid, m.openid)));
        await tx.update(members).set({
          openid: anon, mpOpenid: null, unionid: null, phoneSealed: null, phoneHash: null, phoneVerified: false, phoneBoundAt: null,
          consentVersion: null, consentAt: null, inviteCode: null, isMember: false, deletedAt: clock.now(),
        }).where(eq(members.id, m.id));
        await tx.insert(memberEvents).values({ memberId: m.id, kind: 'deleted', detail: null, createdAt: clock.now() });
        await deps.sessions.revokeMember(m.id, tx);
      });
    },
  };
}
export type Profile = ReturnType<typeof createProfile>;
