"""The secure number types of the catalogue and the prime fields their shares live in.

A program computes on one MPyC secure type: ``SecInt(l)`` (integers) or ``SecFxp(l, f)``
(fixed point, ``f`` fractional bits). Both sides of a run must agree on the prime field:
the client splits values in it and every party wraps its shares in it. :class:`SecureType`
fixes the type by ``(kind, l, f)`` and derives the modulus exactly as MPyC does for its
default security parameter (``k = 30``), so a client never has to start an MPyC runtime.

Encoding: an integer ``v`` enters a ``SecInt`` as the field element ``v mod p`` and a
``SecFxp`` as ``v * 2**f mod p`` (an *integral* fixed-point number). Decoding maps a field
element to the signed integer in ``(-p/2, p/2]``.
"""

from __future__ import annotations

import functools
import logging
import sys
from dataclasses import dataclass
from typing import Any, Literal

#: MPyC's default security parameter; it fixes the size of the prime (l + f + k + 2 bits).
SECURITY_PARAMETER = 30


def mpyc_module(name: str) -> Any:
    """Import ``mpyc.<name>`` without letting MPyC read this process's command line.

    Importing the ``mpyc`` package parses ``sys.argv`` (and may configure the root logger);
    in a client or service process those arguments are not MPyC's. The party process, which
    *is* an MPyC program, builds its own argv before importing the runtime.
    """
    if "mpyc" not in sys.modules:
        saved_argv = sys.argv
        root = logging.getLogger()
        placeholder = logging.NullHandler()
        sys.argv = [*saved_argv[:1], "--no-log"]
        root.addHandler(placeholder)  # makes mpyc's logging.basicConfig a no-op
        try:
            import mpyc  # noqa: F401
        finally:
            sys.argv = saved_argv
            root.removeHandler(placeholder)
    return __import__(f"mpyc.{name}", fromlist=[name])


@functools.cache
def _prime(bits: int) -> int:
    finfields = mpyc_module("finfields")
    p, _, _ = finfields.find_prime_root(bits, n=2)
    return int(p)


@dataclass(frozen=True)
class SecureType:
    """An MPyC secure number type: ``SecInt(bit_length)`` or ``SecFxp(bit_length, frac_length)``.

    ``bit_length`` bounds values that take part in comparisons, division or square roots
    (``|x| < 2**(bit_length - frac_length - 1)``); additions and multiplications by public
    constants are exact in the whole field.
    """

    kind: Literal["int", "fxp"]
    bit_length: int
    frac_length: int = 0

    def __post_init__(self) -> None:
        if self.kind == "int" and self.frac_length:
            raise ValueError("SecInt has no fractional bits")
        if self.kind == "fxp" and self.frac_length * 2 != self.bit_length:
            # MPyC's fixed-point division is only right for f = l/2 (see mpc-engines.md).
            raise ValueError("SecFxp needs frac_length == bit_length / 2")

    @property
    def modulus(self) -> int:
        """The prime ``p`` of the share field (as MPyC picks it for this type)."""
        return _prime(self.bit_length + self.frac_length + SECURITY_PARAMETER + 2)

    @property
    def name(self) -> str:
        """A short, stable name, e.g. ``SecInt64`` or ``SecFxp128:64``."""
        if self.kind == "int":
            return f"SecInt{self.bit_length}"
        return f"SecFxp{self.bit_length}:{self.frac_length}"

    @property
    def magnitude_bound(self) -> int:
        """Exclusive bound on ``|x|`` for values compared, divided or square-rooted."""
        return 1 << (self.bit_length - self.frac_length - 1)

    def encode(self, values: list[int]) -> list[int]:
        """Integers to field elements (``v * 2**f mod p``)."""
        p, f = self.modulus, self.frac_length
        if f:
            return [(v << f) % p for v in values]
        return [v % p for v in values]

    def signed(self, values: list[int]) -> list[int]:
        """Field elements to signed integers in ``(-p/2, p/2]`` (still scaled by ``2**f``)."""
        p = self.modulus
        half = p // 2
        return [v - p if v > half else v for v in (x % p for x in values)]

    def sectype(self, runtime: Any) -> Any:
        """The MPyC secure type on a running MPyC runtime (party side only)."""
        if self.kind == "int":
            return runtime.SecInt(self.bit_length, p=self.modulus)
        return runtime.SecFxp(self.bit_length, self.frac_length, p=self.modulus)


#: Exact integer arithmetic, comparisons on values below 2**63 (count, histogram, min, ...).
INT64 = SecureType("int", 64)
#: Exact integer arithmetic with a wide range (sum).
INT128 = SecureType("int", 128)
#: Fixed point with 64 fractional bits (mean, variance, standard deviation, weighted mean).
FXP128 = SecureType("fxp", 128, 64)
