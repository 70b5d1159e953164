// Fails, naming each file and line, when a tracked file refers to a path outside the
// repository: a fresh clone has no shared folder (or anything else) beside it. Every run of
// '../' segments is resolved from the file's own folder; the clone's absolute location is
// never assumed either.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { posix } from 'node:path';

const { dirname } = posix;

const files = execFileSync('git', ['ls-files', '-z'], { encoding: 'utf8' }).split('\0').filter(Boolean);
const skip = new Set(['package-lock.json', '.ci/check-paths.mjs']);
const problems = [];
for (const file of files) {
  if (skip.has(file)) continue;
  let text;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    continue;
  }
  if (text.includes('\0')) continue; // binary
  text.split('\n').forEach((line, i) => {
    const why = [];
    if (/\.\.\/shared\b/.test(line)) why.push('the shared folder beside the clone');
    for (const m of line.matchAll(/(?:\.\.\/)+/g)) {
      if (posix.normalize(posix.join(dirname(file), m[0])).startsWith('..')) why.push(`'${m[0]}' climbs out of the repository`);
    }
    if (/\/work\/(shared|main)\b/.test(line)) why.push('an absolute path of this machine');
    if (why.length) problems.push(`${file}:${i + 1}: ${why.join('; ')}\n    ${line.trim().slice(0, 160)}`);
  });
}
if (problems.length) {
  console.log('tracked files refer to paths outside the repository (a fresh clone has nothing there):');
  for (const p of problems) console.log(p);
  process.exit(1);
}
