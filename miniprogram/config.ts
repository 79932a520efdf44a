// Where this build of the mini program talks to. DevTools (sandbox server on this machine) by default; a release build
// sets the HTTPS origin registered as the mini program's request domain. Tests point it at their own server.
export interface MpConfig {
  apiBase: string;
  /** Privacy policy version the profile page asks consent for. */
  privacyVersion: string;
}

export const config: MpConfig = {
  apiBase: 'http://127.0.0.1:3000',
  privacyVersion: '2026-12',
};

export function configure(patch: Partial<MpConfig>): void {
  Object.assign(config, patch);
}
