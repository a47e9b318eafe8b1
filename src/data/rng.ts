/**
 * A small seeded generator (xoshiro128**, seeded through splitmix32) whose whole state is four 32-bit words, so it can
 * be saved in a checkpoint and restored exactly.
 */
/** Seeded by a number, or restored from the four words `state()` returned. */
export class Rng {
  private s: Uint32Array;

  constructor(seed: number | readonly number[]) {
    if (typeof seed === 'number') {
      let x = seed >>> 0;
      const next = () => {
        x = (x + 0x9e3779b9) >>> 0;
        let z = x;
        z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
        z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
        return (z ^ (z >>> 16)) >>> 0;
      };
      this.s = Uint32Array.of(next(), next(), next(), next());
    } else {
      if (seed.length !== 4) throw new RangeError('Rng: a saved state has 4 words');
      this.s = Uint32Array.from(seed);
    }
  }

  state(): number[] {
    return [...this.s];
  }

  nextUint32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** Uniform in [0, 1) with 32 random bits. */
  next(): number {
    return this.nextUint32() / 4294967296;
  }

  /** Uniform integer in [0, n), without modulo bias. */
  below(n: number): number {
    const limit = 4294967296 - (4294967296 % n);
    let v: number;
    do v = this.nextUint32();
    while (v >= limit);
    return v % n;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** A Fisher–Yates permutation of 0..n-1. */
export function permutation(n: number, rng: Rng): Uint32Array {
  const p = new Uint32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = rng.below(i + 1);
    const t = p[i];
    p[i] = p[j];
    p[j] = t;
  }
  return p;
}
