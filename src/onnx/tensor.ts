/** Typed handles for the values of a graph under construction. */

export type DType = 'float32' | 'float64' | 'float16' | 'int64' | 'uint8' | 'bool';

/** A dimension: a size known at build time, or a symbolic name such as the batch `N`. */
export type Dim = number | string;
/** A tensor shape: numbers, or names for symbolic dimensions such as the batch `N`. */
export type Shape = readonly Dim[];

/** A value in a graph being built: its name, element type and (inferred) shape. */
export interface Tensor {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: Shape;
}

/** Constant data for initializers and constants; float16 data is its IEEE half-precision bit patterns. */
export type TensorData = Float32Array | Float64Array | BigInt64Array | Uint8Array | Uint16Array;

export function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export function formatShape(s: Shape): string {
  return `[${s.join(',')}]`;
}

/** Number of elements of a fully static shape. */
export function numel(s: Shape): number {
  return s.reduce<number>((n, d) => {
    if (typeof d !== 'number') throw new RangeError(`numel: shape ${formatShape(s)} has a symbolic dimension`);
    return n * d;
  }, 1);
}

export function isStatic(s: Shape): s is readonly number[] {
  return s.every((d) => typeof d === 'number');
}
