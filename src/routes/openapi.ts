import { Router } from 'express';
import { z } from 'zod';
import { subscribeBody, topupBody } from './checkout';
import { emailDetail, emailIdParam, emailList, emailsQuery } from './emails';
import { batchBody, sendBody } from './send';
import { suppressionDeleted, suppressionList, suppressionParam, suppressionsQuery } from './suppressions';
import { MAX_USAGE_DAYS, usageQuery } from './usage';
import { customerIdString, emptyBody, idempotencyKeyHeader } from './validate';

/**
 * GET /openapi.json: MailKit's own API as an OpenAPI 3.1 document, generated from the zod
 * schemas the routes validate requests with (`z.toJSONSchema`), so the contract cannot drift
 * from the code. Responses are described by the zod schemas below (and by those exported next
 * to their routes); test/routes/openapi.test.ts checks every route's real answers against it.
 */

/** The one error envelope every route answers with. */
export const errorEnvelope = z.object({ error: z.object({ code: z.string(), message: z.string() }) });

const balanceBody = z.object({
  customer_id: z.string(),
  balance: z
    .string()
    .describe(
      'What the customer can spend now, as a decimal string (as Dodo gives balances): ' +
        'the balance MailKit keeps, which Dodo holds too once the spends are settled (within seconds)',
    ),
  pending: z.string().describe('Credits of emails still on their way to the email provider: spent, or given back if it refuses them'),
});
const checkoutBody = z.object({ checkout_url: z.url() });
const sendResult = z.object({ id: z.string().describe("Resend's email id: GET /emails/{id} follows it") });
const batchResult = z.object({
  data: z.array(z.union([sendResult, errorEnvelope])).describe('One entry per email, in request order: its id, or why it was not sent'),
  sent: z.number().int(),
  failed: z.number().int(),
});
const queuedResult = z.object({
  id: z
    .string()
    .describe("MailKit's email id: GET /emails/{id} follows its fate (queued, then sent, delivered, or failed with its credits refunded)"),
  status: z.literal('queued'),
});
const queuedBatch = z.object({
  data: z.array(z.union([queuedResult, errorEnvelope])).describe('One entry per email, in request order: its id, or why it was refused (suppressed)'),
  queued: z.number().int(),
  failed: z.number().int(),
});
const usageDay = z.object({
  date: z.string(),
  emails: z.number().int(),
  adjusted: z.number().int(),
  expired: z.number().int(),
  credits: z.number().int(),
  balance: z.string().nullable(),
});
const usageBody = z.object({ days: z.array(usageDay), balance: z.string(), low_balance_threshold: z.number(), truncated: z.boolean() });
const accountBody = z.object({ customer_id: z.string(), email: z.string(), name: z.string() });
const check = z.object({ ok: z.boolean(), reason: z.string().optional() });
const readyBody = z.object({ status: z.enum(['ready', 'unavailable']), checks: z.object({ database: check, dodo: check, resend: check }) });

type Schema = z.ZodType;
const toJson = (schema: Schema, io: 'input' | 'output') => {
  const { $schema: _drop, ...rest } = z.toJSONSchema(schema, { target: 'draft-2020-12', io, unrepresentable: 'any' }) as Record<string, unknown>;
  return rest;
};

const header = (description: string, required = false) => ({ description, required, schema: { type: 'string' } });
const rateHeaders = (required: boolean) => ({
  RateLimit: header('IETF RateLimit (draft 8): `"customer"; r=<remaining>; t=<seconds to reset>`', required),
  'RateLimit-Policy': header('IETF RateLimit-Policy: `"customer"; q=<limit>; w=60`', required),
});
const RETRY_AFTER = { 'Retry-After': header('Seconds to wait before retrying', true) };
const SEND_HEADERS = {
  'Idempotency-Key': header('The key this send runs under (yours, or one generated for you): retry a 503 with it', true),
  'Idempotent-Replayed': header('`true` when this answer is the stored answer of an earlier request with the same key'),
};

const ERROR_TEXT: Record<number, string> = {
  400: 'Invalid request: the message names the field',
  401: 'Missing or invalid API key',
  402: 'Not enough credits (one per recipient): nothing was sent or charged',
  403: 'A customer id that is not the key’s own',
  404: 'Not found (another customer’s is indistinguishable from none)',
  409: 'The same Idempotency-Key is still being processed',
  413: 'Body too large',
  415: 'Body is not JSON',
  422: 'Refused: suppressed recipient, rejected by the email provider, or an Idempotency-Key reused with another body',
  429: 'Rate limited: retry after Retry-After',
  502: 'Delivery never confirmed within 24 hours',
  503: 'An upstream or the database is unavailable: retry after Retry-After',
};

interface Op {
  method: 'get' | 'post' | 'delete';
  path: string;
  summary: string;
  /** False: public (no API key). */
  auth?: boolean;
  query?: z.ZodObject;
  params?: Record<string, Schema>;
  body?: Schema;
  bodyRequired?: boolean;
  idempotent?: boolean;
  /** A send: with `Prefer: respond-async`, 202 and this body once it is paid and queued. */
  accepted?: Schema;
  ok: Schema;
  okStatus?: number;
  errors: number[];
}

const CUSTOMER_ERRORS = [401, 429, 503];
const OPS: Op[] = [
  {
    method: 'post',
    path: '/checkout/subscribe',
    summary: 'Start a subscription: a Dodo checkout link',
    auth: false,
    body: subscribeBody,
    bodyRequired: true,
    ok: checkoutBody,
    errors: [400, 413, 415, 429, 503],
  },
  {
    method: 'post',
    path: '/checkout/topup',
    summary: 'A top-up checkout link for the key’s customer (404: a key minted for a customer Dodo does not know)',
    body: topupBody,
    ok: checkoutBody,
    errors: [400, 403, 404, ...CUSTOMER_ERRORS],
  },
  { method: 'get', path: '/credits', summary: 'The key’s balance', ok: balanceBody, errors: CUSTOMER_ERRORS },
  {
    method: 'get',
    path: '/credits/usage',
    summary: `Usage per UTC day (1–${MAX_USAGE_DAYS} days)`,
    query: usageQuery,
    ok: usageBody,
    errors: [400, ...CUSTOMER_ERRORS],
  },
  {
    method: 'get',
    path: '/credits/{customerId}',
    summary: 'The tutorial’s balance route (the id must be the key’s own)',
    params: { customerId: customerIdString },
    ok: balanceBody.omit({ customer_id: true, pending: true }),
    errors: [400, 403, ...CUSTOMER_ERRORS],
  },
  {
    method: 'post',
    path: '/send',
    summary: 'Send one email (one credit per recipient: to, cc and bcc)',
    body: sendBody,
    bodyRequired: true,
    idempotent: true,
    ok: sendResult,
    accepted: queuedResult,
    errors: [400, 402, 403, 409, 413, 415, 422, 429, 502, 503, 401],
  },
  {
    method: 'post',
    path: '/send/batch',
    summary: 'Send up to 100 emails in one call; a suppressed item alone is refused',
    body: batchBody,
    bodyRequired: true,
    idempotent: true,
    ok: batchResult,
    accepted: queuedBatch,
    errors: [400, 402, 403, 409, 413, 415, 422, 429, 502, 503, 401],
  },
  {
    method: 'get',
    path: '/emails',
    summary: 'The key’s emails, newest first, cursor-paginated, by status',
    query: emailsQuery,
    ok: emailList,
    errors: [400, ...CUSTOMER_ERRORS],
  },
  {
    method: 'get',
    path: '/emails/{id}',
    summary: 'One email: status, each event with its time, what it cost',
    params: { id: emailIdParam },
    ok: emailDetail,
    errors: [400, 404, ...CUSTOMER_ERRORS],
  },
  {
    method: 'get',
    path: '/suppressions',
    summary: 'The key’s suppression list (permanent bounces, complaints), newest first',
    query: suppressionsQuery,
    ok: suppressionList,
    errors: [400, ...CUSTOMER_ERRORS],
  },
  {
    method: 'delete',
    path: '/suppressions/{email}',
    summary: 'Take an address off the list: sends to it go through again',
    params: { email: suppressionParam },
    ok: suppressionDeleted,
    errors: [400, 404, ...CUSTOMER_ERRORS],
  },
  {
    method: 'get',
    path: '/account',
    summary: 'Who this key belongs to (404: a key minted for a customer Dodo does not know)',
    ok: accountBody,
    errors: [404, ...CUSTOMER_ERRORS],
  },
  {
    method: 'post',
    path: '/account/key',
    summary: 'Rotate the key: the old one stops working at once',
    body: emptyBody,
    ok: z.object({ api_key: z.string() }),
    okStatus: 201,
    errors: [400, 413, 415, ...CUSTOMER_ERRORS],
  },
  { method: 'get', path: '/healthz', summary: 'Alive', auth: false, ok: z.object({ status: z.literal('ok') }), errors: [] },
  {
    method: 'get',
    path: '/readyz',
    summary: 'Ready: the database, Dodo and Resend answer (503 names the failing check)',
    auth: false,
    ok: readyBody,
    errors: [],
  },
];

function operation(op: Op) {
  const customer = op.auth !== false;
  const parameters = [
    ...Object.entries(op.params ?? {}).map(([name, schema]) => ({ name, in: 'path', required: true, schema: toJson(schema, 'input') })),
    ...Object.entries(op.query?.shape ?? {}).map(([name, schema]) => ({
      name,
      in: 'query',
      required: !(schema as Schema).safeParse(undefined).success,
      schema: toJson(schema as Schema, 'input'),
    })),
    ...(op.idempotent
      ? [
          {
            name: 'Idempotency-Key',
            in: 'header',
            required: false,
            description: 'Retry with the same key and body: one email, one debit, the same answer (24 h)',
            schema: toJson(idempotencyKeyHeader.unwrap(), 'input'),
          },
        ]
      : []),
    ...(op.accepted
      ? [
          {
            name: 'Prefer',
            in: 'header',
            required: false,
            description:
              '`respond-async`: answer 202 once the send is paid and queued (MailKit’s ids), ' +
              'not once the email provider accepted it; it is delivered in the background',
            schema: { type: 'string' },
          },
        ]
      : []),
  ];
  const okHeaders = { ...(customer ? rateHeaders(true) : {}), ...(op.idempotent ? SEND_HEADERS : {}) };
  const responses: Record<string, unknown> = {
    [String(op.okStatus ?? 200)]: { description: 'OK', headers: okHeaders, content: { 'application/json': { schema: toJson(op.ok, 'output') } } },
  };
  if (op.accepted) {
    responses['202'] = {
      description: 'Accepted (`Prefer: respond-async`): paid and queued; delivered in the background',
      headers: { ...okHeaders, 'Preference-Applied': header('`respond-async`', true), Location: header('GET /emails/{id} of a single send') },
      content: { 'application/json': { schema: toJson(op.accepted, 'output') } },
    };
  }
  for (const status of op.errors) {
    const retry = status === 429 || status === 503 || status === 409;
    responses[String(status)] = {
      description: ERROR_TEXT[status],
      headers: {
        ...(customer ? rateHeaders(status === 429) : {}),
        ...(retry ? RETRY_AFTER : {}),
        ...(op.idempotent && status !== 401 ? { 'Idempotency-Key': { ...SEND_HEADERS['Idempotency-Key'], required: false } } : {}),
      },
      content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
    };
  }
  if (op.path === '/readyz')
    responses['503'] = { description: ERROR_TEXT[503], content: { 'application/json': { schema: toJson(readyBody, 'output') } } };
  responses.default = {
    description: 'Any other failure, in the same envelope',
    content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
  };
  return {
    operationId: `${op.method}${op.path
      .replace(/[{}]/g, '')
      .replace(/\/(\w)/g, (_m, c: string) => c.toUpperCase())
      .replace(/\W/g, '')}`,
    summary: op.summary,
    security: customer ? [{ apiKey: [] }] : [],
    ...(parameters.length ? { parameters } : {}),
    ...(op.body
      ? { requestBody: { required: op.bodyRequired ?? false, content: { 'application/json': { schema: toJson(op.body, 'input') } } } }
      : {}),
    responses,
  };
}

let built: object | null = null;

/** The document, built once from the schemas. */
export function openApiDocument(): object {
  if (built) return built;
  const paths: Record<string, Record<string, unknown>> = {};
  for (const op of OPS) (paths[op.path] ??= {})[op.method] = operation(op);
  built = {
    openapi: '3.1.0',
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    info: {
      title: 'MailKit API',
      version: '1.0.0',
      description:
        'Transactional email with prepaid credits. Every customer route takes `Authorization: Bearer <key>`; the customer comes from the key. ' +
        'Errors are always `{"error": {"code", "message"}}`. A send costs one credit per recipient (to, cc and bcc).',
    },
    components: {
      securitySchemes: { apiKey: { type: 'http', scheme: 'bearer', description: 'Your MailKit API key, mk_test_… or mk_live_…' } },
      schemas: { Error: toJson(errorEnvelope, 'output') },
    },
    paths,
  };
  return built;
}

/** GET /openapi.json (public: it holds no customer data). */
export function openApiRoutes(): Router {
  const router = Router();
  router.get('/openapi.json', (_req, res) => {
    res.set('Cache-Control', 'public, max-age=300');
    res.json(openApiDocument());
  });
  return router;
}
