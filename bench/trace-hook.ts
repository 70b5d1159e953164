/**
 * Loaded into MailKit's process by bench/send.ts (`node --import ./bench/trace-hook.ts`): times
 * each POST /send from the moment its headers are parsed to the moment its answer is handed to
 * the socket, and how much of that was spent waiting on Dodo and Resend (from an upstream
 * request's start to its response headers). The rest is MailKit's own time: routing, auth,
 * validation, the SDKs' own work, records, the answer. Node's diagnostics channels only; no
 * MailKit code is touched.
 *
 * On SIGTERM it writes the samples to $BENCH_TRACE_FILE as JSON lines before server.ts's own
 * shutdown handler runs: { at (epoch ms), total, upstream } in ms. Sends carrying an
 * X-Bench-Untraced header (the soak's) are not timed, so that the samples kept here do not
 * count in the soak's memory figure.
 *
 * On SIGUSR2 it runs a full garbage collection (bench/send.ts starts MailKit with --expose-gc)
 * and writes process.memoryUsage() to $BENCH_MEMORY_FILE: the soak's memory kept, as opposed
 * to garbage not yet collected.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import dc from 'node:diagnostics_channel';
import { writeFileSync } from 'node:fs';

type Sample = { at: number; start: number; total: number; upstream: number };
const samples: Sample[] = [];
const current = new AsyncLocalStorage<Sample | null>();
const now = () => performance.now();

dc.subscribe('http.server.request.start', (message) => {
  const { request } = message as { request: { method?: string; url?: string; headers: Record<string, string | string[] | undefined> } };
  // Every request resets the context, so nothing leaks to the next request on a kept-alive socket.
  // The soak's sends (X-Bench-Untraced) are not kept: their samples would grow this process.
  const traced = request.method === 'POST' && request.url === '/send' && !request.headers['x-bench-untraced'];
  const sample = traced ? { at: performance.timeOrigin + now(), start: now(), total: 0, upstream: 0 } : null;
  current.enterWith(sample);
  if (sample) (request as { benchSample?: Sample }).benchSample = sample;
});
dc.subscribe('http.server.response.finish', (message) => {
  const sample = (message as { request: { benchSample?: Sample } }).request.benchSample;
  if (!sample) return;
  sample.total = now() - sample.start;
  samples.push(sample);
});

// A response arrives in its socket's async context, not the send's: the request object
// carries its sample from start to answer.
const openedAt = new WeakMap<object, { sample: Sample; at: number }>();
const opened = (request: object) => {
  const sample = current.getStore();
  if (sample) openedAt.set(request, { sample, at: now() });
};
const answered = (request: object) => {
  const open = openedAt.get(request);
  if (!open) return;
  open.sample.upstream += now() - open.at;
  openedAt.delete(request);
};
// The Dodo SDK runs over node:http (src/lib/http-fetch.ts), Resend's over the built-in fetch (undici).
dc.subscribe('http.client.request.start', (m) => opened((m as { request: object }).request));
dc.subscribe('http.client.response.finish', (m) => answered((m as { request: object }).request));
dc.subscribe('undici:request:create', (m) => opened((m as { request: object }).request));
dc.subscribe('undici:request:headers', (m) => answered((m as { request: object }).request));

process.prependListener('SIGTERM', () => {
  const file = process.env.BENCH_TRACE_FILE;
  if (!file) return;
  writeFileSync(file, samples.map((s) => JSON.stringify({ at: s.at, total: s.total, upstream: s.upstream })).join('\n'));
});

process.on('SIGUSR2', () => {
  const file = process.env.BENCH_MEMORY_FILE;
  if (!file) return;
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  gc?.();
  const m = process.memoryUsage();
  writeFileSync(
    file,
    JSON.stringify({ collected: Boolean(gc), rss: m.rss, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers }),
  );
});
