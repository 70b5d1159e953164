import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, resolve } from 'node:path';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { parse as parseYaml } from 'yaml';

/**
 * Validates bodies against the vendors' official OpenAPI specs, copied into test/contract/specs
 * (see its README for their provenance), so a sandbox
 * response (or a request MailKit sends) that drifts from the vendor's contract fails a test.
 */

const here = dirname(fileURLToPath(import.meta.url));
/** The vendors' specs, kept in the repository byte for byte as published. */
export const specsDir = resolve(here, '../contract/specs');

type Spec = { paths: Record<string, Record<string, any>>; components?: { schemas?: Record<string, unknown> } };
export type SpecName = 'dodo' | 'resend';

const files: Record<SpecName, string> = {
  dodo: 'dodo-openapi-1.113.0.mailkit-subset.json',
  resend: 'resend-openapi-1.5.0.yaml',
};

const specs = new Map<SpecName, Spec>();
const ajvs = new Map<SpecName, Ajv2020>();
const compiled = new Map<string, ValidateFunction>();

/** Loads (once) and returns the parsed spec. */
export function loadSpec(name: SpecName): Spec {
  let spec = specs.get(name);
  if (!spec) {
    const text = readFileSync(resolve(specsDir, files[name]), 'utf8');
    spec = (name === 'dodo' ? JSON.parse(text) : parseYaml(text)) as Spec;
    specs.set(name, spec);
  }
  return spec;
}

function ajvFor(name: SpecName): Ajv2020 {
  let ajv = ajvs.get(name);
  if (!ajv) {
    // strict:false because vendor specs use OpenAPI keywords (example, discriminator…) Ajv does not know.
    ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: true });
    (addFormats as unknown as (a: Ajv2020) => void)(ajv);
    ajv.addFormat('int32', true).addFormat('int64', true).addFormat('double', true).addFormat('float', true);
    // The whole spec is registered as one schema so `#/components/schemas/X` refs resolve.
    ajv.addSchema({ $id: `spec:${name}`, ...(loadSpec(name) as object) } as never);
    ajvs.set(name, ajv);
  }
  return ajv;
}

function pointer(...parts: string[]): string {
  return parts.map((p) => p.replace(/~/g, '~0').replace(/\//g, '~1')).join('/');
}

function validatorFor(name: SpecName, ref: string): ValidateFunction {
  const key = `${name} ${ref}`;
  let fn = compiled.get(key);
  if (!fn) {
    fn = ajvFor(name).compile({ $ref: `spec:${name}#${ref}` });
    compiled.set(key, fn);
  }
  return fn;
}

function describeErrors(fn: ValidateFunction): string {
  return (fn.errors ?? []).map((e) => `${e.instancePath || '(root)'} ${e.message}`).join('; ');
}

/**
 * Asserts that `body` matches the spec's response schema for `METHOD pathTemplate` → `status`.
 * `pathTemplate` is the spec's own key, e.g. `/credit-entitlements/{credit_entitlement_id}`.
 * Throws with the validator's messages when it does not; returns silently when it does.
 */
export function assertResponseMatchesSpec(name: SpecName, method: string, pathTemplate: string, status: number, body: unknown): void {
  const op = loadSpec(name).paths[pathTemplate]?.[method.toLowerCase()];
  if (!op) throw new Error(`${name} spec has no operation ${method.toUpperCase()} ${pathTemplate}`);
  const response = op.responses?.[String(status)] ?? op.responses?.default;
  if (!response) throw new Error(`${name} spec declares no ${status} for ${method.toUpperCase()} ${pathTemplate}`);
  if (!response.content?.['application/json']?.schema) return; // the spec declares no body for this status
  const ref =
    '/' +
    pointer(
      'paths',
      pathTemplate,
      method.toLowerCase(),
      'responses',
      String(response === op.responses?.default ? 'default' : status),
      'content',
      'application/json',
      'schema',
    );
  const fn = validatorFor(name, ref);
  if (!fn(body)) {
    throw new Error(
      `${method.toUpperCase()} ${pathTemplate} ${status} body does not match the ${name} spec: ${describeErrors(fn)}\n` +
        `${JSON.stringify(body).slice(0, 2000)}`,
    );
  }
}

/** Asserts that a request body matches the spec's requestBody schema for `METHOD pathTemplate`. */
export function assertRequestMatchesSpec(name: SpecName, method: string, pathTemplate: string, body: unknown): void {
  const op = loadSpec(name).paths[pathTemplate]?.[method.toLowerCase()];
  if (!op?.requestBody?.content?.['application/json']?.schema) {
    throw new Error(`${name} spec has no JSON request body for ${method.toUpperCase()} ${pathTemplate}`);
  }
  const ref = '/' + pointer('paths', pathTemplate, method.toLowerCase(), 'requestBody', 'content', 'application/json', 'schema');
  const fn = validatorFor(name, ref);
  if (!fn(body)) {
    throw new Error(`${method.toUpperCase()} ${pathTemplate} request body does not match the ${name} spec: ${describeErrors(fn)}`);
  }
}

/**
 * Asserts that a webhook payload matches the spec's schema for that event type: the spec's
 * top-level `webhooks` section (Dodo's and Resend's specs both have one).
 */
export function assertWebhookMatchesSpec(eventType: string, body: unknown, name: SpecName = 'dodo'): void {
  const spec = loadSpec(name) as Spec & { webhooks?: Record<string, any> };
  if (!spec.webhooks?.[eventType]?.post?.requestBody?.content?.['application/json']?.schema) {
    throw new Error(`${name} spec has no webhook ${eventType}`);
  }
  const ref = '/' + pointer('webhooks', eventType, 'post', 'requestBody', 'content', 'application/json', 'schema');
  const fn = validatorFor(name, ref);
  if (!fn(body)) {
    throw new Error(`webhook ${eventType} does not match the ${name} spec: ${describeErrors(fn)}\n${JSON.stringify(body).slice(0, 2000)}`);
  }
}
