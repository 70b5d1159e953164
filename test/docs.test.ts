import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * The README and docs/ as a reader meets them: a README short enough to read, links that lead
 * somewhere (a `#anchor` to a heading that exists), a layout that names real paths, and no path
 * of one machine (a fresh clone has nothing outside itself).
 */
const ROOT = resolve(__dirname, '..');
const DOCS = join(ROOT, 'docs');

/** README.md and every docs/*.md, as paths from the repository's root. */
export function documents(root = ROOT): string[] {
  const docs = join(root, 'docs');
  return [
    'README.md',
    ...readdirSync(docs)
      .filter((f) => f.endsWith('.md'))
      .map((f) => `docs/${f}`),
  ];
}

/** The text without its fenced code blocks (a `# comment` in a bash block is not a heading). */
function withoutFences(text: string): string {
  return text.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '');
}

/** GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens. */
export function slug(heading: string): string {
  return heading
    .trim()
    .replace(/`/g, '')
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

/** The anchors a markdown file offers, with GitHub's -1, -2… for repeated headings. */
export function anchors(text: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const m of withoutFences(text).matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)) {
    const base = slug(m[1]!);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

/** The relative links of a markdown text: `[text](target)`, outside code. */
export function relativeLinks(text: string): string[] {
  const prose = withoutFences(text).replace(/`[^`\n]*`/g, '');
  return [...prose.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)].map((m) => m[1]!).filter((t) => !/^[a-z][a-z0-9+.-]*:/i.test(t));
}

/** What is wrong with the links of `file` (a path from `root`): each link that leads nowhere. */
export function brokenLinks(file: string, root = ROOT): string[] {
  const text = readFileSync(join(root, file), 'utf8');
  const problems: string[] = [];
  for (const link of relativeLinks(text)) {
    const [path, anchor] = link.split('#') as [string, string | undefined];
    const target = path === '' ? join(root, file) : resolve(dirname(join(root, file)), decodeURIComponent(path));
    if (relative(root, target).startsWith('..')) {
      problems.push(`${file}: ${link} leads out of the repository`);
      continue;
    }
    if (!existsSync(target)) {
      problems.push(`${file}: ${link} leads to nothing`);
      continue;
    }
    if (anchor !== undefined && anchor !== '') {
      if (!target.endsWith('.md') || statSync(target).isDirectory()) {
        problems.push(`${file}: ${link} has an anchor into a file that is not markdown`);
      } else if (!anchors(readFileSync(target, 'utf8')).has(anchor)) {
        problems.push(`${file}: ${link}: ${relative(root, target)} has no heading #${anchor}`);
      }
    }
  }
  return problems;
}

/** Paths of one machine, or beside the clone, that a document must not name. */
const OUTSIDE = [/\/work\//, /\/tmp\//, /\/home\//, /\.\.\/shared/];

export function outsidePaths(file: string, root = ROOT): string[] {
  return readFileSync(join(root, file), 'utf8')
    .split('\n')
    .flatMap((line, i) => (OUTSIDE.some((re) => re.test(line)) ? [`${file}:${i + 1}: ${line.trim().slice(0, 120)}`] : []));
}

/** The paths the README's Layout block names, each as written with the folder of its row. */
export function layoutPaths(readme: string): Array<{ path: string; row: string }> {
  const from = readme.indexOf('## Layout');
  if (from < 0) throw new Error('README has no "## Layout"');
  const open = readme.indexOf('```\n', from);
  const block = readme.slice(open + 4, readme.indexOf('\n```', open));
  const out: Array<{ path: string; row: string }> = [];
  let row = '';
  for (const line of block.split('\n')) {
    // A row starts at column 0 with its path; a continuation line is indented and keeps the row.
    if (!line.startsWith(' '))
      row = line
        .split(/\s{2,}/)[0]!
        .split(',')[0]!
        .trim();
    for (const m of line.matchAll(/(?:^|[\s(])((?:[\w.-]+\/)+[\w.-]*|[\w-]+(?:\.[\w-]+)*\.(?:ts|mjs|md))(?=[\s),:;]|$)/g))
      out.push({ path: m[1]!, row });
  }
  return out;
}

describe('the README and docs/', () => {
  const files = documents();

  it('README.md has at most 300 lines', () => {
    const lines = readFileSync(join(ROOT, 'README.md'), 'utf8').replace(/\n$/, '').split('\n').length;
    expect(lines).toBeLessThanOrEqual(300);
  });

  it('docs/ holds one file per subject, each linked from the README', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const linked = new Set(relativeLinks(readme).map((l) => l.split('#')[0]));
    for (const subject of ['sending-exactly-once', 'database', 'vendor-budgets', 'webhooks', 'credits', 'performance']) {
      expect(existsSync(join(DOCS, `${subject}.md`)), `docs/${subject}.md`).toBe(true);
    }
    expect(files.filter((f) => f.startsWith('docs/') && !linked.has(f))).toEqual([]);
  });

  it('every relative link resolves to a file, and every #anchor to a heading of it', () => {
    expect(files.flatMap((f) => brokenLinks(f))).toEqual([]);
  });

  it('names no path outside the repository', () => {
    expect(files.flatMap((f) => outsidePaths(f))).toEqual([]);
  });

  it('the Layout names only paths that exist', () => {
    const named = layoutPaths(readFileSync(join(ROOT, 'README.md'), 'utf8'));
    expect(named.length).toBeGreaterThan(30);
    const missing = named.filter(({ path, row }) => {
      const rowDir = row.endsWith('/') ? row : '';
      return !existsSync(join(ROOT, rowDir, path)) && !existsSync(join(ROOT, path));
    });
    expect(missing).toEqual([]);
  });

  it('docs/performance.md holds exactly one quotas table placeholder', () => {
    const perf = readFileSync(join(DOCS, 'performance.md'), 'utf8');
    expect(perf.split('\n').filter((l) => l === '<!-- quotas-table -->')).toHaveLength(1);
  });

  describe('the checks themselves', () => {
    it('anchors follow GitHub: punctuation dropped, code blocks skipped, repeats numbered', () => {
      expect([
        ...anchors(
          "# Going live (Dodo test mode, then live)\n## Flights: Resend's turns\n```bash\n# not a heading\n```\n## Flights: Resend's turns\n",
        ),
      ]).toEqual(['going-live-dodo-test-mode-then-live', 'flights-resends-turns', 'flights-resends-turns-1']);
    });

    it('finds a broken file link, a missing anchor and a machine path', () => {
      const root = resolve(__dirname, 'fixtures/docs-check');
      expect(brokenLinks('README.md', root)).toEqual([
        'README.md: docs/missing.md leads to nothing',
        'README.md: docs/a.md#no-such-heading: docs/a.md has no heading #no-such-heading',
        'README.md: #nowhere: README.md has no heading #nowhere',
        'README.md: ../outside.md leads out of the repository',
      ]);
      expect(outsidePaths('README.md', root).map((p) => p.split(':')[1])).toEqual(['7', '8', '9']);
      expect(brokenLinks('docs/a.md', root)).toEqual([]);
    });
  });
});
