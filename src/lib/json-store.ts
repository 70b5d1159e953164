import { readFileSync } from 'node:fs';
import { mkdir, open, rename, rm, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { PRIVATE_DIR_MODE, PRIVATE_FILE_MODE } from './private-files';

/**
 * A JSON document held in memory and, when given a file, persisted atomically.
 *
 * Mutate `store.data` synchronously, then call `store.save()`. Because Node runs one
 * handler at a time, a synchronous mutation is atomic with respect to other requests;
 * the write to disk is coalesced (at most one pending flush) so a burst of mutations
 * costs one write, made off the event loop. Each write goes to a temp file, is fsynced, then renamed over the
 * old file, so a crash mid-write leaves either the old or the new document, never a
 * torn one.
 */
export interface JsonStore<T> {
  readonly data: T;
  /** Schedule a flush of the current document (no-op for in-memory stores). */
  save(): void;
  /** Write now if anything is pending; resolves once it is on disk. */
  flush(): Promise<void>;
}

export interface JsonStoreOptions<T> {
  /** Absolute or relative path of the JSON file; null keeps the document in memory only. */
  file: string | null;
  /** Builds the empty document when there is no file yet. */
  initial: () => T;
  /** Delay before a scheduled flush, in milliseconds (default 25). */
  flushDelayMs?: number;
}

/** Opens (or creates) a JSON store. A corrupt file stops the caller with a message naming it. */
export function createJsonStore<T>(options: JsonStoreOptions<T>): JsonStore<T> {
  const { file, initial } = options;
  const delay = options.flushDelayMs ?? 25;
  const data = file ? load(file, initial) : initial();
  let timer: NodeJS.Timeout | null = null;
  let dirty = false;
  /** The write in progress: one at a time, so an older document never lands over a newer one. */
  let writing: Promise<void> | null = null;

  const writeNow = async (): Promise<void> => {
    while (writing) await writing;
    if (!file || !dirty) return;
    dirty = false;
    const text = JSON.stringify(data);
    writing = writeAtomicallyAsync(file, text)
      .catch((err: unknown) => {
        dirty = true; // still owed: the next save or flush writes it
        throw err;
      })
      .finally(() => {
        writing = null;
      });
    await writing;
  };

  const schedule = (ms: number) => {
    if (timer) return;
    timer = setTimeout(() => {
      timer = null;
      // A failed background write (disk full, permissions) is retried, never left unhandled;
      // flush() reports it to its caller.
      writeNow().catch(() => schedule(1_000));
    }, ms);
    // A pending flush must not keep a finished test or CLI process alive.
    timer.unref();
  };

  return {
    data,
    save() {
      if (!file) return;
      dirty = true;
      schedule(delay);
    },
    async flush() {
      if (timer) {
        clearTimeout(timer);
        timer = null;
      }
      await writeNow();
    },
  };
}

function load<T>(file: string, initial: () => T): T {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return initial();
    throw err;
  }
  try {
    return { ...initial(), ...(JSON.parse(text) as T) };
  } catch {
    throw new Error(`${file} is not valid JSON. Move it aside (or delete it to start over) and restart.`);
  }
}

/** write → fsync → rename, off the event loop: readers see the old document or the new one, never half of one. */
function writeAtomicallyAsync(file: string, contents: string): Promise<void> {
  return replaceFileAtomically(file, (handle) => handle.writeFile(contents));
}

/**
 * Replaces `file` with what `fill` writes: into a temp file beside it, fsynced, then renamed
 * over it, so readers see the old file or the new one, never half of one. On any failure the
 * temp file is removed and `file` is untouched.
 */
export async function replaceFileAtomically(file: string, fill: (handle: FileHandle) => Promise<void>): Promise<void> {
  await mkdir(dirname(file), { recursive: true, mode: PRIVATE_DIR_MODE });
  const tmp = `${file}.${process.pid}.tmp`;
  // Renamed over `file`: the document keeps this mode (src/lib/private-files.ts).
  const handle = await open(tmp, 'w', PRIVATE_FILE_MODE);
  try {
    await fill(handle);
    await handle.sync();
  } catch (err) {
    await handle.close();
    await rm(tmp, { force: true });
    throw err;
  }
  await handle.close();
  try {
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}
