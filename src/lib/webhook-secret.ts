import { randomBytes } from 'node:crypto';

/** A Standard Webhooks secret in Dodo's `whsec_` form. */
export function newWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString('base64')}`;
}
