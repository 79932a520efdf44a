// Minimal typings for co-wechat-api (it ships none): the parts this project calls.
declare module 'co-wechat-api' {
  interface RequestOptions { method?: string; data?: string | Buffer; headers?: Record<string, string>; dataType?: string; timeout?: number }
  class API {
    constructor(appid: string, appsecret: string, getToken?: () => Promise<unknown>, saveToken?: (t: unknown) => Promise<void>, tokenFromCustom?: boolean);
    appid: string;
    appsecret: string;
    prefix: string;
    snsPrefix: string;
    mpPrefix: string;
    fileServerPrefix: string;
    payPrefix: string;
    merchantPrefix: string;
    customservicePrefix: string;
    wxaPrefix: string;
    request(url: string, opts?: RequestOptions, retry?: number): Promise<any>;
    ensureAccessToken(): Promise<{ accessToken: string; expireTime?: number }>;
    getAccessToken(): Promise<{ accessToken: string; expireTime: number }>;
    createMenu(menu: unknown): Promise<any>;
    getMenu(): Promise<any>;
    removeMenu(): Promise<any>;
    addConditionalMenu(menu: unknown): Promise<any>;
    delConditionalMenu(menuid: string | number): Promise<any>;
    sendText(openid: string, text: string): Promise<any>;
    sendImage(openid: string, mediaId: string): Promise<any>;
    sendVoice(openid: string, mediaId: string): Promise<any>;
    sendVideo(openid: string, mediaId: string, thumbMediaId: string): Promise<any>;
    sendMusic(openid: string, music: unknown): Promise<any>;
    sendNews(openid: string, articles: unknown[]): Promise<any>;
    sendMiniProgram(openid: string, miniprogram: unknown): Promise<any>;
    sendTemplate(openid: string, templateId: string, url: string, topColor: string, data: unknown, miniprogram?: unknown): Promise<any>;
    getUser(options: unknown): Promise<any>;
  }
  export default API;
}
