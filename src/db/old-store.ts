import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { makePrivate } from '../lib/private-files';

/**
 * MailKit kept its state in JSON files (`mailkit.json` and its journals) before it had a
 * database, in its first weeks of development. Versions up to `9c39ed5` imported such a folder
 * once, on their first start, and renamed the files `….imported`; this one no longer carries the
 * importer (every install that ran a version with the database has imported already). A folder
 * that still holds them is refused, with what to do, rather than started empty beside them.
 * Either way those files, imported or not, are made private: they hold the old key secret.
 */
export function refuseUnimportedStore(dataDir: string): void {
  let names: string[];
  try {
    names = readdirSync(dataDir);
  } catch {
    return; // no folder yet: nothing old in it
  }
  makePrivate(...names.filter((n) => /^mailkit(\.json|\.\d+\.journal)(\.imported)?$/.test(n)).map((n) => join(dataDir, n)));
  const old = names.filter((n) => n === 'mailkit.json' || /^mailkit\.\d+\.journal$/.test(n)).sort();
  if (old.length === 0) return;
  throw new Error(
    `${dataDir} holds MailKit's store from before its database (${old.join(', ')}). This version no longer imports it: ` +
      'start MailKit at commit 9c39ed5 once on this folder (it imports the store and renames the files *.imported), then this version.',
  );
}
