"""A DeepLabCut project's config.yaml is honoured: bodyparts order, skeleton, pcutoff,
TrainingFraction; a multi-animal project is refused with what vidpose supports."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from vidpose.config import compose_config
from vidpose.errors import ProjectError
from vidpose.project import check_project, load_project
from vidpose.project.settings import load_dlc_config
from vidpose.viz.labeled_video import default_min_likelihood, find_settings_file, load_skeleton


def _dlc_config(project, **extra):
    base = load_project(project)
    (project / "vidpose.yaml").unlink(missing_ok=True)
    names = list(base.labels.keypoints)
    data = {
        "Task": "mouse",
        "bodyparts": names[::-1],
        "skeleton": [[names[0], names[1]]],
        "pcutoff": 0.6,
        "TrainingFraction": [0.8],
        **extra,
    }
    (project / "config.yaml").write_text(yaml.safe_dump(data))
    return base, names


def test_bodyparts_order_skeleton_and_training_fraction_are_honoured(tiny_project):
    base, names = _dlc_config(tiny_project)
    project = load_project(tiny_project)
    assert project.labels.keypoints == names[::-1]
    i = names.index(names[3])
    np.testing.assert_array_equal(
        project.labels.coords[:, len(names) - 1 - i], base.labels.coords[:, i]
    )
    assert project.settings.skeleton == [(names[0], names[1])]
    cfg = compose_config(project.settings.config, [])
    assert cfg.data.test_fraction == pytest.approx(0.2) and cfg.data.val_fraction == 0.0
    # a command-line override still wins
    assert (
        compose_config(project.settings.config, ["data.val_fraction=0.1"]).data.val_fraction == 0.1
    )
    assert load_skeleton(tiny_project) == [(names[0], names[1])]
    assert find_settings_file([tiny_project / "videos" / "session00.mp4"]).name == "config.yaml"
    cutoff, source = default_min_likelihood([tiny_project / "videos" / "session00.mp4"])
    assert cutoff == 0.6 and source == tiny_project / "config.yaml"


def test_bodyparts_that_differ_from_the_labels_are_a_check_error(tiny_project):
    _, names = _dlc_config(tiny_project)
    data = yaml.safe_load((tiny_project / "config.yaml").read_text())
    data["bodyparts"] = [*names[1:], "wing"]
    (tiny_project / "config.yaml").write_text(yaml.safe_dump(data))
    report = check_project(tiny_project)
    [problem] = [p for p in report.problems if p.code == "dlc-bodyparts-mismatch"]
    assert "'wing'" in problem.message and repr(names[0]) in problem.message
    with pytest.raises(ProjectError, match=r"config\.yaml"):
        load_project(tiny_project)


def test_multi_animal_and_foreign_config_files(tiny_project):
    _dlc_config(tiny_project, multianimalproject=True)
    with pytest.raises(ProjectError, match="multi-animal DeepLabCut project; vidpose is single"):
        load_dlc_config(tiny_project)
    (tiny_project / "config.yaml").write_text("some_other_tool: {a: 1}\n")
    assert load_dlc_config(tiny_project) is None
    load_project(tiny_project)  # another tool's config.yaml is not ours to judge
