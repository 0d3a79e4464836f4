"""Ensembles: `vidpose train --seeds`, then `vidpose predict ENSEMBLE_DIR` (members + smoothed)."""

from __future__ import annotations

import json

import numpy as np

from vidpose.cli import main as cli_main
from vidpose.io import read_poses

TINY = [
    "model.backbone=resnet18",
    "model.pretrained=false",
    "model.heatmap_stride=2",
    "data.image_height=64",
    "data.image_width=64",
    "training.batch_size=4",
    "training.max_steps=3",
]


def test_train_and_predict_an_ensemble(tiny_project, tmp_path):
    ens = tmp_path / "ens"
    rc = cli_main(
        [
            "train",
            str(tiny_project),
            *TINY,
            "--seeds",
            "0,1",
            "--model-dir",
            str(ens),
            "--no-progress",
        ]
    )
    assert rc == 0
    info = json.loads((ens / "ensemble.json").read_text())
    assert info["members"] == ["seed0", "seed1"]
    cfg0 = (ens / "seed0" / "config.yaml").read_text()
    cfg1 = (ens / "seed1" / "config.yaml").read_text()
    assert "seed: 0" in cfg0 and "seed: 1" in cfg1
    # members share the split
    split0 = json.loads((ens / "seed0" / "model.json").read_text())["split"]
    split1 = json.loads((ens / "seed1" / "model.json").read_text())["split"]
    assert split0 == split1

    video = next((tiny_project / "videos").glob("*.mp4"))
    rc = cli_main(["predict", str(ens), str(video), "--device", "cpu", "--no-progress"])
    assert rc == 0
    m0 = read_poses(ens / "videos" / "seed0" / f"{video.stem}.csv")
    m1 = read_poses(ens / "videos" / "seed1" / f"{video.stem}.csv")
    smooth = read_poses(ens / "videos" / f"{video.stem}.csv")
    stats = read_poses(ens / "videos" / f"{video.stem}_ensemble.csv")
    assert m0.n_frames == m1.n_frames == smooth.n_frames == 48
    assert not np.allclose(m0.coords, m1.coords)  # members really differ
    assert not smooth.keypoint_columns  # x, y, likelihood: what every pose reader loads
    assert {"x_ens_var", "x_posterior_var"} <= set(stats.keypoint_columns)  # LP/EKS names
    assert np.array_equal(stats.coords, smooth.coords, equal_nan=True)
    assert np.isfinite(smooth.coords).all()

    # The report of an ensemble: labeled frames from the members' median, ensemble spread as
    # an outlier criterion of the smoothed video.
    from vidpose.viz.evaluate import evaluate

    res = evaluate(ens, device="cpu")
    text = res.report.read_text()
    assert "the median of 2 ensemble members" in text
    assert "ensemble of 2" in text and "ensemble disagrees" in text
    assert res.outliers.exists()
