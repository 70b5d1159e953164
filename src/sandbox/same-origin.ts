import type { Request } from 'express';

/**
 * Whether a browser sent this request from another site: the sandbox's writes (the console's
 * API, the checkout page's Pay and Decline) accept only their own pages, curl and the CLIs.
 *
 * A browser says where a request comes from in `Sec-Fetch-Site`: anything other than
 * `same-origin` or `none` (typed in, bookmarked) is refused, `same-site` too (another port on
 * localhost is same-site). A browser too old to send it still sends `Origin` on a POST: one
 * whose host is not this request's `Host` (or the opaque `null`) is refused. curl and the CLIs
 * send neither.
 */
export function isCrossSite(req: Request): boolean {
  const site = req.get('sec-fetch-site');
  if (site) return site !== 'same-origin' && site !== 'none';
  const origin = req.get('origin');
  if (origin === undefined) return false;
  try {
    return new URL(origin).host !== (req.get('host') ?? '').toLowerCase();
  } catch {
    return true; // `null` (a sandboxed frame, a data: URL) or garbage
  }
}
