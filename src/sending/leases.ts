import { randomBytes } from 'node:crypto';
import DodoPayments from 'dodopayments';
import { DodoUnavailable, InsufficientCredits, type Billing } from '../billing/billing';
import { CATALOG } from '../billing/catalog';
import { cachedBalance } from '../db/balances';
import type { Database } from '../db/index';
import {
  acquireLease,
  deleteLease,
  insertLease,
  leasesToReturn,
  payFromLease,
  roomFor,
  startReturn,
  transitionLease,
  unsettledLeases,
  type LeaseRow,
} from '../db/leases';
import type { SendRow } from '../db/sends';
import { HttpError } from '../errors';
import type { Logger } from '../logger';
import { budgetTurns } from '../quotas';

/**
 * Credit leases (issue 13). Dodo takes about 4 ledger writes a second (240 a minute, every
 * instance together), so a debit per email caps MailKit at 4 emails a second. Instead a send's
 * credits come from a lease: a block of the customer's credits debited from Dodo in one ledger
 * entry, spent by sends locally (one transaction in MailKit's database, no Dodo call), its
 * unspent part credited back once the customer goes idle, at shutdown, or by any instance's
 * sweep after a crash. sending/README.md ("Leases") has the states and what settles each.
 *
 * Sizing. A lease covers the credits of every send waiting for one (they share one debit: the
 * "coalesced" debit), plus, when the customer sends fast, what it would spend in the next
 * `horizonMs` at its recent rate, capped by `maxCredits` and by its balance above the
 * low-balance threshold: credits taken ahead never take the Dodo balance under it, so
 * `credit.balance_low` fires when the emails themselves cross it, not before.
 */
export interface Leases {
  /** Pays a reserving send (funding 'lease') from a lease, getting one from Dodo if none has room. Throws what the debit answered (402, 429, 503); nothing is then held for the send. */
  pay(send: SendRow): Promise<SendRow>;
  /** Returns idle leases and finishes calls left unfinished by a dead instance (every `idleMs / 2` on its own, and from the reconciler). */
  sweep(): Promise<void>;
  /** Returns every active lease now, whoever took it, and settles unfinished calls: Dodo's balance is then the customer's whole. */
  returnAll(): Promise<void>;
  /** Returns every active lease this instance took (shutdown), for 8 s at most and not past `until`; resolves when done or left for another instance's sweep. */
  drain(until?: number): Promise<void>;
}

export interface LeaseOptions {
  /** A lease nothing was spent from for this long is returned (default 10 s). */
  idleMs?: number;
  /** Credits taken ahead cover this long at the customer's recent rate (default 60 s: 50 customers sending steadily cost Dodo about one debit a second). */
  horizonMs?: number;
  /** The most credits one lease takes (default 20,000). */
  maxCredits?: number;
  /** The rate is measured over this window (default 10 s). */
  rateWindowMs?: number;
}

/** The shortest span a customer's rate is measured over (rateOf). */
const RATE_MIN_SPAN_MS = 250;

/**
 * How long a lease's debit, with sends waiting for it, may wait for its turn in Dodo's budget
 * (other Dodo calls wait 5 s). One debit pays many sends, and Dodo's turns are the one thing that
 * cannot be had faster: 50 customers starting together need about 100 debits (a first lease each,
 * then one sized by their rate), 16 s of Dodo's 4 a second beyond its burst of 40. A debit that
 * keeps its place is paid in its turn; one refused at 5 s would come back, with its send's retry,
 * at the end of the line, and be refused again.
 */
const LEASE_DEBIT_WAIT_MS = 15_000;

/** How long a shutdown spends returning this instance's leases. */
const DRAIN_MS = 8_000;

/** The plan's low-balance threshold in credits (20 % of 5,000): leases never take the balance under it ahead of the emails. */
export const LEASE_FLOOR = (CATALOG.plan.credits * CATALOG.plan.lowBalanceThresholdPercent) / 100;

/** A debit some sends of one customer wait for: joined until it starts. */
interface Pending {
  demand: number;
  joiners: number;
  /** No more joiners: its demand is counted. */
  started: boolean;
  /** The lease taken (or found in doubt and existing), for its joiners to spend first. */
  done: Promise<string | undefined>;
}

/** A debit for several sends together was refused for want of credits (each may still fit alone). */
class SharedRefusal extends Error {
  override name = 'SharedRefusal';
}

export function createLeases(opts: {
  database: Database;
  billing: Billing;
  owner: string;
  now: () => number;
  claimMs: number;
  log?: Logger;
  options?: LeaseOptions;
}): Leases {
  const { database, billing, owner, now, claimMs, log } = opts;
  const idleMs = opts.options?.idleMs ?? 10_000;
  const horizonMs = opts.options?.horizonMs ?? 60_000;
  const maxCredits = opts.options?.maxCredits ?? 20_000;
  const rateWindowMs = opts.options?.rateWindowMs ?? 10_000;
  /** A customer's next lease is taken ahead once its leases hold less than this long of its sending (a third of the horizon). */
  const refillAheadMs = horizonMs / 3;
  /** Per customer: the debit still taking joiners, and the one in flight (the next waits for it). */
  const open = new Map<string, Pending>();
  const flying = new Map<string, Promise<void>>();
  /** Per customer, the expiry its returned credits get (returnExpiry), and until when it is kept. */
  const expiries = new Map<string, { expiry: string; until: number }>();
  /** Leases just taken, by id: the credits still kept for the sends they were taken for. */
  const fenced = new Map<string, number>();
  /** Credits spent per customer on this instance: [time, credits], the last `rateWindowMs`. */
  const spending = new Map<string, Array<[number, number]>>();
  let sweeping: Promise<void> | null = null;

  const timer = setInterval(() => void leases.sweep().catch((err: unknown) => log?.warn({ err }, 'lease sweep failed')), Math.max(250, idleMs / 2));
  timer.unref();

  const keysOf = (l: Pick<LeaseRow, 'id' | 'nonce'>) => ({ debit: `${l.id}.${l.nonce}:debit`, back: `${l.id}.${l.nonce}:return` });

  function noteSpent(customerId: string, credits: number) {
    const t = now();
    const list = spending.get(customerId) ?? [];
    list.push([t, credits]);
    while (list.length && list[0]![0] < t - rateWindowMs) list.shift();
    spending.set(customerId, list);
  }

  /**
   * Credits a second this customer spent here lately, over at least RATE_MIN_SPAN_MS: a second
   * send soon after a first reads as 4 a second, not as a flood (two sends 10 ms apart are not
   * 100 a second), and not as 1 a second either (a lease sized so would run out within seconds for a
   * customer sending steadily, and its next debit would wait in Dodo's line with its sends).
   */
  function rateOf(customerId: string): number {
    const t = now();
    const list = (spending.get(customerId) ?? []).filter(([at]) => at >= t - rateWindowMs);
    if (!list.length) return 0;
    const total = list.reduce((n, [, c]) => n + c, 0);
    return total / (Math.max(RATE_MIN_SPAN_MS, t - list[0]![0]) / 1000);
  }

  /** How much ahead of `demand` a lease may take: the recent rate over the horizon, under the balance above the floor. */
  async function aheadFor(customerId: string, demand: number): Promise<number> {
    const wanted = Math.min(maxCredits, Math.ceil((rateOf(customerId) * horizonMs) / 1000)) - demand;
    if (wanted <= 0) return 0;
    // Only a balance Dodo gave MailKit recently (its answer to the last debit, a read): an old
    // or unconfirmed one could hide a top-up or a charge, so without one nothing is taken ahead.
    const known = await cachedBalance(database, customerId).catch(() => undefined);
    if (!known || known.confirmedAt == null || now() - known.confirmedAt > 30_000) return 0;
    const headroom = Math.floor(Number(known.balance)) - LEASE_FLOOR - demand;
    return Math.max(0, Math.min(wanted, headroom));
  }

  function reasonOf(l: Pick<LeaseRow, 'id' | 'credits' | 'emailsAhead'>): string {
    const now = l.credits - l.emailsAhead;
    return l.emailsAhead === 0
      ? `emails: ${l.credits} credit${l.credits === 1 ? '' : 's'} for the emails being sent (lease ${l.id})`
      : `lease ${l.id}: ${l.credits} credits, ${now} for the emails being sent and ${l.emailsAhead} ahead; unspent credits are returned`;
  }

  /**
   * Asks Dodo for a lease's debit (a new one, or one in doubt: same key, same amount, same
   * reason) and moves the lease on by the answer. Resolves with the lease once active; throws
   * what Dodo answered otherwise.
   */
  async function debit(lease: LeaseRow, again = false): Promise<LeaseRow> {
    // Asked again (a lease found reserving: its first ask went unanswered, or its process died
    // asking), a refusal proves nothing about that first ask.
    const inDoubt = lease.inDoubt === 1 || again;
    try {
      await billing.reserve(lease.customerId, lease.credits, keysOf(lease).debit, reasonOf(lease), { metadata: { mailkit_lease: lease.id, mailkit_entry: 'lease' } });
    } catch (err) {
      const at = now();
      if (err instanceof DodoUnavailable) {
        // No answer: the debit may exist. The lease stays reserving, in doubt, until a definite
        // answer for this same key (the next send's turn here, or any instance's sweep).
        await transitionLease(database, lease.id, owner, ['reserving'], { inDoubt: 1, claimedUntil: 0, updatedAt: at });
        throw err;
      }
      if (err instanceof InsufficientCredits || (err instanceof HttpError && err.status === 429 && !inDoubt)) {
        // Definite: no debit under this key. Nothing is held, so the lease is as if it never was.
        await deleteLease(database, lease.id, owner);
        throw err;
      }
      // A refusal after an unanswered try proves nothing; left for a later definite answer.
      await transitionLease(database, lease.id, owner, ['reserving'], { inDoubt: inDoubt ? 1 : 0, claimedUntil: 0, updatedAt: at });
      throw err;
    }
    const at = now();
    const active = await transitionLease(database, lease.id, owner, ['reserving'], { state: 'active', inDoubt: 0, claimedUntil: null, lastUsedAt: at, updatedAt: at });
    if (!active) throw new DodoUnavailable('A credit lease changed hands while it was being taken. Retry in a few seconds.', 2);
    return active;
  }

  /**
   * Takes a lease of `demand` credits and `extra` ahead (aheadFor) for this customer: recorded,
   * then debited. Resolves to its id (undefined: nothing to take, no demand and none ahead).
   */
  async function take(customerId: string, demand: number, extra: number): Promise<string | undefined> {
    if (demand + extra <= 0) return undefined;
    const t = now();
    const lease: LeaseRow = {
      id: `lse_${randomBytes(12).toString('base64url')}`,
      customerId,
      nonce: randomBytes(9).toString('base64url'),
      state: 'reserving',
      credits: demand + extra,
      spent: 0,
      returnCredits: null,
      returnExpiresAt: null,
      emailsAhead: extra,
      inDoubt: 0,
      owner,
      claimedUntil: t + claimMs,
      createdAt: t,
      updatedAt: t,
      lastUsedAt: t,
    };
    await insertLease(database, lease);
    try {
      await debit(lease);
      log?.info({ leaseId: lease.id, customerId, credits: lease.credits, ahead: extra, ms: now() - t }, 'credit lease taken');
      if (demand > 0) fence(lease.id, demand);
      return lease.id;
    } catch (err) {
      // Taken ahead and refused for want of credits: the balance known was off. The emails
      // waiting may still fit; ask for exactly them.
      if (err instanceof InsufficientCredits && extra > 0) return take(customerId, demand, 0);
      throw err;
    }
  }

  /**
   * Settles this customer's leases left in doubt before taking a new one: only their own key can
   * say whether they exist, and one that does is spent first. Resolves to one that became active.
   */
  async function settleDoubts(customerId: string): Promise<string | undefined> {
    const t = now();
    let activated: string | undefined;
    for (const l of await unsettledLeases(database, t, 10, customerId)) {
      const mine = await acquireLease(database, l.id, owner, t, t + claimMs);
      if (mine?.state !== 'reserving') {
        if (mine) await settleLease(mine).catch(() => undefined);
        continue;
      }
      activated = (await debit(mine, true).then((a) => a.id, () => undefined)) ?? activated;
    }
    return activated;
  }

  /**
   * Waits for a lease with room for `credits` of this customer: joins the debit about to be
   * asked for (its demand grows by `credits`), which starts once the one in flight for this
   * customer has landed (so the sends arriving meanwhile share one debit), or starts one.
   * Resolves to the lease taken for them (undefined: leases with room enough are there).
   * `alone`: a debit of exactly these credits, shared with nobody (after a shared one was
   * refused for want of credits, each send finds out whether its own credits are there).
   */
  function obtain(customerId: string, credits: number, alone: boolean): Promise<string | undefined> {
    if (alone) return budgetTurns.run({ maxWaitMs: LEASE_DEBIT_WAIT_MS }, () => take(customerId, credits, 0));
    let p = open.get(customerId);
    if (!p) {
      const next: Pending = { demand: 0, joiners: 0, started: false, done: Promise.resolve(undefined) };
      const before = flying.get(customerId);
      next.done = (async () => {
        await before?.catch(() => undefined);
        // One more turn of the event loop for the sends of this customer arriving together.
        await new Promise<void>((r) => setImmediate(r));
        open.delete(customerId);
        next.started = true;
        try {
          // A lease in doubt that turns out to exist is spent before another is taken; and
          // leases that landed meanwhile may hold room enough already.
          const found = await settleDoubts(customerId);
          if (found) return found;
          if ((await roomFor(database, customerId, [...fenced.keys()])) >= next.demand) return undefined;
          return await budgetTurns.run({ maxWaitMs: LEASE_DEBIT_WAIT_MS }, async () => take(customerId, next.demand, await aheadFor(customerId, next.demand)));
        } catch (err) {
          throw err instanceof InsufficientCredits && next.joiners > 1 ? new SharedRefusal() : err;
        }
      })();
      const landed = next.done.then(
        () => undefined,
        () => undefined,
      );
      flying.set(customerId, landed);
      void landed.then(() => {
        if (flying.get(customerId) === landed) flying.delete(customerId);
      });
      open.set(customerId, next);
      p = next;
    }
    p.demand += credits;
    p.joiners++;
    return p.done;
  }

  /** Per customer: when this instance last looked whether to take its next lease ahead (refill). */
  const refillChecked = new Map<string, number>();

  /**
   * Takes the customer's next lease before its leases run out: when what is left in them covers
   * less than a third of the horizon at its rate, a lease of credits ahead (no email waiting for it) is
   * debited in the background, so a customer sending steadily never waits for Dodo's turn (50
   * customers renewing at once queue many turns: Dodo takes 4 a second). Only for a customer
   * sending steadily; looked at once a second per customer, never while a debit of this customer's is under way here; sized like
   * any lease ahead (its rate over the horizon, under its balance above the floor), and only
   * when that is at least what it would cover.
   */
  function refill(customerId: string) {
    const t = now();
    if ((refillChecked.get(customerId) ?? -Infinity) > t - 1_000) return;
    if (refillChecked.size >= 10_000) refillChecked.clear();
    refillChecked.set(customerId, t);
    if (open.has(customerId) || flying.has(customerId)) return;
    // Only for a customer sending steadily (10 sends over 2 s at least, in the rate's window):
    // a send now and then is paid by a lease of its own, with nothing ahead left to return.
    const recent = spending.get(customerId) ?? [];
    if (recent.length < 10 || t - recent[0]![0] < 2_000) return;
    const lowWater = (rateOf(customerId) * refillAheadMs) / 1000;
    if (lowWater <= 0) return;
    const landed = (async () => {
      if ((await roomFor(database, customerId, [])) >= lowWater) return;
      const extra = await aheadFor(customerId, 0);
      if (extra < lowWater) return;
      // On Dodo's spare turns only: a send waiting for a lease of its own goes first.
      await budgetTurns.run({ spare: true }, () => take(customerId, 0, extra));
    })().catch((err: unknown) => {
      // No spare turn now (Dodo's line is busy): looked at again at a later send.
      if (err instanceof HttpError && err.status === 429) log?.debug({ customerId }, 'no spare Dodo turn for the next lease yet');
      else log?.info({ customerId, err }, 'could not take the next lease ahead yet');
    });
    flying.set(customerId, landed);
    void landed.then(() => {
      if (flying.get(customerId) === landed) flying.delete(customerId);
    });
  }

  /**
   * Keeps the room of a lease just taken for the sends that asked for it: other sends of this
   * instance look elsewhere until they have spent it (or 5 s passed), so a lease sized for its
   * sends is not emptied by a send that came later while they make their way to it.
   */
  function fence(leaseId: string, credits: number) {
    fenced.set(leaseId, credits);
    setTimeout(() => fenced.delete(leaseId), 5_000).unref();
  }

  function spentFromFenced(leaseId: string, credits: number) {
    const left = (fenced.get(leaseId) ?? 0) - credits;
    if (left > 0) fenced.set(leaseId, left);
    else fenced.delete(leaseId);
  }

  /** Finishes a lease's unfinished call this instance now holds: a debit (asked again) or a return. */
  async function settleLease(l: LeaseRow): Promise<void> {
    if (l.state === 'reserving') {
      // Asking the same debit again settles whether it exists: 201 or 409 leave one debit,
      // which becomes an active lease (returned when idle); 400 means there was none.
      await debit(l, true).catch((err: unknown) => {
        if (!(err instanceof InsufficientCredits)) throw err;
      });
      return;
    }
    await finishReturn(l);
  }

  /**
   * When returned credits expire: the soonest expiry among the grants Dodo drew from (those not
   * expired with less left than they started with). Dodo makes a credit entry a grant of its
   * own; without an expiry, credits taken from a plan's 30-day grant would come back as credits
   * that never expire. 'never' when no grant drawn from expires. The answer is kept a minute per
   * customer (a shutdown returning every customer's lease reads each customer's grants once),
   * and never past the expiry it names.
   */
  async function returnExpiry(l: LeaseRow): Promise<string> {
    const known = expiries.get(l.customerId);
    const t = now();
    if (known && known.until > t && (known.expiry === 'never' || Date.parse(known.expiry) > t)) return known.expiry;
    const drawn = (await billing.grants(l.customerId)).filter((g) => !g.isExpired && g.remainingAmount < g.initialAmount && g.expiresAt);
    const expiry = drawn.map((g) => g.expiresAt!).sort((a, b) => Date.parse(a) - Date.parse(b))[0] ?? 'never';
    if (expiries.size >= 10_000) expiries.clear();
    expiries.set(l.customerId, { expiry, until: t + 60_000 });
    return expiry;
  }

  /** Credits a returning lease's unspent part back under the lease's return key; closes it on a definite answer. */
  async function finishReturn(l: LeaseRow): Promise<void> {
    const back = l.returnCredits ?? 0;
    let expired = false;
    let expiry = l.returnExpiresAt;
    if (back > 0) {
      try {
        // Fixed before the first ask: a retry under the same key carries the same body.
        if (!expiry) {
          expiry = await returnExpiry(l);
          await transitionLease(database, l.id, owner, ['returning'], { returnExpiresAt: expiry });
        }
        expired = expiry !== 'never' && Date.parse(expiry) <= now();
        if (!expired) {
          await billing.refund(l.customerId, back, keysOf(l).back, `lease ${l.id} returned: ${back} of ${l.credits} credits unspent`, {
            metadata: { mailkit_lease: l.id, mailkit_entry: 'lease_return' },
            expiresAt: expiry === 'never' ? null : expiry,
          });
        }
      } catch (err) {
        // Dodo refuses a credit whose expiry has passed (its clock may run ahead of ours): the
        // credits lapsed while leased, as they would have in Dodo.
        if (err instanceof DodoPayments.BadRequestError && expiry && expiry !== 'never') expired = true;
        else {
          const at = now();
          // Unanswered or refused: the same return, same key, is asked again by a later sweep.
          await transitionLease(database, l.id, owner, ['returning'], { inDoubt: err instanceof DodoUnavailable || l.inDoubt ? 1 : 0, claimedUntil: 0, updatedAt: at });
          throw err;
        }
      }
    }
    const at = now();
    await transitionLease(database, l.id, owner, ['returning'], { state: 'closed', inDoubt: 0, owner: null, claimedUntil: null, updatedAt: at });
    if (expired) log?.warn({ leaseId: l.id, customerId: l.customerId, credits: back }, 'lease credits expired while leased: not returned');
    else log?.info({ leaseId: l.id, customerId: l.customerId, credits: l.credits, returned: back }, 'credit lease returned');
  }

  async function giveBack(l: LeaseRow, idleBefore?: number): Promise<void> {
    const t = now();
    const returning = await startReturn(database, l.id, owner, t, t + claimMs, idleBefore);
    if (returning) await finishReturn(returning);
  }

  async function sweepOnce(): Promise<void> {
    const t = now();
    for (const l of await leasesToReturn(database, { idleBefore: t - idleMs }, 100)) {
      await giveBack(l, t - idleMs).catch((err: unknown) => log?.warn({ leaseId: l.id, err }, 'could not return an idle lease yet'));
    }
    for (const l of await unsettledLeases(database, now(), 100)) {
      const mine = await acquireLease(database, l.id, owner, now(), now() + claimMs);
      if (mine) await settleLease(mine).catch((err: unknown) => log?.warn({ leaseId: l.id, err }, 'could not settle a lease yet'));
    }
    for (const [customerId, list] of spending) if (!list.length || list.at(-1)![0] < t - rateWindowMs) spending.delete(customerId);
  }

  const leases: Leases = {
    async pay(send) {
      let alone = false;
      let taken: string | undefined;
      for (let round = 0; round < 8; round++) {
        // First the lease taken for this send (its size counted this send), then any with room
        // not kept for others, twice: the one another spender just emptied may have been the
        // one this send picked.
        const fromTaken = taken ? await payFromLease(database, send, owner, now(), { leaseId: taken }) : undefined;
        if (fromTaken && taken) spentFromFenced(taken, send.credits);
        const paid =
          fromTaken ??
          (await payFromLease(database, send, owner, now(), { exclude: [...fenced.keys()] })) ??
          (await payFromLease(database, send, owner, now(), { exclude: [...fenced.keys()] }));
        if (paid) {
          noteSpent(send.customerId, send.credits);
          refill(send.customerId);
          return paid;
        }
        try {
          taken = await obtain(send.customerId, send.credits, alone);
        } catch (err) {
          // A debit shared with other sends was refused for want of credits: this send's own
          // credits may still be there, and only a debit of exactly them can say.
          if (err instanceof SharedRefusal) {
            alone = true;
            continue;
          }
          throw err;
        }
      }
      // Others kept taking the room of the leases this send waited for.
      throw new HttpError(429, 'billing_busy', 'Too many sends are waiting for credits right now. Retry after the Retry-After delay.', { 'Retry-After': '1' });
    },
    sweep() {
      sweeping ??= sweepOnce().finally(() => {
        sweeping = null;
      });
      return sweeping;
    },
    async returnAll() {
      await sweeping?.catch(() => undefined);
      for (const l of await leasesToReturn(database, {}, 10_000)) await giveBack(l);
      await leases.sweep();
    },
    async drain(until = Infinity) {
      // (The server stops taking requests first; a send still arriving after this takes a new
      // lease, which the next sweep of any instance, or of this one restarted, returns.)
      clearInterval(timer);
      await sweeping?.catch(() => undefined);
      await Promise.allSettled([...flying.values()]);
      // Eight at a time, for at most 8 s (the process is given 15 s to stop): what Dodo's budget
      // has no turn for by then stays recorded, and any instance's sweep (or this one's, once
      // restarted) returns it.
      const queue = await leasesToReturn(database, { owner }, 1000);
      const deadline = Math.min(Date.now() + DRAIN_MS, until);
      const worker = async () => {
        for (let l = queue.shift(); l && Date.now() < deadline; l = queue.shift()) {
          // Its Dodo calls (the grants read, the credit) wait for a turn only until the deadline,
          // so the shutdown keeps to it.
          await budgetTurns
            .run({ until: deadline }, () => giveBack(l!))
            .catch((err: unknown) => log?.warn({ leaseId: l!.id, err }, 'lease left for a sweep to return'));
        }
      };
      await Promise.all(Array.from({ length: 8 }, worker));
      if (queue.length) log?.warn({ leases: queue.length }, 'leases left for a sweep to return (shutdown)');
    },
  };
  return leases;
}

