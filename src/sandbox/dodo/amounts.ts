/**
 * Credit amounts travel as decimal strings (Dodo stores them as NUMERIC(38,28)). The sandbox keeps
 * them as integer "units" of 10^-precision so every sum and comparison is exact.
 */

/** Why an amount string was refused, or the amount in units. */
export type ParsedAmount = { ok: true; units: number } | { ok: false; message: string };

const MAX_AMOUNT_CHARS = 64;

function withoutTrailingZeros(digits: string): string {
  let end = digits.length;
  while (end > 0 && digits[end - 1] === '0') end--;
  return digits.slice(0, end);
}

/** Parses a positive decimal string into units of 10^-precision; refuses anything the entitlement cannot hold. */
export function parseAmount(raw: string, precision: number): ParsedAmount {
  // NUMERIC(38,28) prints in at most 40 characters: anything longer is refused before any pattern
  // runs (trimming trailing zeros with /0+$/ took seconds on "1." + 50,000 zeros + "1").
  if (raw.length > MAX_AMOUNT_CHARS) return { ok: false, message: `amount must be a decimal string of at most ${MAX_AMOUNT_CHARS} characters` };
  const m = /^(\d+)(?:\.(\d+))?$/.exec(raw.trim());
  if (!m) return { ok: false, message: `amount must be a positive decimal string, got "${raw}"` };
  const intPart = m[1]!.replace(/^0+(?=\d)/, '');
  // Trailing zeros carry no value, so "5.00" is a whole amount even at precision 0.
  const fracPart = withoutTrailingZeros(m[2] ?? '');
  // Dodo's column is NUMERIC(38,28): the integer part must stay below 10^10.
  if (intPart.length > 10) return { ok: false, message: 'amount must be less than 10000000000' };
  if (fracPart.length > precision) {
    return { ok: false, message: `amount has more decimal places than the entitlement's precision (${precision})` };
  }
  const units = Number(intPart + fracPart.padEnd(precision, '0'));
  if (!Number.isSafeInteger(units)) return { ok: false, message: 'amount is too large for this entitlement' };
  if (units <= 0) return { ok: false, message: 'amount must be greater than zero' };
  return { ok: true, units };
}

/** Formats units back to Dodo's decimal string with exactly `precision` decimals ("5000", "12.50"). */
export function formatAmount(units: number, precision: number): string {
  const negative = units < 0;
  const digits = String(Math.abs(units)).padStart(precision + 1, '0');
  const text = precision === 0 ? digits : `${digits.slice(0, -precision)}.${digits.slice(-precision)}`;
  return negative ? `-${text}` : text;
}

/** "5,000" and "1,234.50": thousands separators on a decimal string, for pages people read. */
export function groupDigits(amount: string): string {
  const [int, frac] = amount.split('.');
  const sign = int!.startsWith('-') ? '-' : '';
  const digits = int!.replace(/^-/, '').replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return `${sign}${digits}${frac !== undefined ? `.${frac}` : ''}`;
}
