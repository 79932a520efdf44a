/**
 * The draw itself: a weighted pick with the server's CSPRNG. Pure apart from the random source.
 * Probability of a prize = weight / Σ weights over the campaign's prize table ("thanks" entries included);
 * a prize that turns out to be out of stock becomes "thanks", so the published odds are upper bounds and
 * never shift towards other prizes.
 */
import { randomInt } from 'node:crypto';

export interface WeightedPrize {
  id: number;
  weight: number;
}

export type RandomInt = (maxExclusive: number) => number;

export interface Pick {
  /** [[prizeId, weight], …] as drawn from (the audit record). */
  eligible: Array<[number, number]>;
  roll: number;
  prizeId: number | null;
}

export function weightedPick(prizes: readonly WeightedPrize[], random: RandomInt = randomInt): Pick {
  const eligible = prizes.filter((p) => p.weight > 0).map((p) => [p.id, p.weight] as [number, number]);
  const total = eligible.reduce((s, [, w]) => s + w, 0);
  if (total === 0) return { eligible, roll: 0, prizeId: null };
  if (total > 2 ** 48 - 1) throw new Error('prize weights too large');
  const roll = random(total);
  let acc = 0;
  for (const [id, w] of eligible) {
    acc += w;
    if (roll < acc) return { eligible, roll, prizeId: id };
  }
  return { eligible, roll, prizeId: null };
}
