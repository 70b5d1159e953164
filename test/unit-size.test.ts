import { readdirSync, readFileSync, statSync } from 'node:fs';
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
