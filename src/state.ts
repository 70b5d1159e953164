import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { createJsonStore, type JsonStore } from './lib/json-store';
import type { SendRecord } from './sending/records';

/** MailKit's own durable state (Dodo's balance is never cached here: Dodo is the source of truth). */
export interface AppState {
  /** Per-customer API key epoch: rotating bumps it, and keys of older epochs stop working. */
  keyEpochs: Record<string, number>;
  /** Send records by internal send id, kept while their idempotency key is honoured. */
  sends: Record<string, SendRecord>;
  /** Processed webhook ids → when they were processed (replays within the window are acknowledged, not re-run). */
  webhooks: Record<string, string>;
  /** Generated secrets used when the environment does not provide them (sandbox mode only). */
  generated: { keySecret?: string; sandboxWebhookSecret?: string };
}

export type AppStore = JsonStore<AppState>;

/** Opens the app's state under `dataDir` (`mailkit.json`), or in memory when dataDir is null. */
export function createAppStore(dataDir: string | null): AppStore {
  return createJsonStore<AppState>({
    file: dataDir ? join(dataDir, 'mailkit.json') : null,
    initial: () => ({ keyEpochs: {}, sends: {}, webhooks: {}, generated: {} }),
  });
}

/** Returns the stored generated secret of that name, creating it the first time. */
export function generatedSecret(store: AppStore, name: keyof AppState['generated'], make: () => string): string {
  const existing = store.data.generated[name];
  if (existing) return existing;
  const value = make();
  store.data.generated[name] = value;
  store.save();
  return value;
}

/** A Standard Webhooks secret in Dodo's `whsec_` form. */
export function newWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString('base64')}`;
}
