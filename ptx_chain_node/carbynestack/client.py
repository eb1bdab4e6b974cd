"""A client for the Amphora and Ephemeral services of every VCP of a Carbyne Stack cloud.

It speaks the documented client protocol (see ``shared/reference/mpc-engines.md``):

- **upload**: fresh input masks from every VCP, summed and checked (``w = s·r``,
  ``u = v·r``), then ``m = x - s`` posted to every VCP. A failed check aborts before
  anything is posted: a VCP handing out corrupted masks could otherwise learn or alter inputs.
- **read**: every VCP's shares for one request id, summed and checked the same way.
- **execute**: one activation (same gameID) posted to every VCP's Ephemeral concurrently;
  with output ``AMPHORASECRET`` the result secret id is the gameID.
- **delete**: ``DELETE {amphora}/secret-shares/{id}`` at every VCP.

Calls go through :class:`~ptx_chain_node.carbynestack.vcps.Vcps` (bearer tokens, deadlines,
failures naming the VCP at fault). Tokens and values never reach logs.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import httpx
import structlog

from ptx_chain_node.carbynestack.config import ComputeConfig, Provider
from ptx_chain_node.carbynestack.encoding import (
    SHARE_FIELDS,
    Shares,
    check_shares,
    decode_vector,
    encode_vector,
    from_field_vector,
    sum_share_sets,
    to_field_vector,
)
from ptx_chain_node.carbynestack.vcps import (
    IntegrityError,
    VcpError,
    Vcps,
    answer_json,
    vcp_problem,
)
from ptx_chain_node.errors import Problem, ProtocolError, PtxError

__all__ = ["LENGTH_TAG", "MAX_VALUES", "CarbyneStackClient", "IntegrityError", "Tag", "VcpError"]

log = structlog.get_logger(__name__)

MAX_VALUES = 1_000_000
#: Tag :meth:`CarbyneStackClient.upload` adds: the number of values (public, MP-SPDZ needs it).
LENGTH_TAG = "ptx-length"


@dataclass(frozen=True)
class Tag:
    """An Amphora tag; ``value_type`` is ``STRING`` or ``LONG``."""

    key: str
    value: str
    value_type: Literal["STRING", "LONG"] = "STRING"

    def as_json(self) -> dict[str, str]:
        return {"key": self.key, "value": self.value, "valueType": self.value_type}


class CarbyneStackClient:
    """Talks to all VCPs of one Carbyne Stack cloud through one injected ``httpx.AsyncClient``.

    ``token`` is the bearer token for every VCP, or a mapping provider id -> token.
    ``timeout`` bounds each Amphora call, ``execute_timeout`` an Ephemeral activation.
    ``application`` (optional) is the Knative application name the real Ephemeral routes by
    (``http://<application>.<ephemeral host>/``); without it activations go to the
    configured ``ephemeralServiceUrl`` as is.
    """

    def __init__(
        self,
        config: ComputeConfig,
        http: httpx.AsyncClient,
        token: str | Mapping[int, str],
        *,
        timeout: float = 30.0,
        execute_timeout: float = 600.0,
        application: str | None = None,
    ) -> None:
        self.config = config
        self.field = config.field
        #: The calls to the VCPs (tokens, deadlines, failures).
        self.vcps = Vcps(config, http, token, timeout=timeout)
        self.execute_timeout = execute_timeout
        self.application = application

    def __repr__(self) -> str:
        ids = [p.id for p in self.config.providers]
        return f"CarbyneStackClient(providers={ids}, token=***)"

    # -- public API ---------------------------------------------------------------------

    async def upload(
        self, values: Sequence[int], tags: Sequence[Tag] | Mapping[str, str] = ()
    ) -> str:
        """Secret-share signed integers into Amphora as one secret; return its id (uuid4).

        Steps 1-5 of the protocol; raises :class:`IntegrityError` (nothing posted) when the
        masks fail the check, :class:`VcpError`/:class:`AuthError` when a VCP fails.
        """
        if not 1 <= len(values) <= MAX_VALUES:
            raise ProtocolError.single("values", f"need between 1 and {MAX_VALUES} values")
        xs = to_field_vector(self.field, values)
        n = len(xs)
        tag_list = [t for t in _tags(tags) if t.key != LENGTH_TAG]
        tag_list.append(Tag(LENGTH_TAG, str(n), "LONG"))
        sid = str(uuid.uuid4())

        async def masks(provider: Provider) -> Shares:
            response = await self.vcps.call(
                provider,
                "GET",
                f"{provider.amphora}/input-masks",
                params={"requestId": sid, "count": str(n)},
            )
            return self._decode_shares(provider, response, n)

        summed = self._sum(await self.vcps.on_all(masks))
        bad = check_shares(self.field.prime, summed)
        if bad:
            log.warning("carbynestack.masks_rejected", secret_id=sid, positions=len(bad))
            raise IntegrityError(
                "input masks failed the integrity check (w != s·r or u != v·r); nothing uploaded",
                502,
                [Problem("inputMasks", f"{len(bad)} of {n} masks inconsistent")],
            )
        p = self.field.prime
        masked = [(x - s) % p for x, s in zip(xs, summed.s, strict=True)]
        body = {
            "secretId": sid,
            "data": [{"value": encode_vector(self.field, [m])} for m in masked],
            "tags": [t.as_json() for t in tag_list],
        }

        async def post(provider: Provider) -> None:
            await self.vcps.call(provider, "POST", f"{provider.amphora}/masked-inputs", json=body)

        try:
            await self.vcps.on_all(post)
        except PtxError:
            await self._delete_quietly(sid)
            raise
        log.info("carbynestack.uploaded", secret_id=sid, count=n)
        return sid

    async def read_elements(self, secret_id: str) -> list[int]:
        """The clear field elements of a secret, after the integrity check."""
        sid = _uuid(secret_id, "secretId")
        rid = str(uuid.uuid4())
        counts: dict[int, int] = {}

        async def fetch(provider: Provider) -> Shares:
            response = await self.vcps.call(
                provider,
                "GET",
                f"{provider.amphora}/secret-shares/{sid}",
                params={"requestId": rid},
            )
            shares = self._decode_shares(provider, response, None)
            counts[provider.id] = len(shares.s)
            return shares

        per_vcp = await self.vcps.on_all(fetch)
        if len(set(counts.values())) > 1:
            raise VcpError(
                f"VCPs disagree on the length of secret {sid}",
                502,
                [Problem(f"providers[{pid}]", f"{c} values") for pid, c in counts.items()],
            )
        summed = self._sum(per_vcp)
        bad = check_shares(self.field.prime, summed)
        if bad:
            log.warning("carbynestack.read_rejected", secret_id=sid, positions=len(bad))
            raise IntegrityError(
                f"shares of secret {sid} failed the integrity check (w != s·r or u != v·r)",
                502,
                [Problem("secretShares", f"{len(bad)} of {len(summed.s)} values inconsistent")],
            )
        return summed.s

    async def read(self, secret_id: str) -> list[int]:
        """The clear values of a secret as signed integers (see :meth:`read_elements`)."""
        return from_field_vector(self.field, await self.read_elements(secret_id))

    async def execute(
        self, code: str, amphora_params: Sequence[str], *, game_id: str | None = None
    ) -> str:
        """Run MP-SPDZ ``code`` on the secrets ``amphora_params`` at every VCP; return the
        id of the result secret (the gameID)."""
        if not code.strip():
            raise ProtocolError.single("code", "must not be empty")
        params = [_uuid(s, "amphoraParams") for s in amphora_params]
        gid = _uuid(game_id, "gameID") if game_id else str(uuid.uuid4())
        activation = {
            "amphoraParams": params,
            "secretParams": [],
            "gameID": gid,
            "code": code,
            "output": {"type": "AMPHORASECRET"},
        }

        async def activate(provider: Provider) -> list[str]:
            response = await self.vcps.call(
                provider,
                "POST",
                self._activation_url(provider),
                params={"compile": "true"},
                json=activation,
                timeout=self.execute_timeout,
            )
            body = answer_json(provider, response)
            ids = body.get("response") if isinstance(body, dict) else None
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                raise vcp_problem(provider, "activation answer lacks a 'response' id list")
            return ids

        log.info("carbynestack.execute", game_id=gid, inputs=len(params))
        answers = await self.vcps.on_all(activate)
        if any(ids != [gid] for ids in answers):
            raise VcpError(
                f"VCPs did not answer game {gid} with its result id",
                502,
                [Problem("response", "expected [gameID] from every VCP")],
            )
        return gid

    async def tags(self, secret_id: str) -> list[Tag]:
        """The public tags of a secret (``GET {amphora}/secret-shares/{id}/tags``).

        Tags are the same at every VCP; the first VCP that answers is enough.
        """
        sid = _uuid(secret_id, "secretId")
        failure: PtxError | None = None
        for provider in self.config.providers:
            try:
                response = await self.vcps.call(
                    provider, "GET", f"{provider.amphora}/secret-shares/{sid}/tags"
                )
            except VcpError as exc:
                failure = exc
                continue
            body = answer_json(provider, response)
            if not isinstance(body, list) or not all(isinstance(t, dict) for t in body):
                raise vcp_problem(provider, "tags answer is not a list of tags")
            try:
                return [
                    Tag(str(t["key"]), str(t["value"]), t.get("valueType", "STRING")) for t in body
                ]
            except KeyError as exc:
                raise vcp_problem(provider, "a tag lacks key or value") from exc
        assert failure is not None
        raise failure

    async def length(self, secret_id: str) -> int:
        """The number of values of a secret, from its ``ptx-length`` tag."""
        for tag in await self.tags(secret_id):
            if tag.key == LENGTH_TAG and tag.value.isdigit() and int(tag.value) > 0:
                return int(tag.value)
        raise ProtocolError.single(
            "secretId", f"secret {secret_id} has no {LENGTH_TAG} tag; give its length"
        )

    async def delete(self, secret_id: str) -> None:
        """Delete a secret's shares at every VCP."""
        sid = _uuid(secret_id, "secretId")

        async def remove(provider: Provider) -> None:
            await self.vcps.call(provider, "DELETE", f"{provider.amphora}/secret-shares/{sid}")

        await self.vcps.on_all(remove)
        log.info("carbynestack.deleted", secret_id=sid)

    # -- plumbing -----------------------------------------------------------------------

    def _activation_url(self, provider: Provider) -> str:
        url = httpx.URL(provider.ephemeral_service_url)
        if self.application:
            url = url.copy_with(host=f"{self.application}.{url.host}")
        return str(url)

    def _decode_shares(self, provider: Provider, response: httpx.Response, n: int | None) -> Shares:
        body = answer_json(provider, response)
        if not isinstance(body, dict):
            raise vcp_problem(provider, "share answer is not a JSON object")
        vectors: list[list[int]] = []
        for name in SHARE_FIELDS:
            text = body.get(name)
            if not isinstance(text, str):
                raise vcp_problem(provider, f"share answer lacks {name}")
            try:
                vectors.append(decode_vector(self.field, text, n, name=name))
            except ProtocolError as exc:
                raise vcp_problem(provider, f"{name}: {exc.problems[0].problem}") from exc
            n = len(vectors[0])
        return Shares(*vectors)

    def _sum(self, per_vcp: Sequence[Shares]) -> Shares:
        return sum_share_sets(self.field, per_vcp)

    async def _delete_quietly(self, sid: str) -> None:
        try:
            await self.delete(sid)
        except PtxError:
            log.warning("carbynestack.cleanup_failed", secret_id=sid)


def _uuid(value: str, name: str) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError as exc:
        raise ProtocolError.single(name, "must be a UUID") from exc


def _tags(tags: Sequence[Tag] | Mapping[str, str]) -> list[Tag]:
    if isinstance(tags, Mapping):
        return [Tag(str(k), str(v)) for k, v in tags.items()]
    return list(tags)
