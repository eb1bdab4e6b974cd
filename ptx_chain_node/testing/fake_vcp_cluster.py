"""The hidden side of a fake Carbyne Stack cloud: the tuple dealer and a clear-text MPC engine.

The fake VCPs (:mod:`ptx_chain_node.testing.fake_vcp`) each keep only their own additive
shares; this cluster deals them correlated randomness (input masks, output checks) and runs
activations once all VCPs joined a game, by reconstructing the inputs, evaluating the
program in the clear and storing the output as fresh shares at every VCP.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ptx_chain_node.carbynestack.encoding import PrimeField, from_field, to_field
from ptx_chain_node.carbynestack.templates import clear_output, parse_marker
from ptx_chain_node.errors import ProtocolError

#: One VCP's shares of the five mask vectors (``secretShares``, ``rShares``, ... ``uShares``).
Five = dict[str, list[int]]


class Reply(Exception):
    """An error answer of a fake VCP: HTTP ``status`` with ``message``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Stored:
    """One VCP's shares of a secret, with the secret's tags."""

    shares: list[int]
    tags: list[dict[str, Any]]


@dataclass
class _Game:
    code: str
    params: list[str]
    arrived: set[int] = field(default_factory=set)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    error: str | None = None


class HiddenCluster:
    """Dealer and clear-text engine over the share stores of ``n`` VCPs (one dict each)."""

    def __init__(
        self,
        field: PrimeField,
        stores: Sequence[dict[str, Stored]],
        rng: random.Random,
        *,
        game_timeout: float,
    ) -> None:
        self.field = field
        self.stores = stores
        self.n = len(stores)
        self.rng = rng
        self.game_timeout = game_timeout
        self._mask_deals: dict[str, tuple[int, list[Five]]] = {}
        self._output_deals: dict[str, list[Five]] = {}
        self._games: dict[str, _Game] = {}

    def split(self, x: int) -> list[int]:
        """Fresh additive shares of ``x`` over the n VCPs."""
        p = self.field.prime
        head = [self.rng.randrange(p) for _ in range(self.n - 1)]
        return [*head, (x - sum(head)) % p]

    def _deal(self, columns: Mapping[str, Sequence[int]]) -> list[Five]:
        per_vcp: list[Five] = [{k: [] for k in columns} for _ in range(self.n)]
        for name, values in columns.items():
            for x in values:
                for i, share in enumerate(self.split(x)):
                    per_vcp[i][name].append(share)
        return per_vcp

    def deal_masks(self, request_id: str, count: int) -> list[Five]:
        """Every VCP's shares of the input masks bound to ``request_id``."""
        if request_id not in self._mask_deals:
            p, rnd = self.field.prime, self.rng.randrange
            s, r, v = ([rnd(p) for _ in range(count)] for _ in range(3))
            w = [a * b % p for a, b in zip(s, r, strict=True)]
            u = [a * b % p for a, b in zip(v, r, strict=True)]
            cols = {"secretShares": s, "rShares": r, "vShares": v, "wShares": w, "uShares": u}
            self._mask_deals[request_id] = (count, self._deal(cols))
        dealt_count, deal = self._mask_deals[request_id]
        if dealt_count != count:
            raise Reply(400, f"requestId {request_id} was reserved for {dealt_count} masks")
        return deal

    def deal_output(self, secret_id: str, request_id: str) -> list[Five]:
        """Every VCP's shares of ``r, v, w = y·r, u = v·r`` for reading ``secret_id``."""
        key = f"{secret_id}/{request_id}"
        if key not in self._output_deals:
            y = self.clear(secret_id)
            p, rnd = self.field.prime, self.rng.randrange
            r, v = ([rnd(p) for _ in y] for _ in range(2))
            w = [a * b % p for a, b in zip(y, r, strict=True)]
            u = [a * b % p for a, b in zip(v, r, strict=True)]
            self._output_deals[key] = self._deal(
                {"rShares": r, "vShares": v, "wShares": w, "uShares": u}
            )
        return self._output_deals[key]

    def clear(self, secret_id: str) -> list[int]:
        held = [store.get(secret_id) for store in self.stores]
        if any(h is None for h in held):
            raise Reply(500, f"secret {secret_id} is not held by every VCP")
        columns = zip(*(h.shares for h in held if h is not None), strict=True)
        return [sum(c) % self.field.prime for c in columns]

    async def join_game(self, index: int, activation: Any) -> dict[str, list[str]]:
        """VCP ``index`` joins an activation; answers once all n joined, or 500 on timeout."""
        if not isinstance(activation, dict) or not isinstance(activation.get("code"), str):
            raise Reply(400, "activation needs gameID, amphoraParams, code and output")
        gid = parse_uuid(activation.get("gameID"))
        params = activation.get("amphoraParams") or []
        if not isinstance(params, list) or not all(isinstance(x, str) for x in params):
            raise Reply(400, "amphoraParams must be a list of secret ids")
        if (activation.get("output") or {}).get("type") != "AMPHORASECRET":
            raise Reply(400, "only output type AMPHORASECRET is supported by the fake")
        game = self._games.setdefault(gid, _Game(activation["code"], params))
        if index in game.arrived:
            raise Reply(409, f"game {gid} already joined by this VCP")
        if game.code != activation["code"] or game.params != params:
            game.error = "VCPs received different activations for one gameID"
            game.done.set()
        game.arrived.add(index)
        if len(game.arrived) == self.n and not game.done.is_set():
            try:
                self._finish(gid, game)
            except Reply as reply:
                game.error = reply.message
            game.done.set()
        try:
            await asyncio.wait_for(game.done.wait(), self.game_timeout)
        except TimeoutError:
            game.error = game.error or f"game {gid}: {len(game.arrived)} of {self.n} VCPs joined"
            game.done.set()
        if game.error:
            raise Reply(500, game.error)
        return {"response": [gid]}

    def _finish(self, gid: str, game: _Game) -> None:
        inputs = [[from_field(self.field, y) for y in self.clear(sid)] for sid in game.params]
        try:
            name, params = parse_marker(game.code)
        except ProtocolError as exc:
            raise Reply(500, f"fake VCP cannot run this code: {exc.message}") from exc
        lengths = [len(values) for values in inputs]
        if params.get("lengths") != lengths:
            raise Reply(
                500, f"program reads lengths {params.get('lengths')}, inputs have {lengths}"
            )
        try:
            out = clear_output(name, params, [x for values in inputs for x in values])
        except ProtocolError as exc:
            raise Reply(500, exc.message) from exc
        elements = [to_field(self.field, y) for y in out]
        tags = [{"key": "gameID", "value": gid, "valueType": "STRING"}]
        for store in self.stores:
            if gid in store:
                raise Reply(500, f"secret {gid} exists")
        for store, shares in zip(
            self.stores, zip(*(self.split(y) for y in elements), strict=True), strict=True
        ):
            store[gid] = Stored(list(shares), list(tags))


def parse_json(body: bytes) -> Any:
    """A request body as JSON (400 when it is not)."""
    try:
        return json.loads(body)
    except ValueError as exc:
        raise Reply(400, "body is not JSON") from exc


def parse_uuid(value: Any) -> str:
    """A UUID in canonical form (400 when it is not one)."""
    try:
        return str(uuid.UUID(str(value)))
    except ValueError as exc:
        raise Reply(400, "not a UUID") from exc
