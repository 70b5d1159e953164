import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { specsDir } from '../support/openapi';

/** The README beside the specs names each file and its sha256: a hand edit cannot pass silently. */
describe('the vendor specs in test/contract/specs', () => {
  const readme = readFileSync(resolve(specsDir, 'README.md'), 'utf8');
  const listed = [...readme.matchAll(/^\| `([^`]+)` \|.*\| `([0-9a-f]{64})` \|$/gm)].map(([, file, hash]) => ({ file: file!, hash: hash! }));

  it('lists every spec file with its hash', () => {
    const files = readdirSync(specsDir)
      .filter((f) => f !== 'README.md')
      .sort();
    expect(listed.map((l) => l.file).sort()).toEqual(files);
  });

  it.each(listed)('$file is byte for byte the published one', ({ file, hash }) => {
    expect(
      createHash('sha256')
        .update(readFileSync(resolve(specsDir, file)))
        .digest('hex'),
    ).toBe(hash);
  });
});
