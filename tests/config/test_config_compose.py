"""Composing defaults -> project ``config:`` -> command line, errors, and YAML round trips."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from vidpose.config import (
    VidposeConfig,
    compose_config,
    default_config,
    load_config,
    save_config,
    to_dict,
    to_yaml,
)
from vidpose.errors import ConfigError
from vidpose.project.settings import load_settings

PROJECT_FILE = "/data/mouse/vidpose.yaml"


def _error(project: dict | None = None, overrides: list[str] = ()) -> str:
    with pytest.raises(ConfigError) as err:
        compose_config(project, overrides, project_file=PROJECT_FILE)
    return str(err.value)


def test_no_layers_gives_the_typed_defaults():
    cfg = compose_config()
    assert isinstance(cfg, VidposeConfig)
    assert cfg == default_config()


def test_project_then_command_line_apply_in_order():
    project = {"training": {"max_epochs": 7, "batch_size": 8}, "model": {"backbone": "resnet18"}}
    cfg = compose_config(project, ["training.max_epochs=9", "training.lr=3e-4", "training.lr=5e-4"])
    assert cfg.training.max_epochs == 9  # command line beats project
    assert cfg.training.batch_size == 8  # project beats defaults
    assert cfg.model.backbone == "resnet18"
    assert cfg.training.lr == pytest.approx(5e-4)  # later override beats earlier
    assert cfg.data.image_height == 256  # untouched keys keep defaults


def test_project_values_are_converted_to_the_schema_types():
    # PyYAML reads 1e-3 as a string and `precision: 32` as an int.
    cfg = compose_config({"training": {"lr": "1e-3", "precision": 32, "weight_decay": 0}})
    assert cfg.training.lr == pytest.approx(1e-3) and isinstance(cfg.training.lr, float)
    assert cfg.training.precision == "32"
    assert isinstance(cfg.training.weight_decay, float)


def test_project_settings_file_integration(tmp_path: Path):
    (tmp_path / "vidpose.yaml").write_text(
        "config:\n  training: {max_epochs: 12, lr: 1e-4}\n  model:\n    losses: [temporal]\n"
    )
    settings = load_settings(tmp_path)
    cfg = compose_config(settings.config, ["training.max_epochs=3"])
    assert (cfg.training.max_epochs, cfg.training.lr, cfg.model.losses) == (3, 1e-4, ["temporal"])


def test_unknown_command_line_key_names_key_source_and_suggestion():
    msg = _error(overrides=["training.max_epoch=3"])
    assert "'training.max_epoch'" in msg
    assert "command line" in msg
    assert "did you mean 'training.max_epochs'" in msg.lower()


def test_unknown_project_key_names_the_project_file():
    msg = _error({"training": {"max_epoch": 3}})
    assert "'training.max_epoch'" in msg and PROJECT_FILE in msg
    assert "did you mean 'training.max_epochs'" in msg.lower()


@pytest.mark.parametrize(
    ("override", "suggestion"),
    [
        ("max_epochs=3", "training.max_epochs"),  # section left out
        ("training.image_height=64", "data.image_height"),  # wrong section
        ("trainig.lr=1", "training.lr"),  # misspelt section
        ("trainig={lr:1}", "training"),
        ("batch_size=8", "training.batch_size' or 'predict.batch_size"),  # ambiguous
    ],
)
def test_unknown_key_suggestions(override: str, suggestion: str):
    assert f"did you mean '{suggestion}'?" in _error(overrides=[override]).lower()


def test_section_must_be_a_mapping():
    msg = _error({"training": 5})
    assert "'training'" in msg and "mapping" in msg and PROJECT_FILE in msg


@pytest.mark.parametrize(
    ("override", "key", "expected"),
    [
        ("training.batch_size=abc", "training.batch_size", "expected int"),
        ("training.batch_size=3.5", "training.batch_size", "expected int"),
        ("training.batch_size=null", "training.batch_size", "expected int"),
        ("training.batch_size=true", "training.batch_size", "expected int"),
        ("training.compile=yes", "training.compile", "expected true or false"),
        ("training.lr=fast", "training.lr", "expected float"),
        ("model.backbone=true", "model.backbone", "expected one of convnext_tiny"),
        ("model.losses=temporal", "model.losses", "expected a list of equivariance, pca_multiview"),
        ("training.milestones=[a,b]", "training.milestones", "expected list of float"),
        ("losses.temporal.weight=abc", "losses.temporal.weight", "expected float"),
        ("losses.temporal=3", "losses.temporal", "expected a mapping of losses.temporal.*"),
        (
            "losses.pca_singleview.components=many",
            "losses.pca_singleview.components",
            "expected int or null",
        ),
    ],
)
def test_wrong_type_names_key_source_and_expected_type(override: str, key: str, expected: str):
    msg = _error(overrides=[override])
    assert f"'{key}'" in msg and "command line" in msg and expected in msg
    assert override in msg


def test_wrong_type_in_project_names_the_file():
    msg = _error({"data": {"split_seed": "four"}})
    assert "'data.split_seed'" in msg and PROJECT_FILE in msg and "expected int" in msg


@pytest.mark.parametrize(
    ("override", "now"),
    [
        ("losses.weights.temporal=0.1", "'losses.temporal.weight'"),
        ("losses.temporal_epsilon_px=5", "'losses.temporal.epsilon_px'"),
        ("losses.pca_epsilon_px=5", "'losses.pca_singleview.epsilon_px' and"),
        ("data.num_workers=2", "removed"),
    ],
)
def test_keys_of_earlier_versions_name_their_replacement(override: str, now: str):
    msg = _error(overrides=[override])
    assert "earlier vidpose" in msg and now in msg


def test_lists_and_optionals():
    cfg = compose_config(
        None,
        [
            "model.losses=[temporal,pca_singleview]",
            "losses.pca_singleview.components=5",
            "training.early_stopping_patience=10",
            "output.dir=/tmp/run 1",
        ],
    )
    assert cfg.model.losses == ["temporal", "pca_singleview"]
    assert cfg.losses.pca_singleview.components == 5
    assert cfg.training.early_stopping_patience == 10
    assert cfg.output.dir == "/tmp/run 1"
    key = "losses.pca_singleview.components"
    assert (
        compose_config(None, [f"{key}=5", f"{key}=null"]).losses.pca_singleview.components is None
    )
    assert compose_config(None, ["model.losses=[temporal]", "model.losses=[]"]).model.losses == []


def test_loss_sections_merge_from_project_and_command_line():
    cfg = compose_config(
        {"losses": {"temporal": {"weight": 3.0}}},
        ["losses.temporal={epsilon_px:5}", "losses.pca_singleview.weight=2"],
    )
    assert (cfg.losses.temporal.weight, cfg.losses.temporal.epsilon_px) == (3.0, 5.0)
    assert cfg.losses.pca_singleview.weight == 2.0 and cfg.losses.unimodal.weight == 0.1


def test_schema_keys_cannot_be_added_or_deleted():
    assert "without '+'" in _error(overrides=["+training.lr=1e-3"])
    msg = _error(overrides=["~training.lr"])
    assert "cannot be deleted" in msg and "training.lr=0.001" in msg


def test_whole_section_override():
    cfg = compose_config(None, ["training={batch_size:4,max_epochs:2}"])
    assert (cfg.training.batch_size, cfg.training.max_epochs) == (4, 2)
    assert "'training.nope'" in _error(overrides=["training={nope:1}"])


def test_bad_enum_value_lists_allowed_values_and_source():
    msg = _error(overrides=["training.optimizer=adamx"])
    assert "training.optimizer" in msg and "one of adam, adamw, sgd" in msg
    assert "did you mean 'adam'" in msg and "from command line" in msg
    msg = _error({"training": {"scheduler": "step"}})
    assert "training.scheduler" in msg and "none, multistep, cosine" in msg and PROJECT_FILE in msg


def test_int_choice_from_command_line():
    assert compose_config(None, ["training.precision=32"]).training.precision == "32"
    assert compose_config(None, ["model.heatmap_stride=2"]).model.heatmap_stride == 2
    assert "one of 2, 4" in _error(overrides=["model.heatmap_stride=3"])


def test_cross_field_error_names_both_keys_and_their_sources():
    msg = _error({"data": {"val_fraction": 0.5}}, ["data.test_fraction=0.6"])
    assert "val_fraction + test_fraction < 1" in msg
    assert f"data.val_fraction=0.5 from {PROJECT_FILE}" in msg
    assert "data.test_fraction=0.6 from command line" in msg


def test_all_issues_are_reported_together():
    msg = _error(overrides=["data.image_height=100", "model.context_frames=4", "training.lr=0"])
    assert re.search(r"data\.image_height must be a positive multiple of 32", msg)
    assert "model.context_frames must be odd" in msg
    assert "training.lr must be > 0" in msg


def test_cpu_float16_is_rejected():
    msg = _error(overrides=["training.device=cpu", "training.precision=16-mixed"])
    assert "training.precision" in msg and "training.device='cpu'" in msg


def test_sweep_is_refused_with_a_hint():
    msg = _error(overrides=["model.losses=temporal,unimodal"])
    assert "one value per key" in msg and "model.losses=[a,b]" in msg


def test_unparsable_override():
    msg = _error(overrides=["training.lr=="])
    assert "cannot parse override 'training.lr=='" in msg


def test_interpolation_is_resolved_and_bad_ones_named():
    cfg = compose_config(None, ["predict.batch_size=${training.batch_size}"])
    assert cfg.predict.batch_size == 16
    assert "predict.batch_size" in _error(overrides=["predict.batch_size=${training.nope}"])


def _non_default() -> VidposeConfig:
    return compose_config(
        {"training": {"max_epochs": 3}},
        [
            "training.lr=3e-4",
            "training.precision=32",
            "training.milestones=[0.3,0.6]",
            "model.losses=[temporal,pca_singleview]",
            "losses.temporal.weight=0.25",
            "losses.pca_singleview.components=4",
            "augment.rotation_deg=0",
            "output.dir=/tmp/models/run: 1",
        ],
    )


def test_yaml_round_trip_is_exact(tmp_path: Path):
    cfg = _non_default()
    path = tmp_path / "model" / "config.yaml"
    save_config(cfg, path)
    loaded = load_config(path)
    assert loaded == cfg
    assert loaded.training.precision == "32"
    assert loaded.losses.temporal.weight == 0.25
    assert to_yaml(loaded) == path.read_text()
    assert not list(path.parent.glob(".*tmp"))  # atomic write left nothing behind


def test_commented_yaml_loads_the_same(tmp_path: Path):
    cfg = _non_default()
    path = tmp_path / "config.yaml"
    path.write_text(to_yaml(cfg, comments=True))
    assert load_config(path) == cfg


def test_load_config_fills_missing_keys_and_rejects_unknown(tmp_path: Path):
    path = tmp_path / "config.yaml"
    path.write_text("training:\n  max_epochs: 5\n")
    cfg = load_config(path)
    assert cfg.training.max_epochs == 5 and cfg.training.batch_size == 16
    path.write_text("training:\n  max_epochz: 5\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in str(err.value) and "training.max_epochs" in str(err.value)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")


def test_to_dict_is_plain_nested_data():
    d = to_dict(default_config())
    assert d["training"]["lr"] == 1e-3 and d["losses"]["temporal"]["weight"] == 0.005


def test_config_of_an_earlier_version_loads_with_its_keys_migrated(tmp_path: Path):
    path = tmp_path / "config.yaml"
    path.write_text(
        "data: {image_height: 128, num_workers: 0, cache_images: true}\n"
        "losses:\n  weights: {temporal: 0.5, unimodal: 0.2}\n  temporal_epsilon_px: 7.0\n"
        "  pca_epsilon_percentile: 95.0\n"
        "unlabeled: {clip_length: 8, clips_per_step: 1}\n"
    )
    cfg = load_config(path)
    assert cfg.data.image_height == 128 and cfg.unlabeled.clip_length == 8
    assert (cfg.losses.temporal.weight, cfg.losses.unimodal.weight) == (0.5, 0.2)
    assert cfg.losses.pca_singleview.weight == 0.003  # not in the file: the default
    assert cfg.losses.temporal.epsilon_px == 7.0
    assert cfg.losses.pca_singleview.epsilon_percentile == 95.0
    assert cfg.losses.pca_multiview.epsilon_percentile == 95.0
