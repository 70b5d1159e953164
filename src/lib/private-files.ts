import { chmodSync, closeSync, mkdirSync, openSync, statSync } from 'node:fs';

/**
 * MailKit's local files hold customers' recipients, subjects and suppression lists, and in
 * sandbox mode the secret API keys are derived from: only the user running MailKit may read
 * them, whatever the umask. Folders MailKit creates are 0700, files 0600.
 */
export const PRIVATE_DIR_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;

/**
 * Creates `dir` (and any missing parent) 0700. A folder that exists keeps its mode: it may be
 * the operator's choice; its files are made private instead.
 */
export function makePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
}

/** Creates `file` empty and 0600 if it is missing, so that whoever opens it next does not create it with the umask's mode. */
export function createPrivateFile(file: string): void {
  closeSync(openSync(file, 'a', PRIVATE_FILE_MODE));
}

/**
 * Takes group and other permissions off each of `files` that exists (one left by an older
 * version, or created under a loose umask). A file MailKit's user does not own cannot be
 * changed and is left as it is (EPERM), like a missing one.
 */
export function makePrivate(...files: string[]): void {
  for (const file of files) {
    try {
      const mode = statSync(file).mode & 0o777;
      if (mode & 0o077) chmodSync(file, mode & PRIVATE_FILE_MODE);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'EPERM') throw err;
    }
  }
}
