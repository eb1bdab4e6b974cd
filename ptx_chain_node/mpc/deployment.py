"""Where the MPyC compute nodes are: the ``[mpyc]`` settings of the gateway/coordinator.

With ``nodes`` empty, ``ptx-chain-node serve`` starts ``local_nodes`` nodes (default 3)
on this machine: correct results, but **no confidentiality** (one operator holds every
share). A real deployment names its remote nodes::

    [mpyc]
    token_secret = "..."        # shared with every node (>= 32 characters)
    nodes = [
      {url = "https://node-a.example:8443", mpc_address = "node-a.example:11365"},
      {url = "https://node-b.example:8443", mpc_address = "node-b.example:11365"},
      {url = "https://node-c.example:8443", mpc_address = "node-c.example:11365"},
    ]
"""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

LOCAL_MODE_WARNING = (
    "MPyC compute nodes run on this machine under one operator: results are correct but "
    "there is NO confidentiality (development / trusted-host mode); name remote nodes in "
    "[mpyc] nodes for a real deployment"
)


class NodeSpec(BaseModel):
    """One compute node: its HTTP API and its MPyC ``host:port`` (in party order)."""

    url: str = Field(min_length=1)
    mpc_address: str = Field(min_length=3)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/")

    @field_validator("mpc_address")
    @classmethod
    def _address(cls, value: str) -> str:
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("must be host:port")
        return value


class MpycSettings(BaseModel):
    """The MPyC engine: its nodes (or how many local ones), the token secret, timing."""

    enabled: bool = True
    nodes: list[NodeSpec] = Field(default_factory=list)
    local_nodes: int = Field(3, ge=0, description="nodes serve starts when nodes is empty")
    local_data_dir: str = Field("var/nodes", description="data of the local nodes")
    token_secret: SecretStr | None = Field(
        None, description="HMAC key shared with the nodes; generated for local nodes"
    )
    threshold: int | None = Field(None, ge=1)
    run_timeout: float = Field(120.0, gt=0)
    upload_token_ttl: float = Field(86400.0, gt=0)
    retain_shares: bool = Field(False, description="local nodes keep inputs after a run")

    @model_validator(mode="after")
    def _counts(self) -> MpycSettings:
        if self.nodes and len(self.nodes) < 3:
            raise ValueError("nodes: at least 3 compute nodes are needed for privacy")
        if 0 < self.local_nodes < 3:
            raise ValueError("local_nodes: 0 (none) or at least 3")
        secret = self.token_secret
        if secret is not None and len(secret.get_secret_value()) < 32:
            raise ValueError("token_secret: at least 32 characters")
        return self
