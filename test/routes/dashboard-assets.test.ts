import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestStack } from '../support/stack';

type TestStack = Awaited<ReturnType<typeof startTestStack>>;

describe('the dashboard and its assets', () => {
  let stack: TestStack;

  beforeAll(async () => {
    stack = await startTestStack();
  });
  afterAll(async () => {
    await stack?.close();
  });

  describe('GET /vendor/uplot/*', () => {
    it('serves the chart library and its stylesheet from node_modules', async () => {
      const js = await request(stack.url).get('/vendor/uplot/uPlot.iife.min.js').expect(200);
      expect(js.headers['content-type']).toMatch(/javascript/);
      expect(js.text).toContain('uPlot');
      const css = await request(stack.url).get('/vendor/uplot/uPlot.min.css').expect(200);
      expect(css.headers['content-type']).toMatch(/text\/css/);
    });

    it.each([
      '/vendor/uplot/uPlot.cjs.js',
      '/vendor/uplot/uPlot.d.ts',
      '/vendor/uplot/../package.json',
      '/vendor/uplot/',
      '/vendor/uplot/%2e%2e/package.json',
    ])('serves nothing else: %s is a 404', async (path) => {
      await request(stack.url).get(path).expect(404);
    });
  });

  describe('GET /', () => {
    it('loads only same-origin scripts and styles, with no inline script, style or handler', async () => {
      const res = await request(stack.url).get('/').expect(200);
      const html = res.text;
      expect(html).toContain('src="/vendor/uplot/uPlot.iife.min.js"');
      expect(html).toContain('href="/vendor/uplot/uPlot.min.css"');
      expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
      expect(html).not.toMatch(/<style|\sstyle=|\son[a-z]+=/i);
      expect(html).not.toMatch(/https?:\/\//);
    });

    it('keeps the tutorial’s four sections', async () => {
      const res = await request(stack.url).get('/').expect(200);
      for (const heading of [
        '1. Subscribe to MailKit ($19/mo, 5,000 emails)',
        '2. Check your balance',
        '3. Send a transactional email',
        '4. Run low? Buy a top-up pack',
      ]) {
        expect(res.text).toContain(heading);
      }
    });
  });

  it('GET /favicon.ico points at the SVG icon', async () => {
    const res = await request(stack.url).get('/favicon.ico').expect(301);
    expect(res.headers.location).toBe('/favicon.svg');
    await request(stack.url).get('/favicon.svg').expect(200);
  });
});
