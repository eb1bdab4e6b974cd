"""Shamir secret sharing on the client side: split values for m nodes, recombine results.

Node ``i`` (``0 <= i < m``) holds the evaluation at ``x = i + 1`` of a random polynomial of
degree ``t`` whose constant term is the secret; this is MPyC's convention, so a party wraps
its share directly as a secure object. Any ``t + 1`` shares determine the secret; any ``t``
are independent of it. Privacy needs ``m >= 3`` (default ``t = (m - 1) // 2``, honest
majority, as MPyC requires ``2t < m``).

Values are plain Python ints modulo the prime of the program's :class:`~.fields.SecureType`;
randomness comes from :func:`secrets.token_bytes` in bulk (each coefficient is 128 bits
longer than ``p`` before reduction, so its distance from uniform is below ``2**-128``).
Splitting 100k values for 3 nodes takes about 0.08 s on one core (0.18 s for 5 nodes).

A :class:`ShareVector` is one node's shares of one vector, with the facts needed to check
and recombine it; it serialises to JSON (values as base64 of fixed-width little-endian ints).
"""

from __future__ import annotations

import base64
import functools
import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ptx_chain_node.errors import Problem, PtxError
from ptx_chain_node.mpc.fields import SecureType

FORMAT = "ptx-mpc-shares/1"


def default_threshold(m: int) -> int:
    """The largest threshold with an honest majority: ``(m - 1) // 2``."""
    return (m - 1) // 2


def check_parties(m: int, t: int | None = None) -> int:
    """Validate ``(t, m)`` and return ``t``; ``m < 3`` gives no privacy and is refused."""
    if m < 3:
        raise PtxError(
            f"secret sharing needs at least 3 compute nodes, got {m}",
            400,
            [Problem("m", "at least 3 compute nodes are needed for privacy (t >= 1, 2t < m)")],
        )
    t = default_threshold(m) if t is None else t
    if not 1 <= t <= default_threshold(m):
        raise PtxError(
            f"threshold {t} is not allowed for {m} nodes",
            400,
            [Problem("t", f"must satisfy 1 <= t <= {default_threshold(m)} (2t < m)")],
        )
    return t


def _random_field_elements(p: int, count: int) -> list[int]:
    width = (p.bit_length() + 128 + 7) // 8
    buffer = secrets.token_bytes(width * count)
    from_bytes = int.from_bytes
    return [from_bytes(buffer[k : k + width], "little") % p for k in range(0, width * count, width)]


def split(values: Sequence[int], modulus: int, m: int, t: int | None = None) -> list[list[int]]:
    """Split each value into ``m`` Shamir shares of degree ``t``: row ``i`` is node ``i``'s.

    Values are taken modulo ``modulus`` (negative integers are fine).
    """
    t = check_parties(m, t)
    p = modulus
    n = len(values)
    secret = [v % p for v in values]
    coefficients = [_random_field_elements(p, n) for _ in range(t)]  # c_1 .. c_t
    rows: list[list[int]] = []
    for x in range(1, m + 1):
        if t == 1:
            (c1,) = coefficients
            rows.append([(s + a * x) % p for s, a in zip(secret, c1, strict=True)])
        elif t == 2:
            c1, c2 = coefficients
            rows.append([(s + (a + b * x) * x) % p for s, a, b in zip(secret, c1, c2, strict=True)])
        else:
            acc = coefficients[-1]
            for c in reversed(coefficients[:-1]):
                acc = [y * x + a for y, a in zip(acc, c, strict=True)]
            rows.append([(y * x + s) % p for y, s in zip(acc, secret, strict=True)])
    return rows


@functools.cache
def _lagrange(xs: tuple[int, ...], x0: int, p: int) -> tuple[int, ...]:
    coefficients = []
    for i, xi in enumerate(xs):
        num, den = 1, 1
        for j, xj in enumerate(xs):
            if i != j:
                num = num * (x0 - xj) % p
                den = den * (xi - xj) % p
        coefficients.append(num * pow(den, -1, p) % p)
    return tuple(coefficients)


def _interpolate(points: list[tuple[int, Sequence[int]]], x0: int, p: int) -> list[int]:
    xs = tuple(x for x, _ in points)
    weights = _lagrange(xs, x0, p)
    n = len(points[0][1])
    out = [0] * n
    for w, (_, ys) in zip(weights, points, strict=True):
        for h in range(n):
            out[h] += w * ys[h]
    return [v % p for v in out]


def recombine(shares: Mapping[int, Sequence[int]], modulus: int, t: int | None = None) -> list[int]:
    """Recombine shares ``{node index: share vector}`` into the secrets (field elements).

    Without ``t`` all given shares are interpolated (at least ``t + 1`` are needed for the
    right answer). With ``t``, ``t + 1`` shares are used and every further share is checked
    to lie on the same polynomial; an inconsistent share raises :class:`PtxError`.
    """
    if not shares:
        raise PtxError("no shares to recombine", 400, [Problem("shares", "empty")])
    lengths = {len(v) for v in shares.values()}
    if len(lengths) != 1:
        raise PtxError("share vectors differ in length", 400, [Problem("shares", "lengths")])
    points = sorted((i + 1, v) for i, v in shares.items())
    if t is None:
        return _interpolate(points, 0, modulus)
    if len(points) < t + 1:
        raise PtxError(
            f"{len(points)} shares cannot reconstruct a degree-{t} sharing",
            400,
            [Problem("shares", f"at least {t + 1} are needed")],
        )
    base = points[: t + 1]
    for x, ys in points[t + 1 :]:
        if _interpolate(base, x, modulus) != [y % modulus for y in ys]:
            raise PtxError(
                "result shares are inconsistent",
                502,
                [Problem(f"shares[{x - 1}]", "does not match the other nodes' shares")],
            )
    return _interpolate(base, 0, modulus)


@dataclass(frozen=True)
class ShareVector:
    """One node's shares of one vector.

    ``party`` is the node index (``x = party + 1``), ``program`` the hash of the program
    instance the vector was made for, and ``public`` holds public facts a program attaches
    to its result (e.g. a divisor for an exact rational output).
    """

    party: int
    m: int
    t: int
    modulus: int
    values: list[int]
    program: str = ""
    public: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the values as base64 of fixed-width little-endian ints)."""
        width = (self.modulus.bit_length() + 7) // 8
        data = b"".join(v.to_bytes(width, "little") for v in self.values)
        return {
            "format": FORMAT,
            "party": self.party,
            "m": self.m,
            "t": self.t,
            "modulus": str(self.modulus),
            "program": self.program,
            "public": dict(self.public),
            "count": len(self.values),
            "data": base64.b64encode(data).decode("ascii"),
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> ShareVector:
        """Parse :meth:`to_json` output; malformed input raises :class:`PtxError`."""
        try:
            if doc.get("format") != FORMAT:
                raise ValueError(f"format must be {FORMAT!r}")
            modulus = int(doc["modulus"])
            width = (modulus.bit_length() + 7) // 8
            data = base64.b64decode(doc["data"], validate=True)
            count = int(doc["count"])
            if len(data) != width * count:
                raise ValueError("data length does not match count")
            values = [
                int.from_bytes(data[k : k + width], "little") for k in range(0, len(data), width)
            ]
            if any(v >= modulus for v in values):
                raise ValueError("a share is not a field element")
            public = {str(k): int(v) for k, v in dict(doc.get("public", {})).items()}
            vector = cls(
                party=int(doc["party"]),
                m=int(doc["m"]),
                t=int(doc["t"]),
                modulus=modulus,
                values=values,
                program=str(doc.get("program", "")),
                public=public,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise PtxError(
                "malformed share vector", 400, [Problem("shares", str(exc) or repr(exc))]
            ) from None
        check_parties(vector.m, vector.t)
        if not 0 <= vector.party < vector.m:
            raise PtxError("malformed share vector", 400, [Problem("party", "out of range")])
        return vector

    def dump(self, path: Path) -> None:
        """Write to ``path`` atomically (a temporary file, then rename)."""
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_json()))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> ShareVector:
        """Read a file written by :meth:`dump`."""
        return cls.from_json(json.loads(path.read_text()))


def share(
    values: Sequence[int],
    stype: SecureType,
    m: int,
    t: int | None = None,
    program: str = "",
) -> list[ShareVector]:
    """Encode integers for ``stype`` and split them: one :class:`ShareVector` per node."""
    t = check_parties(m, t)
    rows = split(stype.encode(list(values)), stype.modulus, m, t)
    return [
        ShareVector(party=i, m=m, t=t, modulus=stype.modulus, values=row, program=program)
        for i, row in enumerate(rows)
    ]


def reveal(vectors: Sequence[ShareVector], verify: bool = True) -> list[int]:
    """Recombine node share vectors into field elements (checking extra shares if ``verify``)."""
    if not vectors:
        raise PtxError("no shares to recombine", 400, [Problem("shares", "empty")])
    first = vectors[0]
    for v in vectors:
        if (v.modulus, v.m, v.t, v.program) != (first.modulus, first.m, first.t, first.program):
            raise PtxError(
                "share vectors belong to different sharings",
                400,
                [Problem(f"shares[{v.party}]", "modulus, m, t or program differ")],
            )
    by_party = {v.party: v.values for v in vectors}
    if len(by_party) != len(vectors):
        raise PtxError("duplicate node shares", 400, [Problem("shares", "one per node")])
    return recombine(by_party, first.modulus, first.t if verify else None)
