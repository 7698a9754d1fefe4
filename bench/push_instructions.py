"""Instructions per push, counted by valgrind's callgrind: a figure that does not move with the
machine's load or clock, for telling apart two versions of the code whose times differ by less
than the noise of a shared machine.

It runs what ``bench/push_cpu.py`` runs (the push endpoint's work between reading the body and
writing the answer, batches of 500 from ``bench/sync.py``'s device, one user, a fresh store)
twice under callgrind, once pushing ``--low`` batches and once ``--high``, each after the same
warm-up, and prints the difference divided by the batches between: the instructions of this
process (the Python side; the database's are not counted) per batch. Both runs generate the same
bodies, so setting up costs the same in each. Needs ``valgrind`` (Debian: ``apt-get install
valgrind``); each run takes a minute or so, the two run side by side.

    .venv/bin/python bench/push_instructions.py [--backend postgres|sqlite] [--low 2] [--high 6]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

_COLLECTED = re.compile(r"Collected : (\d+)")


def _push_batches(backend: str, batches: int, generated: int) -> None:
    """The measured process: warm up, then push ``batches`` of the ``generated`` bodies."""
    from bench.push_cpu import handle
    from bench.rebuild import fresh
    from bench.sync import Device
    from sync_server.app import tune_collector
    from sync_server.push import Origin

    device = Device(random.Random(7))
    warm = [device.batch(100)[0] for _ in range(4)]
    bodies = [device.batch(500)[0] for _ in range(generated)]
    with tempfile.TemporaryDirectory() as tmp, fresh(backend, tmp, "instr") as store:
        origin = Origin(uuid.uuid4(), device.client_id)
        for body in warm:
            handle(store, body, origin)
        tune_collector()
        for body in bodies[:batches]:
            handle(store, body, origin)


def _counted(backend: str, batches: int, generated: int) -> subprocess.Popen[str]:
    command = [
        "valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
        sys.executable, os.path.abspath(__file__), "--backend", backend,
        "--run", str(batches), "--generate", str(generated),
    ]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _instructions(process: subprocess.Popen[str]) -> int:
    _, stderr = process.communicate()
    found = _COLLECTED.search(stderr)
    if process.returncode != 0 or found is None:
        raise RuntimeError(f"the run under callgrind failed:\n{stderr[-2000:]}")
    return int(found.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--low", type=int, default=2)
    parser.add_argument("--high", type=int, default=6)
    parser.add_argument("--run", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--generate", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run is not None:
        _push_batches(args.backend, args.run, args.generate)
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (Debian: apt-get install valgrind)", file=sys.stderr)
        return 2
    if not 0 <= args.low < args.high:
        parser.error("--low must be below --high")
    runs = [_counted(args.backend, n, args.high) for n in (args.low, args.high)]
    low, high = (_instructions(run) for run in runs)
    per_batch = (high - low) / (args.high - args.low)
    print(f"{args.backend}: {per_batch / 1e6:.1f} M instructions per batch of 500 ops "
          f"({per_batch / 500:,.0f} per op), this process only")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
