/**
 * `ingraph export --format triton`: the model repository's config.pbtxt read as protobuf text format and checked,
 * field by field, against Triton's own schema (test/fixtures/triton/model_config.proto, from
 * github.com/triton-inference-server/common, BSD-3-Clause); its tensors against the ONNX model beside it; bad input.
 */
import { existsSync, readdirSync, readFileSync } from 'fs';
import { join } from 'path';
import { Root } from 'protobufjs';
import { parseModel } from '../src/onnx/model';
import { runCli, tempDir } from './helpers/cli';
import { checkMessage, parsePbtxt } from './helpers/pbtxt';

const schema = new Root().loadSync(join(__dirname, 'fixtures', 'triton', 'model_config.proto'), { keepCase: true });
const ModelConfig = schema.lookupType('inference.ModelConfig');
const DTYPES: Record<string, string> = { float32: 'TYPE_FP32', uint8: 'TYPE_UINT8', int64: 'TYPE_INT64' };

describe('ingraph export --format triton', () => {
  it.each(['residual', 'inception'])(
    '%s: a repository whose config is a valid ModelConfig matching the model',
    (net) => {
      const repo = tempDir();
      const r = runCli(['export', '--model', net, '--format', 'triton', '--max-batch', '512', '--out', repo]);
      expect([r.code, r.stderr]).toEqual([0, '']);
      const name = `ingraph_${net}`;
      expect(readdirSync(join(repo, name)).sort()).toEqual(['1', 'config.pbtxt']);
      const config = parsePbtxt(readFileSync(join(repo, name, 'config.pbtxt'), 'utf8'));
      checkMessage(ModelConfig, config);
      const message = ModelConfig.fromObject(config);
      expect(ModelConfig.verify(message)).toBeNull();
      const decoded = ModelConfig.toObject(ModelConfig.decode(ModelConfig.encode(message).finish()), {
        enums: String,
        longs: Number,
        defaults: false,
      });
      expect(decoded).toMatchObject({
        name,
        backend: 'onnxruntime',
        max_batch_size: 512,
        dynamic_batching: { max_queue_delay_microseconds: 100 },
      });

      const model = parseModel(readFileSync(join(repo, name, '1', 'model.onnx')));
      const tensors = (vs: typeof model.inputs) =>
        vs.map((v) => {
          const dims = v.shape.slice(1) as number[];
          return {
            name: v.name,
            data_type: DTYPES[v.dtype],
            dims: dims.length ? dims : [1],
            ...(dims.length ? {} : { reshape: {} }),
          };
        });
      expect(decoded.input).toEqual(tensors(model.inputs));
      expect(decoded.output).toEqual(tensors(model.outputs));
      expect(model.outputs.map((o) => o.name)).toEqual(['logits', 'probabilities', 'label']);

      const plain = join(tempDir(), 'plain.onnx');
      expect(runCli(['export', '--model', net, '--out', plain]).code).toBe(0);
      expect(readFileSync(plain).equals(readFileSync(join(repo, name, '1', 'model.onnx')))).toBe(true);
    },
  );

  it('the schema check is real: a misspelled field, a wrong enum name and a list for a single field are caught', () => {
    const good = 'name: "m"\nmax_batch_size: 8\ninput [ { name: "x" data_type: TYPE_FP32 dims: [ 3 ] } ]\n';
    expect(() => checkMessage(ModelConfig, parsePbtxt(good))).not.toThrow();
    expect(() => checkMessage(ModelConfig, parsePbtxt(good.replace('max_batch_size', 'max_batchsize')))).toThrow(
      /no field "max_batchsize"/,
    );
    expect(() => checkMessage(ModelConfig, parsePbtxt(good.replace('TYPE_FP32', 'TYPE_FLOAT32')))).toThrow(
      /TYPE_FLOAT32 is not a DataType/,
    );
    expect(() => checkMessage(ModelConfig, parsePbtxt(good.replace('name: "m"', 'name: [ "m", "n" ]')))).toThrow(
      /not repeated/,
    );
  });

  it.each([
    ['an unknown format', ['--format', 'tflite'], /^ingraph: --format tflite: must be one of onnx, triton$/],
    [
      '--max-batch 0',
      ['--format', 'triton', '--max-batch', '0'],
      /^ingraph: --max-batch 0: must be between 1 and 1048576$/,
    ],
    ['a name with a slash', ['--format', 'triton', '--name', 'a/b'], /^ingraph: --name a\/b: use letters, digits/],
    ['--name without --format triton', ['--name', 'x'], /^ingraph: --name: only with --format triton$/],
  ])('%s: exit 2, one line, nothing written', (_, flags, message) => {
    const dir = tempDir();
    const out = join(dir, 'repo');
    const r = runCli(['export', '--model', 'residual', ...flags, '--out', out]);
    expect([r.code, r.stderr.trim()]).toEqual([2, expect.stringMatching(message)]);
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(dir)).toEqual([]);
  });
});
