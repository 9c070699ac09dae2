"""Reference model zoo: registry, configs and ``build_model``.

Floors, lowest first (``a <- b``: ``b`` imports ``a``): ``registry`` (names and specs, data
only) <- ``config`` (``ModelConfig``, ``default_config``) <- ``base`` (blocks, ``GraphModel``)
<- ``zoo`` (one registered class per architecture), which also imports ``layers`` <-
``propagation`` (the message-passing layers). Importing this package imports ``zoo``, which
fills the registry.
"""
from benchmark.models.base import ConvStack, GraphModel
from benchmark.models.config import ModelConfig, default_config
from benchmark.models.registry import MODEL_REGISTRY, ArchSpec, model_names, register_architecture
from benchmark.models.zoo import build_model, count_parameters

__all__ = ["MODEL_REGISTRY", "ArchSpec", "ConvStack", "GraphModel", "ModelConfig", "build_model", "count_parameters",
           "default_config", "model_names", "register_architecture"]
