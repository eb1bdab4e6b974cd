"""Secure building blocks shared by the catalogue programs (run inside an MPyC party).

``rt`` is the running MPyC runtime and ``stype`` the program's secure type; both are passed
in, so importing this module never starts or configures MPyC.

- :func:`wrap` turns a party's shares (field elements as ints) into secure numbers;
- :func:`divide` divides with *relative* precision (about ``2**-(f-3)``): it normalises the
  divisor to ``[1/2, 1)`` and applies the same power of two to the dividend, instead of
  multiplying by a reciprocal that only has absolute precision ``2**-f``;
- :func:`sqrt` takes square roots by normalising to ``[1/4, 1)`` with an even power of two
  and Newton iterations for ``1/sqrt(b)`` (about 30 secure multiplications and one bit
  decomposition, instead of one secure comparison per output bit).
"""

from __future__ import annotations

import math
from typing import Any

#: Newton iterations for 1/sqrt(b), b in [1/4, 1), from the start 2.25 - 1.25 b (error < 0.2).
_RSQRT_ITERATIONS = 6


def wrap(stype: Any, shares: list[int]) -> list[Any]:
    """Secure numbers from this party's shares (fixed point: integral values)."""
    field = stype.field
    if stype.frac_length:
        return [stype(field(v), integral=True) for v in shares]
    return [stype(field(v)) for v in shares]


def total(rt: Any, stype: Any, inputs: list[list[Any]], index: int) -> Any:
    """The sum over input parties of entry ``index`` of their aggregate vectors."""
    return rt.sum([vector[index] for vector in inputs]) if inputs else stype(0)


def at_least(n: Any, k: int) -> Any:
    """The secure bit ``n >= k`` (the group-size guard)."""
    return n >= k


def normaliser(rt: Any, b: Any) -> Any:
    """A secure power of two ``v`` with ``b * v`` in ``[1/2, 1)``, for fixed-point ``b > 0``."""
    f = type(b).frac_length
    bits = rt.to_bits(b)[:-1]  # magnitude bits, least significant first (sign bit dropped)
    bits.reverse()
    width = len(bits)

    def power(i: int) -> tuple[int]:
        # i leading zeros: b < 2**(width - i - f), so v = 2**(i + f - width) works. Keep the
        # secure values whole (MPyC tracks "integral" numbers) and scale publicly after.
        return (1 << min(i, width - 1),)

    (v,) = rt.find(bits, 1, f=power)
    return v * 2.0 ** (f - width)


def divide(rt: Any, a: Any, b: Any) -> Any:
    """``a / b`` for fixed-point ``b > 0`` with relative precision about ``2**-(f-3)``."""
    f = type(b).frac_length
    v = normaliser(rt, b)
    bn = b * v  # in [1/2, 1)
    c = 2.9142135623731 - bn * 2  # Newton for 1/bn, as in MPyC's reciprocal
    for _ in range(math.ceil(math.log2((f + 1) / 3.54))):
        c *= 2 - c * bn
    return (a * v) * c


def sqrt(rt: Any, a: Any) -> Any:
    """Square root of fixed-point ``a >= 0`` (relative precision about ``2**-(f-4)``)."""
    stype = type(a)
    f = stype.frac_length
    bits = rt.to_bits(a)[:-1]
    bits.reverse()
    width = len(bits)

    def powers(i: int) -> tuple[int, int]:
        # i leading zeros: 2**(E-1) <= a < 2**E with E = width - i - f; scale by 4**-e,
        # e = ceil(E/2), so b = a * 4**-e lies in [1/4, 1) and sqrt(a) = sqrt(b) * 2**e.
        # Whole secure values 2**(f - 2e) and 2**(e + f/2), scaled publicly after.
        if i >= width:  # a == 0
            return (1 << f, 1 << half)
        e = -((i + f - width) // 2)
        return (1 << (f - 2 * e), 1 << (e + half))

    half = f // 2
    v, w = rt.find(bits, 1, f=powers)
    v = v * 2.0**-f
    w = w * 2.0**-half
    b = a * v
    y = 2.25 - b * 1.25
    for _ in range(_RSQRT_ITERATIONS):
        y = y * (1.5 - (b * (y * y)) * 0.5)
    return (b * y) * w
