import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { Resend } from 'resend';
import { expect } from 'vitest';
import type { ResendSandboxOptions } from '../../../src/sandbox/contracts';
import { createResendSandbox, type ResendSandboxExtras } from '../../../src/sandbox/resend/index';

export const API_PATH = '/sandbox/resend';
export const OUTBOX_PATH = '/sandbox/outbox';

/** A running sandbox on an ephemeral loopback port, with the real SDK pointed at it. */
export async function startSandbox(options: Partial<ResendSandboxOptions & ResendSandboxExtras> = {}) {
  const sandbox = createResendSandbox({ dataFile: null, apiPath: API_PATH, outboxPath: OUTBOX_PATH, ...options });
  const app = express();
  app.use(API_PATH, sandbox.api);
  app.use(OUTBOX_PATH, sandbox.outbox);
  const server = app.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const apiBase = `${origin}${API_PATH}`;
  return {
    sandbox,
    origin,
    apiBase,
    resend: new Resend('re_test_123', { baseUrl: apiBase }),
    /** Raw call to the API with a bearer key (override headers to drop or change it). */
    api(path: string, init: { method?: string; body?: unknown; rawBody?: string; headers?: Record<string, string> } = {}) {
      return fetch(`${apiBase}${path}`, {
        method: init.method ?? (init.body !== undefined || init.rawBody !== undefined ? 'POST' : 'GET'),
        headers: { authorization: 'Bearer re_test_123', 'content-type': 'application/json', ...init.headers },
        body: init.rawBody ?? (init.body !== undefined ? JSON.stringify(init.body) : undefined),
      });
    },
    async close() {
      server.closeAllConnections();
      server.close();
      await sandbox.close();
    },
  };
}

export type Harness = Awaited<ReturnType<typeof startSandbox>>;

/** A minimal valid send, in the SDK's camelCase. */
export function email(overrides: Record<string, unknown> = {}) {
  return { from: 'MailKit <no-reply@mailkit.dev>', to: 'delivered@resend.dev', subject: 'Hello', html: '<p>Hi there</p>', ...overrides };
}

/**
 * Resend's spec declares no error bodies, so errors are checked against the documented envelope:
 * exactly `{ statusCode, name, message }`, statusCode equal to the HTTP status.
 */
export function expectResendError(body: unknown, status: number, name: string): void {
  expect(body).toEqual({ statusCode: status, name, message: expect.any(String) });
  expect((body as { message: string }).message.length).toBeGreaterThan(0);
}

/** A clock tests can move. */
export function manualClock(start = Date.UTC(2025, 0, 15, 12, 0, 0)) {
  let t = start;
  return { now: () => t, advance: (ms: number) => void (t += ms) };
}

/** One webhook exactly as a receiver got it: the raw bytes and the Svix headers. */
export interface ReceivedEvent {
  raw: string;
  headers: { id: string; timestamp: string; signature: string };
  type: string;
  payload: any;
}

/**
 * A webhook receiver on an ephemeral loopback port. `answer` decides each status (200 by default);
 * only 2xx-answered events are kept in `received`, in arrival order; `attempts` counts every request.
 */
export async function startReceiver() {
  const received: ReceivedEvent[] = [];
  const state = { attempts: 0, answer: (_e: ReceivedEvent): number => 200 };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      state.attempts++;
      const raw = Buffer.concat(chunks).toString('utf8');
      const payload = JSON.parse(raw);
      const event: ReceivedEvent = {
        raw,
        headers: {
          id: String(req.headers['svix-id']),
          timestamp: String(req.headers['svix-timestamp']),
          signature: String(req.headers['svix-signature']),
        },
        type: payload.type,
        payload,
      };
      const status = state.answer(event);
      if (status >= 200 && status < 300) received.push(event);
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ received: status < 300 }));
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/webhooks/resend`,
    received,
    state,
    /** Received events of one email, in arrival order. */
    of: (emailId: string) => received.filter((e) => e.payload.data.email_id === emailId),
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** A fresh Svix / Standard Webhooks secret, as the stack generates one. */
export const newSecret = () => `whsec_${randomBytes(32).toString('base64')}`;
