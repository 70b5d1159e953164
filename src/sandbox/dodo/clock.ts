/**
 * The sandbox clock: wall time plus a persisted offset. While the sandbox replays due events
 * (a renewal, an expiry) it pins "now" to that event's instant, so every timestamp written by
 * the event reads as if it happened on time.
 */
export interface SandboxClock {
  now(): Date;
  nowIso(): string;
  /** Runs `fn` with now() pinned to `at`. */
  pinned<T>(at: Date, fn: () => T): T;
  /** Moves the clock so now() reads `at` (never backwards). */
  moveTo(at: Date): void;
}

/** A clock whose offset lives in (and is persisted with) the state document. */
export function createClock(holder: { clockOffsetMs: number }): SandboxClock {
  let pin: Date | null = null;
  const now = () => pin ?? new Date(Date.now() + holder.clockOffsetMs);
  return {
    now,
    nowIso: () => now().toISOString(),
    pinned(at, fn) {
      const previous = pin;
      pin = at;
      try {
        return fn();
      } finally {
        pin = previous;
      }
    },
    moveTo(at) {
      const offset = at.getTime() - Date.now();
      if (offset > holder.clockOffsetMs) holder.clockOffsetMs = offset;
    },
  };
}

/** Adds a Dodo TimeInterval; months and years are calendar-based and clamp to the month's last day. */
export function addInterval(from: Date, interval: 'Day' | 'Week' | 'Month' | 'Year', count: number): Date {
  const d = new Date(from.getTime());
  if (interval === 'Day') return new Date(d.getTime() + count * 86_400_000);
  if (interval === 'Week') return new Date(d.getTime() + count * 7 * 86_400_000);
  const months = interval === 'Month' ? count : count * 12;
  const day = d.getUTCDate();
  d.setUTCDate(1);
  d.setUTCMonth(d.getUTCMonth() + months);
  // Jan 31 + 1 month is Feb 28/29, not Mar 3.
  const lastDay = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 0)).getUTCDate();
  d.setUTCDate(Math.min(day, lastDay));
  return d;
}
