/**
 * Seeding campaigns and codes for chat tests straight into the tables (the ops API and the batch service have
 * their own tests); returns the plaintext codes as the printer would have them.
 */
import { eq } from 'drizzle-orm';
import type { GoldenQuestion, PrizeBody } from '../../shared/campaigns.ts';
import type { Database } from '../src/db/client.ts';
import { campaignPrizes, campaigns, codeBatches, codes, prizeStockShards } from '../src/campaigns/tables.ts';
import { codeLookupKey, generateCodes } from '../src/campaigns/codes.ts';

export const QUESTIONS: GoldenQuestion[] = [
  { key: 'name', kind: 'text', prompt: '请问怎么称呼您？', required: true, minLength: 2, maxLength: 20, pattern: '^[\\p{Script=Han}A-Za-z·\\s]+$', patternHint: '姓名只能包含中文或英文字母。' },
  { key: 'occupation', kind: 'choice', prompt: '您的职业是？', options: ['学生', '上班族', '个体经营', '自由职业', '退休', '其他'] },
  { key: 'region', kind: 'region', prompt: '您在哪个城市？' },
  { key: 'business_type', kind: 'choice', prompt: '您经营的业态是？', options: ['餐饮', '便利店', '商超', '烟酒店', '批发', '其他'] },
  { key: 'spending', kind: 'range', prompt: '您的人均消费大约是？', ranges: [{ label: '30元以下', max: 30 }, { label: '30–60元', min: 30, max: 60 }, { label: '60–100元', min: 60, max: 100 }, { label: '100元以上', min: 100 }] },
];

export interface SeedOptions {
  status?: 'draft' | 'live' | 'paused' | 'ended';
  startsAt?: Date;
  endsAt?: Date;
  questions?: GoldenQuestion[];
  unlockMin?: number;
  prizes?: PrizeBody[];
  codes?: number;
  redemptionsPerDay?: number | null;
  drawsPerCampaign?: number | null;
  lossPoints?: number;
  prizeMode?: 'dynamic' | 'deck';
  /** Deck mode: prize index (into `prizes`) for the first codes, in order; the rest carry nothing. */
  deck?: number[];
  recommendation?: { title: string; description?: string; url?: string } | null;
  dialogIdleMinutes?: number;
  shards?: number;
  reaskAnswered?: boolean;
}

export async function seedCampaign(database: Database, codeKey: Buffer, o: SeedOptions = {}) {
  const { db } = database;
  const now = Date.now();
  const [c] = await db.insert(campaigns).values({
    name: '夏日开盖有礼', status: o.status ?? 'live',
    startsAt: o.startsAt ?? new Date(now - 86_400_000), endsAt: o.endsAt ?? new Date(now + 30 * 86_400_000),
    questions: o.questions ?? QUESTIONS, unlockMin: o.unlockMin ?? 2,
    redemptionsPerDay: o.redemptionsPerDay ?? null, drawsPerCampaign: o.drawsPerCampaign ?? null,
    lossPoints: o.lossPoints ?? 0, prizeMode: o.prizeMode ?? 'dynamic', recommendation: o.recommendation ?? null,
    dialogIdleMinutes: o.dialogIdleMinutes ?? 30, reaskAnswered: o.reaskAnswered ?? false,
  }).returning();
  const prizeBodies = o.prizes ?? [{ name: '10积分', kind: 'points', value: 10, weight: 1 }];
  const prizes: Array<typeof campaignPrizes.$inferSelect> = [];
  for (const [i, p] of prizeBodies.entries()) {
    const [row] = await db.insert(campaignPrizes).values({
      campaignId: c!.id, name: p.name, kind: p.kind, value: p.value ?? 0, coupon: p.coupon ?? null, weight: p.weight,
      totalStock: p.totalStock ?? null, dailyStock: p.dailyStock ?? null, position: i,
    }).returning();
    prizes.push(row!);
    if (o.prizeMode !== 'deck' && (p.totalStock != null || p.dailyStock != null)) {
      const n = o.shards ?? Math.max(1, Math.min(16, Math.floor((p.totalStock ?? 1000) / 50)));
      const total = p.totalStock ?? 2_000_000_000;
      for (let s = 0; s < n; s++) {
        await db.insert(prizeStockShards).values({
          prizeId: row!.id, shard: s, remaining: Math.floor(total / n) + (s < total % n ? 1 : 0),
          dailyShare: p.dailyStock != null ? Math.floor(p.dailyStock / n) + (s < p.dailyStock % n ? 1 : 0) : null,
        });
      }
    }
  }
  const plain = generateCodes(o.codes ?? 10);
  const [batch] = await db.insert(codeBatches).values({ campaignId: c!.id, name: '第一批', source: 'imported', count: plain.length, status: 'active', codeLength: 12 }).returning();
  const rows = plain.map((code, seq) => ({
    key: codeLookupKey(code, codeKey), batchId: batch!.id, seq,
    prizeId: o.deck && seq < o.deck.length ? prizes[o.deck[seq]!]!.id : null,
  }));
  for (let i = 0; i < rows.length; i += 1000) await db.insert(codes).values(rows.slice(i, i + 1000));
  return { campaign: c!, prizes, batch: batch!, codes: plain };
}

export async function setCampaign(database: Database, id: number, patch: Partial<typeof campaigns.$inferInsert>) {
  await database.db.update(campaigns).set(patch).where(eq(campaigns.id, id));
}
