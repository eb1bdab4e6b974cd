"""The JSON messages the gateway exchanges with a PDC and with operators."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Ack(BaseModel):
    """The gateway's answer to a chain delivery: stored, will be resumed."""

    status: Literal["ACK"] = "ACK"
    job_id: str = Field(alias="jobId")

    model_config = ConfigDict(populate_by_name=True)


class ResumeRequest(BaseModel):
    """``POST /service-chain/resume`` as the gateway sends it (never with ``hostURI``)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    chain_id: str = Field(alias="chainId")
    target_id: str = Field(alias="targetId")
    data: Any = None
    params: dict[str, Any] | None = None


class SyncAnswer(BaseModel):
    """The synchronous answer in adapter mode (``serviceChainAdapter: true``)."""

    data: Any = None
    params: dict[str, Any] | None = None


class ErrorItem(BaseModel):
    field: str
    problem: str


class ErrorBody(BaseModel):
    """Every error answer: ``{"code", "message", "errors"?}``."""

    code: int
    message: str
    errors: list[ErrorItem] | None = None


class JobSummary(BaseModel):
    """A job as ``GET /jobs`` shows it: never its data."""

    model_config = ConfigDict(populate_by_name=True)

    id: str
    resource: str
    mode: Literal["async", "sync"]
    state: str
    chain_id: str = Field(alias="chainId")
    target_id: str = Field(alias="targetId")
    final: bool
    attempts: int
    retries: int = Field(0, description="times an operator sent the job back to received")
    last_error: str | None = Field(alias="lastError")
    created_at: float = Field(alias="createdAt")
    updated_at: float = Field(alias="updatedAt")
    resume_started_at: float | None = Field(alias="resumeStartedAt")
    finished_at: float | None = Field(alias="finishedAt")
