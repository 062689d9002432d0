#!/usr/bin/env python
"""Measure what each installed CPU backend's sigmoid and global-max softmax give in the tails.

    python scripts/measure_tails.py            # the figures quoted in the README

For ``xpnn.sigmoid``: the largest error, in units in the last place, where the true value is a
normal number; the lowest x that still gives a nonzero result and the highest x that gives 0
although the true value is not 0 (flushed). The reference is computed with mpmath at 200 bits
and rounded to the dtype. For the chapter's softmax with a global maximum and per-row sums: the
distance d below the batch maximum from which a row is off by more than 1e-5 (float32) or 1e-13
(float64), and from which it is NaN. Needs mpmath (installed with torch's sympy, or by pip).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from typing import Any

import numpy as np

import xpnn

BACKENDS = ("numpy", "array_api_strict", "torch", "jax", "dask", "ndonnx")
GRIDS = {"float16": (-18.0, 0.0, 0.001), "float32": (-105.0, 0.0, 0.004)}
GRIDS["float64"] = (-746.0, -600.0, 0.01)


def reference(xs: np.ndarray) -> np.ndarray:
    """The sigmoid of each value, exact to 200 bits, rounded to ``xs``'s dtype."""
    mpmath: Any = importlib.import_module("mpmath")  # no type information
    mpmath.mp.prec = 200
    exact = [1 / (1 + mpmath.exp(-mpmath.mpf(float(v)))) for v in xs]
    return np.array([float(v) for v in exact]).astype(xs.dtype)


def on_backend(name: str, xs: np.ndarray) -> Any:
    """``xs`` as an array of backend ``name`` (dask: one chunk)."""
    if name == "dask":
        da: Any = importlib.import_module("dask.array")
        return da.from_array(xs, chunks=len(xs))
    xp, device = xpnn.namespace(name, None)
    return xp.asarray(xs, device=device)


def sigmoid_row(name: str, xs: np.ndarray, ref: np.ndarray) -> str:
    got = xpnn.to_numpy(xpnn.sigmoid(on_backend(name, xs)))
    ulp = np.spacing(ref).astype(np.float64)
    err = np.abs(got.astype(np.float64) - ref.astype(np.float64)) / ulp
    normal = ref >= np.finfo(xs.dtype).smallest_normal
    flushed = (got == 0) & (ref != 0)
    lowest = xs[got != 0].min()
    highest_flushed = f"{xs[flushed].max():.2f}" if flushed.any() else "none"
    return (
        f"{name:17} max {err[normal].max():.0f} ulp (normal results); nonzero down to "
        f"{lowest:.2f}; highest flushed x {highest_flushed}"
    )


def global_max_softmax(x: Any, xp: Any) -> Any:
    e = xp.exp(x - xp.max(x))
    return e / xp.sum(e, axis=-1, keepdims=True)


def softmax_row(name: str, dtype: str) -> str:
    xp, device = xpnn.namespace(name, None)
    base = np.array([0.0, -1.0, -2.0])
    exact = np.exp(base) / np.exp(base).sum()
    tolerance = 1e-5 if dtype == "float32" else 1e-13
    wrong = nan = None
    for d in np.arange(0.0, 800.0, 0.25):
        batch = np.stack([base, base - d]).astype(dtype)
        row = xpnn.to_numpy(global_max_softmax(xp.asarray(batch, device=device), xp))[1]
        if nan is None and np.isnan(row).any():
            nan = d
        if wrong is None and not np.allclose(row, exact, rtol=tolerance, atol=0):
            wrong = d
    return f"{name:17} off by > {tolerance:g} from d = {wrong}, NaN from d = {nan}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", action="append", help="default: every one installed")
    args = parser.parse_args(argv)
    names = []
    for name in args.backend or BACKENDS:
        try:
            xpnn.namespace(name, None)
        except xpnn.BackendError as err:
            print(f"(skipping {name}: {err})")
        else:
            names.append(name)
    if "jax" in names:
        jax: Any = importlib.import_module("jax")
        jax.config.update("jax_enable_x64", True)
    warnings.simplefilter("ignore")  # the global-max softmax warns where it breaks down
    for dtype, (lo, hi, step) in GRIDS.items():
        xs = np.unique(np.arange(lo, hi, step).astype(dtype))
        ref = reference(xs)
        normal = xs[ref >= np.finfo(dtype).smallest_normal].min()
        print(
            f"\nsigmoid, {dtype}: the true value is subnormal below x = {normal:.2f} "
            f"and rounds to 0 below x = {xs[ref != 0].min():.2f}"
        )
        for name in names:
            if dtype == "float16" and name == "array_api_strict":
                continue  # not in the standard
            print("  " + sigmoid_row(name, xs, ref))
    for dtype in ("float32", "float64"):
        print(f"\nglobal-max softmax, rows [0, -1, -2] and [-d, -d-1, -d-2], {dtype}")
        for name in names:
            if name != "dask":
                print("  " + softmax_row(name, dtype))
    return 0


if __name__ == "__main__":
    sys.exit(main())
