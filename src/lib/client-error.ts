/**
 * The 4xx status of an error the client caused, as Express's own parts raise them: body-parser
 * (malformed JSON, a body that is not the gzip/deflate/br it claims, too large), serve-static
 * and `send` (a missing file, a `..` path), the router (bad percent-encoding). They all build it
 * with http-errors: a `status` equal to `statusCode`, from 400 to 499, and a boolean `expose`
 * (`send` sets it false for a missing file, whose message names the absolute path: the status is
 * still the client's, only the text is not shown). An upstream SDK's error (`status` alone) is
 * not one of them. Undefined for anything else, which is then a bug or an upstream failure: a 500.
 */
export function clientErrorStatus(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as { status?: unknown; statusCode?: unknown; expose?: unknown };
  if (typeof e.expose !== 'boolean' || typeof e.status !== 'number' || e.status !== e.statusCode) return undefined;
  return e.status >= 400 && e.status <= 499 ? e.status : undefined;
}

/** A short, safe text for a client error's status (never the error's own message: it may name a path). */
export function clientErrorMessage(status: number): string {
  switch (status) {
    case 400:
      return 'The request could not be read (a body that does not match its Content-Encoding, or a malformed URL).';
    case 403:
      return 'That path is not allowed.';
    case 404:
      return 'Nothing is served at this path.';
    case 413:
      return 'The request body is too large.';
    case 415:
      return 'The request body has an unsupported encoding.';
    default:
      return 'The request could not be processed.';
  }
}
