/** Command-line pieces the operator commands share. */

/** What a command runs with: injectable, so tests drive it without spawning a process. */
export interface CommandContext {
  argv: string[];
  /** The process environment; values from `<cwd>/.env` fill what it lacks (as dotenv does). */
  env: Record<string, string | undefined>;
  cwd: string;
  fetch?: typeof fetch;
  out?: (line: string) => void;
  err?: (line: string) => void;
}

/** The context's output and fetch, defaulting to the console and the global fetch. */
export function io(o: CommandContext) {
  return {
    out: o.out ?? ((l: string) => console.log(l)),
    err: o.err ?? ((l: string) => console.error(l)),
    fetch: o.fetch ?? fetch,
  };
}

/** A Dodo customer id as the commands accept it. */
export const CUSTOMER_ID = /^[A-Za-z0-9_-]{3,64}$/;

/**
 * Reads `--name value` or `--name=value` at `argv[i]`. Returns null when `argv[i]` is not
 * that option; otherwise its value (undefined when missing) and the index it ended on.
 */
export function optionAt(argv: string[], i: number, name: string): { value: string | undefined; end: number } | null {
  const a = argv[i]!;
  if (a.startsWith(`${name}=`)) return { value: a.slice(name.length + 1), end: i };
  if (a === name) return { value: argv[i + 1], end: i + 1 };
  return null;
}

/** The MailKit server a command talks to: `--base-url`, else the one the environment names, without a trailing slash. */
export function serverOrigin(flag: string | null, fromEnv: () => string): string {
  return (flag ?? fromEnv()).replace(/\/+$/, '');
}

/** Why a `--base-url` value is unusable, or null when it is an http(s) URL. */
export const baseUrlProblem = (value: string | undefined): string | null =>
  value && /^https?:\/\//.test(value) ? null : '--base-url needs an http(s) URL';
