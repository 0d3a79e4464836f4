"""Unsupervised losses (vidpose.losses.unsupervised) and their registry (vidpose.losses.registry).

Clips are tiny synthetic trajectories with known motion: a rigid body of K keypoints that
drifts and turns smoothly, optionally with one injected jump or an off-subspace pose.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from vidpose.config import VidposeConfig
from vidpose.errors import ConfigError
from vidpose.losses.pca import fit_multiview_pca, fit_pose_pca
from vidpose.losses.registry import (
    UNSUPERVISED_LOSSES,
    LossSetup,
    UnsupervisedInputs,
    UnsupervisedLoss,
    build_unsupervised_losses,
    ramp_weight,
    register_unsupervised_loss,
)
from vidpose.losses.unsupervised import (
    LossTerms,
    multiview_pca_loss,
    pca_loss,
    temporal_loss,
    temporal_norm,
    unimodal_loss,
)
from vidpose.models.heatmaps import gaussian_targets

K = 6


def rigid_clip(n_frames: int = 12, step_px: float = 3.0, seed: int = 0) -> np.ndarray:
    """A rigid body of K keypoints (radius ~30 px) that drifts ``step_px`` per frame in x and
    turns 2 degrees per frame; (n_frames, K, 2) px, every step well under 10 px."""
    rng = np.random.default_rng(seed)
    shape = rng.normal(size=(K, 2)) * 15
    t = np.arange(n_frames)[:, None]
    angle = np.radians(2.0 * t)
    cos, sin = np.cos(angle), np.sin(angle)
    x = cos * shape[:, 0] - sin * shape[:, 1] + 200 + step_px * t
    y = sin * shape[:, 0] + cos * shape[:, 1] + 150
    return np.stack([x, y], axis=-1)


def tensor(a: np.ndarray, grad: bool = False) -> torch.Tensor:
    return torch.tensor(a, dtype=torch.float32, requires_grad=grad)


def rigid_labels(n: int = 80, seed: int = 1) -> np.ndarray:
    """Label poses: the rigid body of :func:`rigid_clip` at random angles (+-40 deg) and
    places, with 0.3 px noise; (n, K, 2) px."""
    rng = np.random.default_rng(seed)
    shape = np.random.default_rng(0).normal(size=(K, 2)) * 15
    angle = np.radians(rng.uniform(-40, 40, size=(n, 1)))
    cos, sin = np.cos(angle), np.sin(angle)
    x = cos * shape[:, 0] - sin * shape[:, 1]
    y = sin * shape[:, 0] + cos * shape[:, 1]
    coords = np.stack([x, y], axis=-1) + rng.uniform(0, 400, size=(n, 1, 2))
    return coords + rng.normal(size=coords.shape) * 0.3


# --- temporal --------------------------------------------------------------------------------


def test_temporal_zero_on_smooth_motion_and_positive_on_a_jump():
    clip = rigid_clip()
    smooth = temporal_loss(tensor(clip), torch.ones(12, K), epsilon_px=10.0)
    assert isinstance(smooth, LossTerms)
    assert smooth.loss.item() == 0.0 and int(smooth.count) == 11 * K
    assert smooth.per_element.shape == (11, K)

    jumped = clip.copy()
    jumped[6, 2] += [30.0, 40.0]  # 50 px away and back: two pairs of 50 px +- a 3 px step
    coords = tensor(jumped, grad=True)
    terms = temporal_loss(coords, torch.ones(12, K), epsilon_px=10.0)
    over = terms.per_element.detach()
    assert torch.count_nonzero(over) == 2 and over[5, 2] > 35 and over[6, 2] > 35
    assert terms.loss.item() == pytest.approx(over.sum().item() / (11 * K))
    terms.loss.backward()
    moved = coords.grad.abs().sum(-1) > 0
    assert moved[[5, 6, 7], 2].all() and moved.sum() == 3


def test_temporal_skips_low_confidence_pairs():
    jumped = rigid_clip()
    jumped[6, 2] += [30.0, 40.0]
    confidence = torch.ones(12, K)
    confidence[6, 2] = 0.5  # the jump itself is unsure: both of its pairs are skipped
    terms = temporal_loss(tensor(jumped), confidence, epsilon_px=10.0, min_confidence=0.9)
    assert terms.loss.item() == 0.0
    assert int(terms.count) == 11 * K - 2
    assert not terms.mask[5, 2] and not terms.mask[6, 2] and terms.mask[4, 2]


def test_temporal_with_nothing_counted_is_zero_with_a_graph():
    coords = tensor(rigid_clip(), grad=True)
    terms = temporal_loss(coords, torch.zeros(12, K), epsilon_px=0.0, min_confidence=0.9)
    assert int(terms.count) == 0 and terms.loss.item() == 0.0
    terms.loss.backward()
    assert torch.equal(coords.grad, torch.zeros_like(coords))


def test_temporal_accepts_a_batch_of_clips():
    clips = np.stack([rigid_clip(), rigid_clip(seed=3)])
    terms = temporal_loss(tensor(clips), None, epsilon_px=1.0)
    assert terms.per_element.shape == (2, 11, K) and int(terms.count) == 2 * 11 * K
    assert terms.loss.item() > 0  # 3 px steps exceed a 1 px margin


def test_temporal_norm_metric():
    clip = np.zeros((4, 2, 2))
    clip[:, 0, 0] = [0.0, 3.0, 3.0, 3.0]
    clip[:, 1, 1] = [0.0, 0.0, 4.0, np.nan]
    norm = temporal_norm(clip)
    assert norm.shape == (4, 2)
    assert np.isnan(norm[0]).all()
    np.testing.assert_allclose(norm[1:, 0], [3.0, 0.0, 0.0])
    np.testing.assert_allclose(norm[1:3, 1], [0.0, 4.0])
    assert np.isnan(norm[3, 1])


# --- pose PCA ----------------------------------------------------------------------------------


def test_pca_loss_zero_on_rigid_motion_and_positive_off_subspace():
    pca = fit_pose_pca(rigid_labels(), range(K))
    assert 2 <= pca.n_components <= 3  # a turning rigid 2D body spans 2 shape dimensions
    clip = rigid_clip()
    assert pca_loss(tensor(clip), pca).loss.item() == 0.0

    odd = clip.copy()
    odd[4, 1] += [0.0, 25.0]  # one keypoint dislocated by 25 px in frame 4
    coords = tensor(odd, grad=True)
    terms = pca_loss(coords, pca)
    assert terms.per_element.shape == (12, K)
    assert terms.loss.item() > 0
    assert terms.per_element[4].argmax() == 1
    assert torch.count_nonzero(terms.per_element[[0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11]]) == 0
    terms.loss.backward()
    assert coords.grad[4, 1].abs().sum() > 0
    assert torch.equal(coords.grad[0], torch.zeros(K, 2))


def test_pca_loss_confidence_mask():
    pca = fit_pose_pca(rigid_labels(), range(K))
    odd = rigid_clip()
    odd[4, 1] += [0.0, 25.0]
    confidence = torch.ones(12, K)
    confidence[4] = 0.1
    terms = pca_loss(tensor(odd), pca, confidence, min_confidence=0.5)
    assert terms.loss.item() == 0.0 and int(terms.count) == 11 * K


def test_multiview_pca_loss_zero_when_views_agree_and_positive_when_they_do_not():
    """Two orthographic cameras like a mirror rig: view 0 sees (x, y), view 1 sees (x, z), so
    x must agree between the views while y and z are free."""
    rng = np.random.default_rng(0)
    points = rng.normal(size=(50, 3, 3)) * 40 + 200  # 50 frames, 3 body parts, 3D
    coords = np.concatenate([points[..., [0, 1]], points[..., [0, 2]] + 300], axis=1)  # K = 6
    labels = coords + rng.normal(size=coords.shape) * 0.3
    matches = np.array([[0, 3], [1, 4], [2, 5]])
    mv = fit_multiview_pca(labels, matches)
    assert multiview_pca_loss(tensor(coords[:8]), mv).loss.item() == 0.0
    deeper = coords[:8].copy()
    deeper[:, 4, 1] += 25.0  # body part 1 moves in z only: still a valid 3D point
    assert multiview_pca_loss(tensor(deeper), mv).loss.item() == 0.0

    bad = coords[:8].copy()
    bad[:, 4, 0] += 25.0  # body part 1's x disagrees between the views by 25 px
    x = tensor(bad, grad=True)
    terms = multiview_pca_loss(x, mv)
    assert terms.per_element.shape == (8, 3, 2)
    assert (terms.per_element[:, 1] > 10.0).all() and (terms.per_element[:, [0, 2]] == 0).all()
    terms.loss.backward()
    assert x.grad[:, [1, 4]].abs().sum() > 0 and x.grad[:, [0, 2, 3, 5]].abs().sum() == 0


# --- unimodal --------------------------------------------------------------------------------


def test_unimodal_near_zero_for_one_gaussian_and_larger_for_two_peaks():
    sigma = 1.5
    at = torch.tensor([[[10.3, 7.6], [20.0, 12.0]]])  # (B=1, K=2, 2) heatmap cells
    one_peak = gaussian_targets(at, 24, 32, sigma)
    logits = torch.log(one_peak + 1e-30)
    single = unimodal_loss(logits, at, sigma)
    assert single.per_element.shape == (1, 2)
    assert single.loss.item() < 1e-4

    second = gaussian_targets(torch.tensor([[[25.0, 18.0], [5.0, 3.0]]]), 24, 32, sigma)
    two = torch.log(one_peak + second + 1e-30).requires_grad_(True)
    double = unimodal_loss(two, at, sigma)
    assert double.loss.item() == pytest.approx(math.log(2), rel=0.05)
    double.loss.backward()
    assert two.grad.abs().sum() > 0


def test_unimodal_flat_map_is_penalised_and_off_map_keypoints_not_counted():
    at = torch.tensor([[[10.0, 10.0], [500.0, 500.0]]])
    terms = unimodal_loss(torch.zeros(1, 2, 24, 32), at, 1.5)
    assert terms.mask.tolist() == [[True, False]]
    assert terms.per_element[0, 0] > 2.0 and int(terms.count) == 1


def test_losses_compute_in_float32_under_half_inputs():
    coords = tensor(rigid_clip()).to(torch.bfloat16)
    assert temporal_loss(coords, None, 1.0).loss.dtype == torch.float32
    logits = torch.zeros(1, 1, 8, 8, dtype=torch.bfloat16)
    assert unimodal_loss(logits, torch.tensor([[[3.0, 3.0]]]), 1.5).loss.dtype == torch.float32


# --- registry ----------------------------------------------------------------------------------


def test_available_losses():
    assert UNSUPERVISED_LOSSES.names() == [
        "equivariance",
        "pca_multiview",
        "pca_singleview",
        "reprojection",
        "temporal",
        "unimodal",
    ]
    for spec in UNSUPERVISED_LOSSES:
        assert spec.help and spec.weight > 0


def _setup(**kw) -> LossSetup:
    """Rigid labels (as views: keypoints 0-2 and 3-5), a heatmap head."""
    base = dict(
        labels_px=rigid_labels(),
        keypoints=[f"k{i}" for i in range(K)],
        view_matches=np.array([[0, 3], [1, 4], [2, 5]]),
        head_has_heatmaps=True,
    )
    return LossSetup(**{**base, **kw})


def _build(names, setup=None, **overrides):
    sections = VidposeConfig().losses
    for key, value in overrides.items():
        name, field = key.split("__")
        setattr(getattr(sections, name), field, value)
    return build_unsupervised_losses(names, sections, setup or _setup())


def _full_inputs() -> tuple[UnsupervisedInputs, torch.Tensor]:
    """A clip whose frames 5-7 are scrambled by 15 px noise, so that every loss is positive."""
    clip = rigid_clip()
    clip[5:8] += np.random.default_rng(0).normal(size=(3, K, 2)) * 15  # three scrambled poses
    coords = tensor(clip, grad=True)
    logits = torch.randn(12, K, 16, 16, requires_grad=True)
    inputs = UnsupervisedInputs(
        coords_px=coords,
        confidence=torch.ones(12, K),
        heatmap_logits=logits,
        coords_hm=torch.full((12, K, 2), 7.0),
    )
    # a second view that disagrees by the same scramble (for equivariance)
    inputs.second = UnsupervisedInputs(coords_px=tensor(rigid_clip()), confidence=torch.ones(12, K))
    inputs.in_both = torch.ones(12, K, dtype=torch.bool)
    return inputs, logits


def _two_cameras() -> dict:
    """The K keypoints read as 2 cameras x K/2 keypoints (wide), with a calibration."""
    from vidpose.geometry.synthetic import ring_calibration

    calibration = ring_calibration(2, (0.0, 0.0, 0.0), 50.0, image_size=(320, 320), seed=0)
    return {"cameras": ("c0", "c1"), "calibration": calibration}


@pytest.mark.parametrize("name", UNSUPERVISED_LOSSES.names())
def test_every_registered_loss_forward_backward(name):
    cameras = _two_cameras() if name == "reprojection" else {}
    (built,) = _build([name], _setup(**cameras), temporal__epsilon_px=2.0)
    assert built.weight == UNSUPERVISED_LOSSES.get(name).weight
    inputs, logits = _full_inputs()
    inputs.cameras = 2 if cameras else 1
    terms = built.loss(inputs)
    assert terms.loss.ndim == 0 and torch.isfinite(terms.loss) and terms.loss.item() > 0
    assert int(terms.count) > 0 and terms.mask.shape == terms.per_element.shape
    terms.loss.backward()
    grad = logits.grad if name == "unimodal" else inputs.coords_px.grad
    assert grad is not None and grad.abs().sum() > 0


def test_a_loss_gets_its_own_parameters_and_weight_from_its_config_section():
    (built,) = _build(["temporal"], temporal__weight=0.5, temporal__epsilon_px=3.0)
    assert built.weight == 0.5 and built.loss.params.epsilon_px == 3.0
    (pca,) = _build(["pca_singleview"], pca_singleview__components=1)
    assert pca.loss.pca.n_components == 1 and "pose_pca" in pca.loss.fitted()


def test_registering_a_loss_needs_a_weight_and_defaults_for_its_parameters():
    @dataclasses.dataclass
    class NoDefault:
        tolerance_px: float

    with pytest.raises(TypeError, match="every parameter needs a default"):
        register_unsupervised_loss("bone_length_test", params=NoDefault, weight=0.01)
    with pytest.raises(TypeError):
        register_unsupervised_loss("bone_length_test")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="already registered"):
        register_unsupervised_loss("temporal", weight=0.1)(type("X", (UnsupervisedLoss,), {}))


@pytest.mark.parametrize(
    ("names", "setup", "message"),
    [
        (
            ["pca_multiview"],
            {"view_matches": None},
            "model.losses includes pca_multiview but vidpose.yaml has no view_matches",
        ),
        (
            ["unimodal"],
            {"head_has_heatmaps": False},
            "model.losses includes unimodal but the model's head makes no heatmaps",
        ),
        (
            ["pca_singleview"],
            {"labels_px": rigid_labels()[:1]},
            "includes pca_singleview but pose PCA needs at least 2 labeled training frames "
            "and there are 1",
        ),
        (
            ["pca_singleview"],
            {"pca_keypoint_idx": [2]},
            "align=similarity needs at least 3 keypoints and pca_keypoints has 1",
        ),
        (["pca_multiview"], {"labels_px": rigid_labels()[:3]}, "at least 4 labeled training"),
        (["smoothness"], {}, r"unknown unsupervised loss 'smoothness'.*choose one of"),
    ],
)
def test_prerequisite_messages(names, setup, message):
    with pytest.raises(ConfigError, match=message):
        _build(names, _setup(**setup))


def test_prerequisites_report_every_problem_at_once():
    with pytest.raises(ConfigError) as info:
        _build(["pca_multiview", "unimodal"], _setup(view_matches=None, head_has_heatmaps=False))
    assert "pca_multiview" in str(info.value) and "unimodal" in str(info.value)


def test_ramp_weight():
    assert ramp_weight(0.0, 10) == 0.0
    assert ramp_weight(2.5, 10) == pytest.approx(0.25)
    assert ramp_weight(10.0, 10) == 1.0
    assert ramp_weight(37.0, 10) == 1.0
    assert ramp_weight(0.0, 0) == 1.0
    assert ramp_weight(-1.0, 5) == 0.0


def test_equivariance_loss_margin_mask_confidence_and_gradients():
    from vidpose.losses.unsupervised import equivariance_loss

    a = torch.zeros(4, 3, 2, requires_grad=True)
    b = torch.zeros(4, 3, 2)
    b[..., 0] = 5.0  # every keypoint 5 px apart
    terms = equivariance_loss(a, b, epsilon_px=2.0)
    assert terms.loss.item() == pytest.approx(3.0) and int(terms.count) == 12
    terms.loss.backward()
    assert torch.all(a.grad[..., 0] < 0)  # pulled towards the other view
    valid = torch.ones(4, 3, dtype=torch.bool)
    valid[:, 0] = False
    assert int(equivariance_loss(a, b, 2.0, valid).count) == 8
    conf = torch.full((4, 3), 0.9)
    conf2 = conf.clone()
    conf2[0] = 0.1
    assert int(equivariance_loss(a, b, 2.0, None, conf, conf2, 0.5).count) == 9
    assert equivariance_loss(a, b, 6.0).loss.item() == 0.0
    none = equivariance_loss(a, b, 2.0, torch.zeros(4, 3, dtype=torch.bool))
    assert none.loss.item() == 0.0 and none.loss.requires_grad


def test_equivariance_second_view_matrix_moves_the_image_content():
    """A bright dot at p in the clip appears at M p in the second view."""
    from vidpose.losses.builtin import EquivarianceLoss, EquivarianceParams

    torch.manual_seed(0)
    frames = torch.zeros(2, 3, 48, 64)
    frames[:, :, 20:23, 30:33] = 1.0  # centre (31, 21)
    loss = EquivarianceLoss(EquivarianceParams(brightness=0.0, contrast=0.0), None)
    for _ in range(5):
        view, m = loss.second_view(frames)
        assert view.shape == frames.shape and m.shape == (3, 3)
        expect = m @ torch.tensor([31.0, 21.0, 1.0])
        w = view[0, 0]
        ys, xs = torch.meshgrid(torch.arange(48.0), torch.arange(64.0), indexing="ij")
        centre = torch.stack([(w * xs).sum() / w.sum(), (w * ys).sum() / w.sum()])
        assert torch.allclose(centre, expect[:2], atol=0.3), (centre, expect)


def test_warp_images_matches_kornia_warp_affine():
    """Our graph-safe warp resamples exactly like kornia's warp_affine (the reference)."""
    from kornia.geometry.transform import warp_affine

    from vidpose._warp import warp_images

    g = torch.Generator().manual_seed(1)
    images = torch.rand(3, 3, 40, 56, generator=g)
    angle = torch.tensor([0.3, -0.5, 1.2])
    s = torch.tensor([1.1, 0.8, 1.0])
    m = torch.zeros(3, 3, 3)
    m[:, 0, 0], m[:, 0, 1], m[:, 0, 2] = torch.cos(angle) * s, -torch.sin(angle) * s, 4.0
    m[:, 1, 0], m[:, 1, 1], m[:, 1, 2] = torch.sin(angle) * s, torch.cos(angle) * s, -6.0
    m[:, 2, 2] = 1.0
    m[2, 0, 0] *= -1.0  # a mirror too
    ours = warp_images(images, m)
    theirs = warp_affine(images, m[:, :2], (40, 56), align_corners=True, padding_mode="zeros")
    assert torch.allclose(ours, theirs, atol=1e-5)
    one = warp_images(images, m[:1])  # one matrix for every image
    assert torch.allclose(one[1], warp_images(images[1:2], m[:1])[0])
