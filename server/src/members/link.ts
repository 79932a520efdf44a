/**
 * One person, one member, whichever door came first. A member who started in the mini program (keyed by the
 * mini-program openid) and later follows the official account is linked once the follow reveals the same unionid
 * (followers/service.ts asks user/info): the member is re-keyed to the official-account openid — the key the chat
 * redemption, the campaigns' points and customer-service messages use — and everything the mini-program key held
 * moves with it, in one transaction. Points accounts are added up; the ledger rows move as they are (their sum still
 * equals the balance); for per-key rows both sides had (profile answers, tags, counters) the newer or the sum wins.
 */
import type { FastifyBaseLogger } from 'fastify';
import { sql } from 'drizzle-orm';
import type { Db } from '../db/client.ts';
import { rowsOf } from '../db/retry.ts';
import type { Clock } from '../platform/clock.ts';
import { memberEvents } from './tables.ts';

/** Rows keyed by the ledger openid with no unique key on it: they move as they are. */
const MOVE = ['points_ledger', 'points_lots', 'user_coupons', 'redemptions', 'draws', 'mall_orders', 'rec_events', 'fulfilments'];

export type LinkOutcome = 'linked' | 'nothing_to_link' | 'conflict';

export function createFollowerLink(deps: { db: Db; clock: Clock; log: FastifyBaseLogger }) {
  const { db, clock, log } = deps;

  return {
    /** The follower `oaOpenid` has `unionid`: fold a mini-program-first member with that unionid into it. */
    async linkFollower(oaOpenid: string, unionid: string): Promise<LinkOutcome> {
      const [candidate] = rowsOf<{ id: string; openid: string }>(await db.execute(sql`
        SELECT id::text, openid FROM members WHERE unionid = ${unionid} AND deleted_at IS NULL AND openid <> ${oaOpenid}`));
      if (!candidate) return 'nothing_to_link';
      const mp = candidate.openid;
      const outcome = await db.transaction(async (tx): Promise<LinkOutcome> => {
        // Points accounts first, in key order (the lock order of every ledger writer), then the member rows.
        await tx.execute(sql`INSERT INTO points_accounts (openid, balance, updated_at) VALUES (${mp}, 0, ${clock.now()}), (${oaOpenid}, 0, ${clock.now()}) ON CONFLICT (openid) DO NOTHING`);
        await tx.execute(sql`SELECT 1 FROM points_accounts WHERE openid IN (${mp}, ${oaOpenid}) ORDER BY openid FOR UPDATE`);
        const ms = rowsOf<{ id: string; openid: string; unionid: string | null; mp_openid: string | null; deleted_at: unknown; phone_hash: string | null }>(await tx.execute(sql`
          SELECT id::text, openid, unionid, mp_openid, deleted_at, phone_hash FROM members WHERE id = ${candidate.id} OR openid = ${oaOpenid} ORDER BY id FOR UPDATE`));
        const m = ms.find((r) => r.id === candidate.id);
        if (!m || m.deleted_at || m.openid !== mp || m.unionid !== unionid) return 'nothing_to_link'; // changed meanwhile
        const shell = ms.find((r) => r.openid === oaOpenid);
        if (shell) {
          // A second real member on the official-account key (its own mini-program login or unionid): leave both.
          if (shell.mp_openid || shell.unionid) return 'conflict';
          // A chat-only row (a phone typed for a top-up): its phone joins the member when the member has none.
          if (!m.phone_hash) {
            await tx.execute(sql`UPDATE members m SET phone_sealed = s.phone_sealed, phone_hash = s.phone_hash, phone_verified = s.phone_verified, phone_bound_at = s.phone_bound_at
              FROM members s WHERE m.id = ${m.id} AND s.id = ${shell.id}`);
          }
          await tx.execute(sql`DELETE FROM members WHERE id = ${shell.id}`);
        }
        // Points: one account with both balances.
        await tx.execute(sql`UPDATE points_accounts a SET balance = a.balance + b.balance, updated_at = ${clock.now()}
          FROM points_accounts b WHERE a.openid = ${oaOpenid} AND b.openid = ${mp}`);
        await tx.execute(sql`DELETE FROM points_accounts WHERE openid = ${mp}`);
        for (const t of MOVE) await tx.execute(sql`UPDATE ${sql.identifier(t)} SET openid = ${oaOpenid} WHERE openid = ${mp}`);
        // Per-key rows: counters add up; for answers, tags and reminders the newer (or the official account's) stays.
        await tx.execute(sql`INSERT INTO campaign_user_counters AS u (campaign_id, openid, day, day_count, total, day_limit, total_limit)
          SELECT campaign_id, ${oaOpenid}, day, day_count, total, day_limit, total_limit FROM campaign_user_counters WHERE openid = ${mp}
          ON CONFLICT (campaign_id, openid) DO UPDATE SET total = u.total + EXCLUDED.total,
            day_count = CASE WHEN u.day = EXCLUDED.day THEN u.day_count + EXCLUDED.day_count WHEN u.day > EXCLUDED.day THEN u.day_count ELSE EXCLUDED.day_count END,
            day = greatest(u.day, EXCLUDED.day)`);
        await tx.execute(sql`DELETE FROM campaign_user_counters WHERE openid = ${mp}`);
        await tx.execute(sql`INSERT INTO mall_member_counts AS c (openid, item_id, quantity) SELECT ${oaOpenid}, item_id, quantity FROM mall_member_counts WHERE openid = ${mp}
          ON CONFLICT (openid, item_id) DO UPDATE SET quantity = c.quantity + EXCLUDED.quantity`);
        await tx.execute(sql`DELETE FROM mall_member_counts WHERE openid = ${mp}`);
        await tx.execute(sql`DELETE FROM profile_answers p USING profile_answers q
          WHERE p.openid = ${mp} AND q.openid = ${oaOpenid} AND q.question_key = p.question_key AND q.answered_at >= p.answered_at`);
        await tx.execute(sql`DELETE FROM profile_answers q USING profile_answers p
          WHERE q.openid = ${oaOpenid} AND p.openid = ${mp} AND q.question_key = p.question_key`);
        await tx.execute(sql`UPDATE profile_answers SET openid = ${oaOpenid} WHERE openid = ${mp}`);
        await tx.execute(sql`DELETE FROM member_tags p USING member_tags q WHERE p.openid = ${mp} AND q.openid = ${oaOpenid} AND q.tag = p.tag`);
        await tx.execute(sql`UPDATE member_tags SET openid = ${oaOpenid} WHERE openid = ${mp}`);
        await tx.execute(sql`DELETE FROM points_expiry_reminders p USING points_expiry_reminders q WHERE p.openid = ${mp} AND q.openid = ${oaOpenid} AND q.expires_on = p.expires_on`);
        await tx.execute(sql`UPDATE points_expiry_reminders SET openid = ${oaOpenid} WHERE openid = ${mp}`);
        await tx.execute(sql`UPDATE members SET openid = ${oaOpenid} WHERE id = ${m.id}`);
        await tx.insert(memberEvents).values({ memberId: Number(m.id), kind: 'linked', detail: { via: 'follow', from: 'miniprogram' }, createdAt: clock.now() });
        return 'linked';
      });
      if (outcome === 'conflict') log.warn({ memberId: candidate.id }, 'a follower and a mini-program member share a unionid but both are members; not linked');
      return outcome;
    },
  };
}
export type FollowerLink = ReturnType<typeof createFollowerLink>;
