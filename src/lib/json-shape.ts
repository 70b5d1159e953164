/** How deep and how many values a JSON body may hold before JSON.parse is asked to build it. */
export interface JsonShapeLimits {
  /** Arrays and objects nested in one another. */
  maxDepth: number;
  /** Strings (keys included), arrays, objects and the commas between elements and members. */
  maxValues: number;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_ARRAY = 0x5b;
const OPEN_OBJECT = 0x7b;
const CLOSE_ARRAY = 0x5d;
const CLOSE_OBJECT = 0x7d;

/**
 * Why a JSON body is too deep or holds too many values to parse, or null. JSON.parse's cost
 * is in a body's structure more than its size: 8 MiB of `[` then `]` blocks the event loop for
 * about a second, 8 MiB of `{},` for half of one, while 8 MiB of long strings takes a few
 * milliseconds. This reads the body once and stops at the first limit passed: a regular
 * expression finds the next quote or bracket or comma (native code skips everything else), and
 * a string is skipped with indexOf up to its first unescaped quote. It does not validate:
 * JSON.parse still does, and answers a malformed body as before.
 */
export function jsonShapeProblem(body: Buffer, limits: JsonShapeLimits): string | null {
  const { maxDepth, maxValues } = limits;
  // latin1: one character per byte, so a UTF-8 sequence (bytes >= 0x80) never looks like structure.
  const text = body.toString('latin1');
  const structure = /["[\]{},]/g;
  let depth = 0;
  let values = 0;
  for (let m = structure.exec(text); m; m = structure.exec(text)) {
    const c = text.charCodeAt(m.index);
    if (c === CLOSE_ARRAY || c === CLOSE_OBJECT) {
      depth--;
      continue;
    }
    if (++values > maxValues) return `holds more than ${maxValues} values`;
    if ((c === OPEN_ARRAY || c === OPEN_OBJECT) && ++depth > maxDepth) return `nests deeper than ${maxDepth} levels`;
    if (c !== QUOTE) continue;
    // The string ends at the first quote preceded by an even run of backslashes (or none). The
    // runs walked back over lie between successive quotes, so each character is seen once.
    let end = m.index;
    for (;;) {
      end = text.indexOf('"', end + 1);
      if (end === -1) return null; // unterminated: JSON.parse says so
      let before = end - 1;
      while (text.charCodeAt(before) === BACKSLASH) before--;
      if ((end - 1 - before) % 2 === 0) break;
    }
    structure.lastIndex = end + 1;
  }
  return null;
}

/**
 * A body-parser `verify` that refuses a body past `limits` as body-parser refuses malformed JSON
 * (400, `type: 'entity.parse.failed'`), so a router's existing error path answers it in its own
 * envelope. For the sandbox's vendor APIs; MailKit's own routes answer `json_too_complex`.
 */
export function refuseComplexJson(limits: JsonShapeLimits): (req: unknown, res: unknown, body: Buffer) => void {
  return (_req, _res, body) => {
    const problem = jsonShapeProblem(body, limits);
    if (problem) throw Object.assign(new Error(`The JSON body ${problem}.`), { status: 400, type: 'entity.parse.failed' });
  };
}
