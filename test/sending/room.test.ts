import { describe, expect, it } from 'vitest';
import { createAcceptRoom } from '../../src/sending/room';

/** The room kept for accepted, undelivered emails (src/sending/room.ts). */
describe('the room for accepted emails', () => {
  it('holds up to its limit at once; past it a send waits, and is refused when no room comes in time', async () => {
    const room = createAcceptRoom({ limit: 3, waitMs: 100 });
    expect(await room.hold('cus_a', 2)).toBe(true);
    expect(await room.hold('cus_a', 1)).toBe(true);
    const asked = Date.now();
    expect(await room.hold('cus_b', 1)).toBe(false);
    expect(Date.now() - asked).toBeGreaterThanOrEqual(90);
    expect(room.held()).toBe(3);
  });

  it('refuses at once a send that could not get in within its wait (a burst far beyond what a wait frees)', async () => {
    // 1,000 places freed at 200 a second: a wait of a second frees 200.
    const room = createAcceptRoom({ limit: 1_000, waitMs: 1_000, drainPerSecond: 200 });
    expect(await room.hold('cus_a', 1_000)).toBe(true);
    // 100 more could come in within the second: it waits (and gets in when room frees).
    const waits = room.hold('cus_b', 100);
    // With those 100 ahead, another 150 could not: refused now, not a second from now.
    const asked = Date.now();
    expect(await room.hold('cus_c', 150)).toBe(false);
    expect(Date.now() - asked).toBeLessThan(500);
    expect(room.waiting()).toBe(100);
    room.free('cus_a', 100);
    expect(await waits).toBe(true);
  });

  it('a light customer gets in past a full room, into a reserve of a fifth of it; a heavy one waits', async () => {
    // 100 places: a customer holding at most 1 email is light; the reserve holds 20.
    const room = createAcceptRoom({ limit: 100, waitMs: 150 });
    expect(await room.hold('cus_heavy', 100)).toBe(true);
    const heavy = room.hold('cus_heavy', 1);
    const asked = Date.now();
    for (let i = 0; i < 20; i++) expect(await room.hold(`cus_light_${i}`, 1)).toBe(true);
    expect(Date.now() - asked).toBeLessThan(100);
    // A second email of a light customer would make it hold 2: it waits like anyone.
    expect(await room.hold('cus_light_0', 1)).toBe(false);
    // The reserve is full: the 21st light customer waits too.
    expect(await room.hold('cus_light_20', 1)).toBe(false);
    expect(await heavy).toBe(false);
    expect(room.held()).toBe(120);
  });

  it('one send larger than the whole room gets it when nothing else is held', async () => {
    const room = createAcceptRoom({ limit: 3, waitMs: 50 });
    expect(await room.hold('cus_a', 10)).toBe(true);
    room.free('cus_a', 10);
    expect(room.held()).toBe(0);
  });

  it('gives freed room first to the customer holding the fewest, not to whoever asked first', async () => {
    const room = createAcceptRoom({ limit: 4, waitMs: 2_000 });
    // A customer sending flat out fills the room, and asks again at once.
    for (let i = 0; i < 4; i++) expect(await room.hold('cus_heavy', 1)).toBe(true);
    const order: string[] = [];
    const heavyAgain = room.hold('cus_heavy', 1).then((ok) => ok && order.push('heavy'));
    const light = room.hold('cus_light', 1).then((ok) => ok && order.push('light'));
    // One place frees: the light customer, holding none, gets it although it asked second.
    room.free('cus_heavy', 1);
    await light;
    expect(order).toEqual(['light']);
    // The next place goes to the heavy customer's waiting send.
    room.free('cus_heavy', 1);
    await heavyAgain;
    expect(order).toEqual(['light', 'heavy']);
    expect(room.held()).toBe(4);
  });

  it('among customers holding as many, the longest waiting goes first', async () => {
    const room = createAcceptRoom({ limit: 1, waitMs: 2_000 });
    expect(await room.hold('cus_x', 1)).toBe(true);
    const order: string[] = [];
    const waits = ['cus_a', 'cus_b', 'cus_c'].map((c) => room.hold(c, 1).then(() => order.push(c)));
    for (const c of ['cus_x', 'cus_a', 'cus_b']) {
      room.free(c, 1);
      await new Promise((r) => setImmediate(r));
    }
    await Promise.all(waits);
    expect(order).toEqual(['cus_a', 'cus_b', 'cus_c']);
  });

  it('once closed (shutdown), a send that does not fit is refused at once', async () => {
    const room = createAcceptRoom({ limit: 1, waitMs: 5_000 });
    expect(await room.hold('cus_a', 1)).toBe(true);
    room.close();
    const asked = Date.now();
    expect(await room.hold('cus_b', 1)).toBe(false);
    expect(Date.now() - asked).toBeLessThan(100);
  });
});

describe('the room for accepted emails, first in line too large', () => {
  it('a large send first in line that gives up lets the smaller ones behind it in', async () => {
    const room = createAcceptRoom({ limit: 10, waitMs: 100 });
    expect(await room.hold('cus_a', 9)).toBe(true);
    room.free('cus_a', 1); // 8 held, 2 free
    const big = room.hold('cus_b', 5); // holds none: first in line, does not fit
    const small = room.hold('cus_a', 1); // behind it
    expect(await big).toBe(false);
    expect(await small).toBe(true);
  });
});
