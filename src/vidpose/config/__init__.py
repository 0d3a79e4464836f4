"""Typed, validated configuration of training and prediction.

Compose once at the edge, then pass the typed :class:`VidposeConfig` (or its sections) down::

    from vidpose.config import compose_config
    cfg = compose_config(settings.config, ["training.max_epochs=50"], project_file=path)
    cfg.training.max_epochs  # 50

Layers: the schema's defaults -> project ``vidpose.yaml`` ``config:`` -> command line.
See :mod:`vidpose.config.compose` for the override grammar and :mod:`vidpose.config.schema`
for every key.
"""

from vidpose.config.compose import (
    changed_keys,
    compose_config,
    compose_sweep,
    config_help,
    default_config,
    expand_sweep,
    load_config,
    migrate_legacy,
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
    get_key,
    schema_fields,
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
    "changed_keys",
    "compose_config",
    "compose_sweep",
    "config_help",
    "default_config",
    "expand_sweep",
    "find_issues",
    "get_key",
    "load_config",
    "migrate_legacy",
    "save_config",
    "schema_fields",
    "to_dict",
    "to_yaml",
]
