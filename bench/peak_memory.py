"""Peak memory of processes, from ``/proc`` (Linux): one's ``VmHWM``, or all descendants'."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path


def vm_hwm_mb(pid: int | str = "self") -> float:
    """A process's peak resident set (``VmHWM``), 0 when it is gone."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


class PeakSampler:
    """The largest ``VmHWM`` of this process's descendants (but ``exclude``), from ``/proc``.

    ``ru_maxrss`` of children is useless here: a child forked from this process (which
    holds every row) inherits its high-water mark across ``exec``. The process tree is
    scanned every 0.25 s and the known descendants read every 50 ms; ``cpu_s`` is this
    thread's own CPU time, so the worker's CPU can be counted without it.
    """

    def __init__(self) -> None:
        self.peak_kb = 0
        self.cpu_s = 0.0
        self.exclude: set[int] = set()
        self._known: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_mb(self) -> float:
        return self.peak_kb / 1024

    def _run(self) -> None:
        tick = 0
        while True:
            started = time.thread_time()
            if tick % 5 == 0:
                self._known = self._descendants()
            self._sample()
            self.cpu_s += time.thread_time() - started
            tick += 1
            if self._stop.wait(0.05):
                return

    def _descendants(self) -> list[int]:
        parents: dict[int, int] = {}
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                with contextlib.suppress(OSError, IndexError, ValueError):
                    fd = os.open(f"/proc/{entry.name}/stat", os.O_RDONLY)
                    try:
                        stat = os.read(fd, 1024)
                    finally:
                        os.close(fd)
                    parents[int(entry.name)] = int(stat.rsplit(b")", 1)[1].split()[1])
        me, found = os.getpid(), []
        for pid in parents:
            ancestor, hops = parents.get(pid), 0
            while ancestor not in (None, me, 0, 1) and ancestor not in self.exclude and hops < 20:
                ancestor, hops = parents.get(ancestor), hops + 1
            if ancestor == me and pid not in self.exclude:
                found.append(pid)
        return found

    def _sample(self) -> None:
        for pid in self._known:
            self.peak_kb = max(self.peak_kb, int(vm_hwm_mb(pid) * 1024))
