// Redeem an on-pack code: scan it (wx.scanCode) or type it → answer the golden questions as a form (pickers; province →
// city) → the draw and its result. Opened with ?id=<redemption> it resumes that redemption; with ?q=<the pack's QR URL>
// (WeChat's own scanner opening the mini program) it redeems at once; with ?code=… it pre-fills.
import type { MpAnswerValue, MpDrawResult, MpQuestion, MpRedemption, MpRegionProvince } from '../../../shared/mp-redeem';
import { ApiError } from '../../services/api';
import { draw, getRedemption, redeemCode, submitAnswers } from '../../services/redeem';

type Step = 'code' | 'questions' | 'ready' | 'result';

/** A question as the form shows it. */
interface Field {
  key: string;
  kind: MpQuestion['kind'];
  prompt: string;
  required: boolean;
  options: string[];
  /** What the field shows: typed text, the picked option, "省 市". */
  shown: string;
  /** Index of the picked option (choice, range). */
  optionIndex: number;
  /** The region picker's two columns and their selection. */
  columns: string[][];
  columnIndex: number[];
  inputType: 'text' | 'digit';
  placeholder: string;
  error: string;
}

const NEXT_HINT: Record<MpDrawResult['next'], string> = {
  points_credited: '积分已存入您的会员账户，可在“会员中心”查看。',
  coupon_issued: '优惠券已放入“我的券”，到店出示券码即可使用。',
  topup_pending: '话费将充值到您绑定的手机号，通常几分钟内到账。',
  cash_confirm: '现金红包需要您确认收款，稍后会收到提醒，请及时确认。',
  physical_contact: '客服将与您联系寄送奖品，请留意消息。',
  under_review: '奖品正在审核中，审核通过后将自动发放。',
  none: '',
};

function toField(q: MpQuestion): Field {
  const options = q.options ?? [];
  return {
    key: q.key, kind: q.kind, prompt: q.prompt, required: q.required, options,
    shown: '', optionIndex: -1, columns: [], columnIndex: [0, 0],
    inputType: q.kind === 'number' ? 'digit' : 'text',
    placeholder: q.kind === 'text' && q.maxLength ? `请输入（${q.minLength ?? 1}–${q.maxLength} 个字）` : q.kind === 'number' ? '请输入数字' : '请输入',
    error: '',
  };
}

Page({
  data: {
    step: 'code' as Step,
    code: '',
    busy: false,
    error: '',
    message: '',
    campaignName: '',
    redemptionId: '',
    needed: 0,
    fields: [] as Field[],
    result: null as null | {
      won: boolean;
      title: string;
      message: string;
      points: number;
      balance: number;
      nextHint: string;
      recommendation: string;
    },
  },

  /** Answers collected so far by question key (not rendered). */
  answers: {} as Record<string, MpAnswerValue>,
  /** The cascade of each region question (not rendered: it is large). */
  cascades: {} as Record<string, MpRegionProvince[]>,

  onLoad(query: Record<string, string | undefined>) {
    this.answers = {};
    this.cascades = {};
    const id = query['id'];
    if (id && /^\d+$/.test(id)) {
      this.setData({ busy: true });
      getRedemption(id).then((r) => this.show(r), (err: unknown) => this.fail(err));
    } else if (query['q']) {
      // Opened by scanning the pack's QR code with WeChat itself ("扫普通链接二维码打开小程序"): `q` is the URL.
      this.redeem(decodeURIComponent(query['q']), 'scan');
    } else if (query['code']) {
      this.setData({ code: query['code'] });
    }
  },

  onCodeInput(e: WechatMiniprogram.Input) {
    this.setData({ code: e.detail.value, error: '' });
  },

  onSubmitCode() {
    const code = this.data.code.trim();
    if (!code) {
      this.setData({ error: '请输入包装内的兑奖码' });
      return;
    }
    this.redeem(code, 'typed');
  },

  onScan() {
    wx.scanCode({
      onlyFromCamera: false,
      scanType: ['qrCode', 'barCode'],
      success: (res) => {
        this.setData({ code: res.result });
        this.redeem(res.result, 'scan');
      },
      fail: () => this.setData({ error: '未识别到兑奖码，也可以直接输入' }),
    });
  },

  redeem(code: string, via: 'scan' | 'typed') {
    if (this.data.busy) return;
    this.setData({ busy: true, error: '' });
    redeemCode(code, via).then((r) => this.show(r), (err: unknown) => this.fail(err));
  },

  show(r: MpRedemption) {
    const base = { busy: false, error: '', redemptionId: r.id, campaignName: r.campaign.name, message: r.message, needed: r.needed };
    if (r.draw) {
      this.setData({ ...base, step: 'result' as Step, fields: [], result: this.resultView(r.draw) });
      return;
    }
    if (r.unlocked) {
      this.setData({ ...base, step: 'ready' as Step, fields: [] });
      return;
    }
    this.answers = {};
    this.cascades = {};
    const fields = r.questions.map((q) => {
      const f = toField(q);
      if (q.kind === 'region' && q.provinces) {
        this.cascades[q.key] = q.provinces;
        f.columns = [q.provinces.map((p) => p.name), (q.provinces[0]?.cities ?? []).map((c) => c.name)];
      }
      return f;
    });
    this.setData({ ...base, step: 'questions' as Step, fields });
  },

  resultView(d: MpDrawResult) {
    const won = d.outcome === 'won' && !!d.prize;
    const rec = d.recommendation;
    return {
      won,
      title: won ? `恭喜您抽中【${d.prize!.name}】` : d.outcome === 'out_of_stock' ? '本轮奖品已发完' : '很遗憾，这次没有中奖',
      message: d.message,
      points: d.points,
      balance: d.balance,
      nextHint: won || d.next === 'under_review' ? NEXT_HINT[d.next] : d.points > 0 ? NEXT_HINT.points_credited : '',
      recommendation: rec ? (rec.description ? `${rec.title}——${rec.description}` : rec.title) : '',
    };
  },

  fail(err: unknown) {
    const message = err instanceof ApiError ? err.message : '网络异常，请稍后再试';
    if (err instanceof ApiError && err.reason === 'invalid_answers') {
      const fields = (err.details as { fields?: Record<string, string> }).fields ?? {};
      this.setData({ busy: false, error: message, fields: this.data.fields.map((f) => ({ ...f, error: fields[f.key] ?? '' })) });
      return;
    }
    this.setData({ busy: false, error: message });
  },

  fieldIndex(e: { currentTarget: { dataset: Record<string, unknown> } }): number {
    return Number(e.currentTarget.dataset['index']);
  },

  updateField(i: number, patch: Partial<Field>) {
    const fields = this.data.fields.map((f, j) => (j === i ? { ...f, ...patch, error: '' } : f));
    this.setData({ fields, error: '' });
  },

  onTextInput(e: WechatMiniprogram.Input) {
    const i = this.fieldIndex(e);
    const f = this.data.fields[i];
    if (!f) return;
    const v = e.detail.value;
    if (f.kind === 'number') {
      const n = Number(v);
      this.answers[f.key] = v.trim() === '' || !Number.isFinite(n) ? v : n;
    } else {
      this.answers[f.key] = v;
    }
    this.updateField(i, { shown: v });
  },

  onOptionPick(e: WechatMiniprogram.PickerChange) {
    const i = this.fieldIndex(e);
    const f = this.data.fields[i];
    if (!f) return;
    const k = Number(e.detail.value);
    const option = f.options[k];
    if (option === undefined) return;
    this.answers[f.key] = option;
    this.updateField(i, { shown: option, optionIndex: k });
  },

  onRegionColumn(e: WechatMiniprogram.PickerColumnChange) {
    const i = this.fieldIndex(e);
    const f = this.data.fields[i];
    if (!f || e.detail.column !== 0) return;
    const p = (this.cascades[f.key] ?? [])[e.detail.value];
    if (!p) return;
    const fields = this.data.fields.map((x, j) => (j === i ? { ...x, columns: [x.columns[0] ?? [], p.cities.map((c) => c.name)], columnIndex: [e.detail.value, 0] } : x));
    this.setData({ fields });
  },

  onRegionPick(e: WechatMiniprogram.PickerChange) {
    const i = this.fieldIndex(e);
    const f = this.data.fields[i];
    if (!f) return;
    const [pi = 0, ci = 0] = (e.detail.value as Array<number | string>).map(Number);
    const p = (this.cascades[f.key] ?? [])[pi];
    const c = p?.cities[ci];
    if (!p || !c) return;
    this.answers[f.key] = { provinceCode: p.code, cityCode: c.code };
    this.updateField(i, { shown: p.name === c.name ? p.name : `${p.name} ${c.name}`, columnIndex: [pi, ci] });
  },

  onSubmitAnswers() {
    if (this.data.busy) return;
    const missing = this.data.fields.filter((f) => f.required && this.answers[f.key] === undefined);
    if (missing.length > 0) {
      this.setData({ error: '请先回答必答题', fields: this.data.fields.map((f) => (missing.includes(f) ? { ...f, error: '这道题是必答题' } : f)) });
      return;
    }
    const answers: Record<string, MpAnswerValue> = {};
    for (const [k, v] of Object.entries(this.answers)) if (v !== '') answers[k] = v;
    if (Object.keys(answers).length === 0) {
      this.setData({ error: '请至少回答一道题' });
      return;
    }
    this.setData({ busy: true, error: '' });
    submitAnswers(this.data.redemptionId, answers).then((r) => this.show(r), (err: unknown) => this.fail(err));
  },

  onDraw() {
    if (this.data.busy) return;
    this.setData({ busy: true, error: '' });
    draw(this.data.redemptionId).then((r) => this.show(r), (err: unknown) => this.fail(err));
  },

  onAgain() {
    this.answers = {};
    this.cascades = {};
    this.setData({ step: 'code' as Step, code: '', error: '', message: '', redemptionId: '', fields: [], result: null });
  },

  onMemberCentre() {
    wx.navigateTo({ url: '/pages/member/index' });
  },
});
