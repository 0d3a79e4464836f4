"""The schema itself: defaults, help, value checks and registry hooks (no composition)."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from vidpose.config import (
    VidposeConfig,
    config_help,
    default_config,
    find_issues,
    schema_fields,
    to_yaml,
)
from vidpose.config.schema import describe_type
from vidpose.losses import UNSUPERVISED_LOSSES

SRC = Path(__file__).resolve().parents[2] / "src" / "vidpose"


def test_defaults_come_from_the_dataclasses_and_the_loss_registry():
    assert default_config() == VidposeConfig()
    cfg = default_config()
    for spec in UNSUPERVISED_LOSSES:
        section = getattr(cfg.losses, spec.name)
        assert section.weight == spec.weight
        for f in dataclasses.fields(spec.params):
            assert getattr(section, f.name) == f.default, f"losses.{spec.name}.{f.name}"


def test_documented_defaults():
    cfg = default_config()
    assert (cfg.data.image_height, cfg.data.image_width) == (256, 256)
    assert cfg.model.backbone == "resnet50" and cfg.model.heatmap_stride == 4
    assert cfg.model.losses == []
    weights = {n: getattr(cfg.losses, n).weight for n in UNSUPERVISED_LOSSES.names()}
    assert weights == {
        "equivariance": 0.05,
        "temporal": 0.005,
        "pca_singleview": 0.003,
        "reprojection": 0.01,
        "pca_multiview": 0.01,
        "unimodal": 0.1,
    }
    assert cfg.losses.temporal.epsilon_px == 5.0 and cfg.losses.temporal.min_confidence == 0.05
    assert cfg.losses.pca_singleview.align == "similarity"
    assert cfg.losses.pca_singleview.components is None and cfg.output.dir is None
    assert cfg.training.max_steps == -1 and cfg.training.precision == "auto"
    assert isinstance(cfg.training.lr, float)


def test_default_mutable_fields_are_not_shared_between_instances():
    a, b = VidposeConfig(), VidposeConfig()
    a.model.losses.append("temporal")
    a.losses.temporal.weight = 5.0
    assert b.model.losses == [] and b.losses.temporal.weight == 0.005


def _attribute_reads() -> set[str]:
    """Every ``x.name`` attribute read in the package outside the config package."""
    names: set[str] = set()
    for path in SRC.rglob("*.py"):
        if "config" in path.relative_to(SRC).parts[:1]:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute):
                names.add(node.attr)
            elif (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", "") == "getattr"
                and len(node.args) > 1
                and isinstance(node.args[1], ast.Constant)
            ):
                names.add(str(node.args[1].value))
    return names


def test_every_config_key_is_read_by_some_code():
    """A key declared in the schema but read nowhere would be a promise the code breaks."""
    reads = _attribute_reads()
    # Loss sections are read generically: ``weight`` by build_unsupervised_losses, each
    # parameter by loss_params (getattr over the params dataclass) and the loss itself.
    unread = []
    for key in schema_fields():
        parts = key.split(".")
        if parts[0] == "losses" and len(parts) == 3:
            spec = UNSUPERVISED_LOSSES.get(parts[1])
            if parts[2] == "weight" or not any(
                f.name == parts[2] for f in dataclasses.fields(spec.params)
            ):
                continue
        if parts[-1] not in reads:
            unread.append(key)
    assert unread == []


def test_to_yaml_with_comments_documents_every_key():
    text = to_yaml(default_config(), comments=True)
    for key, spec in schema_fields().items():
        assert f"{key.rpartition('.')[2]}: " in text and spec.help in text, key


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
        ({"model__backbone": "resnet5"}, "model.backbone"),
        ({"model__losses": ["temporal", "pca_singelview"]}, "model.losses"),
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


def test_loss_sections_are_range_checked():
    cfg = VidposeConfig()
    cfg.losses.temporal.weight = -1.0
    cfg.losses.pca_singleview.variance = 1.5
    keys = [i.keys[0] for i in find_issues(cfg)]
    assert keys == ["losses.pca_singleview.variance", "losses.temporal.weight"]


def test_registry_names_are_checked_with_suggestions():
    cfg = VidposeConfig()
    cfg.model.backbone = "resnet5"
    cfg.model.head = "heatmpa"
    cfg.model.losses = ["temporal", "pca_singelview"]
    cfg.unlabeled.reader = "opencv"
    msgs = {i.keys[0]: i.message for i in find_issues(cfg)}
    assert "did you mean 'resnet50'" in msgs["model.backbone"]
    assert "resnet18" in msgs["model.backbone"]  # the allowed names are listed
    assert "did you mean 'heatmap'" in msgs["model.head"]
    assert (
        msgs["model.losses"].startswith("[1] 'pca_singelview' is no")
        and "'pca_singleview'" in msgs["model.losses"]
    )
    assert "auto" in msgs["unlabeled.reader"] and "pyav" in msgs["unlabeled.reader"]
