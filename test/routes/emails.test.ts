import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearer, ENGINES, startTestStack, subscribe } from '../support/stack';

type TestStack = Awaited<ReturnType<typeof startTestStack>>;

describe.each(ENGINES)('GET /emails and GET /emails/:id (%s)', (engine) => {
  let stack: TestStack;
  let alice: { key: string; customerId: string };
  let bob: { key: string; customerId: string };
  const ids: string[] = [];

  beforeAll(async () => {
    stack = await startTestStack({}, { engine });
    alice = await subscribe(stack, `alice-h-${engine}@example.com`, 'Alice');
    bob = await subscribe(stack, `bob-h-${engine}@example.com`, 'Bob');
    for (let i = 0; i < 5; i++) {
      const res = await request(stack.url)
        .post('/send')
        .set(bearer(alice.key))
        .send({ to: `delivered+${i}@resend.dev`, subject: `Hello ${i}`, html: '<p>secret body</p>' })
        .expect(200);
      ids.push(res.body.id);
      await new Promise((r) => setTimeout(r, 3)); // distinct creation times
    }
    const batch = await request(stack.url)
      .post('/send/batch')
      .set(bearer(alice.key))
      .send({
        emails: [
          { to: 'bounced@resend.dev', subject: 'B1', html: '<p>1</p>' },
          { to: 'delivered@resend.dev', cc: ['delivered+cc@resend.dev'], subject: 'B2', text: 'two' },
        ],
      })
      .expect(200);
    ids.push(...batch.body.data.map((d: { id: string }) => d.id));
    await request(stack.url).post('/send').set(bearer(bob.key)).send({ to: 'delivered@resend.dev', subject: 'Bob', html: '<p>b</p>' }).expect(200);
    await stack.sandbox.resend.webhooks.idle();
  });
  afterAll(async () => {
    await stack?.close();
  });

  it("lists the key's own emails, newest first, page by page with a cursor, each exactly once", async () => {
    const seen: Array<{ id: string; created_at: string }> = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res: request.Response = await request(stack.url)
        .get(`/emails?limit=3${cursor ? `&cursor=${cursor}` : ''}`)
        .set(bearer(alice.key))
        .expect(200);
      expect(res.headers['cache-control']).toBe('no-store');
      seen.push(...res.body.data);
      cursor = res.body.next_cursor;
      expect(res.body.has_more).toBe(cursor !== null);
      pages++;
    } while (cursor);
    expect(pages).toBe(3);
    expect(seen.map((e) => e.id).sort()).toEqual([...ids].sort());
    const times = seen.map((e) => Date.parse(e.created_at));
    expect(times).toEqual([...times].sort((a, b) => b - a));
    // The single sends came in this order: newest first means reversed.
    expect(seen.map((e) => e.id).filter((id) => ids.slice(0, 5).includes(id))).toEqual(ids.slice(0, 5).reverse());
  });

  it('shows what each email cost (one credit per recipient) and never its body', async () => {
    const res = await request(stack.url).get('/emails?limit=100').set(bearer(alice.key)).expect(200);
    const b2 = res.body.data.find((e: { subject: string }) => e.subject === 'B2');
    expect(b2).toMatchObject({ to: ['delivered@resend.dev'], cc: ['delivered+cc@resend.dev'], bcc: [], credits: 2, status: 'delivered' });
    expect(JSON.stringify(res.body)).not.toContain('secret body');
  });

  it('filters by status', async () => {
    const bounced = await request(stack.url).get('/emails?status=bounced').set(bearer(alice.key)).expect(200);
    expect(bounced.body.data.map((e: { subject: string }) => e.subject)).toEqual(['B1']);
    const delivered = await request(stack.url).get('/emails?status=delivered&limit=100').set(bearer(alice.key)).expect(200);
    expect(delivered.body.data).toHaveLength(6);
    expect((await request(stack.url).get('/emails?status=complained').set(bearer(alice.key)).expect(200)).body.data).toEqual([]);
  });

  it('GET /emails/:id: status, each event with its time, the cost', async () => {
    const res = await request(stack.url).get(`/emails/${ids[5]}`).set(bearer(alice.key)).expect(200);
    expect(res.body).toMatchObject({ id: ids[5], status: 'bounced', subject: 'B1', credits: 1 });
    expect(res.body.events.map((e: { type: string }) => e.type)).toEqual(['email.sent', 'email.bounced']);
    expect(res.body.events[1].at >= res.body.events[0].at).toBe(true);
  });

  it("is isolated per customer: another customer's email is a 404, and never listed", async () => {
    const res = await request(stack.url).get(`/emails/${ids[0]}`).set(bearer(bob.key)).expect(404);
    expect(res.body.error.code).toBe('not_found');
    const bobs = await request(stack.url).get('/emails?limit=100').set(bearer(bob.key)).expect(200);
    expect(bobs.body.data.map((e: { subject: string }) => e.subject)).toEqual(['Bob']);
    // Alice's cursor in Bob's hands only pages through Bob's emails.
    const page = await request(stack.url).get('/emails?limit=1').set(bearer(alice.key)).expect(200);
    const other = await request(stack.url).get(`/emails?cursor=${page.body.next_cursor}`).set(bearer(bob.key)).expect(200);
    expect(other.body.data.every((e: { id: string }) => !ids.includes(e.id))).toBe(true);
  });

  it('bad input is a 400 naming the parameter; no key is a 401', async () => {
    for (const [path, field] of [
      ['/emails?status=opened', 'status'],
      ['/emails?limit=101', 'limit'],
      ['/emails?limit=abc', 'limit'],
      ['/emails?cursor=%%%', 'cursor'],
      ['/emails?sort=asc', 'query'],
      ['/emails/not-an-id', 'id'],
    ] as const) {
      const res = await request(stack.url).get(path).set(bearer(alice.key));
      expect(res.status, path).toBe(400);
      expect(res.body.error.message, path).toMatch(new RegExp(`^${field}: `));
    }
    await request(stack.url).get('/emails').expect(401);
    await request(stack.url).get(`/emails/${ids[0]}`).expect(401);
  });
});
