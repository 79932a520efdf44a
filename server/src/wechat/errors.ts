/** A WeChat API answer with a non-zero errcode. `rid` is what WeChat support asks for. */
export class WeChatApiError extends Error {
  readonly rid: string | undefined;
  constructor(readonly errcode: number, readonly errmsg: string, readonly path: string) {
    super(`WeChat API ${path} failed: ${errcode} ${errmsg}`);
    this.name = 'WeChatApiError';
    this.rid = /rid:\s*([\w-]+)/.exec(errmsg)?.[1];
  }
}

/** Transport failure: no answer, or not the answer shape WeChat gives. */
export class WeChatTransportError extends Error {
  constructor(readonly path: string, message: string) {
    super(`WeChat API ${path}: ${message}`);
    this.name = 'WeChatTransportError';
  }
}
