import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import { dropSchemas, openTestDatabase, postgresUrl, POSTGRES_SKIPPED } from '../support/database';
import { startPgProxy, type PgProxy } from '../support/pg-proxy';
import { balanceOf, bearer, customerWith, startTestStack } from '../support/stack';

/**
 * A COMMIT that PostgreSQL made durable but whose acknowledgement never reached MailKit (the
 * connection dropped in between): MailKit takes it for a failure while the database holds its
 * changes. Whichever of a send's transactions it hits, the client's retry under the same key
 * must end with one email and one credit: never a credit spent without its email (a row
 * deleted though it was paid), never a second debit.
 */
type TestStack = Awaited<ReturnType<typeof startTestStack>>;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** A send commits its claim, its payment and its end; a settlement runs meanwhile and commits its own. */
const COMMITS_TRIED = 5;

describe('a lost COMMIT acknowledgement (PostgreSQL)', () => {
  if (!postgresUrl) {
    it.skip(POSTGRES_SKIPPED, () => undefined);
    return;
  }
  let stack: TestStack | undefined;
  let proxy: PgProxy | undefined;
  let schema: string | undefined;
  afterEach(async () => {
    await stack?.close();
    await proxy?.close();
    if (schema) await dropSchemas([schema]);
    stack = proxy = schema = undefined;
  });

  async function start() {
    proxy = await startPgProxy(postgresUrl!);
    schema = `ack_${process.pid}_${Math.random().toString(36).slice(2, 10)}`;
    const database = await openTestDatabase({ url: proxy.url, schema, poolSize: 4 });
    stack = await startTestStack({}, { database, reconcile: { intervalMs: 0, graceMs: 0 } });
    return customerWith(stack, 100);
  }

  /** Sends under `key` until an answer other than a retryable refusal (5xx, 409 in use). */
  async function sendUntilAnswered(key: string, idempotencyKey: string, body: object, queued: boolean): Promise<request.Response> {
    for (let i = 0; i < 30; i++) {
      const r = request(stack!.url).post('/send').set(bearer(key)).set('Idempotency-Key', idempotencyKey);
      const res = await (queued ? r.set('Prefer', 'respond-async') : r).send(body);
      if (res.status < 500 && res.status !== 409) return res;
      await sleep(150);
    }
    throw new Error(`no answer for ${idempotencyKey}`);
  }

  it.each([
    ['answered with Resend’s id', false],
    ['answered once queued', true],
  ])('%s: whichever COMMIT loses its acknowledgement, one email and one credit per key', async (_name, queued) => {
    const c = await start();
    const subjects: string[] = [];
    let dropped = 0;
    for (let n = 1; n <= COMMITS_TRIED; n++) {
      const subject = `ack-${queued ? 'q' : 's'}-${n}`;
      subjects.push(subject);
      proxy!.dropAfterCommit(n);
      const res = await sendUntilAnswered(c.key, subject, { to: 'delivered@resend.dev', subject, html: '<p>x</p>' }, queued);
      expect(res.status, JSON.stringify(res.body)).toBe(queued ? 202 : 200);
      if (proxy!.dropped()) dropped++;
    }
    proxy!.disarm();
    // The faults did happen (else this test proves nothing).
    expect(dropped).toBeGreaterThanOrEqual(3);
    const sentOnce = () => subjects.every((s) => stack!.sandbox.resend.messages().filter((m) => m.subject === s).length === 1);
    for (let i = 0; i < 100 && !sentOnce(); i++) await sleep(100);
    for (const s of subjects)
      expect(
        stack!.sandbox.resend.messages().filter((m) => m.subject === s),
        s,
      ).toHaveLength(1);
    // Anything left unsettled is settled; then the customer paid exactly one credit per email.
    await stack!.sender.reconcile();
    expect(await balanceOf(stack!, c.key)).toBe(100 - COMMITS_TRIED);
    await stack!.credits.settleNow();
    expect(Number(await stack!.billing.balance(c.customerId))).toBe(100 - COMMITS_TRIED);
  });
});
