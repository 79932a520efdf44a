/**
 * The pure parts of the lottery and the golden questions: the weighted pick is unbiased (chi-square over a million
 * draws), and answers are read by number or text with the reason when they are not accepted.
 */
import t from 'tap';
import { weightedPick } from '../src/campaigns/lottery.ts';
import { promptOf, readAnswer } from '../src/campaigns/questions.ts';
import { QUESTIONS } from './campaign-fixtures.ts';

t.test('weightedPick: a million draws fit the published odds (chi-square, p > 0.001)', async (t) => {
  const prizes = [{ id: 1, weight: 1 }, { id: 2, weight: 9 }, { id: 3, weight: 90 }, { id: 4, weight: 900 }, { id: 5, weight: 0 }];
  const counts = new Map<number | null, number>();
  const N = 1_000_000;
  for (let i = 0; i < N; i++) {
    const p = weightedPick(prizes).prizeId;
    counts.set(p, (counts.get(p) ?? 0) + 1);
  }
  t.notOk(counts.has(5), 'a zero weight is never drawn');
  const total = 1000;
  let chi2 = 0;
  for (const p of prizes.filter((x) => x.weight > 0)) {
    const expected = (N * p.weight) / total;
    chi2 += (counts.get(p.id)! - expected) ** 2 / expected;
  }
  // 3 degrees of freedom: the 0.999 quantile is 16.27.
  t.ok(chi2 < 16.27, `chi2 = ${chi2.toFixed(2)}`);
});

t.test('weightedPick records what was eligible and the roll', async (t) => {
  const fixed = weightedPick([{ id: 7, weight: 3 }, { id: 8, weight: 2 }], () => 3);
  t.same(fixed, { eligible: [[7, 3], [8, 2]], roll: 3, prizeId: 8 });
  t.same(weightedPick([], () => 0), { eligible: [], roll: 0, prizeId: null });
});

t.test('answers by number or text; skip; reasons', async (t) => {
  const [name, occupation, region, , spending] = QUESTIONS as [any, any, any, any, any];
  t.same(readAnswer(name, ' 张三 '), { kind: 'answer', value: '张三', display: '张三' });
  t.match(readAnswer(name, '张3'), { kind: 'invalid', reason: '姓名只能包含中文或英文字母。' });
  t.match(readAnswer(name, '跳过'), { kind: 'invalid' }, 'required');
  t.same(readAnswer(occupation, '２'), { kind: 'answer', value: '上班族', display: '上班族' }, 'full-width digit');
  t.same(readAnswer(occupation, '退休'), { kind: 'answer', value: '退休', display: '退休' });
  t.same(readAnswer(occupation, '跳过'), { kind: 'skip' });
  t.match(readAnswer(occupation, '宇航员'), { kind: 'invalid', reason: /1–6/ });
  t.match(readAnswer(spending, '3'), { kind: 'answer', display: '60–100元' }, 'option number');
  t.match(readAnswer(spending, '45元'), { kind: 'answer', display: '30–60元', value: { amount: 45 } }, 'an amount falls into its range');
  t.match(readAnswer(spending, '100元以上'), { kind: 'answer', display: '100元以上' });
  t.match(readAnswer(region, '广东深圳'), { kind: 'answer', display: '广东省 深圳市' }, 'province and city in one go');
  t.match(readAnswer(region, '上海'), { kind: 'next' }, 'a municipality still asks for the district');
  const next = readAnswer(region, '四川省');
  t.equal(next.kind, 'next');
  if (next.kind === 'next') {
    t.match(next.prompt, /四川省的哪个城市？/);
    t.match(readAnswer(region, '1', next.step), { kind: 'answer', display: '四川省 成都市' });
    t.match(readAnswer(region, '火星', next.step), { kind: 'invalid' });
  }
  t.match(readAnswer(region, '火星'), { kind: 'invalid', reason: /没有找到这个省份/ });
  t.match(promptOf(occupation), /1\. 学生\n2\. 上班族/);
});
