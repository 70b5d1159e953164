import type { Request, RequestHandler, Response } from 'express';
import type { FaultControl, FaultSpec } from './contracts';

/**
 * Fault and latency injection for one sandbox API half. `middleware` runs before the
 * half's routes; `errorBody` renders the vendor's own error envelope for a faulted status.
 */
export function createFaults(errorBody: (status: number) => unknown): {
  control: FaultControl;
  middleware: RequestHandler;
} {
  let latencyMs = 0;
  let faults: Array<FaultSpec & { remaining: number }> = [];
  // Counts by `METHOD path`, so a long benchmark does not grow a list without bound.
  const seen = new Map<string, number>();

  const take = (line: string): FaultSpec | undefined => {
    const fault = faults.find((f) => !f.match || f.match.test(line));
    if (!fault) return undefined;
    fault.remaining -= 1;
    if (fault.remaining <= 0) faults = faults.filter((f) => f !== fault);
    return fault;
  };

  const control: FaultControl = {
    inject(fault) {
      faults.push({ ...fault, remaining: fault.count ?? Number.POSITIVE_INFINITY });
    },
    setLatency(ms) {
      latencyMs = Math.max(0, ms);
    },
    clear() {
      faults = [];
      latencyMs = 0;
    },
    requestCount(match) {
      let total = 0;
      for (const [line, n] of seen) if (!match || match.test(line)) total += n;
      return total;
    },
  };

  const middleware: RequestHandler = (req: Request, res: Response, next) => {
    const line = `${req.method} ${req.path}`;
    seen.set(line, (seen.get(line) ?? 0) + 1);
    const fault = take(line);
    const delay = latencyMs + (fault?.latencyMs ?? 0);
    const answer = (status: number, json: (body: unknown) => unknown) => {
      res.status(status);
      if (status === 429) res.set('retry-after', '1');
      if (fault?.html) res.type('html').send(gatewayPage(status));
      else json(errorBody(status));
    };
    const go = () => {
      if (fault?.status) {
        answer(fault.status, (body) => res.json(body));
        return;
      }
      if (fault?.statusAfterProcessing) {
        // Let the route do its work, then answer the fault's status instead of what it wrote.
        const status = fault.statusAfterProcessing;
        const json = res.json.bind(res);
        res.json = (() => (answer(status, json), res)) as Response['json'];
      }
      if (fault?.holdAnswerMs) {
        // Let the route do its work, then hold what it writes back.
        const hold = fault.holdAnswerMs;
        const end = res.end.bind(res) as (...args: unknown[]) => Response;
        res.end = ((...args: unknown[]) => {
          setTimeout(() => {
            if (!res.destroyed) end(...args);
          }, hold);
          return res;
        }) as Response['end'];
      }
      if (fault?.dropAfterProcessing) {
        // Let the route do its work, then cut the connection instead of answering.
        const destroy = () => req.socket.destroy();
        res.json = (() => (destroy(), res)) as Response['json'];
        res.send = (() => (destroy(), res)) as Response['send'];
        res.end = (() => (destroy(), res)) as Response['end'];
      }
      next();
    };
    if (delay > 0) setTimeout(go, delay);
    else go();
  };

  return { control, middleware };
}

/** What a gateway in front of the vendor answers on its own: HTML, whatever the API speaks. */
function gatewayPage(status: number): string {
  return (
    `<html><head><title>${status}</title></head><body><center><h1>${status} Gateway Error</h1></center>` +
    '<hr><center>nginx</center></body></html>\n'
  );
}
