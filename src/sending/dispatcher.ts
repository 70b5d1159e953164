import { randomBytes } from 'node:crypto';
import type { Database } from '../db/index';
import { flightBody, recordFlight, type FlightMember } from '../db/flights';
import type { SendRow } from '../db/sends';
import type { BatchDelivery, Mailer, OutgoingEmail } from '../mail/mailer';
import type { Logger } from '../logger';
import { QuotaExhausted } from '../quotas';

/**
 * The dispatcher packs the emails of every send waiting for Resend into flights: one
 * `POST /emails/batch` call (up to 100 emails) each time Resend's shared budget gives a turn.
 * When nothing else waits, a lone send flies at once, as its own call under its own key (its
 * retry's; nothing to record). Each flight of several sends is recorded (its exact body,
 * its key) and its sends tagged with it before it flies, so a flight whose answer is lost is
 * re-sent with the same body under the same key: one email per item, whatever happened.
 *
 * Fairness: a flight takes one send per customer in turn, so a customer sending flat out
 * fills the flights' spare room, never the others' place in them.
 */
export interface Dispatcher {
  /**
   * Delivers a send's emails in the next flight; resolves with this send's part of the answer.
   * `patient`: a send already answered (accepted, 202) waits for a turn however long it takes,
   * instead of being refused after `maxWaitMs`; the sender bounds how many wait. `alone`: the
   * send's own call (its own key), made instead of a flight when it flies alone.
   */
  deliver(
    row: SendRow,
    items: Array<{ email: OutgoingEmail; from: string }>,
    opts?: { patient?: boolean; alone?: () => Promise<BatchDelivery> },
  ): Promise<BatchDelivery>;
  /** Re-sends the flight that carried `row` (same body, same key): this send's part, or null if the flight is gone. */
  redeliver(row: SendRow, count: number): Promise<BatchDelivery | null>;
}

/** Most emails in one Resend batch call. */
export const FLIGHT_MAX = 100;
/**
 * How long after its turn a flight may leave on it: the margin MailKit counts on Resend's window
 * for a call's way there (stack.ts RESEND_WINDOW_MARGIN_MS).
 */
const TURN_KEPT_MS = 30;

interface Waiting {
  row: SendRow;
  items: Array<{ email: OutgoingEmail; from: string }>;
  /** The send's own call, with the turn taken (steps.ts ownCall): a flight of this send alone. */
  alone?: () => Promise<BatchDelivery>;
  /** When it is refused for want of a turn (Infinity: patient). */
  deadline: number;
  resolve(d: BatchDelivery): void;
  reject(err: unknown): void;
}

export function createDispatcher(opts: {
  database: Database;
  mailer: Mailer;
  /** The instance whose sends it carries (the dispatcher is in-process): the owner of every send it tags. */
  owner: string;
  log?: Logger;
  /** Longest a send waits for a flight before it is refused (429, nothing sent). Default 5 s. */
  maxWaitMs?: number;
}): Dispatcher {
  const { database, mailer, log } = opts;
  const maxWaitMs = opts.maxWaitMs ?? 5_000;
  /** Waiting sends by customer, in arrival order; `turns` is the round-robin order of customers. */
  const waiting = new Map<string, Waiting[]>();
  const turns: string[] = [];
  let pumping = false;
  /** Re-sends in progress, by flight. */
  const reflying = new Map<string, Promise<BatchDelivery | null>>();

  function enqueue(w: Waiting) {
    const customer = w.row.customerId;
    let list = waiting.get(customer);
    if (!list) {
      list = [];
      waiting.set(customer, list);
      turns.push(customer);
    }
    list.push(w);
    void pump();
  }

  /** Takes up to FLIGHT_MAX emails, one whole send per customer in turn. */
  function pack(): Waiting[] {
    const flight: Waiting[] = [];
    let count = 0;
    for (let progressed = true; progressed && count < FLIGHT_MAX;) {
      progressed = false;
      for (let i = 0; i < turns.length && count < FLIGHT_MAX; i++) {
        const customer = turns[i]!;
        const list = waiting.get(customer)!;
        const next = list[0];
        if (!next || count + next.items.length > FLIGHT_MAX) continue;
        list.shift();
        flight.push(next);
        count += next.items.length;
        progressed = true;
      }
    }
    // Customers served go to the back of the line; emptied ones leave it.
    for (const w of flight) {
      const at = turns.indexOf(w.row.customerId);
      if (at >= 0) turns.push(...turns.splice(at, 1));
    }
    for (let i = turns.length - 1; i >= 0; i--) {
      if (waiting.get(turns[i]!)!.length === 0) {
        waiting.delete(turns[i]!);
        turns.splice(i, 1);
      }
    }
    return flight;
  }

  /**
   * Refuses waiting sends (nothing of them was sent): those past their deadline, or every one
   * that is not patient when Resend's budget has no turn soon enough, or all of them when the
   * dispatcher itself failed (a patient send is then tried again by its sender).
   */
  function refuseAll(retryAfterSec: number, which: 'expired' | 'impatient' | 'all') {
    const now = Date.now();
    for (const [customer, list] of waiting) {
      const keep = list.filter((w) => {
        if (which === 'expired' && w.deadline > now) return true;
        if (which === 'impatient' && w.deadline === Infinity) return true;
        w.resolve({
          kind: 'rejected',
          retryable: true,
          status: 429,
          name: 'quota_exhausted',
          message: 'Resend quota spent: nothing was sent.',
          retryAfterSec,
        });
        return false;
      });
      if (keep.length) waiting.set(customer, keep);
      else {
        waiting.delete(customer);
        turns.splice(turns.indexOf(customer), 1);
      }
    }
  }

  async function pump() {
    if (pumping) return;
    pumping = true;
    try {
      while (waiting.size > 0) {
        refuseAll(1, 'expired');
        if (waiting.size === 0) break;
        try {
          await mailer.budget?.take();
        } catch (err) {
          if (!(err instanceof QuotaExhausted)) throw err;
          // No turn within the budget's wait: answer now rather than queue without bound.
          refuseAll(err.retryAfterSeconds, 'impatient');
          // Patient sends stay; the budget is asked again once a turn may have come.
          if (waiting.size > 0) await new Promise((r) => setTimeout(r, Math.min(1_000, err.retryAfterSeconds * 1_000)));
          continue;
        }
        const takenAt = Date.now();
        const flight = pack();
        if (flight.length) void fly(flight, takenAt);
      }
    } catch (err) {
      log?.error({ err }, 'dispatcher stopped on an unexpected error');
      refuseAll(1, 'all');
    } finally {
      pumping = false;
    }
  }

  async function fly(flight: Waiting[], takenAt: number) {
    const lone = flight.length === 1 ? flight[0]!.alone : undefined;
    if (lone) {
      // A send alone goes under its own key, as its retry in doubt would (its row names no
      // flight): nothing to record first, since that key is the row's own (sending/README.md).
      const w = flight[0]!;
      lone().then(w.resolve, w.reject);
      return;
    }
    const flightId = `flt_${randomBytes(16).toString('base64url')}`;
    const bySend = new Map(flight.map((w) => [w.row.id, w]));
    let flying: Array<FlightMember & { offset: number }>;
    try {
      flying = await recordFlight(
        database,
        flightId,
        opts.owner,
        flight.map((w) => ({ sendId: w.row.id, count: w.items.length })),
        (sendId) => bySend.get(sendId)!.items,
        Date.now(),
      );
    } catch (err) {
      // Not recorded, so not flown: the sends stay delivering with no flight, never sent.
      for (const w of flight) w.reject(err);
      return;
    }
    for (const w of flight) {
      if (!flying.some((m) => m.sendId === w.row.id)) w.reject(new Error(`send ${w.row.id} left this instance before its flight`));
    }
    if (flying.length === 0) return;
    const items = flying.flatMap((m) => bySend.get(m.sendId)!.items);
    // The turn was counted in the window open when it was taken. A flight that leaves later
    // than a call's way to Resend allows (its record slow to commit, an event loop behind) may
    // land in Resend's next window, beside that window's own calls: it takes a turn again, in
    // the window it leaves in (the first turn stays spent: one call fewer, never a 429).
    const answer = await mailer.deliverFlight(items, flightId, { tokenTaken: Date.now() - takenAt <= TURN_KEPT_MS });
    for (const m of flying) bySend.get(m.sendId)!.resolve(slice(answer, m.offset, m.count));
  }

  return {
    deliver(row, items, deliverOpts = {}) {
      const deadline = deliverOpts.patient ? Infinity : Date.now() + maxWaitMs;
      return new Promise<BatchDelivery>((resolve, reject) => enqueue({ row, items, alone: deliverOpts.alone, deadline, resolve, reject }));
    },

    async redeliver(row, count) {
      if (!row.flightId || row.flightOffset === null) return null;
      const flightId = row.flightId;
      // Sends of one flight retried at once share one call: the same answer for all of them,
      // one turn of the budget, and no `concurrent_idempotent_requests` from Resend.
      let call = reflying.get(flightId);
      if (!call) {
        call = (async () => {
          const body = await flightBody(database, flightId);
          if (!body) return null;
          return mailer.deliverFlight(JSON.parse(body) as Array<{ email: OutgoingEmail; from: string }>, flightId);
        })().finally(() => reflying.delete(flightId));
        reflying.set(flightId, call);
      }
      const answer = await call;
      return answer && slice(answer, row.flightOffset, count);
    },
  };
}

/** One send's part of a flight's answer: its items, re-indexed from 0. */
function slice(answer: BatchDelivery, offset: number, count: number): BatchDelivery {
  if (answer.kind !== 'sent') return answer;
  return {
    kind: 'sent',
    ids: answer.ids.slice(offset, offset + count),
    errors: answer.errors.filter((e) => e.index >= offset && e.index < offset + count).map((e) => ({ ...e, index: e.index - offset })),
  };
}
