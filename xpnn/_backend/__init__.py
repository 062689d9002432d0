"""The backend layer: everything xpnn knows about array libraries, in one place.

- :mod:`~xpnn._backend.table`: one row of facts per backend (library,
  namespace, extra, devices, default dtypes, laziness, overflow behaviour,
  DLPack import), and the lookups from a namespace or an array to its row.
- :mod:`~xpnn._backend.devices`: device names and native device objects,
  normalised to one canonical object per backend; the device scope that CuPy
  computes in.
- :mod:`~xpnn._backend.dtypes`: floating dtype names and objects.
- :mod:`~xpnn._backend.moving`: moving arrays between libraries and devices,
  DLPack first, host memory last; conversion to NumPy.

The public face is :mod:`xpnn.backends` (``xpnn.namespace``, ``xpnn.to_numpy``,
``xpnn.BACKENDS``).
"""
