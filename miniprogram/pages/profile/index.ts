// Profile and privacy: my golden-question answers (shared with the chat flow; edit them here), privacy consent with its
// policy version and time, export of all my data (JSON), and deleting my account (PIPL).
import type { ProfileView } from '../../../shared/members';
import { config } from '../../config';
import { ApiError } from '../../services/api';
import { deleteAccount, exportMyData, giveConsent, me, profile, updateProfile } from '../../services/member';

interface Row {
  key: string;
  prompt: string;
  shown: string;
  options: string[];
  kind: string;
}

interface Question {
  key: string;
  kind: string;
  prompt: string;
  options?: string[];
  ranges?: Array<{ label: string }>;
}

function rows(v: ProfileView): Row[] {
  const answers = new Map(v.answers.map((a) => [a.key, a.display]));
  return (v.questions as Question[]).map((q) => ({
    key: q.key, kind: q.kind, prompt: q.prompt, shown: answers.get(q.key) ?? '',
    options: q.kind === 'choice' ? q.options ?? [] : q.kind === 'range' ? (q.ranges ?? []).map((r) => r.label) : [],
  }));
}

function confirm(title: string, content: string): Promise<boolean> {
  return new Promise((resolve) => {
    wx.showModal({ title, content, confirmColor: '#e64340', success: (r) => resolve(r.confirm), fail: () => resolve(false) });
  });
}

Page({
  data: {
    loading: true,
    error: '',
    notice: '',
    rows: [] as Row[],
    complete: false,
    consent: '',
    policyVersion: config.privacyVersion,
    exported: '',
    deleted: false,
  },

  /** Edited answers not yet saved, by key (text the server reads as the chat does). */
  edits: {} as Record<string, string>,

  onLoad() {
    this.edits = {};
    this.load();
  },

  load(): Promise<void> {
    return Promise.all([profile(), me()])
      .then(([p, m]) => {
        this.setData({
          loading: false, error: '', rows: rows(p), complete: p.complete,
          consent: m.consent && m.consent.version === config.privacyVersion ? `已于 ${m.consent.at.slice(0, 10)} 同意（版本 ${m.consent.version}）` : '',
        });
      })
      .catch((err: unknown) => this.setData({ loading: false, error: err instanceof ApiError ? err.message : '加载失败，请稍后再试' }));
  },

  onInput(e: WechatMiniprogram.Input) {
    this.edits[String(e.currentTarget.dataset['key'])] = e.detail.value;
  },

  onPick(e: WechatMiniprogram.PickerChange) {
    const key = String(e.currentTarget.dataset['key']);
    const row = this.data.rows.find((r) => r.key === key);
    const option = row?.options[Number(e.detail.value)];
    if (!row || option === undefined) return;
    this.edits[key] = option;
    this.setData({ rows: this.data.rows.map((r) => (r.key === key ? { ...r, shown: option } : r)) });
  },

  onSave() {
    const answers: Record<string, string> = {};
    for (const [k, v] of Object.entries(this.edits)) if (v.trim()) answers[k] = v.trim();
    if (Object.keys(answers).length === 0) {
      this.setData({ notice: '没有需要保存的修改' });
      return;
    }
    updateProfile(answers)
      .then((p) => {
        this.edits = {};
        this.setData({ rows: rows(p), complete: p.complete, notice: '资料已保存' });
      })
      .catch((err: unknown) => this.setData({ notice: err instanceof ApiError ? err.message : '保存失败，请稍后再试' }));
  },

  onConsent() {
    giveConsent(config.privacyVersion)
      .then((c) => this.setData({ consent: `已于 ${c.at.slice(0, 10)} 同意（版本 ${c.version}）`, notice: '感谢您的同意' }))
      .catch((err: unknown) => this.setData({ notice: err instanceof ApiError ? err.message : '提交失败，请稍后再试' }));
  },

  onExport() {
    exportMyData()
      .then((data) => {
        const json = JSON.stringify(data, null, 2);
        // The member keeps it by copying it (a mini program cannot save arbitrary files to the phone).
        wx.setClipboardData({ data: json });
        this.setData({ exported: `已导出 ${Object.keys(data).length} 类数据，共 ${json.length} 个字符，已复制到剪贴板`, notice: '' });
      })
      .catch((err: unknown) => this.setData({ notice: err instanceof ApiError ? err.message : '导出失败，请稍后再试' }));
  },

  async onDelete() {
    if (!(await confirm('注销账号', '注销后您的个人信息将被删除，积分、券和会员等级将无法恢复。确定注销吗？'))) return;
    try {
      await deleteAccount();
      this.setData({ deleted: true, rows: [], consent: '', notice: '' });
    } catch (err) {
      this.setData({ notice: err instanceof ApiError ? err.message : '注销失败，请稍后再试' });
    }
  },

  onHome() {
    wx.reLaunch({ url: '/pages/index/index' });
  },
});
