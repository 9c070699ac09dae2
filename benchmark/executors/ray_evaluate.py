"""``evaluate a b ... --executor ray``: one Ray task per submission, results written by the driver.

Contract:

- Each entry is one task running :func:`benchmark.scoring.evaluate_submission`, the function the
  in-process ``evaluate`` runs, with the same release, bootstrap count and device, and torch on
  ``threads`` threads (``evaluate``'s ``--threads``, default 1). Its results document is therefore
  the in-process one, wall time and hardware aside (``tests/test_ray.py`` checks it against the
  committed results files with ``benchmark.reproduce``).
- The task returns the document; the driver writes it with :func:`benchmark.evaluate.write_results`
  (schema-checked, atomic: a results file is the old one or the new one, never half of either) as
  soon as that entry finishes, so a run stopped midway keeps every entry it finished.
- Entries are independent: one refused at intake (a ``UserError`` from its own code) does not stop
  the others; after all finish, :class:`~benchmark.errors.CheckFailed` names every entry that failed.
  A task whose worker or node died is resubmitted, ``max_attempts`` tries in all.
- Workers read the entry folders and the release at the paths given, so on a cluster of several
  machines those paths must be the same on every node (a shared or synchronised folder); on one
  machine nothing is needed. A worker keeps one loaded :class:`~benchmark.evaluate.Evaluator` per
  release, so its second entry does not load and verify the release again.

Scores v2's generated direction (one task per entry and seed) does not exist in the evaluator yet
(issue 12); this module has one task per entry.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from benchmark.errors import CheckFailed, UserError

MAX_ATTEMPTS = 3
_EVALUATORS: dict = {}  # (release path, bootstrap replicates) -> Evaluator, per worker process


def evaluate_task(entry: str, release: str, num_bootstrap: int, device: str, threads: int) -> dict:
    """Score one entry in a Ray worker; returns its results document and the task's timing."""
    import torch

    from benchmark.evaluate import Evaluator
    from benchmark.scoring import evaluate_submission
    from benchmark.executors.ray_cluster import peak_rss_mb, peak_rss_reset

    torch.set_num_threads(threads)
    peak_rss_reset()
    start = time.perf_counter()
    key = (release, num_bootstrap)
    if key not in _EVALUATORS:
        _EVALUATORS[key] = Evaluator(release, num_bootstrap=num_bootstrap)
    result = evaluate_submission(entry, release, num_bootstrap=num_bootstrap, device=device,
                                 evaluator=_EVALUATORS[key])
    return {"result": result, "task_s": round(time.perf_counter() - start, 3), "peak_rss_mb": peak_rss_mb(),
            "pid": os.getpid()}


def evaluate_with_ray(entries: Sequence[str | os.PathLike], release: str | os.PathLike, *,
                      outputs: Sequence[str | os.PathLike] | None = None, num_bootstrap: int,
                      device: str = "cpu", threads: int = 1, address: str | None = None,
                      num_cpus: int | None = None, memory: int | None = None, max_attempts: int = MAX_ATTEMPTS,
                      on_result: Callable[[dict, Path], None] | None = None) -> list[Path]:
    """Score ``entries`` on ``release`` as Ray tasks; write each results file; return their paths.

    ``outputs``: one results path per entry (default ``results_path(entry)``). ``memory``: bytes
    each task asks for (default: none asked). ``on_result(result, path)`` is called after each
    write (the CLI prints its summary line there). See the module docstring for failures.
    """
    from benchmark.evaluate import results_path, write_results
    from benchmark.executors.ray_cluster import ray_session, system_failure, task_error

    entries = [Path(e).resolve() for e in entries]
    if len(set(entries)) != len(entries):
        raise UserError(f"an entry is named twice: {[str(e) for e in entries]}")
    outs = [Path(o) for o in outputs] if outputs is not None else [results_path(e) for e in entries]
    if len(outs) != len(entries):
        raise UserError(f"{len(outs)} results paths for {len(entries)} entries")
    if threads < 1 or max_attempts < 1:
        raise UserError(f"threads and max_attempts must be >= 1, got {threads} and {max_attempts}")
    release = str(Path(release).resolve())
    written: list[Path] = []
    failed: dict[str, str] = {}
    with ray_session(address, num_cpus) as ray:
        remote = ray.remote(evaluate_task)
        request = {"num_cpus": threads, "num_gpus": 1 if device.startswith("cuda") else 0, "max_retries": 0,
                   **({"memory": memory} if memory else {})}
        in_flight: dict[object, tuple[int, int]] = {}

        def submit(i: int, attempt: int) -> None:
            ref = remote.options(name=f"evaluate/{entries[i].name}", **request).remote(
                str(entries[i]), release, num_bootstrap, device, threads)
            in_flight[ref] = (i, attempt)

        for i in range(len(entries)):
            submit(i, 1)
        while in_flight:
            ready, _ = ray.wait(list(in_flight), num_returns=1)
            i, attempt = in_flight.pop(ready[0])
            try:
                out = ray.get(ready[0])
            except Exception as err:  # noqa: BLE001 - sorted below: retry, or report the entry as failed
                if system_failure(ray, err) and attempt < max_attempts:
                    submit(i, attempt + 1)
                    continue
                cause = task_error(ray, err)
                if not isinstance(cause, UserError) and not system_failure(ray, err):
                    raise cause  # a bug, not a refusal: the traceback is what helps
                failed[entries[i].name] = f"{type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''}"
                continue
            path = write_results(out["result"], outs[i])
            written.append(path)
            if on_result is not None:
                on_result(out["result"], path)
    if failed:
        raise CheckFailed(f"{len(failed)} of {len(entries)} entries failed (the others' results are written): "
                          + "; ".join(f"{name}: {why}" for name, why in failed.items()))
    return written
