"""``ModelConfig``: everything needed to rebuild a reference or submitted architecture.

Data only: the architecture name is checked against :mod:`benchmark.models.registry`, never
against the builders in :mod:`benchmark.models.zoo`, so configs can be read, validated and
defaulted without importing model code.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields

from benchmark.errors import UserError, unknown_choice
from benchmark.models.registry import MODEL_REGISTRY, arch_spec

ACTIVATIONS = ("relu", "elu", "gelu", "leaky_relu", "silu", "tanh")
NORMS = ("none", "batch", "layer")
TASKS = ("node", "graph")
READOUTS = ("mean", "sum", "max")
# Fields each dataset fixes (its feature count, class count and task); the rest describe the model.
DATASET_FIELDS = ("in_channels", "out_channels", "task")
# Graph classification on small one-hot graphs (MUTAG: 7 atom types): dropping input features
# destroys the signal and mean pooling hides graph size; with these, GIN reaches 95% on MUTAG
# (seed 0) instead of the majority-class 75%.
GRAPH_TASK_DEFAULTS = {"dropout": 0.0, "readout": "sum"}


@dataclass
class ModelConfig:
    """Architecture hyper-parameters; round-trips through JSON (``to_json`` / ``from_json``).

    ``num_layers`` counts message-passing (or linear, for MLP) layers including the output layer
    for node tasks; ``GraphModel.num_hidden_layers`` tells which layers ``embed`` exposes.
    """

    arch: str
    in_channels: int
    out_channels: int
    hidden_channels: int = 64
    num_layers: int = 2
    activation: str = "relu"
    residual: bool = False
    dropout: float = 0.5
    norm: str = "none"
    task: str = "node"
    heads: int = 8  # attention heads (GAT, GATv2)
    attn_dropout: float = 0.6  # GAT / GATv2 attention dropout
    k_hops: int = 10  # propagation steps (APPNP, SGC)
    alpha: float = 0.1  # teleport (APPNP), initial residual (GCNII) or attention share (SGFormer)
    theta: float = 0.5  # identity-mapping strength (GCNII)
    readout: str = "mean"  # graph tasks

    def __post_init__(self) -> None:
        if self.arch not in MODEL_REGISTRY:
            raise unknown_choice("model", self.arch, MODEL_REGISTRY)
        for name, valid in (("activation", ACTIVATIONS), ("norm", NORMS), ("task", TASKS), ("readout", READOUTS)):
            if getattr(self, name) not in valid:
                raise unknown_choice(name, getattr(self, name), valid)
        for name in ("in_channels", "out_channels", "hidden_channels", "num_layers", "heads", "k_hops"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise UserError(f"ModelConfig.{name} must be a positive integer, got {value!r}")
        for name in ("dropout", "attn_dropout", "alpha", "theta"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise UserError(f"ModelConfig.{name} must be a number in [0, 1], got {value!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        if not isinstance(data, dict):
            raise UserError(f"model config must be a JSON object, got {type(data).__name__}")
        valid = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - valid)
        if unknown:
            raise UserError(f"unknown model config field(s) {unknown}; valid fields: {sorted(valid)}")
        missing = sorted({"arch", "in_channels", "out_channels"} - set(data))
        if missing:
            raise UserError(f"model config lacks required field(s) {missing}")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        return cls.from_dict(json.loads(text))


def default_config(arch: str, in_channels: int, out_channels: int, task: str = "node", **overrides) -> ModelConfig:
    """The registry's default config for ``arch``; ``overrides`` win."""
    spec = arch_spec(arch)
    task_defaults = GRAPH_TASK_DEFAULTS if task == "graph" else spec.node_defaults
    values = {**spec.defaults, **task_defaults, **overrides}
    return ModelConfig(arch=arch, in_channels=in_channels, out_channels=out_channels, task=task, **values)
