"""CPU time of processes and of the whole machine, read from Linux's ``/proc``.

A bench that knows only its own clock cannot tell which of server, database and client a
push waits for. These readings say how much CPU each used over a measurement, and how busy
the machine's cores were: on a machine of two cores a server process whose Python holds one
core all the time is the limit whatever the database does. Elsewhere than Linux every reading
is None and the benches print no such column.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_seconds(pid: int) -> float | None:
    """CPU seconds (user and system, all threads) the process ``pid`` has used so far."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICKS


def postgres_seconds() -> float | None:
    """CPU seconds used so far by every ``postgres`` process now running on this machine (the
    server's backends and its background processes): a local database's whole work."""
    if not os.path.isdir("/proc/self"):
        return None
    return sum(process_seconds(pid) or 0.0 for pid in postgres_pids())


def postgres_pids() -> list[int]:
    """The ids of every process named ``postgres`` now running on this machine."""
    pids = []
    for comm in glob.glob("/proc/[0-9]*/comm"):
        try:
            with open(comm) as name:
                if name.read().strip() == "postgres":
                    pids.append(int(comm.split("/")[2]))
        except OSError:  # the process ended meanwhile
            continue
    return pids


@dataclass(frozen=True)
class MachineTime:
    """Jiffies of all cores so far: in all, and idle (waiting for I/O counted as idle)."""

    total: int
    idle: int

    @classmethod
    def now(cls) -> MachineTime | None:
        try:
            with open("/proc/stat") as stat:
                values = [int(v) for v in stat.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        return cls(sum(values), values[3] + values[4])

    def busy_since(self, before: MachineTime) -> float:
        """The share of the cores' time that was busy between ``before`` and this reading."""
        total = self.total - before.total
        return 1 - (self.idle - before.idle) / total if total else 0.0
