import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { refuseUnimportedStore } from '../../src/db/old-store';

/** A data folder from before the database (src/db/old-store.ts). */
describe('a data folder holding the store from before the database', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  const folder = (files: string[]) => {
    const dir = mkdtempSync(join(tmpdir(), 'mailkit-old-'));
    dirs.push(dir);
    for (const f of files) {
      writeFileSync(join(dir, f), '{}');
      chmodSync(join(dir, f), 0o644);
    }
    return dir;
  };
  const mode = (file: string) => statSync(file).mode & 0o777;

  it('is refused, saying which files and which version imports them; the files are made private', () => {
    const dir = folder(['mailkit.json', 'mailkit.3.journal']);
    expect(() => refuseUnimportedStore(dir)).toThrow(/mailkit\.3\.journal, mailkit\.json\).*commit 9c39ed5/);
    expect(mode(join(dir, 'mailkit.json'))).toBe(0o600);
    expect(mode(join(dir, 'mailkit.3.journal'))).toBe(0o600);
  });

  it('once imported (the files renamed *.imported), starts, the old files private', () => {
    const dir = folder(['mailkit.json.imported', 'mailkit.sqlite']);
    expect(() => refuseUnimportedStore(dir)).not.toThrow();
    expect(mode(join(dir, 'mailkit.json.imported'))).toBe(0o600);
  });

  it('a folder that does not exist yet is fine', () => {
    expect(() => refuseUnimportedStore(join(tmpdir(), 'mailkit-never-made'))).not.toThrow();
  });
});
