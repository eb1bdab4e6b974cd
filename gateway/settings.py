"""Gateway settings: environment (prefix ``PTX_``, nested with ``__``) over a config file.

A config file (TOML or JSON) gives the base; environment variables override it, e.g.
``PTX_PDC_URL=http://pdc:3000`` or ``PTX_RESUME__DELAY=5``.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from ptx_chain_node.coordination.config import CoordinationSettings
from ptx_chain_node.mpc.deployment import MpycSettings
from ptx_chain_node.resume import ResumePolicy


class AuthSettings(BaseModel):
    """How the PDC authenticates to a resource (its catalog representation's credential).

    ``apiKey``: the PDC sends header ``api_key_header: api_key``. ``basic``: the PDC puts
    ``username``/``password`` into the JSON body. With neither set the resource is open.
    """

    api_key_header: str | None = None
    api_key: SecretStr | None = None
    username: str | None = None
    password: SecretStr | None = None

    @model_validator(mode="after")
    def _pairs(self) -> AuthSettings:
        if (self.api_key_header is None) != (self.api_key is None):
            raise ValueError("api_key_header and api_key go together")
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together")
        return self

    @property
    def enabled(self) -> bool:
        return self.api_key is not None or self.password is not None


class ResourceSettings(BaseModel):
    """One resource endpoint the PDC calls (a software resource's representation URL)."""

    name: str = "default"
    path: str = "/resource"
    target_ids: list[str] = Field(
        default_factory=list, description="accepted x-ptx-target-id values; empty accepts any"
    )
    auth: AuthSettings = Field(default_factory=AuthSettings)
    mode: Literal["async", "sync"] = Field(
        "async", description="sync for a PDC with serviceChainAdapter: true"
    )
    sync_timeout: float = Field(30.0, gt=0, description="bounded wait of a sync answer")
    skip_body_processing: bool = False
    processor: str = Field("summary", description="summary (plaintext) or mpc")
    chains: str | None = Field(
        None, description="chain configuration file (TOML/JSON) of the mpc processor"
    )

    @model_validator(mode="after")
    def _chains(self) -> ResourceSettings:
        if self.processor == "mpc" and not self.chains:
            raise ValueError("processor 'mpc' needs chains (a chain configuration file)")
        return self

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must start with /")
        return value


class WorkerConfig(BaseModel):
    enabled: bool = Field(True, description="false: an intake-only replica (no processing)")
    concurrency: int = Field(16, ge=1)
    lease_seconds: float = Field(30.0, gt=0)
    poll_interval: float = Field(1.0, gt=0)


class Limits(BaseModel):
    max_body_bytes: int = Field(50 * 1024 * 1024, gt=0)


class Settings(BaseSettings):
    """Everything a gateway process needs."""

    model_config = SettingsConfigDict(env_prefix="PTX_", env_nested_delimiter="__", extra="forbid")

    pdc_url: str = Field(
        "http://127.0.0.1:3000", description="base URL of this node's own PDC (resume target)"
    )
    store_url: str = "sqlite:///var/ptx-chain-node.db"
    resources: list[ResourceSettings] = Field(default_factory=lambda: [ResourceSettings()])
    resume: ResumePolicy = Field(default_factory=ResumePolicy)
    worker: WorkerConfig = Field(default_factory=WorkerConfig)
    limits: Limits = Field(default_factory=Limits)
    admin_token: SecretStr | None = Field(
        None, description="bearer token for /jobs; unset leaves them open (development)"
    )
    operator_token: SecretStr | None = Field(
        None, description="bearer token creating/deleting collaborations; unset: open (dev)"
    )
    coordination: CoordinationSettings = Field(default_factory=CoordinationSettings)
    mpyc: MpycSettings = Field(default_factory=MpycSettings)
    log_level: str = "info"
    log_json: bool = True

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment overrides the config file, which arrives as init arguments.
        return (env_settings, init_settings)

    @model_validator(mode="after")
    def _unique_paths(self) -> Settings:
        paths = [r.path for r in self.resources]
        if len(paths) != len(set(paths)):
            raise ValueError("resources: two resources share a path")
        return self


def read_config_file(path: Path) -> dict[str, Any]:
    """Read a TOML or JSON config file into a dict."""
    text = path.read_text()
    data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a table/object at the top level")
    return data


def load_settings(config: Path | None = None, **overrides: Any) -> Settings:
    """Settings from ``config`` (if any), then ``overrides``, then the environment."""
    base = read_config_file(config) if config is not None else {}
    base.update(overrides)
    return Settings(**base)
