"""Private set intersection cardinality for small sets (row-level).

Each input party shares the distinct 61-bit codes of its identifiers
(:func:`ptx_chain_node.mpc.encoding.identifier_code`, with a key all input parties share).
The MPC compares the smallest set with every other set element by element, vectorised
(``|A_0| * sum |A_j|`` secure equality tests), so it suits sets of up to a few hundred
members; the set sizes are public (they are the lengths of the shared vectors).

``|A_0 ∩ ... ∩ A_{P-1}| = sum over a in A_0 of prod over j of [a in A_j]``, and
``[a in A_j]`` is the row sum of the equality matrix because a set has no duplicates.
The guard is public: every set must have at least ``k`` members.
"""

from __future__ import annotations

from typing import Any

from ptx_chain_node.mpc.encoding import identifier_codes
from ptx_chain_node.mpc.fields import INT64
from ptx_chain_node.mpc.params import ProgramParams
from ptx_chain_node.mpc.program import Columns, Outcome, Program, column


def _prepare(params: ProgramParams, columns: Columns) -> list[int]:
    return identifier_codes(column(columns, "id"), "id")


async def _compute(rt: Any, stype: Any, params: ProgramParams, inputs: list[list[int]]) -> Outcome:
    from mpyc.numpy import np

    sets = sorted(inputs, key=len)
    if not sets or len(sets[0]) < params.min_group_size:
        return Outcome([stype(0)], stype(0))
    if len(sets) == 1:
        return Outcome([stype(len(sets[0]))], stype(1))
    field = stype.field

    def secure(codes: list[int], shape: tuple[int, int]) -> Any:
        return stype.array(field.array(np.array(codes, dtype=object).reshape(shape)))

    smallest = secure(sets[0], (len(sets[0]), 1))
    member = None
    for other in sets[1:]:
        hits = np.sum(smallest == secure(other, (1, len(other))), axis=1)
        member = hits if member is None else member * hits
    return Outcome([np.sum(member)], stype(1))


PSI_CARDINALITY = Program(
    name="psi_cardinality",
    version="1.0.0",
    summary="number of identifiers present in every input party's set",
    decomposable=False,
    columns=("id",),
    params=ProgramParams,
    stype=INT64,
    outputs="one integer",
    precision=None,
    prepare=_prepare,
    input_length=lambda _p: None,
    compute=_compute,
    decode=lambda _p, values, _public: list(values),
    output_names=lambda _p: ["intersection_size"],
)

PROGRAMS: list[Program[Any]] = [PSI_CARDINALITY]
