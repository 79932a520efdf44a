/**
 * The redemption statement alone (campaigns/redeem-repo.ts redeemMany: code, counter, redemption, draw, points and
 * lot in one statement and one commit) at several batch sizes, sequentially, on a database that a
 * `npm run bench:redeem -- --keep-db` run left behind (its seeded campaign, users and fresh codes). What a batch costs
 * as it grows: a fixed part per statement, a part per code, and anything that grows faster than the batch.
 *
 *   npm run bench:redeem-statement -- --url postgres://postgres@127.0.0.1:5432/bench_<name> [--sizes 25,50,100,200] [--batches 40]
 *
 * Every code of a batch comes from a distinct user whose profile unlocks the draw, so each is drawn in the statement:
 * one in 20 wins the campaign's points prize, the others lose and get its consolation points (the bench's mix). The
 * codes are used up (redeemed for real): drop the database by hand afterwards. Prints the median batch time per size.
 */
import pg from 'pg';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { openDatabase } from '../../server/src/db/client.ts';
import { createRedeemRepo, type FusedDraw } from '../../server/src/campaigns/redeem-repo.ts';
import { localDay } from '../../server/src/campaigns/texts.ts';
import { log, positiveInt, printHelpAndExit, runMain } from './lib.ts';

runMain(async () => {
  const { values } = parseArgs({
    options: { url: { type: 'string' }, sizes: { type: 'string', default: '25,50,100,200' }, batches: { type: 'string', default: '40' }, help: { type: 'boolean', default: false } },
    strict: true,
  });
  if (values.help) printHelpAndExit(import.meta.url);
  if (!values.url) throw new Error('--url is required: a database left by npm run bench:redeem -- --keep-db (see --help)');
  const sizes = values.sizes!.split(',').map((s) => positiveInt('sizes', s.trim()));
  const batches = positiveInt('batches', values.batches!);

  const admin = new pg.Client({ connectionString: values.url });
  await admin.connect();
  const database = await openDatabase({ url: values.url, poolSize: 2 });
  try {
    const [c] = (await admin.query(`SELECT id, questions, unlock_min, loss_points FROM campaigns WHERE status = 'live' ORDER BY id LIMIT 1`)).rows;
    if (!c) throw new Error('no live campaign: point --url at a database left by npm run bench:redeem -- --keep-db');
    const prizes = (await admin.query(`SELECT id, kind, value, weight FROM campaign_prizes WHERE campaign_id = $1 ORDER BY position, id`, [c.id])).rows;
    const points = prizes.find((p) => p.kind === 'points');
    const thanks = prizes.find((p) => p.kind === 'thanks');
    if (!points || !thanks) throw new Error('the campaign needs a points prize and a thanks prize');
    const users: string[] = (await admin.query(`SELECT DISTINCT openid FROM profile_answers`)).rows.map((r) => r.openid);
    const need = sizes.reduce((s, b) => s + b * batches, 0);
    const codes: string[] = (await admin.query(`
      SELECT encode(c.key, 'hex') AS k FROM codes c JOIN code_batches b ON b.id = c.batch_id
      WHERE b.campaign_id = $1 AND b.status = 'active' AND c.redeemed_at IS NULL LIMIT $2`, [c.id, need])).rows.map((r) => r.k);
    if (codes.length < need) throw new Error(`${need} fresh codes needed, ${codes.length} left`);
    if (users.length < Math.max(...sizes)) throw new Error(`a batch needs distinct users: ${users.length} users for batches of ${Math.max(...sizes)}`);

    const questions = c.questions as Array<{ key: string; required?: boolean }>;
    const eligible = prizes.filter((p) => p.weight > 0).map((p) => [p.id, p.weight] as [number, number]);
    const fuse = (won: boolean): Record<string, FusedDraw> => ({
      [String(c.id)]: {
        keys: questions.map((q) => q.key), required: questions.filter((q) => q.required).map((q) => q.key), min: Math.min(c.unlock_min, questions.length),
        eligible, roll: 0, drawn_prize_id: won ? points.id : thanks.id, prize_id: won ? points.id : null, outcome: won ? 'won' : 'lost',
        f_kind: won ? 'points' : null, f_amount: won ? points.value : 0, points: won ? points.value : c.loss_points, limited: false, shard: 0, loss_points: c.loss_points,
      },
    });
    const repo = createRedeemRepo(database);
    let next = 0;
    let userOffset = 0;
    console.log('| codes per statement | median ms | per code µs | p90 ms |\n|---:|---:|---:|---:|');
    for (const size of sizes) {
      const times: number[] = [];
      for (let n = 0; n < batches; n++) {
        const at = new Date();
        const items = Array.from({ length: size }, (_, i) => ({
          key: codes[next++]!, openid: users[(userOffset + i) % users.length]!, at, day: localDay(at), fuse: fuse(i % 20 === 0),
        }));
        userOffset += size;
        const t0 = performance.now();
        const rows = await repo.redeemMany(items);
        times.push(performance.now() - t0);
        const drawn = rows.filter((r) => r.draw_id).length;
        if (drawn !== size) throw new Error(`${size - drawn} of ${size} codes were not drawn in the statement (used codes, or a daily limit?)`);
      }
      times.sort((a, b) => a - b);
      const median = times[Math.floor(times.length / 2)]!;
      const p90 = times[Math.floor(times.length * 0.9)]!;
      console.log(`| ${size} | ${median.toFixed(2)} | ${((median / size) * 1000).toFixed(0)} | ${p90.toFixed(2)} |`);
      log(`${size} codes per statement: median ${median.toFixed(2)} ms over ${batches} statements`);
    }
  } finally {
    await database.close();
    await admin.end();
  }
});
