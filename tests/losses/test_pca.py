"""Pose-subspace fitting (vidpose.losses.pca) on synthetic poses with a known subspace."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vidpose.errors import ConfigError
from vidpose.losses.pca import (
    fit_multiview_pca,
    fit_pose_pca,
    multiview_reconstruction_error,
    pca_reconstruction_error,
)

EXAMPLE = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "mirror-mouse-example"


def shape_poses(
    seed: int,
    n_frames: int = 60,
    n_kp: int = 8,
    rank: int = 3,
    noise_px: float = 0.5,
    travel_px: float = 80.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Poses = mean shape + a ``rank``-dim shape subspace + a random translation + noise.

    The shape subspace (D = 2 * n_kp, columns orthonormal, each with zero centroid so it holds
    no translation) has per-component standard deviations 30, 20, 12, ... px. Every frame is
    moved by a translation of standard deviation ``travel_px`` around (300, 300), and every
    coordinate gets Gaussian noise of ``noise_px``.

    Returns:
        coords (n_frames, n_kp, 2) px, true basis (2 * n_kp, rank).
    """
    rng = np.random.default_rng(seed)
    basis = rng.normal(size=(n_kp, 2, rank))
    basis -= basis.mean(axis=0)
    basis = np.linalg.qr(basis.reshape(2 * n_kp, rank))[0]
    sd = np.array([30.0, 20.0, 12.0, 8.0, 5.0])[:rank]
    z = rng.normal(size=(n_frames, rank)) * sd
    mean_shape = rng.normal(size=(n_kp, 2)) * 20
    coords = (
        mean_shape
        + (z @ basis.T).reshape(n_frames, n_kp, 2)
        + 300
        + rng.normal(size=(n_frames, 1, 2)) * travel_px
        + rng.normal(size=(n_frames, n_kp, 2)) * noise_px
    )
    return coords, basis


def max_angle_deg(u: np.ndarray, v: np.ndarray) -> float:
    """Largest principal angle between the column spaces of u and v (orthonormal), degrees."""
    cos = np.linalg.svd(u.T @ v, compute_uv=False)
    return float(np.degrees(np.arccos(np.clip(cos.min(), -1.0, 1.0))))


def drop_keypoints(coords: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A copy of coords with ``fraction`` of the (frame, keypoint) entries set to NaN."""
    out = coords.copy()
    out[np.random.default_rng(seed).random(coords.shape[:2]) < fraction] = np.nan
    return out


# --- single view ---------------------------------------------------------------------------


def test_complete_data_recovers_rank_and_subspace():
    coords, basis = shape_poses(0)
    pca = fit_pose_pca(coords, range(8), variance=0.99)
    assert pca.n_components == 3
    assert pca.explained_variance_ratio >= 0.99
    assert max_angle_deg(pca.components, basis) < 1.0
    assert np.allclose(pca.components.T @ pca.components, np.eye(3), atol=1e-9)
    # translation invariant: the mean is a shape, its centroid is 0
    assert np.allclose(pca.mean.reshape(8, 2).mean(axis=0), 0.0, atol=1e-9)
    assert pca.explained_variance[0] == pytest.approx(30.0**2, rel=0.4)


def test_missing_entries_use_incomplete_rows_better_than_dropping_them():
    """20 % of keypoints missing at random: ~1 row in 6 is complete."""
    em_angles, complete_angles = [], []
    for seed in range(4):
        coords, basis = shape_poses(seed, n_frames=40, noise_px=1.0)
        holes = drop_keypoints(coords, 0.2, seed=100 + seed)
        complete = ~np.isnan(holes).any(axis=(1, 2))
        assert 4 <= complete.sum() <= 14
        em = fit_pose_pca(holes, range(8), n_components=3)
        only_complete = fit_pose_pca(holes[complete], range(8), n_components=3)
        assert em.n_frames == 40
        em_angles.append(max_angle_deg(em.components, basis))
        complete_angles.append(max_angle_deg(only_complete.components, basis))
    assert max(em_angles) < 6.0
    assert all(e < c for e, c in zip(em_angles, complete_angles)), (em_angles, complete_angles)
    assert np.mean(em_angles) < 0.6 * np.mean(complete_angles)


def test_epsilon_is_the_labels_own_error_percentile():
    coords, _ = shape_poses(1, n_frames=300, noise_px=1.0)
    pca = fit_pose_pca(coords, range(8), n_components=3, epsilon_percentile=99.0)
    assert pca.epsilon_px.shape == (8,)
    err = pca_reconstruction_error(coords, pca)
    exceed = (err > pca.epsilon_px + 1e-9).mean(axis=0)
    assert np.all(exceed <= 0.011)
    assert np.all(pca.epsilon_px > 0.5)  # noise of 1 px per coordinate is not zero error
    fixed = fit_pose_pca(coords, range(8), n_components=3, epsilon_px=7.5)
    assert np.array_equal(fixed.epsilon_px, np.full(8, 7.5))


def test_keypoint_subset_and_errors_numpy_match_torch():
    coords, _ = shape_poses(2, n_kp=8)
    extra = np.concatenate([coords, np.random.default_rng(0).normal(size=(60, 2, 2))], axis=1)
    idx = [3, 0, 1, 2, 4, 5, 6, 7]  # the 8 shape keypoints (reordered), not the 2 noise ones
    pca = fit_pose_pca(extra, idx, n_components=3)
    off = extra[:5].copy()
    off[0, 3] += [25.0, -10.0]
    err_np = pca_reconstruction_error(off, pca)
    err_t = pca_reconstruction_error(torch.tensor(off, dtype=torch.float32), pca)
    assert err_np.shape == (5, 8)
    assert torch.allclose(err_t, torch.tensor(err_np, dtype=torch.float32), atol=1e-3)
    assert err_np[0].argmax() == 0 and err_np[0, 0] > 10.0  # column 0 is keypoint 3
    assert np.all(err_np[1:] < 5.0)
    nan_pose = off.copy()
    nan_pose[2, 5] = np.nan
    assert np.isnan(pca_reconstruction_error(nan_pose, pca)[2]).all()
    # a missing keypoint that is not a PCA keypoint does not matter
    nan_pose[3, 9] = np.nan
    assert np.isfinite(pca_reconstruction_error(nan_pose, pca)[3]).all()


def test_translation_invariance_versus_raw_coordinates():
    """Labels that never leave one spot: a pose moved 200 px away is still a valid shape."""
    coords, _ = shape_poses(3, travel_px=0.0)
    moved = coords[:4] + np.array([200.0, -150.0])
    centred = fit_pose_pca(coords, range(8), n_components=3)
    raw = fit_pose_pca(coords, range(8), n_components=3, align="none")
    assert not raw.translation_invariant
    assert np.all(pca_reconstruction_error(moved, centred) < 5.0)
    assert np.all(pca_reconstruction_error(moved, raw).mean(axis=1) > 30.0)


def body_poses(seed: int, n_frames: int, noise_px: float = 0.3) -> np.ndarray:
    """(n_frames, 8, 2) poses: a fixed body shape (~40 px across) deformed along 3 fixed modes
    (sd 8, 5 and 3 px), at (300, 300), plus noise; the same body for every call."""
    rng = np.random.default_rng(1234)
    mean_shape = rng.normal(size=(8, 2)) * 40
    basis = rng.normal(size=(8, 2, 3))
    basis -= basis.mean(axis=0)
    basis = np.linalg.qr(basis.reshape(16, 3))[0]
    draw = np.random.default_rng(seed)
    z = draw.normal(size=(n_frames, 3)) * [8.0, 5.0, 3.0]
    noise = draw.normal(size=(n_frames, 8, 2)) * noise_px
    return mean_shape + (z @ basis.T).reshape(n_frames, 8, 2) + 300 + noise


def similar_poses(coords: np.ndarray, seed: int, scale=(0.6, 1.6)) -> np.ndarray:
    """Each pose turned by a random angle and scaled about its centroid."""
    rng = np.random.default_rng(seed)
    n = coords.shape[0]
    theta = rng.uniform(-np.pi, np.pi, n)
    s = rng.uniform(*scale, n)
    rot = np.stack([np.cos(theta), -np.sin(theta), np.sin(theta), np.cos(theta)], -1)
    rot = rot.reshape(n, 2, 2) * s[:, None, None]
    c = coords.mean(axis=1, keepdims=True)
    return np.einsum("nij,nkj->nki", rot, coords - c) + c


def test_similarity_alignment_ignores_rotation_and_size():
    """Labels turned and scaled at random: the similarity model keeps the true shape rank and
    finds turned, resized new poses plausible; the translation-only model does neither."""
    labels = similar_poses(body_poses(11, 120), seed=1)
    sim = fit_pose_pca(labels, range(8), variance=0.99, align="similarity")
    trans = fit_pose_pca(labels, range(8), variance=0.99, align="translation")
    assert sim.align == "similarity" and 0.6 < sim.scale_px / 40 < 2.0
    assert sim.n_components == 3  # the true shape modes; turning and size take none
    new = similar_poses(body_poses(12, 20), seed=2, scale=(1.8, 2.2))  # bigger than any label
    sim_err = np.median(pca_reconstruction_error(new, sim))
    assert sim_err < 2.0
    assert np.median(pca_reconstruction_error(new, trans)) > 2 * sim_err
    # a keypoint moved 30 px off the shape is caught at any rotation and size
    off = new.copy()
    off[:, 5] += [30.0, 0.0]
    err = pca_reconstruction_error(off, sim)
    assert np.all(err.argmax(axis=1) == 5) and np.all(err[:, 5] > 12.0)
    # the error is in px of the pose itself: the same shape twice as large, twice the error
    c = off.mean(axis=1, keepdims=True)
    np.testing.assert_allclose(pca_reconstruction_error(2 * (off - c) + c, sim), 2 * err, rtol=1e-6)


def test_similarity_alignment_with_missing_labels():
    labels = drop_keypoints(similar_poses(body_poses(13, 80), seed=3), 0.15, seed=4)
    pca = fit_pose_pca(labels, range(8), n_components=3, align="similarity")
    fresh = similar_poses(body_poses(14, 10), seed=5)
    assert np.median(pca_reconstruction_error(fresh, pca)) < 2.5


def test_similarity_torch_matches_numpy_and_shrinking_never_pays():
    labels = similar_poses(body_poses(15, 60, noise_px=0.5), seed=6)
    pca = fit_pose_pca(labels, range(8), n_components=3, align="similarity")
    poses = labels[:6].copy()
    poses[:, 2] += [15.0, -9.0]
    err_np = pca_reconstruction_error(poses, pca)
    x = torch.tensor(poses, dtype=torch.float32, requires_grad=True)
    err_t = pca_reconstruction_error(x, pca)
    assert torch.allclose(err_t, torch.tensor(err_np, dtype=torch.float32), atol=1e-3)
    err_t.sum().backward()
    g = x.grad.numpy().astype(np.float64)
    centred = poses - poses.mean(axis=1, keepdims=True)
    turned = np.stack([-centred[..., 1], centred[..., 0]], axis=-1)
    unit = lambda v: v / np.linalg.norm(v.reshape(len(v), -1), axis=1)[:, None, None]  # noqa: E731
    for direction in (unit(centred), unit(turned), np.ones_like(poses) / 4.0):
        along = np.abs((g * direction).sum(axis=(1, 2)))
        assert np.all(along < 1e-3 * np.linalg.norm(g.reshape(6, -1), axis=1)), along
    # the margin grows with the pose's size
    from vidpose.losses.pca import pca_margin

    xs = torch.tensor(poses, dtype=torch.float32)
    c = xs.mean(dim=1, keepdim=True)
    assert torch.allclose(pca_margin(2 * (xs - c) + c, pca), 2 * pca_margin(xs, pca), rtol=1e-5)
    # every keypoint at one point: finite error and gradient
    y = torch.full((1, 8, 2), 50.0, requires_grad=True)
    pca_reconstruction_error(y, pca).sum().backward()
    assert torch.isfinite(y.grad).all()


def test_models_saved_before_align_still_load():
    coords, _ = shape_poses(14)
    pca = fit_pose_pca(coords, range(8), n_components=3)
    old = pca.to_dict()
    del old["align"], old["scale_px"]
    old["translation_invariant"] = True
    back = type(pca).from_dict(old)
    assert back.align == "translation"
    np.testing.assert_allclose(
        pca_reconstruction_error(coords, back), pca_reconstruction_error(coords, pca)
    )
    old["translation_invariant"] = False
    assert type(pca).from_dict(old).align == "none"


def test_identical_shapes_give_zero_components():
    coords, _ = shape_poses(4, rank=1, noise_px=0.0)
    coords = np.repeat(coords[:1], 10, axis=0) + np.arange(10)[:, None, None]  # translations
    pca = fit_pose_pca(coords, range(8))
    assert pca.n_components == 0
    assert pca_reconstruction_error(coords, pca).max() < 1e-6


def test_too_few_frames_names_the_counts():
    coords, _ = shape_poses(5, n_frames=6)
    coords[3:, 1:] = np.nan  # frames 3..5 keep one keypoint: not usable
    with pytest.raises(ConfigError, match=r"at least 4 labeled frames.*got 3 \(of 6 frames\)"):
        fit_pose_pca(coords, range(8), n_components=3)
    with pytest.raises(ConfigError, match=r"at least 2 labeled frames.*got 1 \(of 1 frames\)"):
        fit_pose_pca(coords[:1], range(8))


def test_rarely_labeled_keypoint_is_named():
    coords, _ = shape_poses(6)
    coords[1:, 5] = np.nan
    names = [f"kp{i}" for i in range(8)]
    with pytest.raises(ConfigError, match=r"'kp5' \(index 5\) is labeled in 1 usable frame"):
        fit_pose_pca(coords, range(8), keypoint_names=names)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"keypoint_idx": []}, "no keypoints"),
        ({"keypoint_idx": [0, 8]}, "out of range"),
        ({"keypoint_idx": [0, 0, 1]}, "repeated"),
        ({"keypoint_idx": [2]}, "at least 2 keypoints"),
        ({"n_components": 14}, r"use 1\.\.13"),
        ({"variance": 1.5}, "variance"),
        ({"epsilon_px": -1.0}, "epsilon_px"),
    ],
)
def test_bad_settings_raise_config_error(kwargs, message):
    coords, _ = shape_poses(7)
    args = {"keypoint_idx": range(8), **kwargs}
    with pytest.raises(ConfigError, match=message):
        fit_pose_pca(coords, **args)


# --- multiview -----------------------------------------------------------------------------


def multiview_poses(
    seed: int, n_frames: int = 40, n_parts: int = 5, n_views: int = 2, noise_px: float = 0.3
) -> tuple[np.ndarray, np.ndarray]:
    """``n_parts`` 3D points seen by ``n_views`` random affine cameras.

    Keypoints are laid out view by view: keypoint ``v * n_parts + m`` is body part m in view v.
    3D points wander with standard deviation 50 (world units); each camera is a random 2 x 3
    matrix plus an offset of a few hundred px; noise ``noise_px`` per coordinate.

    Returns:
        coords (n_frames, n_views * n_parts, 2) px, view_matches (n_parts, n_views).
    """
    rng = np.random.default_rng(seed)
    points = rng.normal(size=(n_frames, n_parts, 3)) * 50
    views = []
    for _ in range(n_views):
        cam, offset = rng.normal(size=(2, 3)), rng.uniform(100, 500, size=2)
        views.append(points @ cam.T + offset)
    coords = np.concatenate(views, axis=1)
    coords += rng.normal(size=coords.shape) * noise_px
    matches = np.arange(n_views * n_parts).reshape(n_views, n_parts).T
    return coords, matches


def test_multiview_consistent_views_fit_and_mismatched_views_do_not():
    coords, matches = multiview_poses(0, noise_px=1.0)
    mv = fit_multiview_pca(coords, matches)
    assert mv.n_components == 3 and mv.epsilon_px.shape == (5, 2)
    assert mv.explained_variance_ratio > 0.99
    err = multiview_reconstruction_error(coords, mv)
    assert err.shape == (40, 5, 2)
    assert np.median(err) < 2.0
    bad = coords.copy()
    bad[:, matches[:, 1], 1] += 40.0  # view 1's y is off by 40 px for every body part
    assert np.median(multiview_reconstruction_error(bad, mv)) > 8.0
    swapped = coords.copy()  # body parts 0 and 1 swapped in view 1 only
    swapped[:, [matches[0, 1], matches[1, 1]]] = swapped[:, [matches[1, 1], matches[0, 1]]]
    assert np.median(multiview_reconstruction_error(swapped, mv)[:, :2]) > 10.0


def test_multiview_three_views_with_partial_observations():
    coords, matches = multiview_poses(1, n_views=3, noise_px=0.0)
    truth = fit_multiview_pca(coords, matches)
    holes = coords.copy()
    rng = np.random.default_rng(0)
    holes[rng.random(holes.shape[:2]) < 0.25] = np.nan
    mv = fit_multiview_pca(holes, matches)
    assert mv.n_observations > (~np.isnan(holes[:, matches]).any(axis=(2, 3))).sum()
    assert max_angle_deg(mv.components, truth.components) < 2.0


def test_multiview_errors():
    coords, matches = multiview_poses(2, n_frames=3, n_parts=1)
    with pytest.raises(ConfigError, match="at least 2 views"):
        fit_multiview_pca(coords, matches[:, :1])
    with pytest.raises(ConfigError, match="at least one row"):
        fit_multiview_pca(coords, np.zeros((0, 2), dtype=int))
    with pytest.raises(ConfigError, match=r"needs at least 4 .*got 3 \(3 frames x 1 matched"):
        fit_multiview_pca(coords, matches)
    with pytest.raises(ConfigError, match=r"n_components must be in 1\.\.3"):
        fit_multiview_pca(coords, matches, n_components=4)
    with pytest.raises(ConfigError, match="out of range"):
        fit_multiview_pca(coords, matches + 5)


def test_multiview_on_the_mirror_mouse_labels():
    """Top and bottom (mirror) views of the same mouse: paws, tail and nose are matched."""
    csv = EXAMPLE / "CollectedData.csv"
    if not csv.exists():
        pytest.skip(f"example project not found at {EXAMPLE}")
    import pandas as pd

    table = pd.read_csv(csv, header=[0, 1, 2], index_col=0)
    names = list(dict.fromkeys(table.columns.get_level_values(1)))
    coords = table.to_numpy(dtype=float).reshape(len(table), len(names), 2)
    matches = [
        [names.index(n), names.index(n[: -len("_top")] + "_bot")]
        for n in names
        if n.endswith("_top") and n[: -len("_top")] + "_bot" in names
    ]
    assert len(matches) == 7
    mv = fit_multiview_pca(coords, matches)
    assert mv.explained_variance_ratio > 0.99
    err = multiview_reconstruction_error(coords, mv)
    assert np.nanmedian(err) < 3.0
    # a bottom-view prediction 30 px off along the track breaks the mirror geometry
    shifted = coords.copy()
    shifted[:, [b for _, b in matches], 0] += 30.0
    assert np.nanmedian(multiview_reconstruction_error(shifted, mv)) > 10.0


def test_fitted_subspaces_round_trip_through_json():
    import json

    coords, _ = shape_poses(8)
    pca = fit_pose_pca(coords, [4, 0, 1, 2, 3], n_components=2)
    back = type(pca).from_dict(json.loads(json.dumps(pca.to_dict())))
    np.testing.assert_array_equal(back.keypoint_idx, pca.keypoint_idx)
    np.testing.assert_allclose(
        pca_reconstruction_error(coords, back), pca_reconstruction_error(coords, pca)
    )
    flat = fit_pose_pca(np.repeat(coords[:1], 5, axis=0), range(8))  # C = 0
    assert type(flat).from_dict(flat.to_dict()).components.shape == (16, 0)

    views, matches = multiview_poses(3)
    mv = fit_multiview_pca(views, matches)
    mv_back = type(mv).from_dict(json.loads(json.dumps(mv.to_dict())))
    np.testing.assert_array_equal(mv_back.view_matches, matches)
    np.testing.assert_allclose(
        multiview_reconstruction_error(views, mv_back), multiview_reconstruction_error(views, mv)
    )
