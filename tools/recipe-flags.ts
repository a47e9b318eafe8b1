/** The accuracy recipes the README documents, kept in one place for tools/recipes and the test that runs them. */
import { NetworkName } from '../src/models';

/** The recipes the README documents: the flags after `ingraph train --model <net>`. */
export const RECIPES: Record<NetworkName, string[]> = {
  residual: [
    '--epochs',
    '15',
    '--momentum',
    '0.9',
    '--lr',
    '0.02',
    '--lr-schedule',
    'cosine',
    '--warmup-epochs',
    '1',
    '--weight-decay',
    '0.0005',
    '--label-smoothing',
    '0.1',
    '--augment',
    'affine',
  ],
  inception: [
    '--epochs',
    '15',
    '--momentum',
    '0.9',
    '--lr',
    '0.02',
    '--lr-schedule',
    'cosine',
    '--warmup-epochs',
    '1',
    '--weight-decay',
    '0.0005',
    '--label-smoothing',
    '0.1',
    '--augment',
    'affine',
  ],
};
