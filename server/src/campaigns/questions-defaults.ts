/**
 * The golden questions a campaign gets when it is created without `questions` (an explicit empty list means "ask
 * nothing"). Prompts are what consumers read in the chat. The name pattern uses \u escapes so it compiles the same with
 * or without the `u` flag: CJK unified ideographs, Latin letters, the middle dot of transcribed names and spaces.
 */
import type { GoldenQuestion } from '../../../shared/campaigns.ts';

export const DEFAULT_GOLDEN_QUESTIONS: GoldenQuestion[] = [
  {
    key: 'name',
    kind: 'text',
    prompt: '请问怎么称呼您？（2–20 个字，中文或英文）',
    minLength: 2,
    maxLength: 20,
    pattern: '^[\\u4e00-\\u9fa5A-Za-z\\u00b7 ]+$',
    patternHint: '称呼只能包含中文或英文字母，请重新输入。',
  },
  {
    key: 'occupation',
    kind: 'choice',
    prompt: '您的职业是？',
    options: ['学生', '上班族', '个体经营', '自由职业', '退休', '其他'],
  },
  {
    key: 'region',
    kind: 'region',
    prompt: '您所在的省份和城市是？',
  },
  {
    key: 'business_type',
    kind: 'choice',
    prompt: '您经营或常去的门店类型是？',
    options: ['餐饮', '便利店', '商超', '烟酒店', '批发', '其他'],
  },
  {
    key: 'spending',
    kind: 'range',
    prompt: '您平时的人均消费大约是多少？（也可以直接回复金额）',
    ranges: [
      { label: '30元以下', max: 30 },
      { label: '30–60元', min: 30, max: 60 },
      { label: '60–100元', min: 60, max: 100 },
      { label: '100元以上', min: 100 },
    ],
  },
];

/** A fresh copy, so a campaign never shares (or mutates) the module's objects. */
export const defaultGoldenQuestions = (): GoldenQuestion[] => structuredClone(DEFAULT_GOLDEN_QUESTIONS);
