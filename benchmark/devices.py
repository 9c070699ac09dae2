"""One check for a user-given torch device, so ``--device cuda`` on a CPU-only machine is one line, not a traceback."""
from __future__ import annotations

import torch

from benchmark.errors import UserError


def check_device(device: str | torch.device) -> torch.device:
    """``device`` as a ``torch.device`` that exists on this machine, else a :class:`UserError` saying what does."""
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise UserError(f"device {device!r} is not a torch device ({err}); use cpu, cuda or cuda:<index>") from None
    available = ["cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if parsed.type == "cuda" and (not torch.cuda.is_available() or (parsed.index or 0) >= torch.cuda.device_count()):
        raise UserError(f"device {device!r} is not available on this machine (torch {torch.__version__}, "
                        f"devices: {', '.join(available)})")
    if parsed.type not in ("cpu", "cuda"):
        raise UserError(f"device {device!r} is not supported; devices here: {', '.join(available)}")
    return parsed
