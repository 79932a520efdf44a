/**
 * Member-get-member: each member's invite code and mini-program code image (wxacode.getUnlimited), the invitee
 * bound to the inviter at their first login (or right after, while not yet a member), and the reward — once per
 * invitee, when the invitee becomes a member. No self-invite (same member, or the same phone).
 *
 * Fraud hook: `allowReward` (wired in app.ts to the fraud capability) decides before the reward is credited; a
 * refusal is recorded as a member event `invite_reward_held` for ops to see.
 */
import { randomInt } from 'node:crypto';
import { and, eq, sql } from 'drizzle-orm';
import type { Db } from '../db/client.ts';
import { AppError } from '../platform/errors.ts';
import type { Clock } from '../platform/clock.ts';
import type { MinaClient } from '../wechat/mina-client.ts';
import type { InviteView } from '../../../shared/members.ts';
import type { Earn } from './earn.ts';
import { memberEvents, members, type Member } from './tables.ts';

const ALPHABET = 'ABCDEFGHJKLMNPQRSTUVWXYZ23456789';
export const INVITE_PAGE = 'pages/index/index';

export function createInvites(deps: {
  db: Db; clock: Clock; earn: Earn; mina: () => MinaClient;
  /** Mini-program version the code opens (release in production; develop/trial for testing). */
  envVersion?: 'release' | 'trial' | 'develop';
  allowReward?: (inviter: Member, invitee: Member) => Promise<boolean>;
}) {
  const { db, clock } = deps;

  async function codeOf(m: Member): Promise<string> {
    if (m.inviteCode) return m.inviteCode;
    for (let i = 0; i < 8; i++) {
      const code = Array.from({ length: 8 }, () => ALPHABET[randomInt(ALPHABET.length)]).join('');
      try {
        const [u] = await db.update(members).set({ inviteCode: code }).where(and(eq(members.id, m.id), sql`${members.inviteCode} IS NULL`)).returning({ code: members.inviteCode });
        if (u?.code) return u.code;
        const [cur] = await db.select({ code: members.inviteCode }).from(members).where(eq(members.id, m.id));
        if (cur?.code) return cur.code; // a parallel call made it
      } catch (err) {
        if ((err as { code?: string; cause?: { code?: string } }).code !== '23505' && (err as { cause?: { code?: string } }).cause?.code !== '23505') throw err;
      }
    }
    throw new Error('could not allocate an invite code');
  }

  const scene = (code: string) => `i=${code}`;

  return {
    async view(m: Member): Promise<InviteView> {
      const code = await codeOf(m);
      const [c] = (await db.execute(sql`SELECT count(*)::int AS invited, count(*) FILTER (WHERE is_member)::int AS members FROM members WHERE invited_by = ${m.id}`) as unknown as { rows: Array<{ invited: number; members: number }> }).rows;
      const [r] = (await db.execute(sql`SELECT count(*)::int AS n FROM points_ledger WHERE openid = ${m.openid} AND reason = 'earn:invite_reward'`) as unknown as { rows: Array<{ n: number }> }).rows;
      return { code, page: INVITE_PAGE, scene: scene(code), imagePath: '/api/mp/me/invite/qrcode', invited: Number(c?.invited ?? 0), rewarded: Number(r?.n ?? 0) };
    },

    async image(m: Member): Promise<{ image: Buffer; contentType: string }> {
      const code = await codeOf(m);
      return deps.mina().unlimitedCode({ scene: scene(code), page: INVITE_PAGE, check_path: false, env_version: deps.envVersion ?? 'release', width: 430 });
    },

    /** Bind the invitee to the inviter by code; only before the invitee is a member, only once, never to oneself. */
    async accept(invitee: Member, inviteCode: string): Promise<{ inviterId: number }> {
      const [inviter] = await db.select().from(members).where(and(eq(members.inviteCode, inviteCode.toUpperCase()), sql`${members.deletedAt} IS NULL`));
      if (!inviter) throw new AppError('NOT_FOUND', '邀请码不存在', { reason: 'unknown_invite_code' });
      if (inviter.id === invitee.id || (inviter.phoneHash && inviter.phoneHash === invitee.phoneHash)) {
        throw new AppError('VALIDATION', '不能邀请自己', { reason: 'self_invite' });
      }
      if (invitee.isMember) throw new AppError('CONFLICT', '您已经是会员，无法再接受邀请', { reason: 'already_member' });
      const [u] = await db.update(members).set({ invitedBy: inviter.id })
        .where(and(eq(members.id, invitee.id), sql`${members.invitedBy} IS NULL`, eq(members.isMember, false))).returning();
      if (!u) {
        const [cur] = await db.select({ invitedBy: members.invitedBy }).from(members).where(eq(members.id, invitee.id));
        if (cur?.invitedBy === inviter.id) return { inviterId: inviter.id };
        throw new AppError('CONFLICT', '您已接受过其他邀请', { reason: 'already_invited' });
      }
      await db.insert(memberEvents).values({ memberId: invitee.id, kind: 'invited', detail: { inviterId: inviter.id }, createdAt: clock.now() });
      return { inviterId: inviter.id };
    },

    /** The invitee became a member: reward the inviter once (subject = the invitee's member id). */
    async onBecameMember(invitee: Member): Promise<boolean> {
      if (!invitee.invitedBy) return false;
      const [inviter] = await db.select().from(members).where(eq(members.id, invitee.invitedBy));
      if (!inviter || inviter.deletedAt || inviter.id === invitee.id) return false;
      // A fraud hold recorded on the invitee (app.ts: the fraud capability's verdict at phone binding) or the hook's no.
      const [held] = (await db.execute(sql`SELECT 1 FROM member_events WHERE member_id = ${invitee.id} AND kind = 'fraud_hold' LIMIT 1`) as unknown as { rows: unknown[] }).rows;
      if (held || (deps.allowReward && !(await deps.allowReward(inviter, invitee)))) {
        await db.insert(memberEvents).values({ memberId: inviter.id, kind: 'invite_reward_held', detail: { inviteeId: invitee.id }, createdAt: clock.now() });
        return false;
      }
      const r = await deps.earn.earn(inviter.openid, 'invite_reward', String(invitee.id), { detail: { inviteeId: invitee.id } });
      return r.credited && !r.duplicate;
    },
  };
}
export type Invites = ReturnType<typeof createInvites>;
