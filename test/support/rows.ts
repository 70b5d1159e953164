import type { SendRow } from '../../src/db/sends';

/** A send row as stored, every column given: a delivering send of one credit, changed by `overrides`. */
export function sendRow(overrides: Partial<SendRow> & Pick<SendRow, 'id'>): SendRow {
  return {
    customerId: 'cus_a',
    clientKey: overrides.id,
    fingerprint: 'f',
    credits: 1,
    state: 'delivering',
    attempt: 0,
    nonce: 'n',
    inDoubt: 0,
    refundCredits: null,
    refundReason: null,
    refundRetryable: null,
    resultStatus: null,
    resultBody: null,
    owner: null,
    claimedUntil: null,
    createdAt: 1,
    updatedAt: 1,
    deliveringSince: 1,
    flightId: null,
    flightOffset: null,
    funding: 'balance',
    leaseId: null,
    ...overrides,
  };
}
