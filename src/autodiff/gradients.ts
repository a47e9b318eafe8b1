/**
 * Reverse-mode differentiation over a GraphBuilder's recorded nodes: appends, as ordinary ops, the gradient of a
 * scalar loss with respect to chosen tensors. Gradients of a tensor used several times are summed; nodes off every
 * path from those tensors to the loss get no backward ops at all.
 */
import { GraphBuilder, Node } from '../onnx/builder';
import { Tensor, formatShape } from '../onnx/tensor';
import { GradientOptions, RULES, checkGradShape } from './rules';

export type { GradientOptions };

/** Appends d`loss`/d(each of `wrt`) to `g`; returns the gradient tensors by the names of `wrt`. */
export function appendGradients(
  g: GraphBuilder,
  loss: Tensor,
  wrt: readonly Tensor[],
  options: GradientOptions = {},
): Map<string, Tensor> {
  if (loss.shape.length !== 0)
    throw new RangeError(`gradients: loss "${loss.name}" must be a scalar, got ${formatShape(loss.shape)}`);
  const forward: Node[] = [...g.nodes];

  // Tensors that depend on a wrt tensor (and so need a gradient), in one forward sweep.
  const needsGrad = new Set(wrt.map((t) => t.name));
  for (const n of forward) {
    if (n.inputs.some((t) => t && needsGrad.has(t.name))) {
      for (const o of n.outputs) if (o.dtype === 'float32') needsGrad.add(o.name);
    }
  }
  if (!needsGrad.has(loss.name))
    throw new RangeError(`gradients: loss "${loss.name}" does not depend on any of the given tensors`);

  const pending = new Map<string, Tensor[]>([[loss.name, [g.scalar(1)]]]);
  const total = (name: string): Tensor | null => {
    const parts = pending.get(name);
    if (!parts) return null;
    const sum = parts.reduce((a, b) => g.add(a, b));
    pending.set(name, [sum]);
    return sum;
  };

  for (let k = forward.length - 1; k >= 0; k--) {
    const node = forward[k];
    const needs = node.inputs.map((t) => t !== null && needsGrad.has(t.name));
    if (!needs.some(Boolean)) continue;
    const dy = node.outputs.map((o) => total(o.name));
    if (dy.every((d) => d === null)) continue;
    const rule = RULES[node.op];
    if (!(rule instanceof Function)) {
      throw new TypeError(
        `gradients: ${node.op} "${node.name}" is not differentiable (${rule.notDifferentiable}) but lies between a parameter and the loss`,
      );
    }
    const grads = g.scope(`grad/${node.name}`, () => rule({ g, options, node, dy, needs }));
    if (grads.length !== node.inputs.length) {
      throw new Error(
        `gradients: the ${node.op} rule returned ${grads.length} gradients for ${node.inputs.length} inputs`,
      );
    }
    grads.forEach((grad, i) => {
      if (!needs[i]) return;
      if (!grad)
        throw new Error(
          `gradients: the ${node.op} rule gave no gradient for input ${i} of "${node.name}", which needs one`,
        );
      checkGradShape(node, i, grad);
      const name = (node.inputs[i] as Tensor).name;
      pending.set(name, [...(pending.get(name) ?? []), grad]);
    });
  }

  const result = new Map<string, Tensor>();
  for (const t of wrt) {
    const grad = total(t.name);
    if (!grad) throw new RangeError(`gradients: "${t.name}" does not affect the loss "${loss.name}"`);
    result.set(t.name, grad);
  }
  return result;
}
