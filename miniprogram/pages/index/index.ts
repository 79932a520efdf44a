// Home page: placeholder until points, tiers and prize redemption are built.
Page({
  data: {
    title: '欢迎来到会员中心',
    subtitle: '敬请期待：积分、等级、兑奖',
  },
  onLoad() {
    // Placeholder: fetch the member profile from the backend here.
  },
});
