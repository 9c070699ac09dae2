"""Where the work of a command runs: in this process (the default) or as tasks on a Ray cluster.

``build-release`` and ``evaluate`` are lists of independent units (a release's shards, one
submission's scores); ``--executor ray`` hands those units to Ray (:mod:`.ray_build`,
:mod:`.ray_evaluate`), which schedules them on one machine or many. Ray is an optional extra
(``pip install -e ".[ray]"``): nothing here imports it at module import, so the default install
and the in-process commands never need it (:mod:`.ray_cluster` imports it when a command asks).
"""
from __future__ import annotations

from benchmark.errors import UserError

EXECUTORS = ("local", "ray")


def check_executor(executor: str, address: str | None) -> None:
    """Refuse an unknown executor, and an ``--address`` given without ``--executor ray``."""
    if executor not in EXECUTORS:
        from benchmark.errors import unknown_choice

        raise unknown_choice("executor", executor, EXECUTORS)
    if address is not None and executor != "ray":
        raise UserError(f"--address {address} names a Ray cluster, which only --executor ray uses "
                        f"(got --executor {executor})")
