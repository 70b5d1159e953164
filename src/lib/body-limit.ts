import type { RequestHandler } from 'express';
import { HttpError } from '../errors';

/** A body limit as the body parsers take it (`384kb`, `8mb`), in bytes (1 kb = 1,024 bytes, as theirs). */
export function bytesOf(limit: string): number {
  const m = /^(\d+)(kb|mb)$/i.exec(limit);
  if (!m) throw new Error(`not a body limit: ${limit}`);
  return Number(m[1]) * (m[2]!.toLowerCase() === 'kb' ? 1024 : 1024 * 1024);
}

/**
 * 413 for a request whose Content-Length is over `limitBytes`, before a byte of its body is
 * read. body-parser finds it out from the same header, but answers only once it has read the
 * whole body off the wire (to keep the connection alive), for as long as the client takes to
 * send it. The error middleware closes the connection instead. A chunked body over the limit
 * is still found out by the parser as it reads.
 */
export function refuseDeclaredOverLimit(limitBytes: number): RequestHandler {
  return (req, _res, next) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > limitBytes) {
      return next(new HttpError(413, 'payload_too_large', `The request body is larger than the ${limitBytes} byte limit.`));
    }
    next();
  };
}
