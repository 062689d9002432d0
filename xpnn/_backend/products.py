"""Matrix products at full precision on every backend.

JAX on a GPU computes float32 matrix products with TensorFloat-32 by default
(about 10 mantissa bits: the chapter network's outputs then differ from
NumPy's by up to about 5e-4), while NumPy, CuPy and torch use full float32.
xpnn asks for ``precision=HIGHEST`` on every product it makes with JAX, so
networks give the same numbers on every backend; the process-wide JAX setting
(``jax_default_matmul_precision``) is left to the user. On a CPU the two
precisions compute the same thing.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from types import ModuleType
from typing import Any

from .table import facts_of_namespace

__all__ = ["matmul_for"]


def matmul_for(xp: ModuleType) -> Callable[[Any, Any], Any]:
    """Return the full-precision matrix product for namespace ``xp``.

    Examples
    --------
    >>> import array_api_strict as xp
    >>> product = matmul_for(xp)
    >>> product(xp.asarray([[1.0, 2.0]]), xp.asarray([[3.0], [4.0]]))
    Array([[11.]], dtype=array_api_strict.float64)
    """
    row = facts_of_namespace(xp)
    if row is not None and row.name == "jax":
        import jax

        return functools.partial(xp.matmul, precision=jax.lax.Precision.HIGHEST)
    return operator.matmul
