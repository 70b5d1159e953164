import express, { type Router } from 'express';
import type { JsonStore } from '../../lib/json-store';
import type { OutboxMessage } from '../contracts';
import { bareAddress } from './addresses';
import { escapeHtml, renderListPage, renderMessagePage, renderNotFoundPage, snippetOf, type PageOptions } from './outbox-html';
import type { ResendState } from './store';

// The email body is someone else's HTML: an opaque origin with no scripts, forms or plugins; inline
// styles and images are allowed so it still looks like the email.
const BODY_CSP = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data: http: https:; font-src data:; frame-ancestors 'self'";
const DEFAULT_LIMIT = 50;
const MAX_LIMIT = 1000;

/** A message as the outbox JSON API returns it: the stored message plus its preview. */
export type OutboxListItem = OutboxMessage & { snippet: string };

export interface OutboxRouterDeps extends PageOptions {
  store: JsonStore<ResendState>;
  clear(): void;
}

/** The outbox page (HTML) and its JSON API for tests. */
export function createOutboxRouter(deps: OutboxRouterDeps): Router {
  const { store } = deps;
  const router = express.Router();
  const find = (id: string) => store.data.messages.find((m) => m.id === id);
  const withSnippet = (m: OutboxMessage): OutboxListItem => ({ ...m, snippet: snippetOf(m) });

  router.use((_req, res, next) => {
    // Sandbox state changes with every send; never serve a stale copy.
    res.set('Cache-Control', 'no-store');
    next();
  });

  router.get('/', (_req, res) => {
    res.type('html').send(renderListPage(deps, store.data.messages));
  });

  router.get('/messages', (req, res) => {
    const to = typeof req.query.to === 'string' && req.query.to.trim() ? bareAddress(req.query.to) : null;
    const limitParam = typeof req.query.limit === 'string' ? Number.parseInt(req.query.limit, 10) : DEFAULT_LIMIT;
    const limit = Number.isFinite(limitParam) ? Math.min(Math.max(limitParam, 1), MAX_LIMIT) : DEFAULT_LIMIT;
    const matching = to ? store.data.messages.filter((m) => m.to.some((r) => bareAddress(r) === to)) : store.data.messages;
    res.json({ total: matching.length, messages: matching.slice(0, limit).map(withSnippet) });
  });

  router.get('/messages/:id', (req, res) => {
    const message = find(req.params.id);
    if (!message) return void res.status(404).json({ error: { code: 'not_found', message: 'No such message in the outbox.' } });
    res.json(withSnippet(message));
  });

  router.delete('/messages', (_req, res) => {
    deps.clear();
    res.status(204).end();
  });

  router.get('/:id/html', (req, res) => {
    const message = find(req.params.id);
    if (!message) return void res.status(404).type('text/plain').send('No such message.');
    res.set({ 'Content-Security-Policy': BODY_CSP, 'X-Content-Type-Options': 'nosniff', 'Referrer-Policy': 'no-referrer' });
    // The CSP's sandbox gives this frame an opaque origin, so it cannot join the page's
    // origin-keyed agent cluster: Chromium warns on every message when asked to.
    res.removeHeader('Origin-Agent-Cluster');
    // A text-only email still gets a readable body in the frame.
    const html =
      message.html ??
      '<!doctype html><meta charset="utf-8"><pre style="white-space:pre-wrap;font:14px/1.5 ui-monospace,monospace">' +
        `${escapeHtml(message.text ?? '')}</pre>`;
    res.type('html').send(html);
  });

  router.get('/:id', (req, res) => {
    const message = find(req.params.id);
    if (!message) return void res.status(404).type('html').send(renderNotFoundPage(deps));
    res.type('html').send(renderMessagePage(deps, message));
  });

  return router;
}
