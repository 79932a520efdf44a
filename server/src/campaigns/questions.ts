/**
 * Golden questions in chat: how a question is asked (numbered options) and how an answer is read
 * (by number or by text; "跳过" skips an optional one). Pure: no database.
 */
import type { GoldenQuestion } from '../../../shared/campaigns.ts';
import { PROVINCES, findCity, findProvince, normalizeRegionInput } from './regions.ts';

export const SKIP_WORDS = new Set(['跳过', '跳过此题', '略过', 'skip']);

/** Region questions take two turns; this is the turn's memory. */
export interface QuestionStep {
  provinceCode?: string;
}

export type AnswerResult =
  | { kind: 'answer'; value: unknown; display: string }
  | { kind: 'next'; step: QuestionStep; prompt: string }
  | { kind: 'skip' }
  | { kind: 'invalid'; reason: string };

const numbered = (items: readonly string[]) => items.map((s, i) => `${i + 1}. ${s}`).join('\n');

function optionsOf(q: GoldenQuestion): string[] {
  if (q.kind === 'choice') return q.options ?? [];
  if (q.kind === 'range') return (q.ranges ?? []).map((r) => r.label);
  return [];
}

/** The question as the user sees it (without the "第n题" prefix). */
export function promptOf(q: GoldenQuestion, step: QuestionStep = {}): string {
  if (q.kind === 'region') {
    if (!step.provinceCode) return `${q.prompt}\n请先回复省份名称（如：广东、上海），也可以直接回复“省份+城市”（如：广东深圳）。`;
    const p = PROVINCES.find((x) => x.code === step.provinceCode)!;
    return `${p.name}的哪个城市？请回复序号或名称：\n${numbered(p.cities.map((c) => c.name))}`;
  }
  const opts = optionsOf(q);
  if (opts.length > 0) return `${q.prompt}\n${numbered(opts)}\n请回复序号或选项文字。`;
  if (q.kind === 'number') return `${q.prompt}${q.min !== undefined && q.max !== undefined ? `（${q.min}–${q.max}）` : ''}`;
  return q.prompt;
}

function pickOption(options: readonly string[], text: string): number | undefined {
  const s = text.replace(/[\s。.、，,]+$/g, '').trim();
  if (/^\d{1,2}$/.test(s)) {
    const n = Number(s);
    return n >= 1 && n <= options.length ? n - 1 : undefined;
  }
  const exact = options.findIndex((o) => o === s);
  if (exact >= 0) return exact;
  const lower = s.toLowerCase();
  const loose = options.findIndex((o) => o.toLowerCase() === lower);
  return loose >= 0 ? loose : undefined;
}

function parseNumber(text: string): number | undefined {
  const s = text.normalize('NFKC').replace(/[,，\s]/g, '').replace(/(元|块|块钱|人民币)$/, '');
  return /^-?\d+(\.\d+)?$/.test(s) ? Number(s) : undefined;
}

export function readAnswer(q: GoldenQuestion, input: string, step: QuestionStep = {}): AnswerResult {
  const text = input.normalize('NFKC').trim();
  if (SKIP_WORDS.has(text.toLowerCase())) {
    return q.required ? { kind: 'invalid', reason: '这道题是必答题，不能跳过哦。' } : { kind: 'skip' };
  }
  if (text.length === 0) return { kind: 'invalid', reason: '回答不能为空。' };

  switch (q.kind) {
    case 'text': {
      const min = q.minLength ?? 1;
      const max = q.maxLength ?? 50;
      const len = [...text].length;
      if (len < min || len > max) return { kind: 'invalid', reason: `请输入 ${min}–${max} 个字。` };
      if (q.pattern && !new RegExp(q.pattern, 'u').test(text)) return { kind: 'invalid', reason: q.patternHint ?? '格式不正确。' };
      return { kind: 'answer', value: text, display: text };
    }
    case 'choice': {
      const options = q.options ?? [];
      const i = pickOption(options, text);
      if (i === undefined) return { kind: 'invalid', reason: `请回复 1–${options.length} 之间的序号，或选项文字。` };
      return { kind: 'answer', value: options[i], display: options[i]! };
    }
    case 'range': {
      const ranges = q.ranges ?? [];
      const i = pickOption(ranges.map((r) => r.label), text);
      if (i !== undefined) return { kind: 'answer', value: { label: ranges[i]!.label, min: ranges[i]!.min ?? null, max: ranges[i]!.max ?? null }, display: ranges[i]!.label };
      // A bare number like "75" is read as an amount only when it is beyond the option numbers.
      const n = parseNumber(text);
      if (n !== undefined && !(Number.isInteger(n) && n >= 1 && n <= ranges.length && /^\d+$/.test(text))) {
        const r = ranges.find((x) => (x.min === undefined || n >= x.min) && (x.max === undefined || n < x.max));
        if (r) return { kind: 'answer', value: { label: r.label, min: r.min ?? null, max: r.max ?? null, amount: n }, display: r.label };
      }
      return { kind: 'invalid', reason: `请回复 1–${ranges.length} 之间的序号，或选项文字。` };
    }
    case 'number': {
      const n = parseNumber(text);
      if (n === undefined) return { kind: 'invalid', reason: '请输入一个数字。' };
      if ((q.min !== undefined && n < q.min) || (q.max !== undefined && n > q.max)) return { kind: 'invalid', reason: `请输入 ${q.min ?? '-∞'}–${q.max ?? '∞'} 之间的数字。` };
      return { kind: 'answer', value: n, display: String(n) };
    }
    case 'region': {
      const s = normalizeRegionInput(text);
      if (!step.provinceCode) {
        const p = findProvince(s) ?? PROVINCES.find((x) => s.startsWith(x.name) || s.startsWith(x.short));
        if (!p) return { kind: 'invalid', reason: '没有找到这个省份，请回复省份名称，如：广东、四川、上海。' };
        const rest = findProvince(s) ? '' : s.slice(s.startsWith(p.name) ? p.name.length : p.short.length);
        const city = rest ? findCity(p, rest) : p.cities.length === 1 ? p.cities[0] : undefined;
        if (city) return regionAnswer(p.code, p.name, city.code, city.name);
        return { kind: 'next', step: { provinceCode: p.code }, prompt: promptOf(q, { provinceCode: p.code }) };
      }
      const p = PROVINCES.find((x) => x.code === step.provinceCode)!;
      const city = findCity(p, s);
      if (!city) return { kind: 'invalid', reason: `没有找到这个城市，请回复 1–${p.cities.length} 之间的序号或城市名称。` };
      return regionAnswer(p.code, p.name, city.code, city.name);
    }
  }
}

function regionAnswer(provinceCode: string, province: string, cityCode: string, city: string): AnswerResult {
  return { kind: 'answer', value: { provinceCode, province, cityCode, city }, display: province === city ? province : `${province} ${city}` };
}
