import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { createJournalStore, type JournalStore } from './lib/journal-store';
import type { SendPayload, SendRecord } from './sending/records';

/** MailKit's own durable state (Dodo's balance is never cached here: Dodo is the source of truth). */
export interface AppState {
  /** Per-customer API key epoch: rotating bumps it, and keys of older epochs stop working. */
  keyEpochs: Record<string, number>;
  /** Send records by internal send id, kept while their idempotency key is honoured. */
  sends: Record<string, SendRecord>;
  /** What an unfinished send delivers, by send id (gone once it is done or failed). */
  payloads: Record<string, SendPayload>;
  /** Processed webhook ids → when they were processed (replays within the window are acknowledged, not re-run). */
  webhooks: Record<string, string>;
  /** Generated secrets used when the environment does not provide them (sandbox mode only). */
  generated: { keySecret?: string; sandboxWebhookSecret?: string; sandboxResendWebhookSecret?: string };
}

/** The app's state: read `store.data`, write through `store.set` / `store.delete`. */
export type AppStore = JournalStore<AppState>;

/**
 * Opens the app's state under `dataDir` (snapshot `mailkit.json` + `mailkit.<n>.journal`), or
 * in memory when dataDir is null. `readOnly`: for a process next to the running server (the
 * key CLI), which must never write, compact or delete its files.
 */
export function createAppStore(dataDir: string | null, opts: { readOnly?: boolean } = {}): AppStore {
  return createJournalStore<AppState>({
    file: dataDir ? join(dataDir, 'mailkit.json') : null,
    initial: () => ({ keyEpochs: {}, sends: {}, payloads: {}, webhooks: {}, generated: {} }),
    readOnly: opts.readOnly,
  });
}

/** Returns the stored generated secret of that name, creating it the first time. */
export function generatedSecret(store: AppStore, name: keyof AppState['generated'], make: () => string): string {
  const existing = store.data.generated[name];
  if (existing) return existing;
  const value = make();
  store.set('generated', name, value);
  return value;
}

/** A Standard Webhooks secret in Dodo's `whsec_` form. */
export function newWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString('base64')}`;
}
