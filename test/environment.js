/**
 * Jest's node environment runs tests in a separate realm, whose typed-array classes differ from the ones
 * onnxruntime-node's native binding creates; onnxruntime-common's `instanceof` checks then fail. Share the host's.
 */
const { TestEnvironment } = require('jest-environment-node');

class SharedTypedArraysEnvironment extends TestEnvironment {
  constructor(config, context) {
    super(config, context);
    for (const name of [
      'Float32Array',
      'Float64Array',
      'Int8Array',
      'Uint8Array',
      'Uint8ClampedArray',
      'Int16Array',
      'Uint16Array',
      'Int32Array',
      'Uint32Array',
      'BigInt64Array',
      'BigUint64Array',
      'ArrayBuffer',
    ]) {
      this.global[name] = globalThis[name];
    }
  }
}

module.exports = SharedTypedArraysEnvironment;
