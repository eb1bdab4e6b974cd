"""Column values as the integers that get aggregated and shared.

A numeric column is either *integer* (``scale = 0``) or *fixed point with a decimal scale*
``s``: the value ``v`` is encoded as the integer ``v * 10**s``, which must be exact (a value
with more decimals than the scale is refused, never rounded). Decimal scaling keeps decimal
data such as prices exact through sums, min/max and order statistics; results are decoded
by dividing by ``10**s`` (or ``10**(2s)`` for a variance).

An encoded column is a numpy array (:data:`IntArray`): ``int64`` while every value fits,
else ``object`` holding Python ints, so encoding never overflows. Integer arrays and lists of
``int`` are encoded vectorised; :class:`EncodedColumns` lets several programs on the same
rows encode each column once.

Identifiers (for set intersection) are mapped to 61-bit integers by a keyed BLAKE2b hash.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import math
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from numbers import Integral
from typing import Any

import numpy as np
import numpy.typing as npt

from ptx_chain_node.errors import Problem, PtxError

#: Most offending rows named in one error.
_MAX_PROBLEMS = 5
#: Bits of an identifier code (below 2**61, so differences fit a 64-bit secure integer).
IDENTIFIER_BITS = 61
#: Largest int64; encoded columns are int64 arrays while every value fits.
INT64_MAX = 2**63 - 1

#: An encoded column: a 1-d numpy array of dtype int64, or object (Python ints) beyond 64 bits.
IntArray = npt.NDArray[Any]

Number = int | Decimal | float | str


def scale_value(value: object, scale: int) -> int:
    """One value as the exact integer ``value * 10**scale``; ``ValueError`` if impossible."""
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number")
    if isinstance(value, Integral):
        return int(int(value) * 10**scale)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("not a finite number")
        value = Decimal(repr(float(value)))
    elif isinstance(value, str):
        try:
            value = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError("not a decimal number") from None
    elif not isinstance(value, Decimal):
        item = getattr(value, "item", None)
        if callable(item):  # a numpy scalar
            return scale_value(item(), scale)
        raise ValueError(f"not a number ({type(value).__name__})")
    if not value.is_finite():
        raise ValueError("not a finite number")
    scaled = value.scaleb(scale)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"has more than {scale} decimal places")
    return int(scaled)


def _integer_array(values: object) -> IntArray | None:
    """``values`` as an int64 (or, beyond 64 bits, object) array, if they are all integers.

    The fast path: an integer numpy array, or a sequence whose items are all exactly ``int``
    (not ``bool``, not ``float``). ``None`` sends anything else through :func:`scale_value`.
    """
    if isinstance(values, np.ndarray):
        if values.ndim != 1 or values.dtype.kind not in "iu":
            return None
        if values.dtype.kind == "u" and values.size and int(values.max()) > INT64_MAX:
            return values.astype(object)
        return values.astype(np.int64, copy=False)
    if not isinstance(values, list | tuple) or not set(map(type, values)) <= {int}:
        return None
    try:
        return np.array(values, dtype=np.int64)
    except OverflowError:
        return _object_array(values)


def _object_array(values: Sequence[int]) -> IntArray:
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def _compact(values: list[int]) -> IntArray:
    """Python ints as int64 when they all fit, else as an object array (exact either way)."""
    try:
        return np.array(values, dtype=np.int64)
    except OverflowError:
        return _object_array(values)


def _scaled(array: IntArray, scale: int) -> IntArray:
    """``array * 10**scale``, exact: int64 when the largest magnitude allows it."""
    if scale == 0 or array.size == 0:
        return array
    factor = 10**scale
    if array.dtype == np.int64 and max(-int(array.min()), int(array.max())) * factor > INT64_MAX:
        array = array.astype(object)
    scaled: IntArray = array * factor
    return scaled


def _out_of_range(array: IntArray, bound: int) -> list[int]:
    """Rows (at most :data:`_MAX_PROBLEMS`) whose value is not in ``(-bound, bound)``."""
    if array.size == 0:
        return []
    if array.dtype == np.int64:
        limit = bound - 1
        if limit > INT64_MAX or (-limit <= int(array.min()) and int(array.max()) <= limit):
            return []
        if limit < 0:
            return list(range(min(_MAX_PROBLEMS, array.size)))
        bad = (array > limit) | (array < -limit)
        return [int(row) for row in np.flatnonzero(bad)[:_MAX_PROBLEMS]]
    rows = (row for row, v in enumerate(array.tolist()) if not -bound < v < bound)
    return list(itertools.islice(rows, _MAX_PROBLEMS))


def encode_column(
    values: Iterable[object], scale: int, column: str, bound: int | None = None
) -> IntArray:
    """Encode a column as a numpy array of exact integers ``value * 10**scale``.

    The array is ``int64`` when every encoded value fits, else ``object`` (Python ints).
    Integer numpy arrays and lists of plain ``int`` take a vectorised path; anything else
    (``Decimal``, ``str``, ``float``, numpy scalars) is encoded value by value with
    :func:`scale_value`. Every bad value is a :class:`Problem` on ``column[row]`` (at most
    :data:`_MAX_PROBLEMS`); with ``bound``, encoded values must satisfy ``|v| < bound``.
    """
    if not isinstance(values, np.ndarray | list | tuple):
        values = list(values)
    array = _integer_array(values)
    if array is None:
        out: list[int] = []
        problems: list[Problem] = []
        for row, value in enumerate(values):
            try:
                out.append(scale_value(value, scale))
            except ValueError as exc:
                problems.append(Problem(f"{column}[{row}]", str(exc)))
                if len(problems) >= _MAX_PROBLEMS:
                    break
        if problems:
            raise _unencodable(column, problems)
        array = _compact(out)
    else:
        array = _scaled(array, scale)
    if bound is not None:
        check_range(array, bound, column)
    return array


def check_range(array: IntArray, bound: int, column: str) -> None:
    """Refuse encoded values outside ``(-bound, bound)``, naming their rows (422)."""
    rows = _out_of_range(array, bound)
    if rows:
        problems = [Problem(f"{column}[{row}]", "out of the program's value range") for row in rows]
        raise _unencodable(column, problems)


def _unencodable(column: str, problems: list[Problem]) -> PtxError:
    return PtxError(f"column {column!r} has values that cannot be encoded", 422, problems)


def scale_column(
    values: Iterable[object], scale: int, column: str, bound: int | None = None
) -> list[int]:
    """:func:`encode_column` as a list of Python ints (for row-level programs)."""
    encoded: list[int] = encode_column(values, scale, column, bound).tolist()
    return encoded


class EncodedColumns(Mapping[str, Sequence[object]]):
    """An input party's columns that encode each ``(column, scale)`` at most once.

    Several programs on the same rows (a catalogue session, or one data thread feeding
    several computations) pass one instance to ``BoundProgram.share``; the programs ask
    for their columns with :meth:`encoded` and all but the first get the cached array.
    :meth:`renamed` gives a program its own column names over the same cache. As a
    mapping it gives the columns as they were given. :attr:`encodings` counts the
    encodings done, by source column and scale (each at most once).
    """

    def __init__(self, columns: Mapping[str, Sequence[object]]) -> None:
        self._columns = dict(columns)
        self._names = {name: name for name in self._columns}  # this view's name -> source
        self._encoded: dict[tuple[str, int], IntArray] = {}
        self.encodings: Counter[tuple[str, int]] = Counter()

    def __getitem__(self, name: str) -> Sequence[object]:
        return self._columns[self._names[name]]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def renamed(self, names: Mapping[str, str]) -> EncodedColumns:
        """A view whose column ``new`` is this one's ``names[new]``, sharing the encodings.

        Only the names given are in the view (a source that is not here is left out, so
        asking for it is a ``KeyError``); an encoding done through the view or this
        instance serves both. Problems are named by the name asked for.
        """
        view = copy.copy(self)  # the same columns, cache and counter
        view._names = {new: self._names[old] for new, old in names.items() if old in self._names}
        return view

    def encoded(self, name: str, scale: int, bound: int | None = None) -> IntArray:
        """Column ``name`` through :func:`encode_column` (``KeyError`` if it is missing)."""
        key = (self._names[name], scale)
        array = self._encoded.get(key)
        if array is None:
            array = encode_column(self._columns[key[0]], scale, name)
            self._encoded[key] = array
            self.encodings[key] += 1
        if bound is not None:
            check_range(array, bound, name)
        return array


def scale_edge(edge: Decimal, scale: int) -> Fraction:
    """A public threshold (e.g. a histogram edge) in the units of a scaled column."""
    return Fraction(edge) * Fraction(10**scale)


def descale(value: int, scale: int) -> int | Decimal:
    """An exact encoded integer back to a number: ``int`` for scale 0, else ``Decimal``."""
    if scale == 0:
        return value
    return Decimal(value).scaleb(-scale)


def identifier_code(identifier: object, key: bytes = b"") -> int:
    """A 61-bit code for an identifier (``str``, ``bytes`` or ``int``), keyed by ``key``.

    All input parties of one intersection must use the same key. A secret key shared by
    the input parties only keeps the codes from being matched against guessed identifiers.
    """
    if isinstance(identifier, bytes):
        data = b"b" + identifier
    elif isinstance(identifier, str):
        data = b"s" + identifier.encode()
    elif isinstance(identifier, int) and not isinstance(identifier, bool):
        data = b"i" + str(identifier).encode()
    else:
        raise ValueError(f"identifier must be str, bytes or int, not {type(identifier).__name__}")
    digest = hashlib.blake2b(data, digest_size=8, key=key[:64]).digest()
    return int.from_bytes(digest, "big") >> (64 - IDENTIFIER_BITS)


def identifier_codes(identifiers: Sequence[object], column: str, key: bytes = b"") -> list[int]:
    """Distinct sorted codes of a column of identifiers (set semantics)."""
    codes: set[int] = set()
    problems: list[Problem] = []
    for row, identifier in enumerate(identifiers):
        try:
            codes.add(identifier_code(identifier, key))
        except ValueError as exc:
            problems.append(Problem(f"{column}[{row}]", str(exc)))
            if len(problems) >= _MAX_PROBLEMS:
                break
    if problems:
        raise PtxError(f"column {column!r} has invalid identifiers", 422, problems)
    return sorted(codes)
