"""The Carbyne Stack compute config, as the upstream coordinator serves it.

Shape (``GET /collaboration/{cid}/compute_config`` upstream, and the CLI's ``~/.cs/config``)::

    {"prime": …, "r": …, "rinv": …, "noSslValidation": false,
     "providers": [{"id", "amphoraServiceUrl", "castorServiceUrl",
                    "ephemeralServiceUrl", "baseUrl"}, …]}

Unknown keys (``trustedCertificates``, the CLI's ``oauth2*`` fields) are accepted and ignored.
Numbers may arrive as JSON numbers or decimal strings.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ptx_chain_node.carbynestack.encoding import PrimeField
from ptx_chain_node.errors import Problem, ProtocolError


def _http_url(value: str) -> str:
    if not value.startswith(("http://", "https://")) or len(value) < len("http://x"):
        raise ValueError("must be an http(s) URL")
    return value


class Provider(BaseModel):
    """One virtual cloud provider (VCP) and the URLs of its services."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    id: int
    amphora_service_url: str = Field(alias="amphoraServiceUrl")
    castor_service_url: str = Field(alias="castorServiceUrl")
    ephemeral_service_url: str = Field(alias="ephemeralServiceUrl")
    base_url: str = Field(alias="baseUrl")

    @field_validator(
        "amphora_service_url", "castor_service_url", "ephemeral_service_url", "base_url"
    )
    @classmethod
    def _check_url(cls, value: str) -> str:
        return _http_url(value)

    @property
    def amphora(self) -> str:
        """The Amphora base URL without a trailing slash."""
        return self.amphora_service_url.rstrip("/")

    @property
    def ephemeral(self) -> str:
        """The Ephemeral base URL without a trailing slash."""
        return self.ephemeral_service_url.rstrip("/")


class ComputeConfig(BaseModel):
    """Field parameters and the VCPs of one Carbyne Stack virtual cloud."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    prime: int
    r: int
    rinv: int
    no_ssl_validation: bool = Field(default=False, alias="noSslValidation")
    providers: list[Provider] = Field(min_length=2)

    @model_validator(mode="after")
    def _consistent(self) -> ComputeConfig:
        PrimeField(self.prime, self.r, self.rinv)  # raises ProtocolError when inconsistent
        ids = [p.id for p in self.providers]
        if len(set(ids)) != len(ids):
            raise ValueError("provider ids must be unique")
        return self

    @property
    def field(self) -> PrimeField:
        """The prime field of this cloud."""
        return PrimeField(self.prime, self.r, self.rinv)

    @classmethod
    def parse(cls, data: Any) -> ComputeConfig:
        """Validate a decoded JSON compute config; raise :class:`ProtocolError` on any fault."""
        try:
            return cls.model_validate(data)
        except ProtocolError:
            raise
        except ValidationError as exc:
            problems = [
                Problem(".".join(str(p) for p in err["loc"]) or "config", err["msg"])
                for err in exc.errors()
            ]
            raise ProtocolError("invalid compute config", 400, problems) from exc

    def as_json(self) -> dict[str, Any]:
        """The upstream JSON shape (camelCase keys)."""
        return self.model_dump(by_alias=True)
