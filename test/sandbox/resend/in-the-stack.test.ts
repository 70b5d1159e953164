import { Writable } from 'node:stream';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/logger';
import type { WebhookDelivery } from '../../../src/sandbox/contracts';
import { bearer, startTestStack, storedSecrets, subscribe } from '../../support/stack';

type TestStack = Awaited<ReturnType<typeof startTestStack>>;

/** Polls until `ready()` holds (the first attempts go out right after the send's response). */
async function until(ready: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ready()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The Resend webhook secret the stack generated, from where MailKit keeps its generated secrets. */
const resendSecret = async (stack: TestStack): Promise<string | undefined> => (await storedSecrets(stack)).sandboxResendWebhookSecret;

const json = (stack: TestStack, path: string, body: unknown = {}) =>
  request(stack.url).post(`/sandbox/api${path}`).set('Content-Type', 'application/json').send(JSON.stringify(body));

/**
 * In the running stack, the Resend sandbox's events reach the app's own /webhooks/resend, which
 * verifies them with the generated secret and answers 200: nothing waits for a retry.
 */
describe('Resend sandbox webhooks in the running stack', () => {
  let stack: TestStack;
  let key: string;
  const lines: Array<Record<string, any>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l));
      done();
    },
  });
  const events = () => stack.sandbox.resend.webhooks.list();
  const firstTried = (list: WebhookDelivery[]) => list.filter((d) => d.type === 'email.sent').every((d) => d.attempts.length > 0);

  beforeAll(async () => {
    stack = await startTestStack({}, { log: createLogger('trace', sink) });
    ({ key } = await subscribe(stack, 'ivy@example.com', 'Ivy'));
    await request(stack.url).post('/send').set(bearer(key)).send({ to: 'bounced@resend.dev', subject: 'Hi', html: '<p>Hi</p>' }).expect(200);
    await until(() => events().length === 4 && firstTried(events()), "each email's first event to be tried");
    await stack.sandbox.resend.webhooks.idle();
  });
  afterAll(async () => {
    await stack?.close();
  });

  it("posts each email's events to the app's own /webhooks/resend, signed with the generated secret", async () => {
    expect(await resendSecret(stack)).toMatch(/^whsec_/);
    const sent = events().filter((d) => d.type === 'email.sent');
    expect(sent).toHaveLength(2); // the API key email, then the bounce
    for (const d of events()) expect(d.url).toBe(`${stack.url}/webhooks/resend`);
  });

  it('MailKit accepts each event at its first attempt (200), and the bounce shows in its history', async () => {
    for (const d of events()) {
      expect(d.state).toBe('delivered');
      expect(d.attempts.map((a) => a.status)).toEqual([200]);
    }
    const history = await request(stack.url).get('/emails').set(bearer(key)).expect(200);
    expect(history.body.data.map((e: { to: string[]; status: string }) => [e.to, e.status])).toEqual([[['bounced@resend.dev'], 'bounced']]);
  });

  it("logs no error, and one line (not one per attempt) about the receiver's answer", async () => {
    expect(lines.filter((l) => l.level >= 50)).toEqual([]);
    const answers = lines.filter((l) => l.msg === 'resend webhook receiver answers');
    expect(answers).toHaveLength(1);
    expect(answers[0]).toMatchObject({ answer: 'HTTP 200', ok: true });
    const secret = (await resendSecret(stack))!;
    expect(lines.filter((l) => JSON.stringify(l).includes(secret.replace(/^whsec_/, '')))).toEqual([]);
  });

  describe('the control API (/sandbox/api/resend/webhooks)', () => {
    it('lists the deliveries newest first, with the emission switch', async () => {
      const res = await request(stack.url).get('/sandbox/api/resend/webhooks').expect(200);
      expect(res.body.enabled).toBe(true);
      expect(res.body.data.map((d: WebhookDelivery) => d.id)).toEqual(events().map((d) => d.id));
    });

    it('redelivers on request (202), the attempt then shows in the log; 404 for an unknown id', async () => {
      const target = events().find((d) => d.type === 'email.sent')!;
      const attemptsOf = () => events().find((d) => d.id === target.id)!.attempts;
      const before = attemptsOf().length;
      const res = await json(stack, `/resend/webhooks/${target.id}/redeliver`).expect(202);
      expect(res.body).toEqual({ id: target.id, redelivering: true });
      await until(() => attemptsOf().length > before, 'the redelivery attempt');
      // Acknowledged as a duplicate: the same svix-id was processed already.
      expect(attemptsOf().at(-1)!.status).toBe(200);
      const unknown = await json(stack, '/resend/webhooks/msg_nope/redeliver').expect(404);
      expect(unknown.body.error.code).toBe('not_found');
    });

    it('turns emission off and on; an email sent while off produces no events', async () => {
      expect((await json(stack, '/resend/webhooks/settings', { enabled: 'no' }).expect(400)).body.error.code).toBe('invalid_request');
      expect((await json(stack, '/resend/webhooks/settings', { enabled: false }).expect(200)).body).toEqual({ enabled: false });
      const before = events().length;
      await request(stack.url).post('/send').set(bearer(key)).send({ to: 'delivered@resend.dev', subject: 'Quiet', html: '<p>.</p>' }).expect(200);
      expect(events()).toHaveLength(before);
      expect((await json(stack, '/resend/webhooks/settings', { enabled: true }).expect(200)).body).toEqual({ enabled: true });
    });
  });

  describe('the console page', () => {
    it('lists the email events with a Redeliver button each, and the off switch', async () => {
      const html = (await request(stack.url).get('/sandbox').expect(200)).text;
      expect(html).toContain('id="resend-webhooks"');
      expect(html).toContain('id="resend-events-toggle"');
      for (const d of events()) expect(html).toContain(`data-redeliver="${d.id}"`);
    });
  });
});
