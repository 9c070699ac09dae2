"""The architecture registry: name -> :class:`ArchSpec` (description, config and training defaults).

This module is data only: it imports no model code, so :mod:`benchmark.models.config` can
validate ``ModelConfig.arch`` without importing the builders. Architectures register
themselves: each one is a ``GraphModel`` subclass in :mod:`benchmark.models.zoo` carrying its
``spec`` and decorated with :func:`register_architecture`, so adding one is one class in one
place. The package ``benchmark.models`` imports the zoo, so the registry is complete before
any caller can look a name up (importing any ``benchmark.models.*`` module runs the package
first).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from benchmark.errors import UserError, unknown_choice


@dataclass(frozen=True)
class ArchSpec:
    """A registered architecture: a one-line description, config defaults and training defaults.

    ``defaults`` are :class:`~benchmark.models.config.ModelConfig` fields; ``node_defaults``
    apply to node-classification configs only (over ``defaults``); ``train`` are
    :class:`~benchmark.training.TrainConfig` fields. ``builder`` is the registered class
    (set by :func:`register_architecture`; not part of the spec's identity).
    """

    name: str
    description: str
    defaults: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    node_defaults: dict = field(default_factory=dict)
    builder: Any = field(default=None, compare=False, repr=False)


MODEL_REGISTRY: dict[str, ArchSpec] = {}


def register_architecture(cls):
    """Class decorator: register ``cls`` (a ``GraphModel`` subclass with a ``spec``) under ``cls.spec.name``.

    Registering a second class under a taken name is an error (it would silently change what a
    shipped config builds).
    """
    spec = getattr(cls, "spec", None)
    if not isinstance(spec, ArchSpec):
        raise UserError(f"{cls.__name__} needs a class attribute spec = ArchSpec(...) to be registered")
    if spec.name in MODEL_REGISTRY:
        raise UserError(f"architecture {spec.name!r} is already registered "
                        f"(by {MODEL_REGISTRY[spec.name].builder.__name__}); choose another name")
    MODEL_REGISTRY[spec.name] = replace(spec, builder=cls)
    return cls


def arch_spec(name: str) -> ArchSpec:
    """The registered spec of ``name``; an unknown name is a ``UserError`` listing the valid ones."""
    if name not in MODEL_REGISTRY:
        raise unknown_choice("model", name, MODEL_REGISTRY)
    return MODEL_REGISTRY[name]


def model_names() -> list[str]:
    return list(MODEL_REGISTRY)
