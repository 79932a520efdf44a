// The one jsdom API the harness uses (jsdom ships no types; @types/jsdom would pull the DOM lib into the server's code).
declare module 'jsdom' {
  export class JSDOM {
    constructor(html?: string, options?: { pretendToBeVisual?: boolean; url?: string });
    readonly window: any;
  }
}
