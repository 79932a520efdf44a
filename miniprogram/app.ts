// Mini program entry. Login happens here (the first page's calls then find the session ready); an invite code the
// mini program was opened with (the scene of the inviter's mini-program code) goes with that login.
import { currentMember, ensureLogin, rememberInvite } from './services/api';

App<IAppOption>({
  globalData: {
    memberId: null,
  },
  onLaunch(options) {
    const scene = options.query?.['scene'];
    if (typeof scene === 'string' && scene) rememberInvite(decodeURIComponent(scene));
    ensureLogin()
      .then(() => {
        this.globalData.memberId = currentMember()?.memberId ?? null;
      })
      // A failed login is retried by the first call that needs it.
      .catch(() => undefined);
  },
});
