import { Router, type RequestHandler } from 'express';
import { z } from 'zod';
import { customerOf } from '../auth/middleware';
import type { Credits } from '../billing/credits';
import { creditDays, firstCreditDay } from '../db/credits';
import type { Database } from '../db/index';
import { CATALOG } from '../billing/catalog';
import { parse } from './validate';

/** The plan's low-balance threshold in credits: 20% of 5,000 = 1,000 (the tutorial's numbers). */
export const LOW_BALANCE_THRESHOLD = (CATALOG.plan.credits * CATALOG.plan.lowBalanceThresholdPercent) / 100;

/** At most this many days in one chart. */
export const MAX_USAGE_DAYS = 90;

const DAY_MS = 86_400_000;

export const usageQuery = z.strictObject({
  days: z
    .string({ error: 'must be given once' })
    .regex(/^\d{1,3}$/, `must be a whole number from 1 to ${MAX_USAGE_DAYS}`)
    .transform(Number)
    .refine((n) => n >= 1 && n <= MAX_USAGE_DAYS, `must be a whole number from 1 to ${MAX_USAGE_DAYS}`)
    .optional(),
});

/**
 * One UTC day of the chart. What the customer spent is `emails` (credits of emails sent) plus
 * `adjusted` (debited by hand, in Dodo's dashboard or the sandbox console); `expired` (credits
 * that lapsed unused) is not usage and is kept apart. `credits` is everything added: plan
 * credits, top-ups. `balance` is the balance at the end of that day, a decimal string like
 * Dodo's and GET /credits' (null: before the customer's first movement).
 */
export interface UsageDay {
  date: string;
  emails: number;
  adjusted: number;
  expired: number;
  credits: number;
  balance: string | null;
}

/**
 * GET /credits/usage?days=30: the key's customer's balance movements by UTC day (emails,
 * adjustments, expiries, credits added, end-of-day balance) for the dashboard's chart, with the
 * live balance and the plan's low-balance threshold. Drawn from what MailKit records (each
 * settlement's emails, each credit.* webhook of Dodo's) with no Dodo call; today's emails count
 * those not settled yet, and each day's closing balance is walked back from the live one.
 * Register it before /credits/:customerId, which would otherwise take "usage" for a customer id.
 */
export function usageRoutes(deps: { credits: Credits; database: Database; auth: RequestHandler }): Router {
  const router = Router();

  router.get('/credits/usage', deps.auth, async (req, res) => {
    const days = parse(usageQuery, req.query, 'query').days ?? 30;
    const customerId = customerOf(req);
    const balance = await deps.credits.balance(customerId);
    const now = Date.now();
    const start = utcMidnight(now) - (days - 1) * DAY_MS;
    // (From the window's start by this machine's clock: a sandbox clock ahead of it moves the end, never the start.)
    const [rows, first] = await Promise.all([creditDays(deps.database, customerId, isoDate(start)), firstCreditDay(deps.database, customerId)]);
    res.set('Cache-Control', 'no-store');
    res.json({
      days: foldDays(rows, { days, now, first, available: balance.available, owed: balance.owed }),
      // A string, as Dodo, the tutorial and GET /credits give it.
      balance: String(balance.available),
      low_balance_threshold: LOW_BALANCE_THRESHOLD,
      truncated: false,
    });
  });

  return router;
}

/**
 * The chart's days, oldest first, ending today. Today's emails add what is spent and not
 * settled yet (`owed`). Each day's closing balance is the next day's less what that day moved,
 * from today's (`available`) back; days before the customer's first movement have none (null).
 */
export function foldDays(
  rows: Array<Pick<UsageDay, 'emails' | 'adjusted' | 'expired' | 'credits'> & { day: string }>,
  opts: { days: number; now: number; first: string | null; available: number; owed: number },
): UsageDay[] {
  const byDay = new Map(rows.map((r) => [r.day, r]));
  // Today, or the newest day recorded when Dodo's clock runs ahead of ours (a sandbox whose clock was advanced).
  const newest = rows.reduce((max, r) => (r.day > max ? r.day : max), '');
  const end = Math.max(utcMidnight(opts.now), newest ? Date.parse(`${newest}T00:00:00Z`) : 0);
  const out: UsageDay[] = [];
  for (let d = opts.days - 1; d >= 0; d--) {
    const date = isoDate(end - d * DAY_MS);
    const r = byDay.get(date);
    out.push({
      date,
      emails: Number(r?.emails ?? 0),
      adjusted: Number(r?.adjusted ?? 0),
      expired: Number(r?.expired ?? 0),
      credits: Number(r?.credits ?? 0),
      balance: null,
    });
  }
  const today = out.at(-1)!;
  today.emails += opts.owed;
  // With nothing recorded (a customer from before these records), today's balance alone is known.
  const first = opts.first ?? today.date;
  let closing = opts.available;
  for (let i = out.length - 1; i >= 0; i--) {
    const day = out[i]!;
    if (day.date < first) break;
    day.balance = String(closing);
    closing = closing - day.credits + day.emails + day.adjusted + day.expired;
  }
  return out;
}

const utcMidnight = (t: number) => Math.floor(t / DAY_MS) * DAY_MS;
const isoDate = (t: number) => new Date(t).toISOString().slice(0, 10);
