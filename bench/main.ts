/**
 * `npm run bench`: bench/send.ts (throughput, latency and memory, no quotas), or with `--quotas`
 * bench/quotas.ts (MailKit under the vendors' quotas, judged by what reaches Resend). Each reads its own
 * options; this only picks one, so that neither has to know the other's.
 */
await import(process.argv.slice(2).includes('--quotas') ? './quotas' : './send');

export {};
