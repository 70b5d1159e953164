import type { Compilable, CompiledQuery, Kysely } from 'kysely';
import type { Tables } from './schema';

/**
 * A query built and compiled once per dialect, then run with new values: for the few queries
 * every send runs. Kysely builds a query's tree, transforms it (camelCase) and compiles it to
 * SQL anew on every call; with 16 clients that took about 0.7 ms of MailKit's CPU per email,
 * the larger statements 30 to 40 µs each (docs/performance.md). The statement itself is the
 * same: still written with Kysely's builder, still typed, with the same SQL text each time.
 *
 * `build` receives, in place of the values, placeholders (`v.name`) that it must only pass to
 * the builder as values (to `set`, `where`, arithmetic), never read or branch on: the text must
 * not depend on them. Anything that does change the text (an `in` list's length, which columns
 * a `set` names) picks another prepared query. The first build checks that every placeholder
 * asked for became a parameter of the statement, and refuses the query otherwise.
 */
export interface Prepared<V, R> {
  /** Runs the statement on `db` (a transaction or not) with `values`: the rows it returns (camelCased, as Kysely's own). */
  run(db: Kysely<Tables>, values: V): Promise<R[]>;
  /** The number of rows it changed (an update or delete without `returning`). */
  changed(db: Kysely<Tables>, values: V): Promise<number>;
}

/** Values of the send path: never a string that begins with NUL, so a placeholder cannot be mistaken for one. */
export type Scalar = string | number | null;
const PLACEHOLDER = '\u0000mailkit-prepared:';

export function prepared<V extends Record<string, Scalar>, R>(build: (db: Kysely<Tables>, v: V) => Compilable<R>): Prepared<V, R> {
  /** Per dialect (the adapter is shared by a Kysely instance and its transactions): the statement, and where each parameter comes from. */
  const compiled = new WeakMap<object, { query: CompiledQuery<R>; slots: Array<{ name: string } | { value: unknown }> }>();

  function statement(db: Kysely<Tables>, values: V): CompiledQuery<R> {
    const adapter = db.getExecutor().adapter;
    let entry = compiled.get(adapter);
    if (!entry) {
      const asked = new Set<string>();
      const placeholders = new Proxy({} as V, {
        get(_, name) {
          asked.add(String(name));
          return `${PLACEHOLDER}${String(name)}`;
        },
        // Spread or listed, the placeholders would be no values at all (an insert of no columns).
        ownKeys() {
          throw new Error('prepared query: name each value (v.name); the placeholders cannot be listed or spread');
        },
      });
      const query = build(db, placeholders).compile();
      const slots = query.parameters.map((p) =>
        typeof p === 'string' && p.startsWith(PLACEHOLDER) ? { name: p.slice(PLACEHOLDER.length) } : { value: p },
      );
      const used = new Set(slots.flatMap((s) => ('name' in s ? [s.name] : [])));
      const lost = [...asked].filter((n) => !used.has(n));
      if (lost.length) throw new Error(`prepared query: ${lost.join(', ')} did not become parameters of ${query.sql}`);
      entry = { query, slots };
      compiled.set(adapter, entry);
    }
    const { query, slots } = entry;
    return { ...query, parameters: slots.map((s) => ('name' in s ? values[s.name] : s.value)) };
  }

  return {
    async run(db, values) {
      return (await db.executeQuery(statement(db, values))).rows;
    },
    async changed(db, values) {
      return Number((await db.executeQuery(statement(db, values))).numAffectedRows ?? 0);
    },
  };
}
