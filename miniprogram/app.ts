// Mini program entry. Global state lives in `globalData`, typed by IAppOption (see typings/index.d.ts).
App<IAppOption>({
  globalData: {
    memberId: null,
  },
  onLaunch() {
    // Placeholder: member login (wx.login -> backend session) will be wired up here.
  },
});
