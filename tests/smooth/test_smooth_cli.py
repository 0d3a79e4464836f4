"""`vidpose smooth` from the command line: noisy members in, a smoother table out."""

from __future__ import annotations

import numpy as np

from vidpose.cli import main as cli_main
from vidpose.io import read_poses, write_poses
from vidpose.io.poses import Poses


def test_cli_smooth_reduces_error(tmp_path):
    rng = np.random.default_rng(0)
    n, k = 300, 3
    t = np.arange(n)[:, None]
    truth = np.stack(
        [100 + 30 * np.sin(t / 20 + np.arange(k)), 80 + 20 * np.cos(t / 25) + 0 * np.arange(k)],
        axis=-1,
    )
    paths = []
    for m in range(4):
        noisy = truth + rng.normal(0, 3.0, truth.shape)
        p = tmp_path / f"m{m}.csv"
        write_poses(
            Poses(
                coords=noisy,
                keypoints=["a", "b", "c"],
                frames=np.arange(n),
                likelihood=np.full((n, k), 0.9),
            ),
            p,
        )
        paths.append(str(p))
    out = tmp_path / "smooth.csv"
    assert cli_main(["smooth", *paths, "--out", str(out)]) == 0
    smoothed = read_poses(out)
    assert smoothed.n_frames == n and not smoothed.keypoint_columns
    header = (tmp_path / "smooth_ensemble.csv").read_text().splitlines()[2].split(",")
    assert header[1:10] == [
        "x", "y", "likelihood", "x_ens_median", "y_ens_median", "x_ens_var", "y_ens_var",
        "x_posterior_var", "y_posterior_var",
    ]  # fmt: skip
    first = read_poses(paths[0])
    err_member = np.nanmedian(np.linalg.norm(first.coords - truth, axis=-1))
    err_smooth = np.nanmedian(np.linalg.norm(smoothed.coords - truth, axis=-1))
    assert err_smooth < 0.5 * err_member
