"""Finding a collaboration, its engine and its parties, and checking the caller's right to them.

The caller is known by a bearer token: the operator token (see
:class:`~ptx_chain_node.coordination.tokens.OperatorGate`) or a party token, issued at
registration and stored hashed.
"""

from __future__ import annotations

from collections.abc import Mapping

from ptx_chain_node.coordination.engine import Engine
from ptx_chain_node.coordination.records import CollaborationRecord, PartyRecord, Role
from ptx_chain_node.coordination.store import CollaborationStore
from ptx_chain_node.coordination.tokens import Forbidden, OperatorGate, token_matches
from ptx_chain_node.errors import AuthError, NotFoundError, Problem, PtxError


class CollaborationAccess:
    """Lookups that raise the caller's error (404, 401, 403, 422) instead of returning None."""

    def __init__(
        self, store: CollaborationStore, gate: OperatorGate, engines: Mapping[str, Engine]
    ) -> None:
        self.store = store
        self.gate = gate
        self.engines = engines

    async def require(self, collaboration_id: str) -> CollaborationRecord:
        """The collaboration, or 404."""
        record = await self.store.get(collaboration_id)
        if record is None:
            raise NotFoundError("no such collaboration", "path.collaboration_id")
        return record

    def engine(self, name: str) -> Engine:
        """The engine called ``name``, or 422."""
        engine = self.engines.get(name)
        if engine is None:
            message = f"unknown engine '{name}' (available: {', '.join(sorted(self.engines))})"
            raise PtxError(message, 422, [Problem("engine", message)])
        return engine

    async def member(self, collaboration_id: str, token: str | None) -> CollaborationRecord:
        """The collaboration, when ``token`` is the operator's or any of its parties'."""
        record = await self.require(collaboration_id)
        if self.gate.is_operator(token):
            return record
        if token is None:
            raise AuthError("bearer token required")
        if not any(
            token_matches(token, p.token_sha256) for p in await self.store.parties(record.id)
        ):
            raise Forbidden("not a party of this collaboration")
        return record

    async def input_party(
        self, collaboration_id: str, party_id: str, token: str | None, *, operator_ok: bool
    ) -> tuple[CollaborationRecord, PartyRecord]:
        """An input party with its collaboration, when ``token`` is the party's.

        ``operator_ok`` lets the operator act for the party too.
        """
        record = await self.require(collaboration_id)
        party = await self.store.party(collaboration_id, Role.INPUT, party_id)
        if party is None:
            raise NotFoundError("no such input party", "path.party_id")
        if token_matches(token, party.token_sha256):
            return record, party
        if operator_ok and token is not None and self.gate.is_operator(token):
            return record, party
        if token is None:
            raise AuthError("party bearer token required")
        raise Forbidden("the token is not this party's")

    async def output_party(self, collaboration_id: str, token: str | None) -> CollaborationRecord:
        """The collaboration, when ``token`` is one of its output parties'."""
        record = await self.require(collaboration_id)
        outputs = await self.store.parties(collaboration_id, Role.OUTPUT)
        if not any(token_matches(token, p.token_sha256) for p in outputs):
            if token is None:
                raise AuthError("output party bearer token required")
            raise Forbidden("results go to output parties only")
        return record
