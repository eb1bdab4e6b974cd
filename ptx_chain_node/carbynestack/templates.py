"""MP-SPDZ programs for Ephemeral: ``sum``, ``mean`` and ``histogram`` over Amphora secrets.

Input/output convention (Ephemeral's, which we follow)
-----------------------------------------------------
Ephemeral does not hand amphoraParams to a program as files or as MP-SPDZ's party inputs
(``sint.get_input_from``, ``Array.read_from_file``). Its ``AmphoraFeeder`` fetches this VCP's
share of every secret in ``amphoraParams``, **in activation order**, concatenates them and
writes them to a client socket the program opens on port 10000; the program then writes its
output array back to the same socket, and with output ``AMPHORASECRET`` Ephemeral stores the
whole array as **one** Amphora secret whose id is the gameID (tag ``gameID``). The programs
therefore start with the prologue of the Carbyne Stack examples and end with their epilogue::

    port = regint(10000)
    listen(port)
    socket_id = regint()
    acceptclientconnection(socket_id, port)
    data = Array.create_from(sint.read_from_socket(socket_id, N))
    ...
    sint.write_to_socket(socket_id, resp)

``listen``/``acceptclientconnection`` are the instructions of the MP-SPDZ release Ephemeral
bundles (its docs' Millionaires example and its integration tests use them); newer MP-SPDZ
renamed them ``listen_for_clients``/``accept_client_connection``. Swap the prologue if the
deployment runs a newer MP-SPDZ. ``N`` is the total length of all inputs, which is public
(the program must know it at compile time), so programs are rendered per input layout.

Every program carries a first-line marker ``# ptx-template: <name> v1 <json params>``; it is
a comment for MP-SPDZ, and it lets a fake VCP (``ptx_chain_node.testing.fake_vcp``) recognise
the program and compute the same function in the clear.

Semantics (all inputs are signed integers, concatenated over all input secrets):

- ``sum``: one output, the sum of all values.
- ``mean``: one output, ``sum / N`` as ``sfix`` with ``frac_bits`` fractional bits (the
  output is the fixed-point integer ``sfix.v``; decode with ``from_fixed``). Requires
  ``|sum| < 2^(int_bits - 1)`` (defaults: 16 fractional bits, 25 integer bits, i.e. MP-SPDZ's
  own 41-bit default; at most 44 bits in all so products fit the 128-bit prime with 40-bit
  statistical security). ``sfix / cfix`` (``sint_cint_division``) is exact to about one unit
  in the last place; callers should allow ``2^-(frac_bits-1)``.
- ``histogram``: ``len(edges) - 1`` outputs; bin j counts values ``edges[j] <= x < edges[j+1]``
  (right-open, values outside ``[edges[0], edges[-1])`` are not counted). Edges are public,
  strictly increasing integers. Comparisons use MP-SPDZ's default 64-bit range.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from itertools import pairwise
from typing import Any, Literal

from ptx_chain_node.errors import ProtocolError

MARKER = "# ptx-template:"
VERSION = "v1"
FEED_PORT = 10000
DEFAULT_FRAC_BITS = 16
DEFAULT_INT_BITS = 25
#: Most sfix/cfix bits so products fit a 128-bit prime with 40-bit statistical security.
MAX_FIXED_BITS = 44
MAX_BINS = 256

OutputKind = Literal["int", "fixed"]


@dataclass(frozen=True)
class Program:
    """A rendered MP-SPDZ program and how to read its single output secret."""

    name: str
    code: str
    input_lengths: tuple[int, ...]
    output_length: int
    output_kind: OutputKind
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def frac_bits(self) -> int:
        """Fractional bits of a fixed-point output (0 for integer outputs)."""
        return int(self.params.get("frac_bits", 0))


def marker_line(name: str, params: dict[str, Any]) -> str:
    """The first line of every program: ``# ptx-template: <name> v1 <json>``."""
    return f"{MARKER} {name} {VERSION} {json.dumps(params, sort_keys=True, separators=(',', ':'))}"


def parse_marker(code: str) -> tuple[str, dict[str, Any]]:
    """The template name and params of rendered code (raises :class:`ProtocolError`)."""
    first = code.lstrip().split("\n", 1)[0].strip()
    if not first.startswith(MARKER):
        raise ProtocolError.single("code", "no ptx-template marker")
    parts = first[len(MARKER) :].strip().split(" ", 2)
    if len(parts) != 3 or parts[1] != VERSION:
        raise ProtocolError.single("code", "malformed ptx-template marker")
    try:
        params = json.loads(parts[2])
    except json.JSONDecodeError as exc:
        raise ProtocolError.single("code", "marker params are not JSON") from exc
    if not isinstance(params, dict):
        raise ProtocolError.single("code", "marker params must be an object")
    return parts[0], params


def _check_lengths(input_lengths: Sequence[int]) -> tuple[int, ...]:
    lengths = tuple(input_lengths)
    if not lengths:
        raise ProtocolError.single("inputs", "at least one input secret is required")
    if any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in lengths):
        raise ProtocolError.single("inputs", "every input secret must hold at least one value")
    return lengths


def _prologue(total: int) -> list[str]:
    read = (
        [
            "data = Array(1, sint)",
            "data[0] = sint.read_from_socket(socket_id, 1)",
        ]
        if total == 1
        else [f"data = Array.create_from(sint.read_from_socket(socket_id, {total}))"]
    )
    return [
        "# Prologue (Ephemeral convention): this VCP's shares of all amphoraParams, in",
        f"# activation order, arrive concatenated on the client socket: {total} values.",
        f"port = regint({FEED_PORT})",
        "listen(port)",
        "socket_id = regint()",
        "acceptclientconnection(socket_id, port)",
        *read,
    ]


def _sum_lines(total: int) -> list[str]:
    return [
        "total = Array(1, sint)",
        "total[0] = sint(0)",
        "",
        f"@for_range_opt({total})",
        "def _(i):",
        "    total[0] = total[0] + data[i]",
    ]


def _epilogue(out: str) -> list[str]:
    return [
        "",
        "# Epilogue: the output array goes back on the socket; Ephemeral stores it as one",
        "# Amphora secret whose id is the gameID.",
        f"sint.write_to_socket(socket_id, {out})",
    ]


def _render(name: str, params: dict[str, Any], body: list[str], total: int) -> str:
    lines = [marker_line(name, params), *_prologue(total), "", *body]
    return "\n".join(lines) + "\n"


def sum_program(input_lengths: Sequence[int]) -> Program:
    """The sum of all values of all input secrets."""
    lengths = _check_lengths(input_lengths)
    total = sum(lengths)
    params: dict[str, Any] = {"lengths": list(lengths)}
    body = [*_sum_lines(total), *_epilogue("total")]
    return Program("sum", _render("sum", params, body, total), lengths, 1, "int", params)


def mean_program(
    input_lengths: Sequence[int],
    frac_bits: int = DEFAULT_FRAC_BITS,
    int_bits: int = DEFAULT_INT_BITS,
) -> Program:
    """The mean of all values as ``sfix`` with ``frac_bits`` fractional bits."""
    lengths = _check_lengths(input_lengths)
    if frac_bits < 1 or int_bits < 2 or frac_bits + int_bits > MAX_FIXED_BITS:
        raise ProtocolError.single(
            "params",
            f"need frac_bits >= 1, int_bits >= 2 and frac_bits + int_bits <= {MAX_FIXED_BITS}",
        )
    total = sum(lengths)
    params: dict[str, Any] = {
        "lengths": list(lengths),
        "frac_bits": frac_bits,
        "int_bits": int_bits,
    }
    body = [
        f"sfix.set_precision({frac_bits}, {frac_bits + int_bits})",
        f"cfix.set_precision({frac_bits}, {frac_bits + int_bits})",
        *_sum_lines(total),
        "",
        "total_fx = sfix()",
        "total_fx.load_int(total[0])",
        f"mean = total_fx / cfix({total})",
        "resp = Array(1, sint)",
        "resp[0] = mean.v",
        *_epilogue("resp"),
    ]
    return Program("mean", _render("mean", params, body, total), lengths, 1, "fixed", params)


def histogram_program(input_lengths: Sequence[int], edges: Sequence[int]) -> Program:
    """Counts of values per right-open bin ``[edges[j], edges[j+1])``; edges are public."""
    lengths = _check_lengths(input_lengths)
    edge_list = list(edges)
    if any(isinstance(e, bool) or not isinstance(e, int) for e in edge_list):
        raise ProtocolError.single("edges", "bin edges must be integers")
    if not 2 <= len(edge_list) <= MAX_BINS + 1:
        raise ProtocolError.single("edges", f"need between 2 and {MAX_BINS + 1} bin edges")
    if any(b <= a for a, b in pairwise(edge_list)):
        raise ProtocolError.single("edges", "bin edges must be strictly increasing")
    total = sum(lengths)
    bins = len(edge_list) - 1
    params: dict[str, Any] = {"lengths": list(lengths), "edges": edge_list}
    body = [
        f"edges = {edge_list!r}",
        f"counts = Array({bins}, sint)",
        f"for j in range({bins}):",
        "    counts[j] = sint(0)",
        "",
        f"@for_range_opt({total})",
        "def _(i):",
        "    x = data[i]",
        "    at_least = [x >= e for e in edges]",
        f"    for j in range({bins}):",
        "        counts[j] = counts[j] + at_least[j] - at_least[j + 1]",
        *_epilogue("counts"),
    ]
    return Program(
        "histogram", _render("histogram", params, body, total), lengths, bins, "int", params
    )


def _render_sum(lengths: Sequence[int], params: dict[str, Any]) -> Program:
    _no_params("sum", params, set())
    return sum_program(lengths)


def _render_mean(lengths: Sequence[int], params: dict[str, Any]) -> Program:
    _no_params("mean", params, {"frac_bits", "int_bits"})
    return mean_program(
        lengths,
        int(params.get("frac_bits", DEFAULT_FRAC_BITS)),
        int(params.get("int_bits", DEFAULT_INT_BITS)),
    )


def _render_histogram(lengths: Sequence[int], params: dict[str, Any]) -> Program:
    _no_params("histogram", params, {"edges"})
    if "edges" not in params or not isinstance(params["edges"], list | tuple):
        raise ProtocolError.single("params.edges", "histogram needs a list of bin edges")
    return histogram_program(lengths, params["edges"])


def _no_params(name: str, params: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ProtocolError.single("params", f"{name} does not take {', '.join(unknown)}")


#: Template name -> renderer ``(input lengths, params) -> Program``.
TEMPLATES: dict[str, Callable[[Sequence[int], dict[str, Any]], Program]] = {
    "sum": _render_sum,
    "mean": _render_mean,
    "histogram": _render_histogram,
}


def render(
    name: str, input_lengths: Sequence[int], params: dict[str, Any] | None = None
) -> Program:
    """Render template ``name`` for inputs of ``input_lengths`` with its ``params``."""
    renderer = TEMPLATES.get(name)
    if renderer is None:
        raise ProtocolError.single(
            "program", f"unknown program {name!r}; known: {', '.join(sorted(TEMPLATES))}"
        )
    return renderer(input_lengths, dict(params or {}))


def clear_output(name: str, params: Mapping[str, Any], values: Sequence[int]) -> list[int]:
    """What program ``name`` outputs for the concatenated clear ``values`` (the reference
    meaning of each template; the fake VCP computes this instead of running MP-SPDZ).

    Raises :class:`ProtocolError` where MP-SPDZ would return garbage (sfix overflow).
    """
    total = sum(values)
    if name == "sum":
        return [total]
    if name == "mean":
        f, int_bits = int(params["frac_bits"]), int(params["int_bits"])
        if abs(total) >= 1 << (int_bits - 1):
            raise ProtocolError.single("values", "sfix overflow: |sum| >= 2^(int_bits-1)")
        return [round(Fraction(total * (1 << f), len(values)))]
    if name == "histogram":
        edges = [int(e) for e in params["edges"]]
        return [sum(1 for x in values if lo <= x < hi) for lo, hi in pairwise(edges)]
    raise ProtocolError.single("program", f"unknown program {name!r}")
