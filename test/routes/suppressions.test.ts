import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { balanceOf, bearer, ENGINES, startTestStack, subscribe } from '../support/stack';

type TestStack = Awaited<ReturnType<typeof startTestStack>>;

describe.each(ENGINES)('suppression (%s)', (engine) => {
  let stack: TestStack;
  let alice: { key: string; customerId: string };
  let bob: { key: string; customerId: string };

  const list = async (key: string) => (await request(stack.url).get('/suppressions').set(bearer(key)).expect(200)).body;
  const outbox = (to: string) => stack.sandbox.resend.messages().filter((m) => [...m.to, ...m.cc, ...m.bcc].includes(to)).length;

  beforeAll(async () => {
    stack = await startTestStack({}, { engine });
    alice = await subscribe(stack, `alice-${engine}@example.com`, 'Alice');
    bob = await subscribe(stack, `bob-${engine}@example.com`, 'Bob');
    // Alice's hard bounce; the sandbox then posts email.sent and email.bounced to MailKit.
    await request(stack.url).post('/send').set(bearer(alice.key)).send({ to: 'bounced@resend.dev', subject: 'First', html: '<p>1</p>' }).expect(200);
    await stack.sandbox.resend.webhooks.idle();
  });
  afterAll(async () => {
    await stack?.close();
  });

  it("a permanent bounce puts the address on the sender's list, with the email that bounced", async () => {
    const body = await list(alice.key);
    expect(body).toMatchObject({ has_more: false, next_cursor: null });
    expect(body.data).toEqual([{ email: 'bounced@resend.dev', reason: 'bounced', email_id: expect.any(String), created_at: expect.any(String) }]);
    const bounced = await request(stack.url).get(`/emails/${body.data[0].email_id}`).set(bearer(alice.key)).expect(200);
    expect(bounced.body.status).toBe('bounced');
    expect(bounced.body.events.at(-1).detail).toMatch(/^Permanent bounce: /);
  });

  it('the next send to it is a 422 naming the address, before any credit is taken or anything sent', async () => {
    const balance = await balanceOf(stack, alice.key);
    const sent = outbox('bounced@resend.dev');
    for (const body of [
      { to: 'Bounced@Resend.dev', subject: 'Again', html: '<p>2</p>' },
      { to: 'delivered@resend.dev', bcc: 'bounced@resend.dev', subject: 'Bcc', text: 'hi' },
    ]) {
      const res = await request(stack.url).post('/send').set(bearer(alice.key)).send(body).expect(422);
      expect(res.body.error.code).toBe('recipient_suppressed');
      expect(res.body.error.message).toContain('bounced@resend.dev (bounced) is on your suppression list');
      expect(res.body.error.message).toContain('DELETE /suppressions/bounced%40resend.dev');
    }
    expect(await balanceOf(stack, alice.key)).toBe(balance);
    expect(outbox('bounced@resend.dev')).toBe(sent);
  });

  it('in a batch, the suppressed item alone is refused and not charged; the others are sent', async () => {
    const balance = await balanceOf(stack, alice.key);
    const emails = [
      { to: 'delivered+b1@resend.dev', subject: 'ok 1', html: '<p>1</p>' },
      { to: ['bounced@resend.dev', 'delivered+b2@resend.dev'], subject: 'suppressed', html: '<p>2</p>' },
      { to: 'delivered+b3@resend.dev', cc: 'delivered+b4@resend.dev', subject: 'ok 3', html: '<p>3</p>' },
    ];
    const res = await request(stack.url).post('/send/batch').set(bearer(alice.key)).send({ emails }).expect(200);
    expect(res.body.sent).toBe(2);
    expect(res.body.failed).toBe(1);
    expect(res.body.data[0]).toEqual({ id: expect.any(String) });
    expect(res.body.data[1].error.code).toBe('recipient_suppressed');
    expect(res.body.data[2]).toEqual({ id: expect.any(String) });
    // One credit per recipient of what was sent: 1 + 2.
    expect(await balanceOf(stack, alice.key)).toBe(balance - 3);
    expect(outbox('delivered+b2@resend.dev')).toBe(0);
    // A batch whose every item is suppressed sends and charges nothing.
    const none = await request(stack.url)
      .post('/send/batch')
      .set(bearer(alice.key))
      .send({ emails: [emails[1]] })
      .expect(200);
    expect(none.body).toMatchObject({ sent: 0, failed: 1 });
    expect(await balanceOf(stack, alice.key)).toBe(balance - 3);
  });

  it("is the customer's own: Bob's list is empty and Bob can still send to the address", async () => {
    expect((await list(bob.key)).data).toEqual([]);
    // Bob cannot take it off Alice's list either.
    await request(stack.url).delete('/suppressions/bounced%40resend.dev').set(bearer(bob.key)).expect(404);
    expect((await list(alice.key)).data).toHaveLength(1);
    await request(stack.url).post('/send').set(bearer(bob.key)).send({ to: 'bounced@resend.dev', subject: 'Bob', html: '<p>b</p>' }).expect(200);
    await stack.sandbox.resend.webhooks.idle();
  });

  it('a complaint suppresses the address too', async () => {
    await request(stack.url)
      .post('/send')
      .set(bearer(alice.key))
      .send({ to: 'complained@resend.dev', subject: 'Spam?', html: '<p>c</p>' })
      .expect(200);
    await stack.sandbox.resend.webhooks.idle();
    const body = await list(alice.key);
    expect(body.data.map((s: { email: string; reason: string }) => [s.email, s.reason])).toEqual(
      expect.arrayContaining([
        ['complained@resend.dev', 'complained'],
        ['bounced@resend.dev', 'bounced'],
      ]),
    );
  });

  it('a complaint from one recipient among several suppresses the complainer only', async () => {
    await request(stack.url)
      .post('/send')
      .set(bearer(bob.key))
      .send({ to: ['complained@resend.dev', 'important-client@example.com'], subject: 'Two', text: 't' })
      .expect(200);
    await stack.sandbox.resend.webhooks.idle();
    const listed = (await list(bob.key)).data.map((s: { email: string }) => s.email);
    expect(listed).toContain('complained@resend.dev');
    expect(listed).not.toContain('important-client@example.com');
    // Bob can still write to the client.
    await request(stack.url).post('/send').set(bearer(bob.key)).send({ to: 'important-client@example.com', subject: 'Still', text: 's' }).expect(200);
    await request(stack.url).delete('/suppressions/complained%40resend.dev').set(bearer(bob.key)).expect(200);
    await stack.sandbox.resend.webhooks.idle();
  });

  it('a bounce of one recipient among several suppresses that recipient only (the one the event names)', async () => {
    await request(stack.url)
      .post('/send')
      .set(bearer(bob.key))
      .send({ to: 'delivered+mixed@resend.dev', bcc: 'bounced+hidden@resend.dev', subject: 'Mixed', text: 'm' })
      .expect(200);
    await stack.sandbox.resend.webhooks.idle();
    const listed = (await list(bob.key)).data.map((s: { email: string }) => s.email);
    expect(listed).toContain('bounced+hidden@resend.dev');
    expect(listed).not.toContain('delivered+mixed@resend.dev');
  });

  it('pages the list with a cursor', async () => {
    const first = await request(stack.url).get('/suppressions?limit=1').set(bearer(alice.key)).expect(200);
    expect(first.body.data).toHaveLength(1);
    expect(first.body.has_more).toBe(true);
    const second = await request(stack.url).get(`/suppressions?limit=1&cursor=${first.body.next_cursor}`).set(bearer(alice.key)).expect(200);
    expect(second.body.data).toHaveLength(1);
    expect(second.body.data[0].email).not.toBe(first.body.data[0].email);
    expect(second.body.has_more).toBe(false);
  });

  it('DELETE takes the address off (then the send goes through); bad input is a 4xx that changes nothing', async () => {
    expect((await request(stack.url).delete('/suppressions/not-an-address').set(bearer(alice.key)).expect(400)).body.error.message).toMatch(
      /^email: /,
    );
    expect((await request(stack.url).get('/suppressions?limit=0').set(bearer(alice.key)).expect(400)).body.error.message).toMatch(/^limit: /);
    expect((await request(stack.url).get('/suppressions?cursor=nope').set(bearer(alice.key)).expect(400)).body.error.message).toMatch(/^cursor: /);
    expect((await list(alice.key)).data).toHaveLength(2);
    const res = await request(stack.url).delete('/suppressions/BOUNCED@resend.dev').set(bearer(alice.key)).expect(200);
    expect(res.body).toEqual({ email: 'bounced@resend.dev', deleted: true });
    expect((await list(alice.key)).data.map((s: { email: string }) => s.email)).toEqual(['complained@resend.dev']);
    await request(stack.url).delete('/suppressions/bounced@resend.dev').set(bearer(alice.key)).expect(404);
    const balance = await balanceOf(stack, alice.key);
    await request(stack.url).post('/send').set(bearer(alice.key)).send({ to: 'bounced@resend.dev', subject: 'Back', html: '<p>3</p>' }).expect(200);
    expect(await balanceOf(stack, alice.key)).toBe(balance - 1);
    await stack.sandbox.resend.webhooks.idle();
  });

  it('a retry under the same Idempotency-Key replays what was sent, even after its own bounce suppressed the address', async () => {
    const single = { to: 'bounced+retry@resend.dev', subject: 'Retry', text: 'r' };
    const first = await request(stack.url).post('/send').set(bearer(alice.key)).set('Idempotency-Key', 'retry-1').send(single).expect(200);
    const emails = [
      { to: 'bounced+batch@resend.dev', subject: 'B', text: 'b' },
      { to: 'complained@resend.dev', subject: 'C', text: 'c' }, // suppressed since the complaint above
      { to: 'delivered+retry@resend.dev', subject: 'D', text: 'd' },
    ];
    const batch = await request(stack.url).post('/send/batch').set(bearer(alice.key)).set('Idempotency-Key', 'retry-2').send({ emails }).expect(200);
    expect(batch.body).toMatchObject({ sent: 2, failed: 1 });
    await stack.sandbox.resend.webhooks.idle();
    const listed = (await list(alice.key)).data.map((x: { email: string }) => x.email);
    expect(listed).toEqual(expect.arrayContaining(['bounced+retry@resend.dev', 'bounced+batch@resend.dev']));
    const balance = await balanceOf(stack, alice.key);
    const again = await request(stack.url).post('/send').set(bearer(alice.key)).set('Idempotency-Key', 'retry-1').send(single).expect(200);
    expect(again.body).toEqual(first.body);
    expect(again.headers['idempotent-replayed']).toBe('true');
    const batchAgain = await request(stack.url)
      .post('/send/batch')
      .set(bearer(alice.key))
      .set('Idempotency-Key', 'retry-2')
      .send({ emails })
      .expect(200);
    expect(batchAgain.body).toEqual(batch.body);
    expect(await balanceOf(stack, alice.key)).toBe(balance);
    // A new key is a new send: now refused.
    await request(stack.url).post('/send').set(bearer(alice.key)).set('Idempotency-Key', 'retry-3').send(single).expect(422);
    for (const address of ['bounced+retry@resend.dev', 'bounced+batch@resend.dev']) {
      await request(stack.url).delete(`/suppressions/${address}`).set(bearer(alice.key)).expect(200);
    }
  });

  it('needs a key', async () => {
    expect((await request(stack.url).get('/suppressions').expect(401)).body.error.code).toBe('missing_api_key');
    await request(stack.url).delete('/suppressions/complained@resend.dev').expect(401);
    expect((await list(alice.key)).data).toHaveLength(2);
  });
});
