"""A fake Carbyne Stack cloud for tests: n VCPs (pure ASGI apps) behind one httpx transport.

Each :class:`FakeVcp` keeps only **its own additive shares** and serves the documented client
protocol of Amphora and Ephemeral:

- ``GET  {amphora}/input-masks?requestId=&count=``: this VCP's shares of fresh masks
  ``s, r, v, w = s·r, u = v·r`` (base64 of count x 16 bytes, Montgomery form), bound to the
  request id and handed out once per VCP (a repeat is 409);
- ``POST {amphora}/masked-inputs`` ``{"secretId", "data": [{"value"}], "tags"}`` -> 201: the
  VCP consumes its masks for ``requestId == secretId`` and stores ``s_i`` (+ ``m`` at the
  first VCP), so the stored shares sum to ``x = m + s``;
- ``GET  {amphora}/secret-shares/{id}?requestId=``: this VCP's share of the secret plus its
  shares of fresh ``r, v, w = y·r, u = v·r`` (same 5-field shape, one use per request id);
- ``DELETE {amphora}/secret-shares/{id}``;
- ``POST {ephemeral}`` with an activation: the VCP joins game ``gameID`` and waits until all
  n VCPs posted the same activation (``game_timeout``; then 500, as the real one times out),
  the cluster evaluates the program **in the clear** (recognised by its
  ``# ptx-template: <name> v1 {...}`` marker, see ``carbynestack.templates``) and stores the
  output as a new secret with id = gameID, additively shared; every VCP answers
  ``{"response": [gameID]}``.

Behind the VCPs, :class:`~ptx_chain_node.testing.fake_vcp_cluster.HiddenCluster` plays the tuple
dealer and the MPC engine. Every call
needs ``Authorization: Bearer <token>`` (else 401). Switches: :meth:`corrupt` (w or u wrong at
one VCP), :meth:`set_unreachable` (connection refused), :meth:`set_failing` (500s, for
all requests or one method).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import parse_qs

import httpx

from ptx_chain_node.carbynestack.config import ComputeConfig
from ptx_chain_node.carbynestack.encoding import (
    SHARE_FIELDS,
    TEST_FIELD,
    PrimeField,
    decode_vector,
    encode_vector,
    from_field,
)
from ptx_chain_node.errors import ProtocolError
from ptx_chain_node.testing.asgi import BodyTooLarge, Receive, Scope, Send, read_body, send_json
from ptx_chain_node.testing.fake_vcp_cluster import (
    Five,
    HiddenCluster,
    Reply,
    Stored,
    parse_json,
    parse_uuid,
)

MAX_BODY = 64 * 1024 * 1024


class FakeVcp:
    """One virtual cloud provider: an ASGI app over its own share store."""

    def __init__(self, index: int, cloud: FakeCarbyneStack) -> None:
        self.index = index
        self.cloud = cloud
        self.secrets: dict[str, Stored] = {}
        self.masks: dict[str, list[int]] = {}
        self.served: set[str] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        method = scope["method"]
        path = scope["path"].rstrip("/") or "/"
        query = {k: v[0] for k, v in parse_qs(scope.get("query_string", b"").decode()).items()}
        self.cloud.requests.append((self.index, method, path))
        try:
            if self.cloud.failing.get(self.index, "off") in (None, method):
                raise Reply(500, "internal error (injected)")
            auth = dict(scope.get("headers", [])).get(b"authorization", b"").decode("latin-1")
            if auth != f"Bearer {self.cloud.tokens[self.index]}":
                raise Reply(401, "unauthorized")
            try:
                body = await read_body(scope, receive, MAX_BODY) if method == "POST" else b""
            except BodyTooLarge as exc:
                raise Reply(413, "body too large") from exc
            status, answer = await self._route(method, path, query, body)
        except Reply as reply:
            status, answer = reply.status, {"code": reply.status, "message": reply.message}
        await send_json(send, status, answer)

    async def _route(
        self, method: str, path: str, query: dict[str, str], body: bytes
    ) -> tuple[int, Any]:
        parts = path.strip("/").split("/")
        if parts[0] == "amphora":
            if method == "GET" and parts[1:] == ["input-masks"]:
                return 200, self._input_masks(query)
            if method == "POST" and parts[1:] == ["masked-inputs"]:
                return 201, self._masked_inputs(parse_json(body))
            if len(parts) == 3 and parts[1] == "secret-shares":
                if method == "GET":
                    return 200, self._secret_shares(parts[2], query)
                if method == "DELETE":
                    if self.secrets.pop(parts[2], None) is None:
                        raise Reply(404, f"no secret {parts[2]}")
                    return 200, None
            if method == "GET" and parts[1:2] == ["secret-shares"] and parts[3:] == ["tags"]:
                stored = self.secrets.get(parts[2])
                if stored is None:
                    raise Reply(404, f"no secret {parts[2]}")
                return 200, stored.tags
        if parts[0] == "ephemeral" and len(parts) == 1 and method == "POST":
            return 200, await self.cloud.cluster.join_game(self.index, parse_json(body))
        raise Reply(404, f"no route {method} {path}")

    def _input_masks(self, query: dict[str, str]) -> Five | dict[str, str]:
        rid, count = query.get("requestId", ""), query.get("count", "")
        if not rid or not count.isdigit() or int(count) < 1:
            raise Reply(400, "requestId and count >= 1 are required")
        if rid in self.served:
            raise Reply(409, f"input masks for requestId {rid} were already handed out")
        five = self.cloud.cluster.deal_masks(rid, int(count))[self.index]
        self.served.add(rid)
        self.masks[rid] = five["secretShares"]
        return self._encode(self.cloud.corrupted(self.index, five))

    def _masked_inputs(self, body: Any) -> str:
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise Reply(400, "body must be {secretId, data: [{value}], tags}")
        sid = parse_uuid(body.get("secretId"))
        masks = self.masks.pop(sid, None)
        if masks is None:
            raise Reply(400, f"no input masks reserved for requestId {sid}")
        if len(body["data"]) != len(masks):
            raise Reply(400, f"{len(body['data'])} values for {len(masks)} masks")
        if sid in self.secrets:
            raise Reply(409, f"secret {sid} exists")
        p = self.cloud.field.prime
        shares = []
        for item, s in zip(body["data"], masks, strict=True):
            value = item.get("value") if isinstance(item, dict) else None
            m = self._decode(value, 1)[0]
            shares.append((s + (m if self.index == 0 else 0)) % p)
        tags = body.get("tags") or []
        if not isinstance(tags, list):
            raise Reply(400, "tags must be a list")
        self.secrets[sid] = Stored(shares, tags)
        self.cloud.masked_input_posts += 1
        return f"/amphora/secret-shares/{sid}"

    def _secret_shares(self, secret_id: str, query: dict[str, str]) -> dict[str, Any]:
        stored = self.secrets.get(secret_id)
        if stored is None:
            raise Reply(404, f"no secret {secret_id}")
        rid = query.get("requestId", "")
        if not rid:
            raise Reply(400, "requestId is required")
        key = f"{secret_id}/{rid}"
        if key in self.served:
            raise Reply(409, f"requestId {rid} was already used")
        five = dict(self.cloud.cluster.deal_output(secret_id, rid)[self.index])
        self.served.add(key)
        five["secretShares"] = stored.shares
        answer: dict[str, Any] = self._encode(self.cloud.corrupted(self.index, five))
        return {"secretId": secret_id, "tags": stored.tags, **answer}

    def _encode(self, five: Five) -> dict[str, str]:
        return {k: encode_vector(self.cloud.field, five[k]) for k in SHARE_FIELDS}

    def _decode(self, value: Any, count: int) -> list[int]:
        try:
            return decode_vector(self.cloud.field, str(value), count, name="value")
        except ProtocolError as exc:
            raise Reply(400, exc.message) from exc


class FakeCarbyneStack:
    """n fake VCPs sharing a hidden cluster (dealer + clear-text MPC engine).

    Provider ids are 1..n; VCP i lives at ``http://vcp{i}.carbyne.test`` with Amphora under
    ``/amphora`` and Ephemeral under ``/ephemeral``. ``token`` is the bearer token every VCP
    accepts (or a mapping provider id -> token). Use :meth:`client` or :meth:`transport`.
    """

    def __init__(
        self,
        n_vcps: int = 2,
        prime: int = TEST_FIELD.prime,
        *,
        token: str | Mapping[int, str] = "test-token",  # noqa: S107 - a fake
        game_timeout: float = 2.0,
        seed: int | None = None,
    ) -> None:
        if n_vcps < 2:
            raise ValueError("a Carbyne Stack cloud has at least 2 VCPs")
        self.field = PrimeField.for_prime(prime)
        self.n = n_vcps
        ids = range(1, n_vcps + 1)
        self.tokens = [token if isinstance(token, str) else token[i] for i in ids]
        self.rng: random.Random = random.Random(seed) if seed is not None else random.SystemRandom()
        self.vcps = [FakeVcp(i, self) for i in range(n_vcps)]
        self.cluster = HiddenCluster(
            self.field, [vcp.secrets for vcp in self.vcps], self.rng, game_timeout=game_timeout
        )
        self.unreachable: set[int] = set()
        self.failing: dict[int, str | None] = {}
        self.corruption: tuple[int, Literal["w", "u"]] | None = None
        self.requests: list[tuple[int, str, str]] = []
        self.masked_input_posts = 0

    @property
    def game_timeout(self) -> float:
        """How long a VCP waits for the others to join an activation (then 500)."""
        return self.cluster.game_timeout

    @game_timeout.setter
    def game_timeout(self, seconds: float) -> None:
        self.cluster.game_timeout = seconds

    # -- wiring -----------------------------------------------------------------------

    @staticmethod
    def host(provider_id: int) -> str:
        """Host name of VCP ``provider_id`` (1-based)."""
        return f"vcp{provider_id}.carbyne.test"

    @property
    def config(self) -> ComputeConfig:
        """The compute config of this cloud (upstream shape)."""
        f = self.field
        providers = []
        for i in range(1, self.n + 1):
            base = f"http://{self.host(i)}"
            providers.append(
                {
                    "id": i,
                    "amphoraServiceUrl": f"{base}/amphora",
                    "castorServiceUrl": f"{base}/castor",
                    "ephemeralServiceUrl": f"{base}/ephemeral",
                    "baseUrl": f"{base}/",
                }
            )
        return ComputeConfig.parse(
            {
                "prime": f.prime,
                "r": f.r,
                "rinv": f.rinv,
                "noSslValidation": True,
                "providers": providers,
            }
        )

    def transport(self) -> httpx.AsyncBaseTransport:
        """A transport routing each request to the VCP its host names."""
        return _CloudTransport(self)

    def client(self, **kwargs: Any) -> httpx.AsyncClient:
        """An ``httpx.AsyncClient`` reaching every VCP (close it: ``async with``)."""
        return httpx.AsyncClient(transport=self.transport(), **kwargs)

    def vcp_for_host(self, host: str) -> FakeVcp | None:
        """The VCP serving ``host`` (also ``<application>.<host>``, as Ephemeral routes)."""
        for i, vcp in enumerate(self.vcps, start=1):
            if host == self.host(i) or host.endswith("." + self.host(i)):
                return vcp
        return None

    # -- switches and inspection --------------------------------------------------------

    def corrupt(self, vcp: int | None, share: Literal["w", "u"] = "w") -> None:
        """Make VCP index ``vcp`` (0-based) hand out a wrong ``w`` or ``u`` share; None heals."""
        self.corruption = None if vcp is None else (vcp, share)

    def set_unreachable(self, vcp: int, down: bool = True) -> None:
        """Refuse connections to VCP index ``vcp`` (0-based)."""
        (self.unreachable.add if down else self.unreachable.discard)(vcp)

    def set_failing(self, vcp: int, failing: bool = True, *, only: str | None = None) -> None:
        """Make VCP index ``vcp`` answer 500 to everything (or to HTTP method ``only``)."""
        if failing:
            self.failing[vcp] = only
        else:
            self.failing.pop(vcp, None)

    def held_by(self, secret_id: str) -> list[bool]:
        """Which VCPs hold shares of ``secret_id``."""
        return [secret_id in vcp.secrets for vcp in self.vcps]

    def reveal(self, secret_id: str) -> list[int]:
        """Test oracle: the signed clear values of a secret held by every VCP."""
        return [from_field(self.field, y) for y in self.cluster.clear(secret_id)]

    def tags(self, secret_id: str) -> list[dict[str, Any]]:
        """The tags stored with a secret at the first VCP."""
        return self.vcps[0].secrets[secret_id].tags

    def corrupted(self, index: int, five: Five) -> Five:
        """``five`` as VCP ``index`` sends it: with the corruption switch applied."""
        if self.corruption is None or self.corruption[0] != index:
            return five
        name = f"{self.corruption[1]}Shares"
        bad = dict(five)
        bad[name] = [(x + 1) % self.field.prime for x in five[name]]
        return bad


class _CloudTransport(httpx.AsyncBaseTransport):
    def __init__(self, cloud: FakeCarbyneStack) -> None:
        self._cloud = cloud
        self._asgi = {vcp.index: httpx.ASGITransport(app=vcp) for vcp in cloud.vcps}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        vcp = self._cloud.vcp_for_host(request.url.host)
        if vcp is None or vcp.index in self._cloud.unreachable:
            raise httpx.ConnectError(f"connection refused: {request.url.host}", request=request)
        return await self._asgi[vcp.index].handle_async_request(request)
