"""The collaborations of a chain step: their ids and, for the operator, where they are.

A chain step runs one collaboration per configured computation. Its id is derived from
(configuration, chainId, computation, retry number) (:func:`collaboration_id`), so a
restarted gateway finds the same one, and the operator can tell an external input party
which collaborations to join before or after the step arrives
(:func:`step_collaborations`, behind ``GET /chains/{name}/collaborations``).
"""

from __future__ import annotations

import uuid

from ptx_chain_node.chains.config import ChainConfig, Computation
from ptx_chain_node.coordination.store import CollaborationStore

_NAMESPACE = uuid.UUID("5b0e7c1e-3f0a-4c59-9d1c-6d1f3c0a9e21")


def collaboration_id(
    config: ChainConfig, chain_id: str, computation: Computation, retry: int = 0
) -> str:
    """The collaboration of a computation of a chain: the same inputs give the same id.

    ``retry`` is the job's retry number (``Job.retries``); 0 keeps the original id.
    """
    name = f"{config.name}\n{chain_id}\n{computation.name}"
    if retry:
        name += f"\nretry {retry}"
    return str(uuid.uuid5(_NAMESPACE, name))


async def step_collaborations(
    store: CollaborationStore, config: ChainConfig, chain_id: str, retry: int = 0
) -> dict[str, dict[str, str | None]]:
    """``{computation: {collaboration_id, state}}`` of the step ``chain_id`` of ``config``.

    ``state`` is the collaboration's state, or ``None`` while it was not created (the
    step neither arrived nor had a party registered ahead). Nothing is created here.
    """
    answer: dict[str, dict[str, str | None]] = {}
    for computation in config.computations:
        cid = collaboration_id(config, chain_id, computation, retry)
        record = await store.get(cid)
        answer[computation.name] = {
            "collaboration_id": cid,
            "state": None if record is None else record.state.value,
        }
    return answer
