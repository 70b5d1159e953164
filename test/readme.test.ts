import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../src/logger';
import { bearer, settle, startTestStack, subscribe } from './support/stack';

type TestStack = Awaited<ReturnType<typeof startTestStack>>;

const README = readFileSync(resolve(__dirname, '../README.md'), 'utf8');
/** The sandbox console's page, moved out of the README with its examples. */
const SANDBOX_CONSOLE = readFileSync(resolve(__dirname, '../docs/sandbox-console.md'), 'utf8');
const run = promisify(execFile);

/** A documented `{…}`: an object whose contents the README does not spell out. */
const ANY_OBJECT = '\u0000any object';

/** One curl example: the command as written, the answer documented above it, if any, and the status its comment states ("answers 201"), if any. */
interface Example {
  command: string;
  documented: unknown;
  status?: number;
}

/** The first ```bash block after `heading` in `text` (the README unless said). */
function bashBlockAfter(heading: string, text = README, name = 'README'): string {
  const from = text.indexOf(heading);
  if (from < 0) throw new Error(`${name} has no "${heading}"`);
  const open = text.indexOf('```bash\n', from);
  return text.slice(open + '```bash\n'.length, text.indexOf('\n```', open));
}

/** Splits a block into curl commands (joining `\` continuations), each with its comment's `Returns …` and stated status. */
function examples(block: string): Example[] {
  const out: Example[] = [];
  let comments: string[] = [];
  const lines = block.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line.startsWith('#')) {
      comments.push(line.replace(/^#\s?/, ''));
      continue;
    }
    if (line.startsWith('curl ')) {
      let command = line;
      while (command.endsWith('\\')) command = `${command.slice(0, -1)} ${lines[++i]!.trim()}`;
      const returns = /\bReturns (.*)$/.exec(comments.join(' '))?.[1];
      const status = /\banswers (\d{3})\b/.exec(comments.join(' '))?.[1];
      out.push({
        command,
        documented: returns === undefined ? undefined : JSON.parse(returns.replaceAll('{…}', JSON.stringify(ANY_OBJECT))),
        ...(status ? { status: Number(status) } : {}),
      });
    }
    comments = [];
  }
  return out;
}

/**
 * Where `actual` departs from the documented example: the same keys, the same JSON types, an
 * id prefix kept (`"cus_…"` must start with `cus_`), and every element of an array like one
 * of the documented elements.
 */
export function shapeErrors(doc: unknown, actual: unknown, path = '$'): string[] {
  const kind = (v: unknown) => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);
  if (doc === ANY_OBJECT) return kind(actual) === 'object' ? [] : [`${path}: expected an object, got ${kind(actual)}`];
  if (kind(doc) !== kind(actual)) return [`${path}: documented ${kind(doc)} ${JSON.stringify(doc)}, got ${kind(actual)} ${JSON.stringify(actual)}`];
  if (typeof doc === 'string') {
    const prefix = /^((?:[a-z]+_)+)…$/.exec(doc)?.[1];
    return prefix && !(actual as string).startsWith(prefix) ? [`${path}: expected an id starting ${prefix}, got ${JSON.stringify(actual)}`] : [];
  }
  if (Array.isArray(doc)) {
    return (actual as unknown[]).flatMap((item, i) =>
      doc.some((d) => shapeErrors(d, item).length === 0)
        ? []
        : [`${path}[${i}]: like none documented: ${shapeErrors(doc[0], item, `${path}[${i}]`).join('; ')}`],
    );
  }
  if (kind(doc) === 'object') {
    const d = doc as Record<string, unknown>;
    const a = actual as Record<string, unknown>;
    const missing = Object.keys(d)
      .filter((k) => !(k in a))
      .map((k) => `${path}.${k}: documented, not returned`);
    const extra = Object.keys(a)
      .filter((k) => !(k in d))
      .map((k) => `${path}.${k}: returned, not documented`);
    return [
      ...missing,
      ...extra,
      ...Object.keys(d)
        .filter((k) => k in a)
        .flatMap((k) => shapeErrors(d[k], a[k], `${path}.${k}`)),
    ];
  }
  return [];
}

/** Runs a README command with the shell, as a reader would paste it; BASE and KEY set as the README says. */
async function curl(command: string, env: { BASE: string; KEY: string; customerId: string }): Promise<{ status: number; body: unknown }> {
  const line = `${command.replaceAll('cus_…', env.customerId)} -w '\\n%{http_code}'`;
  const { stdout } = await run('bash', ['-c', line], { env: { ...process.env, BASE: env.BASE, KEY: env.KEY } });
  const cut = stdout.lastIndexOf('\n');
  return { status: Number(stdout.slice(cut + 1)), body: JSON.parse(stdout.slice(0, cut)) };
}

describe('the README', () => {
  let stack: TestStack;
  const logLines: string[] = [];

  beforeAll(async () => {
    // The examples are run as a reader runs them: with the shell's curl.
    await run('curl', ['--version']).catch(() => {
      throw new Error('test/readme.test.ts runs the README with curl: install curl (apt-get install curl).');
    });
    const sink = new Writable({
      write(chunk, _encoding, done) {
        logLines.push(...String(chunk).split('\n').filter(Boolean));
        done();
      },
    });
    stack = await startTestStack({}, { log: createLogger('info', sink) });
  });
  afterAll(async () => {
    await stack?.close();
  });

  describe('shapeErrors, the comparison below', () => {
    it('catches a number where a string is documented, and a key on one side only', () => {
      expect(shapeErrors({ balance: '5000' }, { balance: 5000 })).toHaveLength(1);
      expect(shapeErrors({ customer_id: 'cus_…', balance: '5000' }, { balance: '5000' })).toEqual(['$.customer_id: documented, not returned']);
      expect(shapeErrors({ balance: '5000' }, { balance: '5000', customer_id: 'cus_1' })).toEqual(['$.customer_id: returned, not documented']);
      expect(shapeErrors({ id: 'cus_…' }, { id: 'cde_1' })).toHaveLength(1);
      expect(shapeErrors({ days: [{ n: 1 }] }, { days: [{ n: 1 }, { n: '2' }] })).toHaveLength(1);
    });
  });

  describe('"Using the API with curl"', () => {
    const block = examples(bashBlockAfter('## Using the API with curl'));

    it('documents what every example returns', () => {
      expect(block.length).toBeGreaterThanOrEqual(10);
      // The statuses that are not a plain 200 are stated, and checked below.
      expect(block.filter((e) => e.status !== undefined).map((e) => [/\$BASE(\S*)/.exec(e.command)?.[1], e.status])).toEqual([
        ['/send', 202],
        ['/account/key', 201],
      ]);
      expect(block.filter((e) => e.documented === undefined).map((e) => e.command)).toEqual([]);
    });

    it('each example, run word for word, answers 2xx with the documented shape', async () => {
      const { key, customerId } = await subscribe(stack, 'readme@example.com', 'Readme');
      const env = { BASE: stack.url, KEY: key, customerId };
      for (const example of block) {
        const res = await curl(example.command, env);
        expect.soft(res.status, example.command).toBeLessThan(300);
        if (example.status !== undefined) expect.soft(res.status, `${example.command}: the status its comment states`).toBe(example.status);
        expect.soft(shapeErrors(example.documented, res.body), example.command).toEqual([]);
        await settle(stack);
      }
    });

    it('the tutorial route refuses another customer’s id with 403, as the comment says', async () => {
      const a = await subscribe(stack, 'readme-a@example.com');
      const b = await subscribe(stack, 'readme-b@example.com');
      const res = await request(stack.url).get(`/credits/${b.customerId}`).set(bearer(a.key)).expect(403);
      expect(res.body.error.code).toBeTruthy();
    });
  });

  describe('"Sandbox console" (docs/sandbox-console.md)', () => {
    const block = examples(bashBlockAfter('# Sandbox console', SANDBOX_CONSOLE, 'docs/sandbox-console.md'));

    it('each example answers 2xx with the documented shape', async () => {
      const { key, customerId } = await subscribe(stack, 'readme-console@example.com', 'Console');
      expect(block.filter((e) => e.documented === undefined).map((e) => e.command)).toEqual([]);
      for (const example of block) {
        const res = await curl(example.command, { BASE: stack.url, KEY: key, customerId });
        expect.soft(res.status, example.command).toBeLessThan(300);
        expect.soft(shapeErrors(example.documented, res.body), example.command).toEqual([]);
        await settle(stack);
      }
    });
  });

  describe('quick start, step 4', () => {
    it('logs the very line it quotes, after a send and the −4000 adjustment', async () => {
      const quoted = /`credit\.balance_low` webhook fires[\s\S]*?```\n\s*(\{.*\})\n\s*```/.exec(README)?.[1];
      expect(quoted, 'no log line quoted in step 4').toBeTruthy();
      const { key, customerId } = await subscribe(stack, 'readme-step4@example.com', 'Step four');
      await request(stack.url).post('/send').set(bearer(key)).send({ to: 'delivered@resend.dev', subject: 'Step 3', html: '<p>hi</p>' }).expect(200);
      // A person reaches step 4 more than the settlement interval (5 s) later: the send is in Dodo's ledger by then.
      await stack.credits.settleNow();
      await request(stack.url)
        .post(`/sandbox/api/customers/${customerId}/adjust`)
        .set('Content-Type', 'application/json')
        .send({ amount: -4000 })
        .expect(200);
      await settle(stack);
      // "…" stands for what differs from run to run: a time, an id.
      const pattern = new RegExp(
        `^${quoted!
          .split('…')
          .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
          .join('[^",]+')}$`,
      );
      const lines = logLines.filter((l) => l.includes(customerId) && l.includes('[low-balance]'));
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(pattern);
    });
  });
});
