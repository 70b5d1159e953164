import type { Database } from '../db/index';
import { LostClaim, releasedByTransition, releaseSend, renewClaims, type SendRow } from '../db/sends';
import { HttpError } from '../errors';
import type { Logger } from '../logger';
import type { StoredResponse } from './records';

/** A send running in this process: a request for the same send joins it (`reconciler`: the reconciler's own). */
export interface Run {
  fingerprint: string;
  promise: Promise<StoredResponse>;
  reconciler: boolean;
  /** A send answered once queued: its 202, known before its delivery ends. */
  accepted?: Promise<StoredResponse>;
}

/**
 * The sends this instance runs, by id, and the claims they hold: renewed while they run (every
 * third of the claim), so that a process that dies lets them expire and another instance takes
 * them over; let go of when a run ends.
 */
export class Runs {
  readonly byId = new Map<string, Run>();
  private readonly renewer: NodeJS.Timeout;

  constructor(private readonly deps: { database: Database; owner: string; claimMs: number; now: () => number; log?: Logger }) {
    this.renewer = setInterval(() => {
      void renewClaims(deps.database, deps.owner, [...this.byId.keys()], deps.now() + deps.claimMs).catch((err: unknown) =>
        deps.log?.warn({ err }, 'could not renew send claims'),
      );
    }, deps.claimMs / 3);
    // It must not keep a finished test or CLI process alive.
    this.renewer.unref();
  }

  /**
   * Runs a send this instance holds (`step`, from its row), registered so that a request for
   * the same send joins it; lets go of the claim at the end, unless the run's last transition
   * did (`done` commits with the claim let go: db/sends.ts releasedByTransition).
   */
  async track(
    sendId: string,
    fingerprint: string,
    row: SendRow,
    reconciler: boolean,
    step: (row: SendRow) => Promise<StoredResponse | void>,
    accepted?: Promise<StoredResponse>,
  ): Promise<StoredResponse> {
    const { database, owner, log } = this.deps;
    releasedByTransition(database, sendId, owner); // nothing from an earlier run counts
    const promise = (async () => {
      try {
        return (await step(row)) as StoredResponse;
      } catch (err) {
        if (err instanceof LostClaim) {
          // Another instance took the send over (this one stalled past its claim): its run answers.
          log?.warn({ sendId }, 'send claim lost mid-run');
          throw new HttpError(
            409,
            'idempotency_key_in_use',
            'This send is being completed by another request. Retry after the Retry-After delay to get its result.',
            { 'Retry-After': '2' },
          );
        }
        throw err;
      } finally {
        if (!releasedByTransition(database, sendId, owner))
          await releaseSend(database, sendId, owner).catch((err: unknown) =>
            log?.warn({ sendId, err }, 'could not release a send claim (it expires by itself)'),
          );
      }
    })();
    this.byId.set(sendId, { fingerprint, promise, reconciler, accepted });
    try {
      return await promise;
    } finally {
      this.byId.delete(sendId);
    }
  }

  /** Resolves once every run of this process has ended. */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.byId.values()].map((r) => r.promise));
  }

  /** No more renewals (shutdown, after the runs ended). */
  stop(): void {
    clearInterval(this.renewer);
  }
}
