"""Typed, validated configuration of training and prediction.

Compose once at the edge, then pass the typed :class:`VidposeConfig` (or its sections) down::

    from vidpose.config import compose_config
    cfg = compose_config(settings.config, ["training.max_epochs=50"], project_file=path)
    cfg.training.max_epochs  # 50

Layers: packaged ``defaults.yaml`` -> project ``vidpose.yaml`` ``config:`` -> command line.
See :mod:`vidpose.config.compose` for the override grammar and :mod:`vidpose.config.schema`
for every key.
"""

from vidpose.config.compose import (
    compose_config,
    compose_sweep,
    config_help,
    default_config,
    expand_sweep,
    load_config,
    save_config,
    to_dict,
    to_yaml,
)
from vidpose.config.schema import (
    AugmentConfig,
    DataConfig,
    FieldSpec,
    Issue,
    LossesConfig,
    ModelConfig,
    OutputConfig,
    PredictConfig,
    TrainingConfig,
    UnlabeledConfig,
    VidposeConfig,
    find_issues,
    schema_fields,
    validate_choices,
)

__all__ = [
    "AugmentConfig",
    "DataConfig",
    "FieldSpec",
    "Issue",
    "LossesConfig",
    "ModelConfig",
    "OutputConfig",
    "PredictConfig",
    "TrainingConfig",
    "UnlabeledConfig",
    "VidposeConfig",
    "compose_config",
    "compose_sweep",
    "config_help",
    "default_config",
    "expand_sweep",
    "find_issues",
    "load_config",
    "save_config",
    "schema_fields",
    "to_dict",
    "to_yaml",
    "validate_choices",
]
