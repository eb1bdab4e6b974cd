"""What a simulated service chain is made of: the spec a :class:`SimulatedPDC` runs.

A chain is a data *source*, then the *nodes* in order, then the final *consumer*. Each
node is a catalog offering (``offering``, sent as ``x-ptx-target-id``) with the resource
representation the PDC calls, the catalog ``params`` and, optionally, pre-chain
(additional data) sources. Example::

    from ptx_chain_node.testing import ChainSpec, ChainStep, DataSource, Representation

    spec = ChainSpec(
        source=DataSource(offering="https://cat/so/provider", data=[{"x": 1}]),
        nodes=[
            ChainStep(
                offering="https://cat/so/mpc",
                representation=Representation(url="http://127.0.0.1:8000/chain"),
                params={"custom": "custom"},          # arrives as "custom"
                pre=[DataSource(offering="https://cat/so/extra", data={"y": 2})],
            )
        ],
        consumer=ChainStep(offering="https://cat/so/consumer"),  # no URL: output kept
    )

Placement over several simulated PDCs: a step runs on the PDC at ``pdc_url`` when set,
else on the PDC that ran the step before it (for the first node: the PDC that started the
chain). The spec is a pydantic model so it travels as JSON between simulated PDCs.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

JsonValue = Any


class Representation(BaseModel):
    """The catalog's resource representation for one offering: how the PDC calls it."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(description="representation.url; `{userId}` in it makes the call a PUT")
    method: Literal["none", "apiKey", "basic"] = Field(
        default="none", description="credential method of the representation"
    )
    api_key_header: str = Field(default="x-api-key", description="header name for apiKey")
    api_key: str = Field(default="", description="header value for apiKey")
    username: str = Field(default="", description="basic: put into the top-level JSON body")
    password: str = Field(default="", description="basic: put into the top-level JSON body")
    content_type: str = Field(
        default="text/plain", description="content-type label; the body is JSON regardless"
    )
    skip_body_processing: bool = Field(default=False, description="send only `data`")


class Participant(BaseModel):
    """Who provides a pre-chain thread, as the PDC names it in ``additionalData``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = "Simulated-Provider"
    connector_url: str = Field(default="http://provider.pdc.test/", alias="connectorUrl")
    id: str = Field(default_factory=lambda: secrets.token_hex(12))


class DataSource(BaseModel):
    """A data provider: the chain's source, or a node's pre-chain source.

    Either ``data`` (inline) or ``url`` (a data-resource representation fetched with
    ``GET`` and the chain headers, e.g. another simulated PDC's ``/data/<name>`` route or a
    gateway answering additional-data requests).
    """

    model_config = ConfigDict(extra="forbid")

    offering: str = "https://catalog.test/v1/catalog/serviceofferings/provider"
    data: JsonValue = None
    url: str | None = None
    participant: Participant = Field(default_factory=Participant)
    api_key_header: str | None = None
    api_key: str | None = None


class ChainStep(BaseModel):
    """One node of the chain (or the final consumer)."""

    model_config = ConfigDict(extra="forbid")

    offering: str = Field(description="service-offering URI, sent as x-ptx-target-id")
    representation: Representation | None = Field(
        default=None, description="resource to call; None on a consumer = output kept locally"
    )
    params: dict[str, JsonValue] | None = Field(
        default=None, description="catalog params, joined PDC-style unless verbatim_params"
    )
    verbatim_params: bool = Field(default=False, description="send params as given, unjoined")
    pre: list[DataSource] = Field(default_factory=list, description="pre-chain sources")
    pdc_url: str | None = Field(
        default=None, description="base URL of the simulated PDC hosting this step"
    )
    adapter: bool | None = Field(default=None, description="override the PDC's adapter mode")
    adapter_timeout_ms: int | None = None


class ChainSpec(BaseModel):
    """A whole chain: source, nodes in order, consumer, and the contract context."""

    model_config = ConfigDict(extra="forbid")

    source: DataSource = Field(default_factory=DataSource)
    nodes: list[ChainStep] = Field(default_factory=list)
    consumer: ChainStep = Field(
        default_factory=lambda: ChainStep(
            offering="https://catalog.test/v1/catalog/serviceofferings/consumer"
        )
    )
    contract_id: str = Field(default_factory=lambda: secrets.token_hex(12))
    contract_base: str = "https://contract.test"
    incoming_connector_uri: str | None = Field(
        default=None, description="x-ptx-incomingDataspaceConnectorURI; default: starting PDC"
    )
    user_id: str = "user-1"

    @property
    def contract_url(self) -> str:
        return f"{self.contract_base.rstrip('/')}/contracts/{self.contract_id}"

    @property
    def steps(self) -> list[ChainStep]:
        """Nodes then consumer: index ``len(nodes)`` is the consumer."""
        return [*self.nodes, self.consumer]


def new_chain_id() -> str:
    """A chain id shaped like the real one: ``@supervisor:<128 hex>-<ms>-<8 hex>``."""
    return f"@supervisor:{secrets.token_hex(64)}-{int(time.time() * 1000)}-{secrets.token_hex(4)}"


def new_exchange_id() -> str:
    """A Mongo-like 24-hex id, as the PDC uses for data exchanges."""
    return secrets.token_hex(12)


def join_params(catalog_params: dict[str, JsonValue] | None) -> JsonValue:
    """The PDC's ``Object.values(params).join('')`` then JSON-parse-if-possible.

    ``{"custom": "custom"}`` -> ``"custom"``; ``{}`` -> ``""``; ``{"a": "12"}`` -> ``12``.
    """
    joined = "".join(str(v) for v in (catalog_params or {}).values())
    try:
        return json.loads(joined)
    except ValueError:
        return joined


def js_truthy(value: JsonValue) -> bool:
    """JavaScript truthiness (``{}`` and ``[]`` are truthy, ``""``/0/null are not)."""
    if value is None or value is False:
        return False
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value == value and value != 0  # NaN is falsy
    if isinstance(value, str):
        return value != ""
    return True


def simple_chain(
    resource_url: str,
    *,
    data: JsonValue = None,
    offering: str = "https://catalog.test/v1/catalog/serviceofferings/node",
    params: dict[str, JsonValue] | None = None,
    pre: list[DataSource] | None = None,
    **representation: Any,
) -> ChainSpec:
    """Source -> one node calling ``resource_url`` -> consumer kept locally.

    Extra keyword arguments configure the node's :class:`Representation`
    (``method="basic"``, ``content_type=...``, ``skip_body_processing=True`` ...).
    """
    return ChainSpec(
        source=DataSource(data=[{"id": 1, "value": 10}] if data is None else data),
        nodes=[
            ChainStep(
                offering=offering,
                representation=Representation(url=resource_url, **representation),
                params=params,
                pre=pre or [],
            )
        ],
    )
