import type { AcceptRoom } from './room';
import type { Runs } from './runs';
import type { StepContext } from './steps';

/** What the sender's pieces share (sender.ts wires them): the steps' context, the runs of this process, the room. */
export interface SenderParts {
  ctx: StepContext;
  runs: Runs;
  /** Room for the emails of accepted sends not yet settled (room.ts). */
  room: AcceptRoom;
  /** The most emails the room holds (a refusal's Retry-After counts against it). */
  acceptLimit: number;
  /** How long a claim holds without renewal. */
  claimMs: number;
  /** Set at shutdown: accepted sends stop trying (the reconciler's, then), and `signal` wakes those pausing. */
  stopping: { now: boolean; signal: AbortSignal };
}
