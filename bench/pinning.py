"""Which cores the server and the local PostgreSQL may run on, for a benchmark's run (Linux).

On a machine of two cores shared by the server, PostgreSQL and the benchmark's client, the
scheduler moves the server's threads and the database's backends from core to core as they
wake; with two users pushing at once, the server process then used about a fifth more CPU per
batch than with one, and a push waited for it (bench/RESULTS.md, 2026-12-04). Giving each its
own core (``bench/sync.py --server-cpus 0 --database-cpus 1``) is what an operator does with
``taskset``, systemd's ``CPUAffinity=`` or compose's ``cpuset``; these options let a run
measure it both ways.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator

from bench import proc_cpu


def parse_cpus(text: str) -> set[int]:
    """``"1"``, ``"0,2"`` or ``"0-3"``: a set of CPU numbers, as ``taskset -c`` reads them."""
    cpus: set[int] = set()
    for part in text.split(","):
        low, _, high = part.strip().partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    if not cpus:
        raise ValueError(f"no CPUs in {text!r}")
    return cpus


def _check_supported() -> None:
    if not hasattr(os, "sched_setaffinity"):
        raise SystemExit("pinning to CPUs needs Linux (os.sched_setaffinity)")


def pin_child(cpus: set[int] | None) -> Callable[[], None] | None:
    """A ``preexec_fn`` that pins a child process (and so every thread it starts) to ``cpus``."""
    if cpus is None:
        return None
    _check_supported()
    return lambda: os.sched_setaffinity(0, cpus)


@contextlib.contextmanager
def postgres_pinned(cpus: set[int] | None) -> Iterator[None]:
    """Every process of the local PostgreSQL pinned to ``cpus`` meanwhile, the postmaster
    included (the backends it forks for new connections inherit its mask); every mask is put
    back afterwards, those of backends started meanwhile to the postmaster's."""
    if cpus is None:
        yield
        return
    _check_supported()
    before = {pid: os.sched_getaffinity(pid) for pid in proc_cpu.postgres_pids()}
    if not before:
        raise SystemExit("--database-cpus: no local postgres process found")
    everywhere = set().union(*before.values())
    try:
        for pid in before:
            _set(pid, cpus)
        yield
    finally:
        for pid in proc_cpu.postgres_pids():
            _set(pid, before.get(pid, everywhere))


def _set(pid: int, cpus: set[int]) -> None:
    with contextlib.suppress(ProcessLookupError):  # the process ended meanwhile
        os.sched_setaffinity(pid, cpus)
