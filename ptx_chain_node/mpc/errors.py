"""Errors of the MPC core, all :class:`~ptx_chain_node.errors.PtxError` subclasses."""

from __future__ import annotations

from ptx_chain_node.errors import Problem, PtxError


class GroupTooSmall(PtxError):
    """The program's guard refused to output: fewer than ``k`` rows or members contributed."""

    def __init__(self, program: str, k: int) -> None:
        super().__init__(
            f"{program}: fewer than {k} rows contributed; the result is withheld",
            422,
            [Problem("min_group_size", f"the group has fewer than {k} members")],
        )


class ProgramMismatch(PtxError):
    """A program reference whose hash is not the catalogue's hash for it."""

    def __init__(self, name: str, version: str, expected: str, got: str) -> None:
        super().__init__(
            f"program {name} {version}: hash {got[:16]}... does not match the catalogue",
            409,
            [Problem("program.hash", f"expected {expected}")],
        )


class RunFailed(PtxError):
    """An MPC run did not produce result shares (a party failed or was unreachable)."""

    def __init__(self, message: str, status: int = 502, field_name: str = "run") -> None:
        super().__init__(message, status, [Problem(field_name, message)])


class RunTimeout(RunFailed):
    """An MPC run did not finish within its time limit."""

    def __init__(self, message: str) -> None:
        super().__init__(message, 504, "timeout")
