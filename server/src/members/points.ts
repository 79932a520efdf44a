/** The member's side of points and tiers: member centre, history, check-in. */
import { and, desc, eq, lt } from 'drizzle-orm';
import type { Db } from '../db/client.ts';
import type { MemberCentre, PointsHistory, Tier, TierName, CheckInResponse } from '../../../shared/members.ts';
import type { Ledger } from './ledger.ts';
import type { Earn } from './earn.ts';
import { chinaDay } from './earn.ts';
import type { Tiers } from './tiers.ts';
import type { MembersService } from './service.ts';
import { pointsLedger, type MemberTier } from './tables.ts';

const TITLES: Record<string, string> = {
  'earn:follow': '关注公众号',
  'earn:bind_phone': '绑定手机号',
  'earn:complete_profile': '完善资料',
  'earn:redemption': '扫码兑奖',
  'earn:daily_checkin': '每日签到',
  'earn:interaction': '互动奖励',
  'earn:purchase': '购物积分',
  'earn:invite_reward': '邀请好友',
  lottery_prize: '抽奖奖励',
  lottery_consolation: '参与奖励',
  fraud_hold: '奖励审核中（暂扣）',
  expire: '积分过期',
  mall_order: '积分商城兑换',
  mall_cancel: '商城订单取消退回',
  account_deleted: '账号注销',
};

export const pointsTitle = (reason: string) => TITLES[reason] ?? (reason.startsWith('mall') ? '积分商城' : '积分变动');

const tierView = (t: MemberTier): Tier => ({
  key: t.key as TierName, name: t.name, minPoints: t.minPoints, multiplierPct: t.multiplierPct, monthlyCoupon: t.monthlyCoupon ?? null, reservedItems: t.reservedItems,
});

export function createMemberPoints(deps: { db: Db; ledger: Ledger; earn: Earn; tiers: Tiers; members: MembersService; now: () => Date }) {
  const { db, ledger, earn, tiers, members } = deps;
  return {
    tierView,

    async centre(memberId: number): Promise<MemberCentre> {
      const me = await members.me(memberId);
      const m = await members.byId(memberId);
      const p = await tiers.progress(m);
      const checkin = await ledger.byKey(`earn:daily_checkin:${memberId}:${chinaDay(deps.now())}`);
      return {
        member: me, tier: tierView(p.tier), next: p.next ? tierView(p.next) : null, rollingPoints: p.rollingPoints, toNext: p.toNext,
        expiring: await earn.expiring(m.openid), checkedInToday: !!checkin,
      };
    },

    async history(openid: string, q: { limit?: number; before?: number }): Promise<PointsHistory> {
      const limit = Math.max(1, Math.min(100, q.limit ?? 20));
      const rows = await db.select().from(pointsLedger)
        .where(q.before ? and(eq(pointsLedger.openid, openid), lt(pointsLedger.id, q.before)) : eq(pointsLedger.openid, openid))
        .orderBy(desc(pointsLedger.id)).limit(limit + 1);
      const page = rows.slice(0, limit);
      return {
        balance: await ledger.balance(openid),
        entries: page.map((e) => ({ id: e.id, delta: e.delta, balanceAfter: e.balanceAfter, reason: e.reason, title: pointsTitle(e.reason), createdAt: e.createdAt.toISOString() })),
        nextBefore: rows.length > limit ? page[page.length - 1]!.id : null,
      };
    },

    async checkIn(openid: string, memberId: number): Promise<CheckInResponse> {
      const r = await earn.checkIn(openid, memberId);
      return { day: r.day, firstToday: r.credited && !r.duplicate, points: r.credited ? r.points : 0, balance: await ledger.balance(openid) };
    },
  };
}
export type MemberPoints = ReturnType<typeof createMemberPoints>;
