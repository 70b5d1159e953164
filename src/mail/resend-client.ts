import { Resend, type ErrorResponse, type Response } from 'resend';
import type { FetchLike } from '../lib/http-fetch';

/**
 * Resend's SDK over a `fetch` of MailKit's choosing (`src/lib/http-fetch.ts`: keep-alive
 * node:http, as the Dodo SDK's). The SDK calls the global fetch and takes no transport option,
 * and every call it makes goes through its public `fetchRequest`, which this overrides with the
 * same handling of the answer as the SDK's own (resend 6.x): the body as `data`; Resend's error
 * body as `error`; a body that is not JSON as `application_error` with the status; no answer
 * (refused, reset, timed out) as `application_error` with `statusCode: null`. Everything else,
 * request bodies and headers included, is the SDK's.
 *
 * Why: one Resend call per email, and Node's built-in fetch (undici) builds WHATWG streams,
 * Request and Headers objects for each; with 16 clients the transport took MailKit's CPU per
 * email from 4.22 to 3.48 ms (bench/compare.ts, README Performance).
 */
export class ResendClient extends Resend {
  readonly #fetch: FetchLike;

  constructor(key: string, options: { baseUrl?: string }, transport: FetchLike) {
    super(key, options);
    this.#fetch = transport;
  }

  override async fetchRequest<T>(path: string, options: RequestInit = {}): Promise<Response<T>> {
    if (hasDotSegment(path)) {
      return { data: null, error: { message: 'Path parameters cannot be `.` or `..`.', statusCode: null, name: 'invalid_parameter' }, headers: null };
    }
    try {
      const response = await this.#fetch(`${this.baseUrl}${path}`, options);
      const headers: Record<string, string> = {};
      response.headers.forEach((value, name) => (headers[name] = value));
      if (response.ok) return { data: (await response.json()) as T, error: null, headers };
      try {
        return { data: null, error: JSON.parse(await response.text()) as ErrorResponse, headers };
      } catch (err) {
        const message =
          err instanceof SyntaxError
            ? 'Internal server error. We are unable to process your request right now, please try again later.'
            : err instanceof Error
              ? err.message
              : response.statusText;
        return { data: null, error: { name: 'application_error', statusCode: response.status, message }, headers };
      }
    } catch {
      return { data: null, error: { name: 'application_error', statusCode: null, message: 'Unable to fetch data. The request could not be resolved.' }, headers: null };
    }
  }
}

/** The SDK's guard: a path parameter that is a `.` or `..` segment (even percent-encoded) would reach another path. */
function hasDotSegment(requestPath: string): boolean {
  let path = requestPath.replace(/[\t\n\r]/g, '');
  while (path.length > 0 && path.charCodeAt(path.length - 1) <= 32) path = path.slice(0, -1);
  const [pathname = ''] = path.split(/[?#]/);
  return pathname.split(/[\\/]/).some((segment) => /^(?:\.|%2e){1,2}$/i.test(segment));
}
