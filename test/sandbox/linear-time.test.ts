import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAmount } from '../../src/sandbox/dodo/amounts';
import { bareAddress, parseMailbox } from '../../src/sandbox/resend/addresses';
import { decodeEntities, htmlToText } from '../../src/sandbox/resend/outbox-html';
import { costOf, MARGIN_MS, normalCost, timeOf } from '../support/cost';
import { startTestStack } from '../support/stack';

type TestStack = Awaited<ReturnType<typeof startTestStack>>;

const KIB = 1024;

/**
 * Every pattern the sandbox runs on what a client sent, fed the input that made it take
 * quadratic time: each must cost about what an ordinary input of the same size costs.
 */
describe('sandbox patterns on adversarial input', () => {
  describe('htmlToText (the outbox preview)', () => {
    const ordinary = '<p>Hello, <b>world</b>!</p>'.padEnd(256 * KIB, 'x');
    it.each([
      ['256 KiB of <', '<'.repeat(256 * KIB)],
      ['256 KiB of <!--', '<!--'.repeat((256 * KIB) / 4)],
      ['256 KiB of <script>', '<script>'.repeat((256 * KIB) / 8)],
      ['256 KiB of <style></', '<style></'.repeat(Math.floor((256 * KIB) / 9))],
      ['<!-- then 256 KiB of <', `<!--${'<'.repeat(256 * KIB)}`],
    ])('%s costs what an ordinary body does', (_name, html) => {
      const normal = timeOf(() => htmlToText(ordinary));
      expect(timeOf(() => htmlToText(html))).toBeLessThan(normal + MARGIN_MS);
    });

    it('still reads an email as before', () => {
      expect(
        htmlToText('<head><title>T</title><style>p{}</style></head><p>Hi &amp; <b>bye</b></p><!-- note --><script>var a = "<p>";</script> a < b'),
      ).toBe('Hi & bye a < b');
      expect(htmlToText('<SCRIPT type="x">hidden</sCrIpT >shown<scripts>kept</scripts>')).toBe('shown kept');
    });
  });

  it('decodeEntities: a 256 KiB entity name costs what ordinary text does', () => {
    const normal = timeOf(() => decodeEntities('a'.repeat(256 * KIB)));
    for (const text of [`&${'a'.repeat(256 * KIB)}`, `&#${'1'.repeat(256 * KIB)}`, `&#x${'f'.repeat(256 * KIB)}`]) {
      expect(timeOf(() => decodeEntities(text))).toBeLessThan(normal + MARGIN_MS);
    }
    expect(decodeEntities('&lt;&#65;&#x42;&amp;lt;&nosuch;')).toBe('<AB&lt;&nosuch;');
    // A name found only on Object's prototype is no entity.
    expect(decodeEntities('&constructor;&toString;')).toBe('&constructor;&toString;');
  });

  describe('parseMailbox', () => {
    it('"a" + 100,000 spaces + "x" costs what an ordinary address does', () => {
      const normal = timeOf(() => parseMailbox('Alice <alice@example.com>'));
      expect(timeOf(() => parseMailbox(`a${' '.repeat(100_000)}x`))).toBeLessThan(normal + MARGIN_MS);
      expect(timeOf(() => parseMailbox(`a${' '.repeat(100_000)}x <a@example.com>`))).toBeLessThan(normal + MARGIN_MS);
    });

    it('refuses a mailbox longer than a header line, and parses the rest as before', () => {
      expect(parseMailbox(`${'a'.repeat(990)} <a@example.com>`)).toBeNull();
      expect(parseMailbox('"Alice A." <Alice@Example.com>')).toEqual({ name: 'Alice A.', address: 'Alice@Example.com' });
      expect(parseMailbox('Bob<bob@example.com>')).toEqual({ name: 'Bob', address: 'bob@example.com' });
      expect(parseMailbox('bob@example.com')).toEqual({ name: null, address: 'bob@example.com' });
      expect(parseMailbox('Bo\nb <bob@example.com>')).toBeNull();
      expect(parseMailbox('a<b <bob@example.com>')).toBeNull();
      expect(bareAddress('Carol <CAROL@example.com>')).toBe('carol@example.com');
    });
  });

  it('parseAmount: "1." + 50,000 zeros + "1" is refused at once', () => {
    const normal = timeOf(() => parseAmount('12.50', 2));
    const adversarial = `1.${'0'.repeat(50_000)}1`;
    expect(timeOf(() => parseAmount(adversarial, 2))).toBeLessThan(normal + MARGIN_MS);
    expect(parseAmount(adversarial, 2).ok).toBe(false);
    expect(parseAmount('5.000', 0)).toEqual({ ok: true, units: 5 });
  });

  describe('through the running sandbox', () => {
    let stack: TestStack;
    const resendApi = (body: unknown) =>
      request(stack.url)
        .post('/sandbox/resend/emails')
        .set('Authorization', 'Bearer re_test')
        .send(body as object);

    beforeAll(async () => {
      stack = await startTestStack();
    });
    afterAll(async () => {
      await stack?.close();
    });

    it('a valid 256 KiB email of "<": sent, and the outbox page and its JSON answer as fast as usual, /healthz too', async () => {
      await resendApi({ from: 'a@example.com', to: 'plain@example.com', subject: 'plain', html: '<p>hello</p>' }).expect(200);
      const normal = await normalCost(stack.url, () => request(stack.url).get('/sandbox/outbox').expect(200));
      await resendApi({ from: 'a@example.com', to: 'lt@example.com', subject: 'lt', html: '<'.repeat(256 * KIB) }).expect(200);
      for (const path of ['/sandbox/outbox', '/sandbox/outbox/messages?to=lt@example.com']) {
        const cost = await costOf(stack.url, () => request(stack.url).get(path).expect(200));
        expect(cost.ms).toBeLessThan(normal.ms + MARGIN_MS);
        expect(cost.healthzMs).toBeLessThan(normal.healthzMs + MARGIN_MS);
      }
    });

    it('a "from" of "a" + 100,000 spaces + "x" is refused (422) as fast as a normal send', async () => {
      const normal = await normalCost(stack.url, () =>
        resendApi({ from: 'a@example.com', to: 'b@example.com', subject: 's', html: '<p>x</p>' }).expect(200),
      );
      const cost = await costOf(stack.url, () =>
        resendApi({ from: `a${' '.repeat(100_000)}x`, to: 'b@example.com', subject: 's', html: '<p>x</p>' }).expect(422),
      );
      expect(cost.ms).toBeLessThan(normal.ms + MARGIN_MS);
      expect(cost.healthzMs).toBeLessThan(normal.healthzMs + MARGIN_MS);
    });

    it('the outbox ?to= filter with a long run of spaces answers as fast as a normal filter', async () => {
      const normal = await normalCost(stack.url, () => request(stack.url).get('/sandbox/outbox/messages?to=b@example.com').expect(200));
      // The request line is bounded by Node's 16 KiB header limit; `+` is a space in a query.
      const to = `a${'+'.repeat(16_000)}x`;
      const cost = await costOf(stack.url, () => request(stack.url).get(`/sandbox/outbox/messages?to=${to}`).expect(200));
      expect(cost.ms).toBeLessThan(normal.ms + MARGIN_MS);
      expect(cost.healthzMs).toBeLessThan(normal.healthzMs + MARGIN_MS);
    });
  });
});
