#!/usr/bin/env python3
"""numpy's batched SVD on the same per-channel slices as `npm run bench:svd`.

    python3 bench/svd_numpy.py DIR [--repeats N]

DIR holds manifest.json ({"layers": [{"file", "n", "c", "kh", "kw"}],
"singular": file or null}) and each layer's OIHW float32 weights, written by
bench/svd.ts. Every layer becomes a stack of c matrices of n x (kh*kw) (the
transposed copy is made outside the timing) and goes through
np.linalg.svd(stack, full_matrices=False), which loops LAPACK's gesdd over
the stack. Prints one JSON object: best and median total milliseconds, the
BLAS thread setting, and, when the manifest names the native backend's
singular values, the largest difference from numpy's relative to each
channel's largest singular value.
"""
import json
import os
import statistics
import sys
import time

import numpy as np


def main() -> int:
    args = sys.argv[1:]
    if not args:
        print(__doc__, file=sys.stderr)
        return 2
    folder = args[0]
    repeats = int(args[args.index("--repeats") + 1]) if "--repeats" in args else 5
    with open(os.path.join(folder, "manifest.json")) as f:
        manifest = json.load(f)
    stacks = []
    for layer in manifest["layers"]:
        n, c, kh, kw = layer["n"], layer["c"], layer["kh"], layer["kw"]
        w = np.fromfile(os.path.join(folder, layer["file"]), dtype=np.float32).reshape(n, c, kh * kw)
        stacks.append(np.ascontiguousarray(w.transpose(1, 0, 2)))  # (c, n, kh*kw)

    np.linalg.svd(stacks[0], full_matrices=False)  # warm-up: LAPACK dispatch, page faults
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for s in stacks:
            np.linalg.svd(s, full_matrices=False)
        times.append((time.perf_counter() - t0) * 1e3)

    result = {
        "numpy": np.__version__,
        "blasThreads": os.environ.get("OPENBLAS_NUM_THREADS", "default"),
        "repeats": repeats,
        "bestMs": min(times),
        "medianMs": statistics.median(times),
    }
    if manifest.get("singular"):
        native = np.fromfile(os.path.join(folder, manifest["singular"]), dtype=np.float32)
        worst, offset = 0.0, 0
        for s in stacks:
            sv = np.linalg.svd(s.astype(np.float64), compute_uv=False)  # (c, min(n, k))
            mine = native[offset:offset + sv.size].reshape(sv.shape)
            offset += sv.size
            scale = np.maximum(sv[:, :1], 1e-30)
            worst = max(worst, float(np.max(np.abs(mine - sv) / scale)))
        result["maxSingularDiff"] = worst
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
