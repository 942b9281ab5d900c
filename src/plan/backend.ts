// The part of Backend (src/backend/backend.ts, the only door to the core)
// that planning and replacement building use. Planning always runs on one:
// its spectra are the backend's SVDs and its channel-sized linear algebra
// (c x c covariances, the (c*r)^2 DAC refit) the backend's double-precision
// GEMM, Cholesky and triangular solves; the variance correction's energies of
// a DAC pair and its layer are one dacPairEnergy pass.
import type { Backend } from '../backend/backend.js';

export type DecomposeBackend = Pick<
  Backend,
  | 'name'
  | 'decomposeDac'
  | 'decomposeDacBatch'
  | 'decomposeSpatial'
  | 'decomposeChannel'
  | 'matmul'
  | 'cholesky'
  | 'solveTriangular'
  | 'symmetricEigenvalues'
  | 'dacPairEnergy'
>;
