import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(__dirname, '..');

/** Every .ts file under `dir`. */
function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sources(path);
    return path.endsWith('.ts') ? [path] : [];
  });
}

/** Every function in `file` (declarations, expressions, arrows, methods) with its name and length in lines. */
function functions(file: string, text = readFileSync(file, 'utf8')): Array<{ name: string; line: number; lines: number }> {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const found: Array<{ name: string; line: number; lines: number }> = [];
  const visit = (node: ts.Node): void => {
    if (ts.isFunctionDeclaration(node) || ts.isFunctionExpression(node) || ts.isArrowFunction(node) || ts.isMethodDeclaration(node)) {
      const start = source.getLineAndCharacterOfPosition(node.getStart()).line;
      const end = source.getLineAndCharacterOfPosition(node.getEnd()).line;
      const parent = node.parent;
      const name =
        node.name?.getText(source) ??
        (ts.isVariableDeclaration(parent) || ts.isPropertyAssignment(parent) ? parent.name.getText(source) : '(anonymous)');
      found.push({ name, line: start + 1, lines: end - start + 1 });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

/** The widest line Prettier is set to (.prettierrc.json's printWidth). */
const WIDTH = 150;

/**
 * The files Prettier formats that the line check reads: every tracked .ts, .js, .mjs and .css
 * (src/, test/, bench/, public/, .ci/, server.ts, the configs), not the vendors' specs nor the
 * fixtures (left as written, like Markdown and HTML).
 */
function formattedFiles(): string[] {
  const tracked = execFileSync('git', ['ls-files', '-z', '--', '*.ts', '*.js', '*.mjs', '*.css'], { cwd: ROOT, encoding: 'utf8' });
  return tracked.split('\0').filter((path) => path && !/^test\/(contract\/specs|fixtures)\//.test(path) && existsSync(join(ROOT, path)));
}

/** `path:line is N characters` for each line of `text` longer than WIDTH. */
function longLines(path: string, text: string): string[] {
  return text.split(/\r?\n/).flatMap((line, i) => (line.length > WIDTH ? [`${path}:${i + 1} is ${line.length} characters (at most ${WIDTH})`] : []));
}

/**
 * One concern per unit: a factory closure that grows past a screenful or two holds several
 * (the sender once held its claim, the accept room, the retry loop and the reconciler in 307
 * lines). The sandbox, a vendor's double, gets more room for its routers.
 */
describe('the size of units in src/', () => {
  it('no function outside src/sandbox/ is longer than 200 lines, none in it longer than 250', () => {
    const tooLong = sources(join(ROOT, 'src')).flatMap((file) => {
      const path = relative(ROOT, file);
      const limit = path.startsWith(join('src', 'sandbox')) ? 250 : 200;
      return functions(file)
        .filter((f) => f.lines > limit)
        .map((f) => `${path}:${f.line} ${f.name} is ${f.lines} lines (at most ${limit})`);
    });
    expect(tooLong).toEqual([]);
  });

  it('measures what it claims: a function of 201 lines, and one nested in it, are found', () => {
    const body = Array.from({ length: 197 }, (_, i) => `  const v${i} = ${i};`).join('\n');
    const text = `function outer() {\n  const inner = () => {\n${body}\n  };\n}\n`;
    expect(functions('probe.ts', text).map((f) => [f.name, f.lines])).toEqual([
      ['outer', 201],
      ['inner', 199],
    ]);
  });
});

/**
 * Prettier wraps code at 150 columns but cannot shorten a string, a template or a comment:
 * those are split by hand (a string with +), and this keeps them so.
 */
describe('the width of lines', () => {
  it(`no line of a formatted file is longer than ${WIDTH} characters`, () => {
    const files = formattedFiles();
    expect(files).toContain('server.ts');
    expect(files.filter((f) => f.startsWith('test/fixtures/') || f.startsWith('test/contract/specs/'))).toEqual([]);
    const tooLong = files.flatMap((path) => longLines(path, readFileSync(join(ROOT, path), 'utf8')));
    expect(tooLong).toEqual([]);
  });

  it('measures what it claims: a line of 151 characters is found, one of 150 is not', () => {
    const text = ['x'.repeat(150), `const s = '${'y'.repeat(138)}';`, ''].join('\n');
    expect(longLines('probe.ts', text)).toEqual([`probe.ts:2 is 151 characters (at most ${WIDTH})`]);
  });
});
