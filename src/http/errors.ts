// The one error type of the HTTP boundary: thrown by routes, rendered by the app's error handler.
export class HttpError extends Error {
  constructor(readonly statusCode: 400 | 401 | 403 | 404 | 409 | 413 | 415 | 503 | 507, message: string, readonly details?: unknown) {
    super(message);
  }
}

export const notFound = (what: string) => new HttpError(404, `${what} not found`);
