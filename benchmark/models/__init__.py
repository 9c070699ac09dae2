"""Reference model zoo: registry, configs and ``build_model``."""
from benchmark.models.config import ModelConfig
from benchmark.models.zoo import (
    MODEL_REGISTRY,
    GraphModel,
    build_model,
    count_parameters,
    default_config,
    model_names,
)

__all__ = ["MODEL_REGISTRY", "GraphModel", "ModelConfig", "build_model", "count_parameters", "default_config", "model_names"]
