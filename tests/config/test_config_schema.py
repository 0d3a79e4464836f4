"""The schema itself: defaults, help, value checks and registry hooks (no composition)."""

from __future__ import annotations

from importlib import resources

import pytest
import yaml

from vidpose.config import (
    VidposeConfig,
    config_help,
    default_config,
    find_issues,
    schema_fields,
    validate_choices,
)
from vidpose.config.schema import describe_type
from vidpose.errors import ConfigError


def _flat_keys(data: dict, prefix: str = "") -> set[str]:
    keys = set()
    for k, v in data.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and not key.endswith("weights"):
            keys |= _flat_keys(v, key + ".")
        else:
            keys.add(key)
    return keys


def test_packaged_defaults_file_lists_every_key_and_matches_the_dataclasses():
    text = resources.files("vidpose.config").joinpath("defaults.yaml").read_text("utf-8")
    assert _flat_keys(yaml.safe_load(text)) == set(schema_fields())
    assert default_config() == VidposeConfig()


def test_documented_defaults():
    cfg = default_config()
    assert (cfg.data.image_height, cfg.data.image_width) == (256, 256)
    assert cfg.model.backbone == "resnet50" and cfg.model.heatmap_stride == 4
    assert cfg.model.losses == []
    assert cfg.losses.weights == {
        "temporal": 0.005,
        "pca_singleview": 0.01,
        "pca_multiview": 0.01,
        "unimodal": 0.1,
    }
    assert cfg.losses.pca_components is None and cfg.output.dir is None
    assert cfg.training.max_steps == -1 and cfg.training.precision == "auto"
    assert isinstance(cfg.data.num_workers, int) and isinstance(cfg.training.lr, float)


def test_default_mutable_fields_are_not_shared_between_instances():
    a, b = VidposeConfig(), VidposeConfig()
    a.model.losses.append("temporal")
    a.losses.weights["temporal"] = 5.0
    assert b.model.losses == [] and b.losses.weights["temporal"] == 0.005


def test_every_key_has_help_and_appears_in_config_help():
    text = config_help()
    for key, spec in schema_fields().items():
        assert spec.help, key
        assert f"  {key} = " in text, key
    assert "one of adam, adamw, sgd" in text  # choices are shown
    assert "int or null" in text  # optional types are shown


def test_describe_type():
    assert describe_type(int) == "int"
    assert describe_type(int | None) == "int or null"
    assert describe_type(list[str]).startswith("list of str")
    assert describe_type(dict[str, float]) == "mapping of str to float"


def test_defaults_have_no_issues():
    assert find_issues(VidposeConfig()) == []


def _with(**changes: object) -> VidposeConfig:
    cfg = VidposeConfig()
    for dotted, value in changes.items():
        section, name = dotted.split("__")
        setattr(getattr(cfg, section), name, value)
    return cfg


@pytest.mark.parametrize(
    ("changes", "first_key"),
    [
        ({"data__image_height": 100}, "data.image_height"),
        ({"data__image_width": 0}, "data.image_width"),
        ({"data__val_fraction": 0.5, "data__test_fraction": 0.5}, "data.val_fraction"),
        ({"model__heatmap_stride": 8}, "model.heatmap_stride"),
        ({"model__context_frames": 4}, "model.context_frames"),
        ({"model__losses": ["temporal", "temporal"]}, "model.losses"),
        ({"model__losses": ["temporal"], "unlabeled__clip_length": 1}, "unlabeled.clip_length"),
        ({"losses__weights": {"temporal": -1.0}}, "losses.weights"),
        ({"losses__pca_variance": 1.5}, "losses.pca_variance"),
        ({"training__optimizer": "adamx"}, "training.optimizer"),
        ({"training__precision": "16"}, "training.precision"),
        ({"training__milestones": [50.0, 75.0]}, "training.milestones"),
        ({"training__milestones": [0.75, 0.5]}, "training.milestones"),
        ({"training__max_steps": 0}, "training.max_steps"),
        ({"training__warmup_epochs": 100}, "training.warmup_epochs"),
        ({"training__device": "cpu", "training__precision": "16-mixed"}, "training.precision"),
        ({"augment__scale_min": 1.2}, "augment.scale_max"),
        ({"augment__hflip_prob": 1.5}, "augment.hflip_prob"),
        ({"predict__precision": "bf16-mixed"}, "predict.precision"),
        ({"unlabeled__reader": "opencv"}, "unlabeled.reader"),
    ],
)
def test_find_issues_names_the_key(changes, first_key):
    issues = find_issues(_with(**changes))
    assert [i.keys[0] for i in issues] == [first_key]


def test_temporal_clip_length_issue_names_both_keys():
    (issue,) = find_issues(_with(model__losses=["temporal"], unlabeled__clip_length=1))
    assert issue.keys == ("unlabeled.clip_length", "model.losses")


def test_validate_choices_accepts_registry_names_and_skips_none():
    cfg = VidposeConfig()
    cfg.model.losses = ["temporal"]
    validate_choices(cfg)  # nothing to check against
    validate_choices(
        cfg,
        backbones=["resnet18", "resnet50"],
        heads=["heatmap", "heatmap_fpn", "regression"],
        losses=["temporal", "pca_singleview", "pca_multiview", "unimodal"],
        supervised_losses=["heatmap_mse"],
    )


def test_validate_choices_reports_every_unknown_name_with_suggestions():
    cfg = VidposeConfig()
    cfg.model.backbone = "resnet5"
    cfg.model.head = "heatmpa"
    cfg.model.losses = ["temporal", "pca_singelview"]
    with pytest.raises(ConfigError) as err:
        validate_choices(
            cfg,
            backbones=["resnet18", "resnet50"],
            heads=["heatmap", "regression"],
            losses=["temporal", "pca_singleview", "pca_multiview", "unimodal"],
        )
    msg = str(err.value)
    assert "model.backbone" in msg and "'resnet50'" in msg and "resnet18, resnet50" in msg
    assert "model.head" in msg and "did you mean 'heatmap'" in msg
    assert "model.losses[1]" in msg and "did you mean 'pca_singleview'" in msg
    assert "model.losses[0]" not in msg


def test_validate_choices_checks_loss_weight_names():
    cfg = VidposeConfig()
    with pytest.raises(ConfigError, match=r"losses\.weights\.unimodal"):
        validate_choices(cfg, losses=["temporal", "pca_singleview", "pca_multiview"])
