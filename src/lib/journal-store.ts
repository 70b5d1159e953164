import { constants, readdirSync, readFileSync, rmSync, statSync, type Stats } from 'node:fs';
import { mkdir, open, rm, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { replaceFileAtomically } from './json-store';

/** The shape a journaled document must have: named collections of entries by key. */
export type Collections<T> = { [C in keyof T]: Record<string, unknown> };

/**
 * A document of named collections held in memory and persisted as a snapshot plus an
 * append-only journal, so a mutation costs O(size of that one entry), never O(document).
 *
 * Read `store.data` synchronously; write through `set` and `delete` only (a record mutated in
 * place is then `set` again with the same object: its line carries the full current value).
 * Because Node runs one handler at a time, a synchronous `set` is atomic with respect to
 * other requests. Lines set in the same turn of the event loop are written together, off
 * the event loop, by one writer at a time. There is no fsync per line, only in `flush()`
 * and at compaction: a process crash loses nothing already handed to the OS, a power loss
 * may lose the last moments (callers that need more await `flush()`).
 */
export interface JournalStore<T extends Collections<T>> {
  /** The live document. Do not mutate it directly: go through set and delete. */
  readonly data: T;
  /** Writes `data[collection][key] = value` and journals it. */
  set<C extends keyof T & string, K extends keyof T[C] & string>(collection: C, key: K, value: Exclude<T[C][K], undefined>): void;
  /** Removes `data[collection][key]` and journals the removal. */
  delete<C extends keyof T & string>(collection: C, key: keyof T[C] & string): void;
  /**
   * The collection's keys, oldest first (a key removed and set again counts as new): a live
   * iterator, so a caller can read from the oldest and stop early, deleting as it goes.
   */
  keys<C extends keyof T & string>(collection: C): IterableIterator<string>;
  /** Resolves once everything set so far is written and fsynced; rejects if the disk refused it. */
  flush(): Promise<void>;
  /** Rewrites the snapshot and starts a fresh journal now (it also happens on its own as the journal grows). */
  compact(): Promise<void>;
  /** Lets a compaction in progress finish, flushes, and closes the files (a later set reopens them). */
  close(): Promise<void>;
}

/** Where and how a journal store keeps its document. */
export interface JournalStoreOptions<T> {
  /** Path of the snapshot (`…/mailkit.json`); journals sit beside it (`mailkit.<generation>.journal`). Null: memory only. */
  file: string | null;
  /** Builds the empty document: every collection, each empty. */
  initial: () => T;
  /** Read what is on disk and never write, compact or delete anything (a CLI next to the running server). */
  readOnly?: boolean;
  /** Journal lines below which no compaction happens, whatever the live size (default 10,000). */
  compactFloor?: number;
}

/** One journal line: a full value (`v`) or a removal (`d`) of one entry. */
interface Line {
  c: string;
  k: string;
  v?: unknown;
  d?: 1;
}

interface Journal {
  /** Null once closed; the next write reopens it at `position`. */
  handle: FileHandle | null;
  /** Where the next line goes: writes are positional, so a retried write overwrites a partial one. */
  position: number;
  unsynced: boolean;
}

/** Bytes of snapshot serialized between two yields to the event loop. */
const SNAPSHOT_CHUNK_BYTES = 128 * 1024;
const RETRY_MS = 1_000;
const COMPACT_RETRY_MS = 5_000;

/**
 * Opens (or creates) a journal store: reads the snapshot, replays the journals of its
 * generation and later ones. A corrupt snapshot or journal stops the caller with a message
 * naming the file. A snapshot in the old single-document format (json-store's) is read as
 * generation 0, so existing data dirs keep working.
 */
export function createJournalStore<T extends Collections<T>>(options: JournalStoreOptions<T>): JournalStore<T> {
  const { file, initial } = options;
  const readOnly = options.readOnly ?? false;
  const floor = options.compactFloor ?? 10_000;

  if (!file) return memoryStore(initial());

  const dir = dirname(file);
  const journalName = journalNamer(file);
  const loaded = load(file, dir, journalName, initial);
  const data = loaded.data as Record<string, Record<string, unknown>>;
  if (!readOnly) removeStale(file, dir, journalName, loaded.generation);

  let generation = loaded.current;
  /** Lines a reopen would replay; compaction is due when they outnumber twice the live entries. */
  let lines = loaded.lines;
  /**
   * Every collection's keys in a Set beside the plain object: the snapshot walks them with a
   * live iterator a chunk at a time, where Object.keys would list a large collection in one
   * block (about 20 ms per 100k keys). The sizes are also the live entry count.
   */
  const keys = new Map(Object.entries(data).map(([name, entries]) => [name, new Set(Object.keys(entries))]));
  let live = 0;
  for (const set of keys.values()) live += set.size;
  /** Lines not yet handed to the OS, in order, each batch tagged with its journal's generation. */
  let pending: { generation: number; lines: string[] }[] = [{ generation, lines: [] }];
  const journals = new Map<number, Journal>();
  let dirUnsynced = false;
  /** Every journal file operation runs on this chain, one at a time, in order. */
  let io: Promise<void> = Promise.resolve();
  let writeQueued = false;
  let retryTimer: NodeJS.Timeout | null = null;
  let nextFlush: Promise<void> | null = null;
  let compacting: Promise<void> | null = null;
  let compactNotBefore = 0;

  const serially = (task: () => Promise<void>): Promise<void> => {
    const run = io.then(task);
    io = run.catch(() => undefined);
    return run;
  };

  const journalFor = async (gen: number): Promise<Journal & { handle: FileHandle }> => {
    const known = journals.get(gen);
    if (known?.handle) return known as Journal & { handle: FileHandle };
    await mkdir(dir, { recursive: true });
    const handle = await open(join(dir, journalName(gen)), constants.O_WRONLY | constants.O_CREAT, 0o600);
    // Appending resumes after the last whole line written (or read at open): a torn tail is
    // cut off, not extended.
    const position = known?.position ?? (gen === loaded.current ? loaded.currentLength : 0);
    try {
      await handle.truncate(position);
    } catch (err) {
      await handle.close();
      throw err;
    }
    const journal = { handle, position, unsynced: true };
    journals.set(gen, journal);
    dirUnsynced = true;
    return journal;
  };

  /** Writes what is pending now (not what arrives meanwhile: a flush must not chase a busy server). */
  const writePending = async (): Promise<void> => {
    const batches = pending;
    pending = [{ generation, lines: [] }];
    for (let i = 0; i < batches.length; i++) {
      const batch = batches[i]!;
      if (batch.lines.length === 0) continue;
      try {
        const journal = await journalFor(batch.generation);
        const bytes = Buffer.from(batch.lines.join(''));
        await writeFully(journal.handle, bytes, journal.position);
        journal.position += bytes.length;
        journal.unsynced = true;
      } catch (err) {
        // Still owed, ahead of anything set since: the retry rewrites it at the same position.
        pending = [...batches.slice(i), ...pending];
        throw err;
      }
    }
  };

  const syncAll = async (): Promise<void> => {
    for (const [gen, journal] of journals) {
      if (!journal.unsynced) continue;
      // A journal closed after a failed flush is reopened: fsync covers the file, whichever descriptor.
      await (await journalFor(gen)).handle.sync();
      journal.unsynced = false;
    }
    if (dirUnsynced) {
      await syncDir(dir);
      dirUnsynced = false;
    }
  };

  // A failed write (disk full, permissions) is never left unhandled: it is retried in the
  // background, and flush() reports it to its caller.
  const retryLater = () => {
    if (retryTimer) return;
    retryTimer = setTimeout(() => {
      retryTimer = null;
      scheduleWrite();
    }, RETRY_MS);
    // A retry must not keep a finished test or CLI process alive.
    retryTimer.unref();
  };

  function scheduleWrite() {
    if (writeQueued) return;
    writeQueued = true;
    setImmediate(() => {
      serially(async () => {
        writeQueued = false;
        await writePending();
      }).catch(retryLater);
    });
  }

  /** Queues one serialized line; the caller serializes before mutating, so a value that cannot be stored changes nothing. */
  const append = (text: string) => {
    const batch = pending[pending.length - 1]!;
    if (batch.generation === generation) batch.lines.push(text);
    else pending.push({ generation, lines: [text] });
    lines++;
    scheduleWrite();
    if (lines > Math.max(floor, 2 * live) && !compacting && Date.now() >= compactNotBefore) {
      compact().catch(() => {
        // Nothing is lost: the journals still hold every line. Try again later.
        compactNotBefore = Date.now() + COMPACT_RETRY_MS;
      });
    }
  };

  /**
   * Starts generation g+1 (new lines go to its journal from now on), writes a snapshot of
   * the live data in chunks, then drops the journals older than g+1.
   *
   * The snapshot is "fuzzy": it is serialized a chunk at a time, yielding to the event loop,
   * so entries are read at different moments, all after g+1 started. That is still exact
   * after a replay because every line holds an entry's full value and the last line wins:
   * an entry changed after g+1 started has its final value (or removal) as its last line in
   * journal g+1, which overrides whatever the snapshot caught; an entry not changed since
   * has the same value at every moment the snapshot may have read it. Until the snapshot is
   * renamed into place, the old snapshot and journal g are untouched and a reopen replays
   * journal g then g+1 over the old snapshot, so a crash at any point loses nothing.
   */
  const compactNow = async (): Promise<void> => {
    const next = generation + 1;
    generation = next;
    lines = 0;
    await writeSnapshot(file, next, data, keys);
    await syncDir(dir);
    await serially(async () => {
      // Lines of older generations not yet written are covered by the snapshot just renamed.
      pending = pending.filter((batch) => batch.generation >= next);
      if (pending.length === 0) pending = [{ generation, lines: [] }];
      for (const [gen, journal] of journals) {
        if (gen >= next) continue;
        journals.delete(gen);
        await journal.handle?.close().catch(() => undefined);
      }
      for (const name of listJournals(dir, journalName)) {
        if (name.generation < next) await rm(join(dir, name.file), { force: true });
      }
    });
  };

  function flush(): Promise<void> {
    if (readOnly) return Promise.resolve();
    // Callers arriving before a queued flush starts join it (one fsync for all): it writes
    // what is pending when it starts, their lines included.
    if (nextFlush) return nextFlush;
    const flushing = serially(async () => {
      nextFlush = null;
      await writePending();
      await syncAll();
    });
    nextFlush = flushing;
    flushing.catch(retryLater);
    return flushing;
  }

  function compact(): Promise<void> {
    if (readOnly) return Promise.resolve();
    compacting ??= compactNow().finally(() => {
      compacting = null;
    });
    return compacting;
  }

  const refuseReadOnly = () => {
    if (readOnly) throw new Error(`${file} was opened read-only: it cannot be changed from here.`);
  };

  return {
    data: loaded.data,
    set(collection, key, value) {
      refuseReadOnly();
      const text = serialize({ c: collection, k: key, v: value });
      const known = keys.get(collection)!;
      if (!known.has(key)) {
        known.add(key);
        live++;
      }
      data[collection]![key] = value;
      append(text);
    },
    delete(collection, key) {
      refuseReadOnly();
      const entries = data[collection]!;
      if (!Object.hasOwn(entries, key)) return;
      if (keys.get(collection)!.delete(key)) live--;
      delete entries[key];
      append(serialize({ c: collection, k: key, d: 1 }));
    },
    keys: (collection) => keys.get(collection)!.values(),
    flush,
    compact,
    async close() {
      if (readOnly) return;
      await compacting?.catch(() => undefined);
      try {
        await flush();
      } finally {
        await serially(async () => {
          for (const journal of journals.values()) {
            const handle = journal.handle;
            journal.handle = null;
            await handle?.close();
          }
        });
      }
    },
  };
}

const serialize = (line: Line) => `${JSON.stringify(line)}\n`;

/** The same API with no file: tests and benchmarks. */
function memoryStore<T extends Collections<T>>(data: T): JournalStore<T> {
  const collections = data as Record<string, Record<string, unknown>>;
  const keys = new Map(Object.entries(collections).map(([name, entries]) => [name, new Set(Object.keys(entries))]));
  return {
    data,
    set(collection, key, value) {
      collections[collection]![key] = value;
      keys.get(collection)!.add(key);
    },
    delete(collection, key) {
      delete collections[collection]![key];
      keys.get(collection)!.delete(key);
    },
    keys: (collection) => keys.get(collection)!.values(),
    flush: () => Promise.resolve(),
    compact: () => Promise.resolve(),
    close: () => Promise.resolve(),
  };
}

/** `…/mailkit.json` → `mailkit.<generation>.journal`. */
function journalNamer(file: string): (generation: number) => string {
  const stem = basename(file).replace(/\.json$/, '');
  return (generation) => `${stem}.${generation}.journal`;
}

function listJournals(dir: string, journalName: (generation: number) => string): { generation: number; file: string }[] {
  const [prefix, suffix] = journalName(0).split('.0.') as [string, string];
  const pattern = new RegExp(`^${escapeRegExp(prefix)}\\.(\\d+)\\.${escapeRegExp(suffix)}$`);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return names
    .map((name) => ({ match: pattern.exec(name), file: name }))
    .filter((n) => n.match)
    .map((n) => ({ generation: Number(n.match![1]), file: n.file }))
    .sort((a, b) => a.generation - b.generation);
}

interface Loaded<T> {
  data: T;
  /** The snapshot's generation. */
  generation: number;
  /** The newest generation on disk: new lines go to its journal. */
  current: number;
  /** Bytes of whole lines in the current journal. */
  currentLength: number;
  lines: number;
}

/**
 * Snapshot, then the journals of its generation and later. Another process may be
 * compacting meanwhile (the key CLI reads while the server runs): if the snapshot was
 * replaced or a journal vanished under us, read again.
 */
function load<T>(file: string, dir: string, journalName: (generation: number) => string, initial: () => T): Loaded<T> {
  for (let attempt = 1; ; attempt++) {
    const before = statOrNull(file);
    try {
      const snapshot = readSnapshot(file, initial);
      const data = snapshot.data as Record<string, Record<string, unknown>>;
      let current = snapshot.generation;
      let currentLength = 0;
      let lines = 0;
      for (const journal of listJournals(dir, journalName)) {
        if (journal.generation < snapshot.generation) continue;
        const replayed = replay(join(dir, journal.file), data);
        current = journal.generation;
        currentLength = replayed.length;
        lines += replayed.lines;
      }
      if (sameFile(before, statOrNull(file))) return { data: snapshot.data, generation: snapshot.generation, current, currentLength, lines };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || attempt >= 5) throw err;
    }
    if (attempt >= 5) throw new Error(`${file} kept changing while it was read; try again.`);
  }
}

function readSnapshot<T>(file: string, initial: () => T): { data: T; generation: number } {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { data: initial(), generation: 0 };
    throw err;
  }
  const corrupt = () => new Error(`${file} is not valid JSON. Move it aside (or delete it to start over) and restart.`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw corrupt();
  }
  if (!isObject(parsed)) throw corrupt();
  // json-store wrote the bare document; a snapshot wraps it with its generation.
  const snapshot = typeof parsed.generation === 'number' && isObject(parsed.data) ? { generation: parsed.generation, data: parsed.data } : { generation: 0, data: parsed };
  const data = initial() as Record<string, unknown>;
  for (const [name, entries] of Object.entries(snapshot.data)) {
    if (!isObject(entries)) throw corrupt();
    data[name] = entries;
  }
  return { data: data as T, generation: snapshot.generation };
}

/** Applies a journal's lines in order; returns how many, and the bytes they span. */
function replay(path: string, data: Record<string, Record<string, unknown>>): { lines: number; length: number } {
  const bytes = readFileSync(path);
  let start = 0;
  let lines = 0;
  let lineNo = 0;
  while (start < bytes.length) {
    const end = bytes.indexOf(0x0a, start);
    lineNo++;
    const line = parseLine(bytes.subarray(start, end === -1 ? bytes.length : end).toString('utf8'));
    if (!line || end === -1) {
      // A crash mid-append leaves the last line torn: that write never completed, skip it.
      if (end === -1 || bytes.subarray(end + 1).every((b) => b === 0x0a)) break;
      throw new Error(`${path}: line ${lineNo} is not a valid journal line. Cut the file just before it to keep what precedes it, and restart.`);
    }
    const entries = (data[line.c] ??= {});
    if (line.d) delete entries[line.k];
    else entries[line.k] = line.v;
    lines++;
    start = end + 1;
  }
  return { lines, length: start };
}

function parseLine(text: string): Line | null {
  try {
    const line = JSON.parse(text) as unknown;
    if (isObject(line) && typeof line.c === 'string' && typeof line.k === 'string' && ('v' in line || line.d === 1)) return line as unknown as Line;
  } catch {
    // falls through: not a whole line
  }
  return null;
}

/** Journals older than the snapshot and snapshot temp files left by a crash. */
function removeStale(file: string, dir: string, journalName: (generation: number) => string, generation: number) {
  for (const journal of listJournals(dir, journalName)) {
    if (journal.generation < generation) rmSync(join(dir, journal.file), { force: true });
  }
  const tmp = new RegExp(`^${escapeRegExp(basename(file))}\\.\\d+\\.tmp$`);
  let names;
  try {
    names = readdirSync(dir, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  for (const name of names) {
    if (name.isFile() && tmp.test(name.name)) rmSync(join(dir, name.name), { force: true });
  }
}

/** temp file → chunks, yielding between them → fsync → rename: readers see the old snapshot or the new one. */
async function writeSnapshot(
  file: string,
  generation: number,
  data: Record<string, Record<string, unknown>>,
  keys: Map<string, Set<string>>,
): Promise<void> {
  await replaceFileAtomically(file, async (handle) => {
    let chunk = `{"generation":${generation},"data":{`;
    let position = 0;
    const emit = async () => {
      const bytes = Buffer.from(chunk);
      chunk = '';
      await writeFully(handle, bytes, position);
      position += bytes.length;
      await new Promise((resolve) => setImmediate(resolve));
    };
    let firstCollection = true;
    for (const [name, names] of keys) {
      chunk += `${firstCollection ? '' : ','}${JSON.stringify(name)}:{`;
      firstCollection = false;
      const entries = data[name]!;
      let first = true;
      // A Set iterator is live: a key removed meanwhile is skipped, one added meanwhile may be
      // visited (it is also in the new journal), a key re-added may appear twice (the parser
      // keeps the last; the new journal overrides it anyway).
      for (const key of names) {
        if (!Object.hasOwn(entries, key)) continue;
        chunk += `${first ? '' : ','}${JSON.stringify(key)}:${JSON.stringify(entries[key])}`;
        first = false;
        if (chunk.length >= SNAPSHOT_CHUNK_BYTES) await emit();
      }
      chunk += '}';
    }
    chunk += '}}\n';
    await emit();
  });
}

async function writeFully(handle: FileHandle, bytes: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < bytes.length) {
    const { bytesWritten } = await handle.write(bytes, done, bytes.length - done, position + done);
    done += bytesWritten;
  }
}

/** Makes a created or renamed file's directory entry durable. Some platforms cannot fsync a directory: best effort there. */
async function syncDir(dir: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EISDIR' && code !== 'EINVAL' && code !== 'EPERM' && code !== 'EBADF') throw err;
  } finally {
    await handle?.close();
  }
}

function statOrNull(file: string): Stats | null {
  try {
    return statSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

function sameFile(a: Stats | null, b: Stats | null): boolean {
  if (!a || !b) return a === b;
  return a.ino === b.ino && a.size === b.size && a.mtimeMs === b.mtimeMs;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
