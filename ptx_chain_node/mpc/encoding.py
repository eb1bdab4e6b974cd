"""Column values as the integers that get aggregated and shared.

A numeric column is either *integer* (``scale = 0``) or *fixed point with a decimal scale*
``s``: the value ``v`` is encoded as the integer ``v * 10**s``, which must be exact (a value
with more decimals than the scale is refused, never rounded). Decimal scaling keeps decimal
data such as prices exact through sums, min/max and order statistics; results are decoded
by dividing by ``10**s`` (or ``10**(2s)`` for a variance).

Identifiers (for set intersection) are mapped to 61-bit integers by a keyed BLAKE2b hash.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from numbers import Integral

from ptx_chain_node.errors import Problem, PtxError

#: Most offending rows named in one error.
_MAX_PROBLEMS = 5
#: Bits of an identifier code (below 2**61, so differences fit a 64-bit secure integer).
IDENTIFIER_BITS = 61

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


def scale_column(
    values: Iterable[object], scale: int, column: str, bound: int | None = None
) -> list[int]:
    """Encode a column; every bad value is reported as a :class:`Problem` on ``column[row]``.

    With ``bound``, encoded values must satisfy ``|v| < bound`` (the program's range).
    """
    out: list[int] = []
    problems: list[Problem] = []
    fast = scale == 0 and hasattr(values, "dtype") and values.dtype.kind in "iu"
    source = values.tolist() if fast else values  # type: ignore[attr-defined]
    for row, value in enumerate(source):
        try:
            v = value if fast else scale_value(value, scale)
        except ValueError as exc:
            problems.append(Problem(f"{column}[{row}]", str(exc)))
            v = 0
        if bound is not None and not -bound < v < bound:
            problems.append(Problem(f"{column}[{row}]", "out of the program's value range"))
        out.append(v)
        if len(problems) >= _MAX_PROBLEMS:
            break
    if problems:
        raise PtxError(f"column {column!r} has values that cannot be encoded", 422, problems)
    return out


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
