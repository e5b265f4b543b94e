"""A restricted unpickler for data files: numpy arrays and plain containers only, never arbitrary code.

A pickle names the callables it wants to run; the stock unpickler imports and calls any of them.
`restricted_load` resolves names only from a fixed allow-list of what numpy arrays need, and refuses
any other name when it is read, before any object it would build exists or runs.
"""

from __future__ import annotations

import codecs
import io
import pickle

import numpy as np
from numpy._core import multiarray as _multiarray
from numpy._core import numeric as _numeric

from iseat.data.errors import DataError


class Refused(pickle.UnpicklingError):
    """The pickle asked for something outside the allow-list."""


def _latin1_encode(text, encoding="latin1"):
    """`_codecs.encode` as protocol-2 pickles use it for bytes; only the latin-1 codec is allowed."""
    if codecs.lookup(encoding).name != "iso8859-1":
        raise Refused(f"refused _codecs.encode with encoding {encoding!r}")
    return codecs.encode(text, "latin1")


# (module, name) as written in the pickle -> the object it may resolve to. numpy < 2 writes numpy.core.
ALLOWED = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy.core.multiarray", "scalar"): _multiarray.scalar,
    ("numpy._core.multiarray", "scalar"): _multiarray.scalar,
    ("numpy.core.numeric", "_frombuffer"): _numeric._frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _numeric._frombuffer,
    ("_codecs", "encode"): _latin1_encode,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the names in `ALLOWED`; anything else raises before it is called."""

    def find_class(self, module, name):
        try:
            return ALLOWED[(module, name)]
        except KeyError:
            raise Refused(f"refused to load {module}.{name}: not a numpy array part") from None

    def persistent_load(self, pid):
        raise Refused("refused a persistent id")


def restricted_load(file, what: str, encoding: str = "ASCII"):
    """Unpickle `file` (a binary file object or bytes) allowing numpy arrays, dicts, lists, str, bytes, numbers.

    `what` names the file in the one-line DataError raised for a refused or malformed pickle.
    """
    if isinstance(file, (bytes, bytearray)):
        file = io.BytesIO(file)
    try:
        return RestrictedUnpickler(file, encoding=encoding).load()
    except Refused as err:
        raise DataError(
            f"{what}: {err}; only numpy arrays and plain containers are accepted, the file was not loaded"
        ) from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as err:
        raise DataError(f"{what}: not a readable pickle ({type(err).__name__}: {err}); it may be truncated") from None
