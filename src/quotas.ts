import { AsyncLocalStorage } from 'node:async_hooks';
import { BurstyRateLimiter, RateLimiterMemory, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import type { Database } from './db/index';
import { sqlCounterStore } from './db/counters';

/**
 * A vendor's request quota as one budget shared by every MailKit instance: each call to the
 * vendor, reads included, first takes a token. Windows are counted in the shared database
 * (rate-limiter-flexible, the same table as MailKit's own rate limits), so two instances
 * together spend the vendor's quota once, not twice. Beyond it, callers wait, a bounded number
 * of them, and are refused at once when the next token would come after `maxWaitMs`: the
 * caller answers 429 with Retry-After, and nothing was sent. (rate-limiter-flexible's
 * RateLimiterQueue checks its deadline only when its window ends, a minute late for a
 * one-minute window; the wait is therefore this short loop around `consume`.)
 *
 * Windows are spaced, not bursty: N a second is one call every 1/N s. The vendors count in
 * windows of their own phase (Resend) or a token bucket (Dodo); one call per 1/N s never puts
 * more than N in any second of theirs, where N calls per fixed second of ours could put 2N in
 * one of theirs. A `burst` pool (rate-limiter-flexible's BurstyRateLimiter) lends extra turns
 * when the spaced window has none: Dodo's bucket holds 40, so a pool of 36 lets a burst
 * through at once (50 customers starting to send need a lease each), lent again only once the
 * bucket has refilled them (src/stack.ts, dodoBurstPool).
 *
 * A `window` quota mirrors the vendor's own window instead (Resend counts N calls in a window
 * that opens with the first and lasts a second): N calls in a window that opens with the first
 * and lasts a second and a margin, the margin covering the variance of a call's way there (30
 * ms: 97 % of the quota, where 10 % spends 91 %). Within a window, calls keep a gap (90 % of an
 * even share), so a client waiting for its answer gets its next email into the window's next
 * call, not the next window; the next window opens on time even when a call was late.
 *
 * The vendor's own answers adjust it: a 429 from the vendor blocks the budget, for every
 * instance, for as long as the vendor said (Retry-After, or Dodo's X-RateLimit-Reset); a
 * window quota adopts the limit the vendor's answers state, and spends its window when the
 * vendor says none of its own is left (`observe`).
 *
 * Turns are shared fairly between the parties waiting (a customer, for the calls its requests
 * cause; see budgetParty): the line goes round them, one turn each, in arrival order within
 * each. One customer with forty calls waiting and another with one: the other's call is at most
 * one of the first one's turns away, not forty. A party may have `maxQueuePerParty` calls
 * waiting at once; one more is refused at once.
 */
export interface Budget {
  readonly name: string;
  /** False when no quota is configured: take() never waits and never touches the database. */
  readonly limited: boolean;
  /**
   * Takes one token, waiting in the queue if need be; rejects with QuotaExhausted. See TakeOptions.
   */
  take(opts?: TakeOptions): Promise<void>;
  /** The vendor answered 429: nobody calls it for `seconds`. */
  penalize(seconds: number): Promise<void>;
  /**
   * What the vendor's answer said of its quota (`ratelimit-limit`, `-remaining`, `-reset`): a
   * window quota adopts the limit it states, and spends its window when none is left of the
   * vendor's. (The vendor's 429s hold every instance back for their Retry-After.)
   */
  observe?(quota: ObservedQuota): Promise<void>;
}

/** A vendor's rate-limit headers, read. */
export interface ObservedQuota {
  limit?: number;
  remaining?: number;
  resetSeconds?: number;
}

/** How long a Dodo call waits for a turn of MailKit's Dodo budget, unless its caller says otherwise (src/stack.ts). */
export const DODO_WAIT_MS = 5_000;

/** How a caller takes its turn. */
export interface TakeOptions {
  /**
   * MailKit's own emails (API keys, low-balance alerts): this instance's other callers step back
   * while it waits, and it waits five times as long, so customers' traffic never starves it.
   */
  priority?: boolean;
  /**
   * Work done ahead that nobody waits for (the next credit lease of a customer sending
   * steadily): a turn only if one is free now and no caller of this instance is in line. It never
   * waits, so it never takes a turn from a send.
   */
  spare?: boolean;
  /** How long this caller may wait for its turn, instead of the budget's `maxWaitMs`. */
  maxWaitMs?: number;
  /** The latest time (epoch ms) this caller waits until, whatever its `maxWaitMs` (a shutdown's deadline). */
  until?: number;
  /** Gives up waiting once aborted (the SDK's own timeout, which counts the wait for a turn too). */
  signal?: AbortSignal;
  /** Whose call this is (a customer's requests, a client address's): turns go round the parties waiting. None: MailKit's own work, one party. */
  party?: string;
}

/**
 * The TakeOptions of the calls made inside `budgetTurns.run(options, ...)`: for calls made
 * through an SDK (budgetedFetch), which cannot pass an option of ours to its transport.
 */
export const budgetTurns = new AsyncLocalStorage<TakeOptions>();

/**
 * The party (TakeOptions.party) the calls made inside `budgetParty.run(party, ...)` are made
 * for: set once per request for its customer (src/app.ts). Apart from budgetTurns, so that a
 * caller setting its own options there (a lease's longer wait) keeps the request's party.
 */
export const budgetParty = new AsyncLocalStorage<string>();

/** A window of a quota: at most `points` calls per `seconds`. */
export interface QuotaWindow {
  points: number;
  seconds: number;
  /**
   * The vendor's window, mirrored: `points` calls in a window opened by the first and lasting
   * `seconds` + marginMs, the margin covering the variance of a call's way to the vendor.
   * Default: one call every seconds / points × 1.1.
   */
  window?: { marginMs: number };
}

/** Thrown by take() when the budget cannot give a token soon enough: the call was not made. */
export class QuotaExhausted extends Error {
  override name = 'QuotaExhausted';
  constructor(
    readonly budget: string,
    readonly retryAfterSeconds: number,
  ) {
    super(`the ${budget} quota is spent: retry in ${retryAfterSeconds} s`);
  }
}

export interface BudgetOptions {
  name: string;
  /** Every window must allow the call (Dodo: 240 a minute). Empty: unlimited. */
  windows: QuotaWindow[];
  /** Extra turns for the first window when its spaced turn is taken, `points` per `seconds` (not spaced). */
  burst?: QuotaWindow;
  /** The shared database; without one (tests of one process), windows are counted in memory. */
  database?: Database;
  /** Longest a caller waits for a token before QuotaExhausted (default 2 s). */
  maxWaitMs?: number;
  /** Callers allowed to wait at once, per instance (default 1,000). */
  maxQueue?: number;
  /** Callers of one named party allowed to wait at once, per instance (default 50). */
  maxQueuePerParty?: number;
}

export function createBudget(opts: BudgetOptions): Budget {
  const windows = opts.windows.filter((w) => w.points > 0 && w.seconds > 0);
  const maxWaitMs = opts.maxWaitMs ?? 2_000;
  const maxQueue = opts.maxQueue ?? 1_000;
  const maxQueuePerParty = opts.maxQueuePerParty ?? 50;
  if (windows.length === 0) return { name: opts.name, limited: false, take: async () => undefined, penalize: async () => undefined };

  // One call per (seconds / points): spaced, so no window of the vendor's sees a burst of ours.
  // A penalty must block the burst pool too, or it would lend turns past the vendor's 429.
  const blockable: RateLimiterAbstract[] = [];
  const counter = (keyPrefix: string, points: number, durationSeconds: number): RateLimiterAbstract =>
    opts.database
      ? (sqlCounterStore(opts.database, { keyPrefix, points, durationSeconds }) as unknown as RateLimiterAbstract)
      : new RateLimiterMemory({ keyPrefix, points, duration: durationSeconds });
  /** Each window's stores, consumed in order: one, or a window quota's window and gap (windowStores). */
  const stores: RateLimiterAbstract[][] = windows.map((w, i) => {
    const keyPrefix = `quota:${opts.name}:${i}`;
    if (w.window) {
      const pair = windowStores(keyPrefix, w.points, w);
      blockable.push(...pair);
      return pair;
    }
    // 10 % wider than the quota: calls reach the vendor a little later or earlier than they
    // leave, and the vendor's window has its own phase.
    const spaced = counter(keyPrefix, 1, Math.ceil((w.seconds / w.points) * 1.1 * 1000) / 1000);
    blockable.push(spaced);
    const burst = i === 0 && opts.burst && opts.burst.points > 0 ? opts.burst : null;
    if (!burst) return [spaced];
    const pool = counter(`${keyPrefix}:burst`, burst.points, burst.seconds);
    blockable.push(pool);
    return [new BurstyRateLimiter(spaced, pool) as unknown as RateLimiterAbstract];
  });
  /**
   * A window quota's stores (QuotaWindow.window) for `points` calls a window: the vendor's own
   * window, mirrored (rate-limiter-flexible's fixed window opens with its first call, as
   * Resend's does), `marginMs` longer; and a gap between two calls of a window, 90 % of an even
   * share of it. The gap keeps a window's calls apart, so a client waiting for its answer gets
   * its next email into the window's next call rather than the next window; the call that opens
   * a window clears it (opened), so a late call never delays the next window.
   */
  function windowStores(keyPrefix: string, points: number, w: QuotaWindow): RateLimiterAbstract[] {
    const windowMs = w.seconds * 1000 + w.window!.marginMs;
    // Whole milliseconds: the stores keep expiry times as integers (PostgreSQL refuses 257.5).
    // The window first: a call waiting for the next window takes its gap as it opens it, not
    // while it waits (the window's next call would then follow too soon).
    return [
      counter(`${keyPrefix}:${points}:window`, points, windowMs / 1000),
      counter(`${keyPrefix}:${points}:gap`, 1, Math.floor((windowMs / points) * 0.9) / 1000),
    ];
  }
  const windowed = windows.findIndex((w) => w.window);
  let limitSeen = windowed >= 0 ? windows[windowed]!.points : 0;

  let waiting = 0;
  /** Priority callers of this instance waiting for a turn. */
  let urgent = 0;
  /**
   * This instance's ordinary callers ask the store one at a time, in the line's order: each waits
   * for the one before it to have its turn (or give up). Left to ask at once, each sleeping until
   * the next token with some jitter, they get turns at random, and under a long queue (50
   * customers' first credit leases against Dodo's 4 a second) some lose again and again until
   * their deadline, while later ones get through.
   */
  const line = createFairLine();

  /** Ordinary callers step back while a priority caller of this instance waits (within their deadline). */
  async function stepBack(priority: boolean, deadline: number): Promise<void> {
    while (!priority && urgent > 0) {
      if (Date.now() + 25 > deadline) throw new QuotaExhausted(opts.name, 1);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  /** Consumes one token of `store`, sleeping while the next one is due within the deadline. */
  async function consume(store: RateLimiterAbstract, deadline: number, priority: boolean, signal?: AbortSignal): Promise<RateLimiterRes> {
    for (;;) {
      if (signal?.aborted) throw new QuotaExhausted(opts.name, 1);
      await stepBack(priority, deadline);
      try {
        return await store.consume(KEY);
      } catch (rejection) {
        if (!(rejection instanceof RateLimiterRes)) throw Object.assign(new QuotaExhausted(opts.name, 1), { cause: rejection });
        const wait = Math.max(1, rejection.msBeforeNext);
        if (Date.now() + wait > deadline) throw new QuotaExhausted(opts.name, Math.max(1, Math.ceil(wait / 1000)));
        await new Promise<void>((r) => {
          const woken = () => {
            clearTimeout(timer);
            r();
          };
          const timer = setTimeout(() => {
            signal?.removeEventListener('abort', woken);
            r();
          }, wait + jitter());
          signal?.addEventListener('abort', woken, { once: true });
        });
      }
    }
  }

  return {
    name: opts.name,
    limited: true,
    async take(takeOpts: TakeOptions = {}) {
      if (takeOpts.spare && !takeOpts.priority) {
        // No line to join: a free turn now, or none.
        if (waiting > 0) throw new QuotaExhausted(opts.name, 1);
        return takeSpare(opts.name, stores, windowed);
      }
      const priority = takeOpts.priority === true;
      if (waiting >= maxQueue && !priority) throw new QuotaExhausted(opts.name, 1);
      const party = takeOpts.party ?? '';
      // One party cannot fill the line: its calls past its share of places are refused at once.
      if (!priority && takeOpts.party !== undefined && line.waiting(party) >= maxQueuePerParty) throw new QuotaExhausted(opts.name, 1);
      waiting++;
      if (priority) urgent++;
      const wait = takeOpts.maxWaitMs ?? maxWaitMs;
      const deadline = Math.min(Date.now() + (priority ? 5 * wait : wait), takeOpts.until ?? Infinity);
      // Priority callers skip the line (the others step back for them: stepBack).
      const place = priority ? null : line.join(party);
      let holding = false;
      try {
        if (place) {
          let timer: NodeJS.Timeout | undefined;
          let onAbort: (() => void) | undefined;
          const turn = await Promise.race([
            place.turn.then(() => true),
            new Promise<boolean>((resolve) => {
              timer = setTimeout(() => resolve(false), Math.max(0, deadline - Date.now()));
              onAbort = () => resolve(false);
              takeOpts.signal?.addEventListener('abort', onAbort, { once: true });
            }),
          ]);
          clearTimeout(timer);
          if (onAbort) takeOpts.signal?.removeEventListener('abort', onAbort);
          if (!turn) {
            // Still behind others at the deadline: out of the line. Given the turn meanwhile, it
            // passes it on.
            if (!place.leave()) line.next();
            throw new QuotaExhausted(opts.name, Math.max(1, Math.ceil(wait / 1000)));
          }
          holding = true;
        }
        for (const [i, group] of stores.entries()) {
          for (const [j, store] of group.entries()) {
            const taken = await consume(store, deadline, priority, takeOpts.signal);
            if (i === windowed && j === 0) await opened(taken, group[1]!);
          }
        }
      } finally {
        if (holding) line.next();
        waiting--;
        if (priority) urgent--;
      }
    },
    async penalize(seconds) {
      const s = Math.max(1, Math.min(3_600, Math.ceil(seconds)));
      await Promise.all(blockable.map((store) => store.block(KEY, s))).catch(() => undefined);
    },
    async observe(quota) {
      if (windowed < 0) return;
      const w = windows[windowed]!;
      // The vendor's stated limit wins over the configured one (a team whose quota was raised,
      // or lowered): the window's stores are made anew for it, on every instance that hears it.
      if (quota.limit !== undefined && Number.isInteger(quota.limit) && quota.limit > 0 && quota.limit !== limitSeen) {
        limitSeen = quota.limit;
        const old = stores[windowed]!;
        const pair = windowStores(`quota:${opts.name}:${windowed}`, quota.limit, w);
        stores[windowed] = pair;
        old.forEach((store, i) => (blockable[blockable.indexOf(store)] = pair[i]!));
        return;
      }
      // Nothing left in the vendor's window while ours has room (another client of the same
      // team spent it, or the vendor's window opened before ours): ours is spent too, so the
      // next call waits for our window's end instead of drawing a 429 and its whole second.
      if (quota.remaining === 0) {
        const window = stores[windowed]![0]!;
        const ours = await window.get(KEY).catch(() => null);
        if (ours && ours.remainingPoints > 0) await window.penalty(KEY, ours.remainingPoints).catch(() => undefined);
      }
    },
  };
}

/**
 * A call that opened a window (the first of its window's calls) clears the gap a late call of
 * the window before left: only the opening call sets a window's pace, so lateness does not add
 * up from window to window.
 */
async function opened(taken: RateLimiterRes, gap: RateLimiterAbstract): Promise<void> {
  if (taken.consumedPoints === 1) await gap.delete(KEY).catch(() => undefined);
}

/** A turn free now from every store (createBudget's `stores`), or QuotaExhausted at once. */
async function takeSpare(name: string, stores: RateLimiterAbstract[][], windowed: number): Promise<void> {
  for (const [i, group] of stores.entries()) {
    for (const [j, store] of group.entries()) {
      try {
        const taken = await store.consume(KEY);
        if (i === windowed && j === 0) await opened(taken, group[1]!);
      } catch (rejection) {
        if (!(rejection instanceof RateLimiterRes)) throw Object.assign(new QuotaExhausted(name, 1), { cause: rejection });
        throw new QuotaExhausted(name, Math.max(1, Math.ceil(rejection.msBeforeNext / 1000)));
      }
    }
  }
}

/** A vendor's rate-limit headers (IETF's `RateLimit-*` fields, as Resend sends them), read. */
export function observedQuota(headers: Record<string, string> | null | undefined): ObservedQuota | null {
  if (!headers) return null;
  const n = (name: string) => {
    const v = Number(headers[name]);
    return headers[name] !== undefined && Number.isFinite(v) && v >= 0 ? v : undefined;
  };
  const quota = { limit: n('ratelimit-limit'), remaining: n('ratelimit-remaining'), resetSeconds: n('ratelimit-reset') };
  return quota.limit === undefined && quota.remaining === undefined ? null : quota;
}

const KEY = 'budget';

/**
 * A millisecond or two added to a wait for a turn: callers of several instances do not all ask
 * at once, and the lateness stays small (the next window opens with the late call).
 */
const jitter = () => Math.floor(Math.random() * 3);

/**
 * The line of one instance's ordinary callers: one of them at a time holds the turn to ask the
 * store. Turns go round the parties waiting, one each (the party just served goes to the back
 * of the round), and within a party to its callers in arrival order. A Map keeps the round's
 * order.
 */
function createFairLine() {
  let held = false;
  /** The party of the caller holding the turn (or who held it last). */
  let current = '';
  const parties = new Map<string, Array<() => void>>();
  return {
    /** A place in the line: `turn` resolves when it is this caller's; `leave()` gives the place up (false: the turn was given already). */
    join(party: string): { turn: Promise<void>; leave(): boolean } {
      if (!held) {
        held = true;
        current = party;
        return { turn: Promise.resolve(), leave: () => false };
      }
      let give!: () => void;
      const turn = new Promise<void>((resolve) => (give = resolve));
      const waiting = parties.get(party);
      if (waiting) waiting.push(give);
      else parties.set(party, [give]);
      return {
        turn,
        leave() {
          const own = parties.get(party);
          const at = own?.indexOf(give) ?? -1;
          if (at === -1) return false;
          own!.splice(at, 1);
          if (own!.length === 0) parties.delete(party);
          return true;
        },
      };
    },
    /** The caller holding the turn is done: the first caller of the next party in the round gets it. */
    next(): void {
      const served = parties.get(current);
      if (served) {
        parties.delete(current);
        parties.set(current, served);
      }
      const first = parties.entries().next();
      if (first.done) {
        held = false;
        return;
      }
      const [party, waiting] = first.value;
      const give = waiting.shift()!;
      if (waiting.length === 0) parties.delete(party);
      current = party;
      give();
    },
    /** Callers of `party` waiting for their turn. */
    waiting: (party: string) => parties.get(party)?.length ?? 0,
  };
}

/**
 * How long a vendor's 429 asks us to wait, in seconds: Retry-After (seconds, or an HTTP date)
 * or, for Dodo, X-RateLimit-Reset (the Unix time the window resets). Null when it says nothing.
 */
export function retryAfterSeconds(headers: { get(name: string): string | null }, now = Date.now()): number | null {
  const retryAfter = headers.get('retry-after');
  if (retryAfter) {
    const n = Number(retryAfter);
    if (Number.isFinite(n) && n >= 0) return n;
    const at = Date.parse(retryAfter);
    if (Number.isFinite(at)) return Math.max(0, (at - now) / 1000);
  }
  const reset = Number(headers.get('x-ratelimit-reset'));
  if (Number.isFinite(reset) && reset > 0) return Math.max(0, reset > 1e9 ? reset - now / 1000 : reset);
  return null;
}

/**
 * Wraps an SDK's `fetch` so that every call takes a token from `budget` first (the Dodo SDK
 * takes its transport as an option, so checkout, balance, ledger and readiness calls are all
 * budgeted without each caller knowing). A token that cannot be had is answered here as the
 * vendor would, a 429 with Retry-After and nothing sent: the SDK reports a definite refusal,
 * never an unanswered call. A 429 from the vendor itself blocks the budget for as long as it says.
 */
export function budgetedFetch(fetch: (input: string | URL | Request, init?: RequestInit) => Promise<Response>, budget: Budget) {
  if (!budget.limited) return fetch;
  return async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    try {
      const party = budgetParty.getStore();
      await budget.take({ ...budgetTurns.getStore(), ...(party !== undefined ? { party } : {}), signal: init?.signal ?? undefined });
      // The SDK's timeout ran out while the call waited for its turn: it was never sent, and
      // must not look unanswered (an unanswered write is in doubt until asked again).
      if (init?.signal?.aborted) throw new QuotaExhausted(budget.name, 1);
    } catch (err) {
      if (!(err instanceof QuotaExhausted)) throw err;
      return new Response(JSON.stringify({ code: 'TOO_MANY_REQUESTS', message: `MailKit's ${budget.name} budget is spent; nothing was sent.` }), {
        status: 429,
        headers: { 'content-type': 'application/json', 'retry-after': String(err.retryAfterSeconds), 'x-mailkit-budget': budget.name },
      });
    }
    const res = await fetch(input, init);
    if (res.status === 429 && !res.headers.get('x-mailkit-budget')) void budget.penalize(retryAfterSeconds(res.headers) ?? 1);
    return res;
  };
}
