"""The coordinator's use case behind the node-token routes: a party asks for its node token.

An input party gets an upload token for its collaboration; an output party gets a result
token. The party proves itself with its own coordinator token (issued at registration);
the collaboration must use the MPyC engine.
"""

from __future__ import annotations

from typing import Any

from ptx_chain_node.coordination.records import Role
from ptx_chain_node.coordination.service import Coordinator
from ptx_chain_node.coordination.tokens import Forbidden, token_matches
from ptx_chain_node.errors import AuthError, NotFoundError, Problem, PtxError
from ptx_chain_node.mpc.engine import MpycEngine


async def node_token(
    coordinator: Coordinator, collaboration_id: str, role: Role, party_id: str, token: str | None
) -> dict[str, Any]:
    """The node token of party ``party_id`` (401/403 unless ``token`` is that party's)."""
    record = await coordinator.require(collaboration_id)
    party = await coordinator.store.party(collaboration_id, role, party_id)
    if party is None:
        raise NotFoundError(f"no such {role.value} party", "path.party_id")
    if token is None:
        raise AuthError("party bearer token required")
    if not token_matches(token, party.token_sha256):
        raise Forbidden("the token is not this party's")
    engine = coordinator.engines.get(record.definition.engine)
    if not isinstance(engine, MpycEngine):
        message = f"collaboration uses engine '{record.definition.engine}', not mpyc"
        raise PtxError(message, 409, [Problem("engine", message)])
    return engine.grant(collaboration_id, role, party_id)
