// Mini program entry. Login happens here (the first page's calls then find the session ready); an invite code the
// mini program was opened with (the scene of the inviter's mini-program code) goes with that login.
import { currentMember, ensureLogin, rememberInvite } from './services/api';

App<IAppOption>({
  globalData: {
    memberId: null,
  },
  onLaunch(options) {
    // The invite code image's scene is `i=<code>` (wxacode.getUnlimited hands it over URL-encoded).
    const scene = options.query?.['scene'];
    const invite = typeof scene === 'string' ? /^i=([A-Za-z0-9]{4,16})$/.exec(decodeURIComponent(scene)) : null;
    if (invite) rememberInvite(invite[1]!);
    ensureLogin()
      .then(() => {
        this.globalData.memberId = currentMember()?.memberId ?? null;
      })
      // A failed login is retried by the first call that needs it.
      .catch(() => undefined);
  },
});
