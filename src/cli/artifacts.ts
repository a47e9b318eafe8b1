/** `ingraph artifacts MODEL --out DIR`: a model's training artifacts, without training (see writeArtifacts). */
import { resolve } from 'path';
import { importModel, writeArtifacts } from '../api';
import { trainConfig } from '../config';
import { UsageError } from '../errors';
import { Network, networkByName } from '../models';
import { optionNamed, OptionSpec, RUN_OPTION as run } from '../options';
import { imageShape, ImageSignature, isMnist, MNIST_SIGNATURE } from '../signature';
import { nested, normalisationFlags, optionsHelp, parseCommand } from './options';
import { checkWritableDir } from './output';

/** The config flags the artifacts take (the training's optimizer and what it trains), as `train` spells them. */
const CONFIG_FLAGS = ['optimizer', 'lr', 'momentum', 'weightDecay', 'labelSmoothing', 'freeze', 'ema', 'seed'];

/** The flags of `ingraph artifacts`. */
export const ARTIFACTS_OPTIONS: readonly OptionSpec[] = [
  { ...run, name: 'out', flag: 'out', kind: 'text', default: null, arg: 'DIR', doc: 'where to write them (required)' },
  ...CONFIG_FLAGS.map((name) => optionNamed(name) as OptionSpec),
  {
    ...(optionNamed('mean') as OptionSpec),
    doc: "per-channel mean of the images on the [0, 1] scale (required but for MNIST's 1x28x28 shape)",
  },
  { ...(optionNamed('std') as OptionSpec), doc: 'per-channel std, with --mean' },
];

export const ARTIFACTS_HELP = `usage: ingraph artifacts MODEL --out DIR [flags]

Writes the training artifacts of MODEL (an ONNX classifier such as a PyTorch export, or inception|residual) without
training: training_model.onnx (one step: forward, loss, backward and the optimizer update), eval_model.onnx (loss
and logits) and checkpoint.onnx (the starting parameters, optimizer state and BatchNorm statistics), in standard
ONNX ops that a stock onnxruntime runs in any language (onnxruntime-training's generate_artifacts, without its
custom ops). Their inputs and outputs: docs/import.md.
${optionsHelp(ARTIFACTS_OPTIONS)}`;

export function artifactsCommand(argv: string[]): number {
  const flags = parseCommand('artifacts', argv, ARTIFACTS_OPTIONS, 1);
  if (flags.help || flags.positionals.length === 0) return (void console.log(ARTIFACTS_HELP), flags.help ? 0 : 2);
  const model = flags.positionals[0];
  const out = resolve(flags.required('out'));
  checkWritableDir('--out', out);
  const network = /\.onnx$/i.test(model) ? importModel(model) : networkByName(model);
  const config = trainConfig(network.name, nested(flags.given, ARTIFACTS_OPTIONS));
  const signature = signatureOf(network, flags.given);
  const files = writeArtifacts(network, out, { config, signature });
  for (const [name, sha] of Object.entries(files)) console.log(`${name}  sha256 ${sha}`);
  console.log(`training artifacts of ${network.name} in ${out}`);
  return 0;
}

/** The images the artifacts take: the model's shape and classes, normalised by --mean/--std (MNIST's by default). */
function signatureOf(network: Network, given: Map<string, unknown>): ImageSignature {
  const shape = network.imported?.shape ?? { input: imageShape(MNIST_SIGNATURE), classes: MNIST_SIGNATURE.classes };
  const [channels, height, width] = shape.input;
  const normalise = normalisationFlags(given);
  const base = { channels, height, width, classes: shape.classes };
  if (normalise) return { ...base, ...normalise };
  const mnist = { ...base, mean: MNIST_SIGNATURE.mean, std: MNIST_SIGNATURE.std };
  if (isMnist(mnist)) return mnist;
  throw new UsageError(
    `--mean: needed, with --std, for ${channels}x${height}x${width} images (what they are normalised by)`,
  );
}
