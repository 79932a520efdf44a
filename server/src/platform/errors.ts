/**
 * Error codes are born here, mapped once to HTTP ({ code, message }) and once to chat text.
 */
export const ERRORS = {
  BAD_REQUEST: { status: 400, message: 'Bad request' },
  MALFORMED_XML: { status: 400, message: 'Malformed XML' },
  BAD_SIGNATURE: { status: 401, message: 'Signature check failed' },
  STALE_TIMESTAMP: { status: 401, message: 'Timestamp outside the accepted window' },
  UNAUTHENTICATED: { status: 401, message: 'Login required' },
  BAD_CREDENTIALS: { status: 401, message: 'Wrong username or password' },
  FORBIDDEN: { status: 403, message: 'Your role may not do this' },
  NOT_FOUND: { status: 404, message: 'Not found' },
  CONFLICT: { status: 409, message: 'Conflict' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, message: 'Unsupported content type' },
  VALIDATION: { status: 422, message: 'Invalid input' },
  WECHAT_API: { status: 502, message: 'WeChat API call failed' },
  INTERNAL: { status: 500, message: 'Internal error' },
} as const;

export type ErrorCode = keyof typeof ERRORS;

export class AppError extends Error {
  readonly status: number;
  constructor(readonly code: ErrorCode, message?: string, readonly details?: unknown) {
    super(message ?? ERRORS[code].message);
    this.name = 'AppError';
    this.status = ERRORS[code].status;
  }
}

/** Friendly text for consumers in chat when something went wrong on our side. */
export const CHAT_TEXT = {
  busy: '系统繁忙，请稍后再试。',
} as const;
