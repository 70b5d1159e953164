import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import type { Insertable, Transaction } from 'kysely';
import { makePrivate } from '../lib/private-files';
import type { Logger } from '../logger';
import type { Database } from './index';
import type { Tables } from './schema';

/**
 * One-time import of a data directory written before the database: the journal store's
 * snapshot `mailkit.json` (or json-store's older bare document of the same name) and its
 * journals `mailkit.<n>.journal`. Self-contained on purpose: the journal store is gone.
 *
 * On the first boot with such files, everything is copied in one transaction together with a
 * row in `journal_imports` (all or nothing), then the files are renamed `….imported`, so an
 * operator sees it happened and the next boot finds nothing to import. A crash between the
 * commit and the renames is finished on the next boot: the row's digest matches the files.
 * Call it after openDatabase and before anything else writes.
 */
export async function importJournal(database: Database, dataDir: string, log: Pick<Logger, 'info' | 'warn'>): Promise<ImportResult> {
  const old = readDataDir(dataDir);
  if (!old) return { status: 'nothing-to-import' };
  // They hold the old key secret and every send's recipients; the old store left them to the
  // umask (often readable by everyone). Kept, whatever happens below, but private.
  makePrivate(...old.files);
  const earlier = await findImport(database);
  if (earlier) return finishEarlierImport(earlier, old, log);

  const { rows, summary } = rowsOf(old.state);
  try {
    await database.db.transaction().execute(async (trx) => {
      // First, so a second instance importing at the same moment waits here, then fails.
      await trx.insertInto('journalImports').values({ name: IMPORT_NAME, digest: old.digest, importedAt: Date.now(), summary: JSON.stringify(summary) }).execute();
      await insertRows(trx, rows);
    });
  } catch (err) {
    const raced = await findImport(database);
    if (raced) return finishEarlierImport(raced, old, log);
    throw new Error(`importing ${dataDir} into ${database.where} failed; nothing was imported: ${(err as Error).message}`, { cause: err });
  }
  const renamed = renameImported(old.files);
  log.info({ dataDir, where: database.where, ...summary, renamed }, 'imported the old data directory into the database');
  return { status: 'imported', summary, renamed };
}

/** What importJournal did. */
export type ImportResult =
  | { status: 'nothing-to-import' }
  | { status: 'imported'; summary: ImportSummary; renamed: string[] }
  /** Imported on an earlier boot that stopped before renaming: renamed now. */
  | { status: 'already-imported'; renamed: string[] }
  /** Imported earlier, and these files differ from what was imported (an old version ran since): left as they are. */
  | { status: 'left-untouched'; files: string[] };

/** Rows imported per table, and old entries that could not be read (logged, not imported). */
export interface ImportSummary {
  keyEpochs: number;
  secrets: number;
  webhookEvents: number;
  sends: number;
  payloads: number;
  skipped: number;
}

const SNAPSHOT = 'mailkit.json';
const JOURNAL = /^mailkit\.(\d+)\.journal$/;
const IMPORT_NAME = SNAPSHOT;
const SECRET_NAMES = ['keySecret', 'sandboxWebhookSecret'];
/** Rows per INSERT: well under SQLite's and PostgreSQL's bound-parameter limits at 20 columns. */
const CHUNK = 200;

type Collection = Record<string, unknown>;
/** The old document: named collections of entries by key (keyEpochs, sends, payloads, webhooks, generated). */
type OldState = Record<string, Collection>;

interface OldDataDir {
  state: OldState;
  /** Every file of the old store present, to rename once imported. */
  files: string[];
  /** sha256 over the files' names and bytes. */
  digest: string;
}

// ---- Reading the old files ----

/** The old state under `dataDir`, or null when there is none (a fresh install, or already imported). */
function readDataDir(dataDir: string): OldDataDir | null {
  const journals = listJournals(dataDir);
  const snapshot = readIfExists(join(dataDir, SNAPSHOT));
  if (snapshot === null && journals.length === 0) return null;
  const hash = createHash('sha256');
  const { generation, state } = snapshot === null ? { generation: 0, state: {} } : parseSnapshot(snapshot, join(dataDir, SNAPSHOT));
  if (snapshot !== null) hash.update(`${SNAPSHOT}\0`).update(snapshot);
  for (const journal of journals) {
    const bytes = readFileSync(join(dataDir, journal.file));
    hash.update(`${journal.file}\0`).update(bytes);
    // Journals older than the snapshot were already folded into it (the store deleted them at its next open).
    if (journal.generation >= generation) replay(bytes, join(dataDir, journal.file), state);
  }
  const files = [...(snapshot === null ? [] : [SNAPSHOT]), ...journals.map((j) => j.file)].map((f) => join(dataDir, f));
  return { state, files, digest: hash.digest('hex') };
}

function listJournals(dir: string): { generation: number; file: string }[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return names
    .map((file) => ({ file, match: JOURNAL.exec(file) }))
    .filter((n) => n.match)
    .map((n) => ({ generation: Number(n.match![1]), file: n.file }))
    .sort((a, b) => a.generation - b.generation);
}

function readIfExists(file: string): Buffer | null {
  try {
    return readFileSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/** The journal store's `{generation, data}`, or json-store's bare document (generation 0). */
function parseSnapshot(bytes: Buffer, file: string): { generation: number; state: OldState } {
  const corrupt = () => new Error(`${file} is not valid JSON: nothing was imported. Move it aside (or restore it from a backup) and restart.`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw corrupt();
  }
  if (!isObject(parsed)) throw corrupt();
  const wrapped = typeof parsed.generation === 'number' && isObject(parsed.data);
  const document = wrapped ? (parsed.data as Record<string, unknown>) : parsed;
  const state: OldState = {};
  for (const [name, entries] of Object.entries(document)) {
    if (!isObject(entries)) throw corrupt();
    state[name] = { ...entries };
  }
  return { generation: wrapped ? (parsed.generation as number) : 0, state };
}

/**
 * Applies a journal's lines in order (`{c,k,v}` sets, `{c,k,d:1}` removes; the last line for a
 * key wins). A last line cut short by a crash (no newline, or unreadable with only newlines
 * after it) never completed and is skipped; an unreadable line before others is corruption.
 */
function replay(bytes: Buffer, file: string, state: OldState): void {
  let start = 0;
  let lineNo = 0;
  while (start < bytes.length) {
    const end = bytes.indexOf(0x0a, start);
    lineNo++;
    const line = end === -1 ? null : parseLine(bytes.subarray(start, end).toString('utf8'));
    if (!line) {
      if (end === -1 || bytes.subarray(end + 1).every((b) => b === 0x0a)) return;
      throw new Error(`${file}: line ${lineNo} is not a valid journal line: nothing was imported. Cut the file just before it to keep what precedes it, and restart.`);
    }
    const entries = (state[line.c] ??= {});
    if (line.d === 1) delete entries[line.k];
    else entries[line.k] = line.v;
    start = end + 1;
  }
}

function parseLine(text: string): { c: string; k: string; v?: unknown; d?: 1 } | null {
  try {
    const line = JSON.parse(text) as unknown;
    if (isObject(line) && typeof line.c === 'string' && typeof line.k === 'string' && ('v' in line || line.d === 1)) return line as { c: string; k: string; v?: unknown; d?: 1 };
  } catch {
    // not a whole line
  }
  return null;
}

// ---- Mapping to rows ----

interface Rows {
  apiKeyEpochs: Insertable<Tables['apiKeyEpochs']>[];
  secrets: Insertable<Tables['secrets']>[];
  webhookEvents: Insertable<Tables['webhookEvents']>[];
  sends: Insertable<Tables['sends']>[];
  sendPayloads: Insertable<Tables['sendPayloads']>[];
}

/** Every entry of the old state as a row; entries that are not what the old code wrote are counted as skipped. */
function rowsOf(state: OldState): { rows: Rows; summary: ImportSummary } {
  let skipped = 0;
  const keep = <T>(row: T | null): row is T => (row === null ? (skipped++, false) : true);
  const rows: Rows = {
    apiKeyEpochs: Object.entries(state.keyEpochs ?? {}).map(([customerId, epoch]) => epochRow(customerId, epoch)).filter(keep),
    secrets: Object.entries(state.generated ?? {}).map(([name, value]) => secretRow(name, value)).filter(keep),
    webhookEvents: Object.entries(state.webhooks ?? {}).map(([id, at]) => webhookRow(id, at)).filter(keep),
    sends: Object.entries(state.sends ?? {}).map(([id, record]) => sendRow(id, record)).filter(keep),
    sendPayloads: [],
  };
  const sendIds = new Set(rows.sends.map((s) => s.id));
  // A payload whose send is gone would never be cleaned up: only those of imported sends.
  rows.sendPayloads = Object.entries(state.payloads ?? {})
    .map(([sendId, payload]) => (sendIds.has(sendId) && isObject(payload) ? { sendId, body: JSON.stringify(payload) } : null))
    .filter(keep);
  const summary = {
    keyEpochs: rows.apiKeyEpochs.length,
    secrets: rows.secrets.length,
    webhookEvents: rows.webhookEvents.length,
    sends: rows.sends.length,
    payloads: rows.sendPayloads.length,
    skipped,
  };
  return { rows, summary };
}

function epochRow(customerId: string, epoch: unknown) {
  return Number.isSafeInteger(epoch) ? { customerId, epoch: epoch as number } : null;
}

function secretRow(name: string, value: unknown) {
  return SECRET_NAMES.includes(name) && typeof value === 'string' && value ? { name, value } : null;
}

function webhookRow(id: string, at: unknown) {
  const receivedAt = epochMs(at);
  return receivedAt === null ? null : { id, receivedAt };
}

/**
 * An old send record as a row. The client's key was never stored (only hashed into the id):
 * ''. Sends left mid-flight are in doubt: an upstream call of theirs may have happened
 * unanswered. `deliveringSince` of a delivering send is its creation, which is what the old
 * reconciler measured Resend's 24 hours from, and never later than the truth.
 */
function sendRow(id: string, value: unknown): Insertable<Tables['sends']> | null {
  if (!isObject(value)) return null;
  const r = value;
  const createdAt = epochMs(r.createdAt);
  const updatedAt = epochMs(r.updatedAt) ?? createdAt;
  const state = STATES[String(r.state)];
  if (typeof r.customerId !== 'string' || typeof r.fingerprint !== 'string' || !isCount(r.credits) || !isCount(r.attempt) || !state || createdAt === null || updatedAt === null) return null;
  const refund = isObject(r.refund) ? r.refund : null;
  const result = isObject(r.result) && typeof r.result.status === 'number' ? r.result : null;
  return {
    id,
    customerId: r.customerId,
    clientKey: '',
    fingerprint: r.fingerprint,
    credits: r.credits,
    state: state.state,
    attempt: r.attempt,
    // No nonce: the old sender's upstream keys (see upstreamKeys), so a send imported mid-flight
    // is settled under the keys its debit, email or refund were first asked with.
    nonce: '',
    inDoubt: state.inDoubt,
    refundCredits: refund && isCount(refund.credits) ? refund.credits : null,
    refundReason: refund && typeof refund.reason === 'string' ? refund.reason : null,
    refundRetryable: refund ? (refund.retryable ? 1 : 0) : null,
    resultStatus: result ? (result.status as number) : null,
    resultBody: result ? JSON.stringify(result.body ?? null) : null,
    owner: null,
    claimedUntil: null,
    createdAt,
    updatedAt,
    deliveringSince: state.state === 'delivering' ? createdAt : null,
  };
}

/** Old state → new state and whether an upstream call may have gone unanswered. */
const STATES: Record<string, { state: string; inDoubt: number }> = {
  new: { state: 'reserving', inDoubt: 1 },
  unsure: { state: 'reserving', inDoubt: 1 },
  delivering: { state: 'delivering', inDoubt: 1 },
  refunding: { state: 'refunding', inDoubt: 0 },
  failed: { state: 'failed', inDoubt: 0 },
  done: { state: 'done', inDoubt: 0 },
};

async function insertRows(trx: Transaction<Tables>, rows: Rows): Promise<void> {
  // Chunks of one table at a time, each INSERT typed by its own table.
  for (let i = 0; i < rows.apiKeyEpochs.length; i += CHUNK) await trx.insertInto('apiKeyEpochs').values(rows.apiKeyEpochs.slice(i, i + CHUNK)).execute();
  for (let i = 0; i < rows.secrets.length; i += CHUNK) await trx.insertInto('secrets').values(rows.secrets.slice(i, i + CHUNK)).execute();
  for (let i = 0; i < rows.webhookEvents.length; i += CHUNK) await trx.insertInto('webhookEvents').values(rows.webhookEvents.slice(i, i + CHUNK)).execute();
  for (let i = 0; i < rows.sends.length; i += CHUNK) await trx.insertInto('sends').values(rows.sends.slice(i, i + CHUNK)).execute();
  for (let i = 0; i < rows.sendPayloads.length; i += CHUNK) await trx.insertInto('sendPayloads').values(rows.sendPayloads.slice(i, i + CHUNK)).execute();
}

// ---- After the commit ----

async function findImport(database: Database) {
  return (await database.db.selectFrom('journalImports').selectAll().where('name', '=', IMPORT_NAME).executeTakeFirst()) ?? null;
}

function finishEarlierImport(earlier: { digest: string; importedAt: number }, old: OldDataDir, log: Pick<Logger, 'info' | 'warn'>): ImportResult {
  if (earlier.digest !== old.digest) {
    log.warn(
      { files: old.files, importedAt: new Date(earlier.importedAt).toISOString() },
      'old data files found that differ from the ones imported earlier (did an older MailKit run on this directory since?): not imported, left as they are',
    );
    return { status: 'left-untouched', files: old.files };
  }
  const renamed = renameImported(old.files);
  log.info({ renamed }, 'the old data directory was imported on an earlier boot: its files are renamed now');
  return { status: 'already-imported', renamed };
}

/** `mailkit.json` → `mailkit.json.imported`, and each journal alike. One already gone (another instance renamed it) is fine. */
function renameImported(files: string[]): string[] {
  const renamed: string[] = [];
  for (const file of files) {
    try {
      renameSync(file, `${file}.imported`);
      renamed.push(`${file}.imported`);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  return renamed;
}

// ---- Small helpers ----

/** An ISO date string (what the old code wrote) or epoch milliseconds, as epoch milliseconds. */
function epochMs(value: unknown): number | null {
  const ms = typeof value === 'number' ? value : typeof value === 'string' ? Date.parse(value) : NaN;
  return Number.isFinite(ms) ? Math.trunc(ms) : null;
}

function isCount(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
