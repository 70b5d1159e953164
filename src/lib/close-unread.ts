import type { IncomingMessage, ServerResponse } from 'node:http';

/** How long a connection refused mid-body is still read (and the bytes dropped) after the answer. */
const LINGER_MS = 2_000;

/**
 * For an answer given before the request's body was read (a 401, 429, 413…): the connection
 * closes with it, so the body is not read on, however slowly it comes, to keep the connection
 * alive. Closing at once would make a client still sending see a reset (EPIPE) instead of the
 * answer: like nginx's lingering close, MailKit's side is shut after the answer and whatever the
 * client still sends is dropped for up to LINGER_MS, then the socket is destroyed. Node calls
 * `destroySoon()` once the answer is written, when the response says `Connection: close`.
 */
export function closeWithAnswer(req: IncomingMessage, res: ServerResponse): void {
  if (res.headersSent) return;
  res.setHeader('Connection', 'close');
  const socket = req.socket;
  socket.destroySoon = () => {
    socket.end();
    const timer = setTimeout(() => socket.destroy(), LINGER_MS);
    timer.unref();
    socket.once('close', () => clearTimeout(timer));
  };
}
