// Small dense linear algebra in double precision, so planning works with no
// native code at all: singular values via Gram eigenvalues (spatial/channel
// spectra when no backend is handed to the planner), Jacobi eigenvectors of
// kernel-sized matrices (DAC's per-channel filters, quadrature rules), and
// Cholesky factors and solves (input covariances, the DAC pointwise refit).

/** Eigenvalues and eigenvectors of a small symmetric m x m matrix (cyclic Jacobi). */
export function jacobiEigen(a: ArrayLike<number>, m: number): { values: Float64Array; vectors: Float64Array } {
  const A = Float64Array.from(a);
  const V = new Float64Array(m * m);
  for (let i = 0; i < m; i++) V[i * m + i] = 1;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    let diag = 0;
    for (let i = 0; i < m; i++) {
      diag += A[i * m + i] * A[i * m + i];
      for (let j = i + 1; j < m; j++) off += A[i * m + j] * A[i * m + j];
    }
    if (off <= 1e-30 * diag || off === 0) break;
    for (let p = 0; p < m; p++) {
      for (let q = p + 1; q < m; q++) {
        const apq = A[p * m + q];
        if (apq === 0) continue;
        const theta = (A[q * m + q] - A[p * m + p]) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < m; k++) {
          const akp = A[k * m + p];
          const akq = A[k * m + q];
          A[k * m + p] = c * akp - s * akq;
          A[k * m + q] = s * akp + c * akq;
        }
        for (let k = 0; k < m; k++) {
          const apk = A[p * m + k];
          const aqk = A[q * m + k];
          A[p * m + k] = c * apk - s * aqk;
          A[q * m + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < m; k++) {
          const vkp = V[k * m + p];
          const vkq = V[k * m + q];
          V[k * m + p] = c * vkp - s * vkq;
          V[k * m + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const values = new Float64Array(m);
  for (let i = 0; i < m; i++) values[i] = A[i * m + i];
  return { values, vectors: V };
}

/**
 * Eigenvalues (descending) of a symmetric m x m matrix: Householder reduction
 * to tridiagonal form, then implicit QL with Wilkinson shifts. O(m^3), no
 * eigenvectors. `a` is row-major and is not modified.
 */
export function symmetricEigenvalues(a: ArrayLike<number>, m: number): Float64Array {
  if (m === 0) return new Float64Array(0);
  const A = Float64Array.from(a);
  const d = new Float64Array(m);
  const e = new Float64Array(m);
  const v = new Float64Array(m);
  const p = new Float64Array(m);
  for (let k = 0; k < m - 2; k++) {
    let norm = 0;
    for (let i = k + 1; i < m; i++) norm += A[i * m + k] * A[i * m + k];
    norm = Math.sqrt(norm);
    const x0 = A[(k + 1) * m + k];
    if (norm === 0) {
      e[k] = 0;
      d[k] = A[k * m + k];
      continue;
    }
    const alpha = x0 > 0 ? -norm : norm;
    for (let i = k + 1; i < m; i++) v[i] = A[i * m + k];
    v[k + 1] -= alpha;
    let vn = 0;
    for (let i = k + 1; i < m; i++) vn += v[i] * v[i];
    vn = Math.sqrt(vn);
    d[k] = A[k * m + k];
    e[k] = alpha;
    if (vn === 0) continue;
    for (let i = k + 1; i < m; i++) v[i] /= vn;
    // H A H with H = I - 2 v v^T on the trailing block: A -= 2 v w^T + 2 w v^T, w = p - (v.p) v.
    let vp = 0;
    for (let i = k + 1; i < m; i++) {
      let s = 0;
      for (let j = k + 1; j < m; j++) s += A[i * m + j] * v[j];
      p[i] = s;
      vp += v[i] * s;
    }
    for (let i = k + 1; i < m; i++) p[i] -= vp * v[i];
    for (let i = k + 1; i < m; i++) {
      for (let j = k + 1; j < m; j++) A[i * m + j] -= 2 * (v[i] * p[j] + p[i] * v[j]);
    }
  }
  if (m >= 2) {
    d[m - 2] = A[(m - 2) * m + (m - 2)];
    e[m - 2] = A[(m - 1) * m + (m - 2)];
  }
  d[m - 1] = A[(m - 1) * m + (m - 1)];
  e[m - 1] = 0;
  tridiagonalQL(d, e);
  return d.sort().reverse();
}

/** Eigenvalues of the symmetric tridiagonal (d, e) in place into d; e[i] couples d[i] and d[i+1]. */
function tridiagonalQL(d: Float64Array, e: Float64Array): void {
  const m = d.length;
  for (let l = 0; l < m; l++) {
    for (let iter = 0; iter < 60; iter++) {
      let mm = l;
      for (; mm < m - 1; mm++) {
        const dd = Math.abs(d[mm]) + Math.abs(d[mm + 1]);
        if (Math.abs(e[mm]) <= Number.EPSILON * dd) break;
      }
      if (mm === l) break;
      let g = (d[l + 1] - d[l]) / (2 * e[l]);
      let r = Math.hypot(g, 1);
      g = d[mm] - d[l] + e[l] / (g + (g >= 0 ? r : -r));
      let s = 1;
      let c = 1;
      let p = 0;
      let i = mm - 1;
      let underflow = false;
      for (; i >= l; i--) {
        const f = s * e[i];
        const b = c * e[i];
        r = Math.hypot(f, g);
        e[i + 1] = r;
        if (r === 0) {
          d[i + 1] -= p;
          e[mm] = 0;
          underflow = true;
          break;
        }
        s = f / r;
        c = g / r;
        g = d[i + 1] - p;
        r = (d[i] - g) * s + 2 * c * b;
        p = s * r;
        d[i + 1] = g + p;
        g = c * r - b;
      }
      if (underflow) continue;
      d[l] -= p;
      e[l] = g;
      e[mm] = 0;
    }
  }
}

/**
 * Squared singular values (descending, length min(rows, cols)) of a
 * rows x cols matrix given by an element accessor, via the smaller Gram matrix.
 */
export function squaredSingularValues(rows: number, cols: number, at: (r: number, c: number) => number): Float64Array {
  const M = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) M[r * cols + c] = at(r, c);
  const small = Math.min(rows, cols);
  const G = new Float64Array(small * small);
  if (rows <= cols) {
    for (let i = 0; i < rows; i++) {
      for (let j = i; j < rows; j++) {
        let s = 0;
        for (let k = 0; k < cols; k++) s += M[i * cols + k] * M[j * cols + k];
        G[i * small + j] = s;
        G[j * small + i] = s;
      }
    }
  } else {
    const col = new Float64Array(rows * cols);
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) col[c * rows + r] = M[r * cols + c];
    for (let i = 0; i < cols; i++) {
      for (let j = i; j < cols; j++) {
        let s = 0;
        for (let k = 0; k < rows; k++) s += col[i * rows + k] * col[j * rows + k];
        G[i * small + j] = s;
        G[j * small + i] = s;
      }
    }
  }
  const ev = small <= 12 ? jacobiEigen(G, small).values.sort().reverse() : symmetricEigenvalues(G, small);
  for (let i = 0; i < ev.length; i++) if (ev[i] < 0) ev[i] = 0;
  return ev;
}

/**
 * Cholesky factor (lower, row-major) of a symmetric positive semi-definite
 * m x m matrix, after adding ridge * (mean diagonal) to the diagonal so
 * near-singular inputs (dead channels) still factor.
 */
export function cholesky(a: ArrayLike<number>, m: number, ridge: number): Float64Array {
  const L = new Float64Array(m * m);
  let meanDiag = 0;
  for (let i = 0; i < m; i++) meanDiag += a[i * m + i];
  meanDiag = m > 0 ? meanDiag / m : 0;
  const add = ridge * (meanDiag > 0 ? meanDiag : 1);
  const floor = add > 0 ? add * 1e-6 : 1e-300;
  for (let i = 0; i < m; i++) {
    const ri = i * m;
    for (let j = 0; j <= i; j++) {
      const rj = j * m;
      let s0 = 0;
      let s1 = 0;
      let k = 0;
      // Two accumulators: the dot product dominates planning time for big layers.
      for (; k + 1 < j; k += 2) {
        s0 += L[ri + k] * L[rj + k];
        s1 += L[ri + k + 1] * L[rj + k + 1];
      }
      if (k < j) s0 += L[ri + k] * L[rj + k];
      const s = a[ri + j] + (i === j ? add : 0) - s0 - s1;
      if (i === j) L[ri + i] = Math.sqrt(Math.max(s, floor));
      else L[ri + j] = s / L[rj + j];
    }
  }
  return L;
}

/** Inverse of a lower-triangular m x m matrix (row-major). */
export function lowerInverse(L: Float64Array, m: number): Float64Array {
  const X = new Float64Array(m * m);
  for (let col = 0; col < m; col++) {
    for (let i = col; i < m; i++) {
      let s = i === col ? 1 : 0;
      for (let k = col; k < i; k++) s -= L[i * m + k] * X[k * m + col];
      X[i * m + col] = s / L[i * m + i];
    }
  }
  return X;
}

/** Solves (L L^T) x = b in place for a Cholesky factor L (m x m, lower). */
export function choleskySolve(L: Float64Array, m: number, b: Float64Array): void {
  for (let i = 0; i < m; i++) {
    let s = b[i];
    for (let k = 0; k < i; k++) s -= L[i * m + k] * b[k];
    b[i] = s / L[i * m + i];
  }
  for (let i = m - 1; i >= 0; i--) {
    let s = b[i];
    for (let k = i + 1; k < m; k++) s -= L[k * m + i] * b[k];
    b[i] = s / L[i * m + i];
  }
}
