// Invite friends: my invite code and my mini-program code image (wxacode.getUnlimited), how many I invited and how
// many became members (the reward comes when they do). Sharing opens the mini program with my code.
import type { InviteView } from '../../../shared/members';
import { ApiError } from '../../services/api';
import { inviteImage, myInvite } from '../../services/member';

Page({
  data: {
    loading: true,
    error: '',
    notice: '',
    code: '',
    image: '',
    imageError: '',
    invited: 0,
    rewarded: 0,
  },

  invite: null as InviteView | null,

  onLoad() {
    this.load();
  },

  load(): Promise<void> {
    return myInvite()
      .then((v) => {
        this.invite = v;
        this.setData({ loading: false, error: '', code: v.code, invited: v.invited, rewarded: v.rewarded });
        return inviteImage(v.imagePath).then(
          (image) => this.setData({ image, imageError: '' }),
          () => this.setData({ imageError: '小程序码暂时无法生成，可以先复制邀请码发给好友' }),
        );
      })
      .catch((err: unknown) => this.setData({ loading: false, error: err instanceof ApiError ? err.message : '加载失败，请稍后再试' }));
  },

  onCopy() {
    if (!this.data.code) return;
    wx.setClipboardData({ data: this.data.code, success: () => this.setData({ notice: '邀请码已复制' }) });
  },

  onPreview() {
    if (this.data.image) wx.previewImage({ urls: [this.data.image], current: this.data.image });
  },

  onShareAppMessage() {
    const v = this.invite;
    return {
      title: '一起来领会员积分和好礼',
      path: v ? `/${v.page.replace(/^\//, '')}?scene=${encodeURIComponent(v.scene)}` : '/pages/index/index',
    };
  },
});
