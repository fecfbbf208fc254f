// ENI ID naming (docs/protocol.md section 3): interface names gwi-<X>/gwo-<X> with <X> the ENI ID in
// base 60, and the 17-digit hex form given to hooks. Control plane only; may allocate.

const DIGITS = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWX';
const U64_MAX = 0xffffffffffffffffn;

function checkU64(eni: bigint): void {
  if (typeof eni !== 'bigint' || eni < 0n || eni > U64_MAX) throw new RangeError(`ENI ID out of 64-bit range: ${String(eni)}`);
}

/** Base-60 digits '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWX', most significant
 * first; 0 -> '0'. At most 11 characters for 64-bit values (60^11 > 2^64), so 'gwi-' + it fits
 * the 15-character interface name limit. Throws RangeError outside [0, 2^64). */
export function eniToBase60(eni: bigint): string {
  checkU64(eni);
  if (eni === 0n) return '0';
  let s = '';
  while (eni > 0n) {
    s = DIGITS[Number(eni % 60n)] + s;
    eni /= 60n;
  }
  return s;
}

/** Lower-case hex, zero-padded to 17 digits (so that 'vpce-' + it is the endpoint ID). */
export function eniToHex(eni: bigint): string {
  checkU64(eni);
  return eni.toString(16).padStart(17, '0');
}

/** The 64-bit ENI ID from the two uint32 halves GeneveInfo holds (each taken >>> 0). */
export function eniFromHalves(hi: number, lo: number): bigint {
  return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
}

/** Interface names and hook argument of an endpoint: gwi-<b60>, gwo-<b60>, 17-digit hex. */
export function endpointNames(eni: bigint): { gwi: string; gwo: string; hex: string } {
  const b60 = eniToBase60(eni);
  return { gwi: `gwi-${b60}`, gwo: `gwo-${b60}`, hex: eniToHex(eni) };
}

/** The inverse of eniToBase60: the ENI ID of an interface name's base-60 part, or null when it is
 * not one (a character outside the digits, too long, over 64 bits, or a leading zero that
 * eniToBase60 never writes). */
export function eniFromBase60(s: string): bigint | null {
  if (s.length === 0 || s.length > 11 || (s.length > 1 && s[0] === '0')) return null;
  let v = 0n;
  for (const c of s) {
    const d = DIGITS.indexOf(c);
    if (d < 0) return null;
    v = v * 60n + BigInt(d);
  }
  return v > U64_MAX ? null : v;
}
