/**
 * The room an instance keeps for sends answered once queued (202) and not yet delivered: at
 * most `limit` emails (5 s of Resend's quota by default, sender.ts). A send past it waits for
 * room, up to `waitMs`, then is refused by its caller (429, nothing taken) rather than queued
 * without bound.
 *
 * Freed room goes to the waiting sends fairly across customers: first the send of the customer
 * holding the fewest accepted emails (the longest waiting among equals). In arrival order, a
 * customer sending flat out, whose sends are answered in milliseconds and come straight back,
 * would take every place as it is freed and keep the others out; the flights share Resend's
 * calls across customers the same way (dispatcher.ts). The send first in that order waits for
 * room enough for all its emails, and those behind it wait with it (until it fits, or gives up).
 *
 * A light customer is not kept waiting behind a heavy one: a send that leaves its customer holding
 * at most `lightShare` emails (1 % of the room) gets in past a full room, into a reserve of a
 * fifth of it that only such sends use. One customer sending flat out fills the room; twenty
 * sending now and then still get their answers in milliseconds.
 *
 * A send that could not get in within its wait is refused at once instead of waiting for
 * nothing: when the room, with the sends already waiting ahead, would need more than
 * `drainPerSecond` emails delivered in the wait to take it (a burst of thousands of emails at
 * once, where one second of flights frees two hundred places), its caller answers 429 in
 * milliseconds, not after the whole wait.
 */
export interface AcceptRoom {
  /**
   * Waits up to `waitMs` for room for `count` more emails of this customer and holds it; false if
   * none came, none could come in time, or the room is closed.
   */
  hold(customerId: string, count: number): Promise<boolean>;
  /** Gives back room held for this customer (its send settled, or was refused). */
  free(customerId: string, count: number): void;
  /** Emails held now, in all. */
  held(): number;
  /** Emails of the sends waiting for room now. */
  waiting(): number;
  /** No more waiting: a send asking for room from now on is refused unless it fits at once. */
  close(): void;
}

interface Waiter {
  customerId: string;
  count: number;
  grant: () => void;
}

export function createAcceptRoom(opts: { limit: number; waitMs: number; drainPerSecond?: number }): AcceptRoom {
  let total = 0;
  let closed = false;
  const byCustomer = new Map<string, number>();
  const waiters: Waiter[] = [];
  const heldBy = (customerId: string) => byCustomer.get(customerId) ?? 0;
  const lightShare = Math.max(1, Math.floor(opts.limit / 100));
  const reserve = Math.floor(opts.limit / 5);
  // One send larger than the whole room still gets it when nothing else is held.
  const fits = (customerId: string, count: number) =>
    total === 0 || total + count <= opts.limit || (heldBy(customerId) + count <= lightShare && total + count <= opts.limit + reserve);
  const take = (customerId: string, count: number) => {
    total += count;
    byCustomer.set(customerId, heldBy(customerId) + count);
  };

  function grant() {
    while (waiters.length) {
      let best = 0;
      for (let i = 1; i < waiters.length; i++) if (heldBy(waiters[i]!.customerId) < heldBy(waiters[best]!.customerId)) best = i;
      const w = waiters[best]!;
      if (!fits(w.customerId, w.count)) return;
      waiters.splice(best, 1);
      take(w.customerId, w.count);
      w.grant();
    }
  }

  return {
    hold(customerId, count) {
      if ((!waiters.length || heldBy(customerId) + count <= lightShare) && fits(customerId, count)) {
        take(customerId, count);
        return Promise.resolve(true);
      }
      if (closed) return Promise.resolve(false);
      if (opts.drainPerSecond !== undefined) {
        const ahead = waiters.reduce((n, w) => n + w.count, 0);
        if (total + ahead + count - opts.limit > (opts.drainPerSecond * opts.waitMs) / 1000) return Promise.resolve(false);
      }
      return new Promise<boolean>((resolve) => {
        const waiter: Waiter = {
          customerId,
          count,
          grant: () => {
            clearTimeout(timeout);
            resolve(true);
          },
        };
        const timeout = setTimeout(() => {
          const i = waiters.indexOf(waiter);
          if (i >= 0) waiters.splice(i, 1);
          resolve(false);
          // It may have been the one first in line that did not fit: the others may.
          grant();
        }, opts.waitMs);
        waiters.push(waiter);
        grant();
      });
    },
    free(customerId, count) {
      if (count <= 0) return;
      total -= count;
      const left = heldBy(customerId) - count;
      if (left > 0) byCustomer.set(customerId, left);
      else byCustomer.delete(customerId);
      grant();
    },
    held: () => total,
    waiting: () => waiters.reduce((n, w) => n + w.count, 0),
    close() {
      closed = true;
    },
  };
}
