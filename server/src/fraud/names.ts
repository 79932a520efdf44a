/**
 * The shared-name signal's view of a typed name: normalised, and null for the generic forms many honest people type
 * (a title, a nickname, a bare English given name), which say nothing about who typed them. Pure; see docs/FRAUD.md.
 */

/** The key of the name question (campaigns/questions-defaults.ts): only answers to it are counted as names. */
export const NAME_QUESTION_KEY = 'name';

const HAN = '\\u3400-\\u9fff\\uf900-\\ufaff';
/** Titles after a surname (王先生, 欧阳女士) and on their own. */
const TITLES = ['先生', '女士', '小姐', '老师', '师傅', '老板', '阿姨', '叔叔', '大哥', '大姐', '同学', '经理', '医生', '太太', '夫人', '老弟', '帅哥', '美女', '老总', '主任', '律师'];
/** One-character titles and kinship terms after a surname (王总, 李哥, 张姐). */
const SHORT_TITLES = '总哥姐叔姨爷伯工董';
const TITLED = new RegExp(`^[${HAN}]{1,2}(?:${TITLES.join('|')})$`, 'u');
const SHORT_TITLED = new RegExp(`^[${HAN}][${SHORT_TITLES}]$`, 'u');
/** 小王, 老李, 阿强: two-character nicknames. */
const NICKNAME = new RegExp(`^[小老阿][${HAN}]$`, 'u');
/** 丽丽, 乐乐: a doubled character. */
const DOUBLED = new RegExp(`^([${HAN}])\\1$`, 'u');
/** A single Latin word (tony, kevin, zhangwei): English given names are shared by far more people than full names. */
const LATIN_WORD = /^[a-z]+$/;
const SPACE_BY_HAN = new RegExp(` ?([${HAN}]) ?`, 'gu');
/** Words typed instead of a name. */
const GENERIC = new Set([
  ...TITLES, '朋友', '用户', '微信用户', '匿名', '无名', '无名氏', '本人', '保密', '随便', '你好', '您好', '哈哈', '哈哈哈', '呵呵', '宝宝',
  '顾客', '客户', '测试', '没有', '不知道', '不告诉你', '不想说', '自己', '路人', '路人甲', '家人', '老铁', '兄弟', '姐妹', '哥哥', '姐姐',
  '弟弟', '妹妹', '爸爸', '妈妈', '老公', '老婆', '先生女士',
]);

/** Trim, NFKC (full-width letters and spaces), lower case, one space between words, none beside a Chinese character. */
export function normaliseName(display: string): string {
  return display.normalize('NFKC').toLowerCase().replace(/[•‧∙・]/g, '·').replace(/\s+/g, ' ').trim().replace(SPACE_BY_HAN, '$1');
}

/** The normalised name when it may identify a person, else null (too short, a title, a nickname, a bare given name). */
export function countedName(display: string): string | null {
  const v = normaliseName(display);
  if ([...v].length < 2 || [...v].length > 40) return null;
  if (GENERIC.has(v) || TITLED.test(v) || SHORT_TITLED.test(v) || NICKNAME.test(v) || DOUBLED.test(v) || LATIN_WORD.test(v)) return null;
  return v;
}
