"""Versions of the libraries that produced an artifact, recorded next to every score and file."""
from __future__ import annotations

import platform
from importlib import metadata

_TRACKED = (
    "torch", "torch_geometric", "numpy", "scipy", "pyarrow", "safetensors", "jsonschema", "datasets",
)


def library_versions() -> dict[str, str]:
    """``{package: version}`` for the packages whose behaviour can change a result."""
    versions = {"python": platform.python_version()}
    for name in _TRACKED:
        try:
            versions[name] = metadata.version(name.replace("_", "-"))
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    from benchmark import __version__

    versions["metamer_bench"] = __version__
    return versions


def hardware() -> dict[str, str | int]:
    import os

    import torch

    info: dict[str, str | int] = {
        "machine": platform.machine(),
        "processor": platform.processor() or "unknown",
        "cpu_count": os.cpu_count() or 0,
        "torch_threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name(0)
    return info
