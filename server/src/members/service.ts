/**
 * Members core: mini-program login (code2Session → one person, one member, linked to the official-account
 * follower by unionid), phone binding through WeChat's phone-number code, and "broad membership" (following the
 * official account + a verified phone). No Fastify here; errors are AppErrors.
 *
 * Identity: `members.openid` is the ledger key and never changes once the row exists. A mini-program login with a
 * unionid that a follower (or an existing member row) already carries joins that row, so chat redemptions and the
 * mini program share one account; otherwise the row is keyed by the mini-program openid.
 */
import { and, eq, ne, sql } from 'drizzle-orm';
import type { Db, Tx } from '../db/client.ts';
import { AppError } from '../platform/errors.ts';
import type { Clock } from '../platform/clock.ts';
import { WeChatApiError } from '../wechat/errors.ts';
import type { MinaClient } from '../wechat/mina-client.ts';
import { followers } from '../followers/tables.ts';
import type { MemberMe, TierName } from '../../../shared/members.ts';
import { maskPhone, normalisePhone, phoneHash, sealPii, unsealPii } from './phones.ts';
import type { SessionService, IssuedSession } from './sessions.ts';
import type { Ledger } from './ledger.ts';
import { memberEvents, members, type Member } from './tables.ts';

/** Things that happen to a member that other parts (earn rules, invites, fraud) react to. */
export interface MemberHooks {
  /** After the transaction that made the user a member (phone + follow) committed. */
  becameMember: Array<(m: Member) => Promise<void>>;
  /** After a verified phone was bound (outside the transaction); `phone` in the clear for the fraud checks. */
  phoneBound: Array<(m: Member, phone: string) => Promise<void>>;
  /** After a login created a new member row. */
  created: Array<(m: Member, ctx: { inviteCode?: string }) => Promise<void>>;
}

export function createMemberHooks(): MemberHooks {
  return { becameMember: [], phoneBound: [], created: [] };
}

const isUniqueViolation = (err: unknown) => {
  const e = err as { code?: string; cause?: { code?: string } };
  return e?.code === '23505' || e?.cause?.code === '23505';
};

function wechatToApp(err: unknown, what: 'login' | 'phone'): never {
  if (err instanceof WeChatApiError) {
    if (err.errcode === 40029) {
      throw what === 'login'
        ? new AppError('UNAUTHENTICATED', '登录凭证无效或已使用，请重新登录', { reason: 'invalid_code' })
        : new AppError('VALIDATION', '手机号授权码无效或已使用，请重新授权', { reason: 'invalid_phone_code' });
    }
    if (err.errcode === 45011) throw new AppError('WECHAT_API', '操作太频繁，请稍后再试', { reason: 'rate_limited', errcode: err.errcode });
    if (err.errcode === 40226) throw new AppError('FORBIDDEN', '当前账号存在风险，暂时无法登录', { reason: 'high_risk_user', errcode: err.errcode });
    if (err.errcode === 40003) throw new AppError('VALIDATION', '手机号授权与当前用户不符', { reason: 'phone_code_openid_mismatch' });
  }
  throw err;
}

export function createMembersService(deps: {
  db: Db; clock: Clock; piiKey: Buffer; sessions: SessionService; ledger: Ledger; mina: () => MinaClient; hooks?: MemberHooks;
  /** The tier of a member for display (tiers.ts); 'normal' until tiers are wired. */
  tierOf?: (m: Member) => TierName;
}) {
  const { db, clock, piiKey, sessions, ledger } = deps;
  const hooks = deps.hooks ?? createMemberHooks();

  async function byId(memberId: number, tx: Tx = db): Promise<Member> {
    const [m] = await tx.select().from(members).where(eq(members.id, memberId));
    if (!m || m.deletedAt) throw new AppError('NOT_FOUND', '会员不存在');
    return m;
  }

  async function following(openid: string, tx: Tx = db): Promise<boolean> {
    const [f] = await tx.select({ subscribed: followers.subscribed }).from(followers).where(eq(followers.openid, openid));
    return f?.subscribed ?? false;
  }

  async function view(m: Member, tx: Tx = db): Promise<MemberMe> {
    let phoneMasked: string | null = null;
    if (m.phoneSealed) {
      try {
        phoneMasked = maskPhone(unsealPii(m.phoneSealed, piiKey));
      } catch {
        phoneMasked = '****';
      }
    }
    return {
      memberId: m.id,
      isMember: m.isMember,
      memberSince: m.memberSince?.toISOString() ?? null,
      following: await following(m.openid, tx),
      phoneMasked,
      tier: (deps.tierOf?.(m) ?? (m.tier as TierName)) || 'normal',
      points: await ledger.balance(m.openid, tx),
      inviteCode: m.inviteCode,
      consent: m.consentVersion && m.consentAt ? { version: m.consentVersion, at: m.consentAt.toISOString() } : null,
    };
  }

  async function event(tx: Tx, memberId: number, kind: string, detail: unknown = null) {
    await tx.insert(memberEvents).values({ memberId, kind, detail, createdAt: clock.now() });
  }

  /** Find or create the member for a mini-program identity; safe under concurrent logins of the same person. */
  async function resolve(mpOpenid: string, unionid: string | null): Promise<{ member: Member; created: boolean }> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await db.transaction(async (tx) => {
          const [byMp] = await tx.select().from(members).where(eq(members.mpOpenid, mpOpenid));
          if (byMp) {
            if (unionid && !byMp.unionid) {
              const [u] = await tx.update(members).set({ unionid }).where(and(eq(members.id, byMp.id), sql`${members.unionid} IS NULL`)).returning();
              return { member: u ?? byMp, created: false };
            }
            return { member: byMp, created: false };
          }
          // The same person through the official account: a member row with this unionid, or a follower carrying it.
          let target: Member | undefined;
          if (unionid) {
            [target] = await tx.select().from(members).where(eq(members.unionid, unionid));
            if (!target) {
              const [f] = await tx.select({ openid: followers.openid }).from(followers).where(eq(followers.unionid, unionid)).limit(1);
              if (f) {
                [target] = await tx.select().from(members).where(eq(members.openid, f.openid));
                if (!target) {
                  const [ins] = await tx.insert(members).values({ openid: f.openid, mpOpenid, unionid, createdAt: clock.now() }).returning();
                  await event(tx, ins!.id, 'created', { via: 'unionid' });
                  return { member: ins!, created: true };
                }
              }
            }
          }
          if (target) {
            if (target.deletedAt) throw new AppError('UNAUTHENTICATED', '账号已注销', { reason: 'account_deleted' });
            // A concurrent login of this same user committed between our reads: it is ours already.
            if (target.mpOpenid === mpOpenid) return { member: target, created: false };
            const [u] = await tx.update(members).set({ mpOpenid, unionid: unionid ?? target.unionid })
              .where(and(eq(members.id, target.id), sql`${members.mpOpenid} IS NULL`)).returning();
            if (!u) {
              const [mine] = await tx.select().from(members).where(eq(members.mpOpenid, mpOpenid));
              if (mine) return { member: mine, created: false };
              throw new AppError('CONFLICT', '该微信账号已关联其他小程序身份', { reason: 'identity_conflict' });
            }
            await event(tx, u.id, 'linked', { via: 'unionid' });
            return { member: u, created: false };
          }
          const [ins] = await tx.insert(members).values({ openid: mpOpenid, mpOpenid, unionid, createdAt: clock.now() }).returning();
          await event(tx, ins!.id, 'created', { via: 'mini_program' });
          return { member: ins!, created: true };
        });
      } catch (err) {
        // A concurrent first login of the same person won the insert: read what it made.
        if (isUniqueViolation(err) && attempt < 2) continue;
        throw err;
      }
    }
  }

  /**
   * Following + verified phone → member, once (flag and event in one transaction). Within a caller's transaction
   * the caller runs the hooks after its commit (`afterBecameMember`); otherwise they run here.
   */
  async function evaluateMembership(memberId: number, tx?: Tx): Promise<Member | null> {
    const run = async (t: Tx) => {
      const [m] = rows(await t.execute(sql`SELECT id FROM members WHERE id = ${memberId} FOR UPDATE`));
      if (!m) return null;
      const member = await byId(memberId, t);
      if (member.isMember || !member.phoneVerified || !(await following(member.openid, t))) return null;
      const [u] = await t.update(members).set({ isMember: true, memberSince: clock.now() }).where(and(eq(members.id, memberId), eq(members.isMember, false))).returning();
      if (!u) return null;
      await event(t, memberId, 'became_member', { phone: true, following: true });
      return u;
    };
    if (tx) return run(tx);
    const became = await db.transaction(run);
    if (became) await afterBecameMember(became);
    return became;
  }

  async function afterBecameMember(m: Member) {
    for (const h of hooks.becameMember) await h(m);
  }

  return {
    hooks,
    view,
    byId,
    evaluateMembership,

    async login(code: string, ctx: { inviteCode?: string } = {}): Promise<IssuedSession & { member: MemberMe }> {
      const s = await deps.mina().code2Session(code).catch((e) => wechatToApp(e, 'login'));
      // session_key is dropped here: nothing we serve needs it (phone numbers come by the code API).
      const { member, created } = await resolve(s.openid, s.unionid);
      if (created) for (const h of hooks.created) await h(member, ctx);
      await evaluateMembership(member.id);
      const issued = await sessions.issue(member.id, s.openid);
      return { ...issued, member: await view(await byId(member.id)) };
    },

    async me(memberId: number): Promise<MemberMe> {
      // Follows arrive through the chat webhook; re-check here so a member sees the result on the next visit.
      await evaluateMembership(memberId);
      return view(await byId(memberId));
    },

    /** Bind the WeChat-verified phone from the phone-number button's code. */
    async bindPhone(memberId: number, mpOpenid: string, code: string): Promise<{ phoneMasked: string; becameMember: boolean; member: MemberMe }> {
      const info = await deps.mina().phoneNumber(code, mpOpenid).catch((e) => wechatToApp(e, 'phone'));
      if (info.countryCode !== '86') throw new AppError('VALIDATION', '目前仅支持中国大陆手机号', { reason: 'unsupported_country' });
      const phone = normalisePhone(info.purePhoneNumber);
      if (!phone) throw new AppError('VALIDATION', '手机号格式不正确', { reason: 'invalid_phone' });
      const hash = phoneHash(phone, piiKey);
      let became: Member | null = null;
      try {
        became = await db.transaction(async (tx) => {
          await tx.execute(sql`SELECT id FROM members WHERE id = ${memberId} FOR UPDATE`);
          const m = await byId(memberId, tx);
          const [other] = await tx.select({ id: members.id }).from(members)
            .where(and(eq(members.phoneHash, hash), eq(members.phoneVerified, true), ne(members.id, memberId))).limit(1);
          if (other) throw new AppError('CONFLICT', '该手机号已绑定其他会员', { reason: 'phone_taken' });
          const now = clock.now();
          const changed = m.phoneHash !== hash || !m.phoneVerified;
          if (changed) {
            await tx.update(members).set({ phoneSealed: sealPii(phone, piiKey), phoneHash: hash, phoneVerified: true, phoneBoundAt: now }).where(eq(members.id, memberId));
            await event(tx, memberId, 'phone_bound', { masked: maskPhone(phone) });
          }
          return evaluateMembership(memberId, tx);
        });
      } catch (err) {
        if (isUniqueViolation(err)) throw new AppError('CONFLICT', '该手机号已绑定其他会员', { reason: 'phone_taken' });
        throw err;
      }
      // Phone hooks first (earn, fraud signals), so the membership hooks (invite reward) see their verdict.
      const m = await byId(memberId);
      for (const h of hooks.phoneBound) await h(m, phone);
      if (became) await afterBecameMember(became);
      return { phoneMasked: maskPhone(phone), becameMember: became !== null, member: await view(await byId(memberId)) };
    },

    refresh: (refreshToken: string) => sessions.refresh(refreshToken),

    /** Live members with this phone (by its keyed hash). */
    async idsByPhone(input: string): Promise<number[]> {
      const phone = normalisePhone(input);
      if (!phone) throw new AppError('VALIDATION', 'Not a mainland mobile number', { reason: 'invalid_phone' });
      const found = await db.select({ id: members.id }).from(members).where(and(eq(members.phoneHash, phoneHash(phone, piiKey)), sql`${members.deletedAt} IS NULL`));
      return found.map((r) => r.id);
    },

    /** Newest first. */
    async events(memberId: number, limit = 50): Promise<Array<{ kind: string; detail: unknown; createdAt: string }>> {
      const rs = await db.select().from(memberEvents).where(eq(memberEvents.memberId, memberId)).orderBy(sql`${memberEvents.id} DESC`).limit(limit);
      return rs.map((e) => ({ kind: e.kind, detail: e.detail, createdAt: e.createdAt.toISOString() }));
    },
  };
}
export type MembersService = ReturnType<typeof createMembersService>;

function rows<T = Record<string, unknown>>(res: unknown): T[] {
  return (res as { rows: T[] }).rows;
}
