/// <reference path="../../node_modules/miniprogram-api-typings/index.d.ts" />

// Shape of the App instance; use `getApp<IAppOption>()` in pages to access it.
interface IAppOption {
  globalData: {
    /** Backend member id once the user has logged in; null until then. */
    memberId: number | null;
  };
}
