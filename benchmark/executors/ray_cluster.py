"""Connecting a command to Ray: an existing cluster by address, or a local instance on this machine.

Contract:

- :func:`import_ray` is the only place that imports Ray; without the optional extra it raises a
  :class:`~benchmark.errors.UserError` saying how to install it, never an ``ImportError``.
- :func:`ray_session` with ``address=None`` starts a private Ray instance for the command and stops
  it on exit. That instance is bound to the loopback interface (its processes talk over 127.0.0.1
  only: a local instance is one machine, so nothing of it needs to listen on a network) and sends no
  usage statistics. With an address (``HOST:PORT`` of a head started by ``ray start --head``, or
  ``auto`` for the cluster this machine belongs to) it connects and, on exit, disconnects without
  stopping the cluster. If Ray is already initialised in this process (a test, a notebook), it is
  used as it is and left running.
- :func:`slots` is how many tasks of a given request the cluster can run at once; executors keep
  about that many in flight so that ``--max-sets``/``--max-minutes`` stop a build promptly.

Every node of a cluster needs this package and its dependencies installed, and the data root
(``METAMER_BENCH_DATA``) and cache (``METAMER_BENCH_CACHE``) set in the environment ``ray start``
runs in (README, "Building on a Ray cluster"). Outputs never need a shared file system: tasks
return bytes, and the driver writes them.
"""
from __future__ import annotations

import logging
import math
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from benchmark.errors import UserError

INSTALL_HINT = 'pip install "metamer-bench[ray]" (in a checkout: pip install -e ".[ray]")'
# Ray reads these when it is imported (the first) or when it starts processes (the second).
_LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": bind every Ray process to 127.0.0.1
_USAGE_ENV = "RAY_USAGE_STATS_ENABLED"


def ray_available() -> bool:
    """Whether Ray can be imported here (without importing it)."""
    import importlib.util

    return importlib.util.find_spec("ray") is not None


def import_ray(local: bool = False):
    """Import Ray, or raise a ``UserError`` saying how to install the extra.

    ``local``: the caller will start a local instance; then, if Ray is not imported yet, it is
    imported with its processes bound to the loopback interface (see the module docstring).
    """
    if local and "ray" not in sys.modules:
        os.environ.setdefault(_LOOPBACK_ENV, "0")
    os.environ.setdefault(_USAGE_ENV, "0")
    try:
        import ray
    except ImportError as err:
        raise UserError(f"--executor ray needs Ray, an optional extra that is not installed ({err}); "
                        f"install it with {INSTALL_HINT}, or leave out --executor to run in this process") from None
    return ray


@contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None) -> Iterator[object]:
    """Yield the ``ray`` module connected to ``address`` or to a fresh local instance (``num_cpus``:
    its CPU slots, default all cores); see the module docstring for what is started and stopped."""
    ray = import_ray(local=address is None)
    if ray.is_initialized():
        yield ray
        return
    kwargs = {"logging_level": logging.WARNING, "log_to_driver": True}
    if address is None:
        kwargs.update(num_cpus=num_cpus, include_dashboard=False)
    elif num_cpus is not None:
        raise UserError("num_cpus sizes a local Ray instance; a cluster given by address has its own")
    try:
        ray.init(address=address, **kwargs)
    except ConnectionError as err:
        raise UserError(f"cannot connect to a Ray cluster at {address!r} ({err}); start one with "
                        "`ray start --head` and pass the address it prints (HOST:PORT), or leave out "
                        "--address to start a local instance") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def slots(ray, num_cpus: float, num_gpus: float = 0.0, memory: int = 0) -> int:
    """How many tasks with this request the cluster has room for at once (at least 1)."""
    total = ray.cluster_resources()
    fits = [math.floor(total.get("CPU", 0.0) / num_cpus)] if num_cpus else []
    if num_gpus:
        fits.append(math.floor(total.get("GPU", 0.0) / num_gpus))
    if memory:
        fits.append(math.floor(total.get("memory", 0.0) / memory))
    return max(1, min(fits) if fits else 1)


def check_request(ray, num_cpus: float, num_gpus: float, memory: int, what: str) -> None:
    """Refuse a per-task request that no node of the cluster can ever satisfy (Ray would wait forever)."""
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    for node in nodes:
        if (node.get("CPU", 0.0) >= num_cpus and node.get("GPU", 0.0) >= num_gpus
                and node.get("memory", 0.0) >= memory):
            return
    largest = {k: max((n.get(k, 0.0) for n in nodes), default=0.0) for k in ("CPU", "GPU", "memory")}
    raise UserError(f"no node of the Ray cluster can run a {what} asking for {num_cpus:g} CPU, {num_gpus:g} GPU "
                    f"and {memory / 2**30:.1f} GiB of memory (largest node: {largest['CPU']:g} CPU, "
                    f"{largest['GPU']:g} GPU, {largest['memory'] / 2**30:.1f} GiB); lower the request "
                    "(--cpus-per-unit, --memory-per-unit) or add a larger node")


_SYSTEM_FAILURES = ("WorkerCrashedError", "NodeDiedError", "OutOfMemoryError", "ObjectLostError",
                    "OwnerDiedError", "ObjectReconstructionFailedError", "LocalRayletDiedError",
                    "RaySystemError", "TaskUnschedulableError", "ActorUnschedulableError")


def system_failure(ray, err: BaseException) -> bool:
    """A failure of the machinery (a worker or node died), not of the unit's code: worth a retry."""
    return any(isinstance(err, getattr(ray.exceptions, name)) for name in _SYSTEM_FAILURES
               if hasattr(ray.exceptions, name))


def task_error(ray, err: BaseException) -> BaseException:
    """The exception the task's own code raised, unwrapped from Ray's ``RayTaskError``."""
    if isinstance(err, ray.exceptions.RayTaskError):
        cause = getattr(err, "cause", None)
        if isinstance(cause, BaseException):
            return cause
    return err


def peak_rss_reset() -> None:
    """Reset this process's peak resident set (Linux: ``/proc/self/clear_refs``), so that a reused
    Ray worker reports each task's own peak; a no-op where the kernel does not offer it."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass


def peak_rss_mb() -> float | None:
    """Peak resident set of this process since the last :func:`peak_rss_reset`, in MiB (None if unknown)."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None
