"""How Carbyne Stack writes field elements on the wire, and how our numbers map into the field.

Carbyne Stack (Amphora, Ephemeral, MP-SPDZ) works in a prime field GF(p) with a 128-bit
prime and keeps elements in Montgomery form: the element ``x`` travels as
``((x * R) mod p).to_bytes(16, "little")`` with ``R = 2^128 mod p``, and is read back by
multiplying with ``Rinv = R^-1 mod p``. A vector of n elements is the concatenation of
n such words, base64-encoded in JSON bodies.

On top of the field:

- signed integers map to ``x mod p`` and back to the representative in
  ``(-p/2, p/2]`` (MP-SPDZ reads elements above ``p/2`` as negative numbers too);
- fixed-point numbers are integers scaled by ``2^frac_bits`` (MP-SPDZ's ``sfix`` keeps
  its value ``v`` with the same convention), rounded to the nearest step.

Amphora's input masks and output-delivery answers come as five such vectors per VCP
(``s, r, v, w, u``); summed over VCPs they must satisfy ``w = s·r`` and ``u = v·r``
(:func:`check_shares`), which catches a VCP that corrupts its shares.

Everything here is pure; bad input raises :class:`~ptx_chain_node.errors.ProtocolError`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from numbers import Rational

from ptx_chain_node.errors import ProtocolError

#: Bytes per field element on the wire (MP-SPDZ's ``WORD_WIDTH`` for 128-bit primes).
WORD_BYTES = 16
MONTGOMERY_BITS = 8 * WORD_BYTES
#: The five vectors of Amphora's input-mask and output-delivery answers.
SHARE_FIELDS = ("secretShares", "rShares", "vShares", "wShares", "uShares")


@dataclass(frozen=True)
class PrimeField:
    """The field of a Carbyne Stack deployment: ``prime``, ``r = 2^128 mod p``, ``rinv = r^-1``.

    Construction checks both identities, so a mistyped compute config fails at load time
    rather than as garbage results.
    """

    prime: int
    r: int
    rinv: int

    def __post_init__(self) -> None:
        p = self.prime
        if p < 3 or p.bit_length() > MONTGOMERY_BITS:
            raise ProtocolError.single("prime", f"must be an odd prime below 2^{MONTGOMERY_BITS}")
        if self.r != pow(2, MONTGOMERY_BITS, p):
            raise ProtocolError.single("r", f"must equal 2^{MONTGOMERY_BITS} mod prime")
        if (self.r * self.rinv) % p != 1 or not 0 < self.rinv < p:
            raise ProtocolError.single("rinv", "must be the inverse of r modulo prime")

    @classmethod
    def for_prime(cls, prime: int) -> PrimeField:
        """The field of ``prime`` with ``r`` and ``rinv`` computed."""
        r = pow(2, MONTGOMERY_BITS, prime)
        return cls(prime, r, pow(r, -1, prime))

    @property
    def half(self) -> int:
        """The largest element read as a positive number: ``(p - 1) // 2``."""
        return (self.prime - 1) // 2


#: The field of the Carbyne Stack documentation and test deployments.
TEST_FIELD = PrimeField(
    prime=198766463529478683931867765928436695041,
    r=141515903391459779531506841503331516415,
    rinv=133854242216446749056083838363708373830,
)


def encode_element(field: PrimeField, x: int) -> bytes:
    """The 16 wire bytes of the field element ``x`` (``0 <= x < p``)."""
    if not 0 <= x < field.prime:
        raise ProtocolError.single("value", "field element out of range [0, p)")
    return ((x * field.r) % field.prime).to_bytes(WORD_BYTES, "little")


def decode_element(field: PrimeField, word: bytes) -> int:
    """The field element carried by 16 wire bytes."""
    if len(word) != WORD_BYTES:
        raise ProtocolError.single("value", f"a field element takes {WORD_BYTES} bytes")
    raw = int.from_bytes(word, "little")
    if raw >= field.prime:
        raise ProtocolError.single("value", "not a reduced field element")
    return (raw * field.rinv) % field.prime


def encode_vector(field: PrimeField, xs: Iterable[int]) -> str:
    """Base64 of the concatenated wire words of the field elements ``xs``."""
    return base64.b64encode(b"".join(encode_element(field, x) for x in xs)).decode("ascii")


def decode_vector(
    field: PrimeField, text: str, count: int | None = None, *, name: str = "shares"
) -> list[int]:
    """The field elements of a base64 vector; ``count`` (when given) must match exactly."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, AttributeError) as exc:
        raise ProtocolError.single(name, "not valid base64") from exc
    if len(raw) % WORD_BYTES:
        raise ProtocolError.single(name, f"length is not a multiple of {WORD_BYTES} bytes")
    n = len(raw) // WORD_BYTES
    if count is not None and n != count:
        raise ProtocolError.single(name, f"holds {n} elements, expected {count}")
    try:
        return [
            decode_element(field, raw[i : i + WORD_BYTES]) for i in range(0, len(raw), WORD_BYTES)
        ]
    except ProtocolError as exc:
        raise ProtocolError.single(name, exc.problems[0].problem) from exc


def to_field(field: PrimeField, value: int) -> int:
    """The field element of a signed integer; ``|value| <= (p - 1) / 2``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProtocolError.single("values", "must be integers")
    if not -field.half <= value <= field.half:
        raise ProtocolError.single("values", "integer does not fit the field (|x| > (p-1)/2)")
    return value % field.prime


def from_field(field: PrimeField, x: int) -> int:
    """The signed integer an element stands for: ``x`` up to ``(p-1)/2``, else ``x - p``."""
    x %= field.prime
    return x if x <= field.half else x - field.prime


def to_field_vector(field: PrimeField, values: Iterable[int]) -> list[int]:
    """:func:`to_field` over a sequence."""
    return [to_field(field, v) for v in values]


def from_field_vector(field: PrimeField, xs: Iterable[int]) -> list[int]:
    """:func:`from_field` over a sequence."""
    return [from_field(field, x) for x in xs]


def to_fixed(value: int | float | Fraction, frac_bits: int) -> int:
    """``value * 2^frac_bits`` rounded to the nearest integer (ties to even)."""
    if frac_bits < 0:
        raise ProtocolError.single("frac_bits", "must be >= 0")
    if isinstance(value, bool) or not isinstance(value, int | float | Rational):
        raise ProtocolError.single("values", "must be numbers")
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        raise ProtocolError.single("values", "must be finite")
    return round(Fraction(value) * (1 << frac_bits))


def from_fixed(scaled: int, frac_bits: int) -> Fraction:
    """The exact number a fixed-point integer stands for: ``scaled / 2^frac_bits``."""
    if frac_bits < 0:
        raise ProtocolError.single("frac_bits", "must be >= 0")
    return Fraction(scaled, 1 << frac_bits)


def sum_shares(field: PrimeField, shares: Sequence[Sequence[int]]) -> list[int]:
    """Element-wise sum mod p of equally long share vectors (one per VCP)."""
    if not shares:
        return []
    n = len(shares[0])
    if any(len(s) != n for s in shares):
        raise ProtocolError.single("shares", "share vectors differ in length")
    return [sum(column) % field.prime for column in zip(*shares, strict=True)]


@dataclass(frozen=True)
class Shares:
    """The five summed vectors of a mask or output-delivery exchange."""

    s: list[int]
    r: list[int]
    v: list[int]
    w: list[int]
    u: list[int]


def check_shares(field_prime: int, shares: Shares) -> list[int]:
    """Indices where ``w != s·r`` or ``u != v·r`` (mod p); empty when all hold."""
    p = field_prime
    return [
        k
        for k, (s, r, v, w, u) in enumerate(
            zip(shares.s, shares.r, shares.v, shares.w, shares.u, strict=True)
        )
        if (s * r - w) % p or (v * r - u) % p
    ]


def sum_share_sets(field: PrimeField, per_vcp: Sequence[Shares]) -> Shares:
    """The five vectors summed over VCPs."""
    return Shares(
        *(
            sum_shares(field, [getattr(sh, name) for sh in per_vcp])
            for name in ("s", "r", "v", "w", "u")
        )
    )
