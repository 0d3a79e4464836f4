"""Tests of vidpose.data.augment: exact keypoint geometry, flips, clips, photometry, resizing.

Geometry is checked against rendered images: each keypoint k is drawn as a small Gaussian blob
(sigma 1.5 px) at a known sub-pixel position into its own colour channel k of a 64x64 image, so
the intensity-weighted centroid of channel k after augmentation is where keypoint k's pixels went,
independently of what the keypoint arithmetic says.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vidpose.config import AugmentConfig, find_issues
from vidpose.config.schema import VidposeConfig
from vidpose.data.augment import (
    _blur,
    augment_clip,
    augment_labeled,
    flip_permutation,
    sample_affine,
    unwarp_coords,
    warp_coords,
    warp_labeled,
)
from vidpose.data.batches import LabeledBatch, UnlabeledClip
from vidpose.data.geometry import input_to_orig, orig_to_input, resize_frames
from vidpose.errors import ProjectError

H = W = 64
# keypoint 0 = "ear_left", 1 = "ear_right" (a flip pair), 2 = "nose" (unpaired)
NAMES = ["ear_left", "ear_right", "nose"]
PAIRS = [("ear_left", "ear_right")]
KP = torch.tensor([[24.3, 27.6], [38.8, 29.2], [31.45, 40.15]], dtype=torch.float32)

GEOMETRY_ONLY = dict(brightness=0.0, contrast=0.0, blur_prob=0.0, noise_std=0.0)


def _grid(h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij"
    )
    return xs, ys


def _blob(x0: float, y0: float, h: int = H, w: int = W, sigma: float = 1.5) -> torch.Tensor:
    """(h, w) float64 Gaussian blob centred on pixel-centre coordinates (x0, y0)."""
    xs, ys = _grid(h, w)
    return torch.exp(-((xs - x0) ** 2 + (ys - y0) ** 2) / (2 * sigma**2))


def _centroid(img: torch.Tensor) -> torch.Tensor:
    """(2,) intensity-weighted (x, y) of an (h, w) image, pixel-centre coordinates."""
    img = img.double()
    xs, ys = _grid(*img.shape)
    return torch.stack([(img * xs).sum(), (img * ys).sum()]) / img.sum()


def _dot_batch(b: int) -> LabeledBatch:
    """b copies of a 3-channel image with keypoint k drawn as a blob in channel k."""
    img = torch.stack([_blob(float(x), float(y)) for x, y in KP]).float()
    return LabeledBatch(
        images=img[None].repeat(b, 1, 1, 1),
        keypoints=KP[None].repeat(b, 1, 1),
        visible=torch.ones(b, 3, dtype=torch.bool),
        frame_index=torch.arange(b),
        orig_hw=torch.tensor([[480, 640]]).repeat(b, 1),
    )


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _far_from_edge(p: torch.Tensor, margin: float = 6.0) -> bool:
    return bool((p >= margin).all() and (p <= W - 1 - margin).all())


# --------------------------------------------------------------------------------------------
# geometry against rendered dots


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_keypoints_follow_rendered_dots_under_random_geometry(seed: int) -> None:
    settings = AugmentConfig(
        rotation_deg=30,
        scale_min=0.8,
        scale_max=1.2,
        translate_fraction=0.08,
        hflip_prob=0.5,
        vflip_prob=0.5,
        **GEOMETRY_ONLY,
    )
    perm = flip_permutation(NAMES, PAIRS)
    out = augment_labeled(_dot_batch(8), settings, perm, _gen(seed))
    matrices = sample_affine(8, (H, W), settings, _gen(seed))
    mirrored = torch.linalg.det(matrices[:, :2, :2]) < 0
    checked = 0
    for b in range(8):
        for channel in range(3):
            # channel c holds original keypoint c; after mirroring it is called perm[c]
            k = int(perm[channel]) if mirrored[b] else channel
            expected = out.keypoints[b, k]
            if not out.visible[b, k] or not _far_from_edge(expected):
                continue
            err = (_centroid(out.images[b, channel]) - expected.double()).norm()
            assert err < 0.1, (b, channel, err)
            checked += 1
    assert checked >= 16


def test_rotation_scale_translation_without_flips_matches_dot() -> None:
    """A large fixed transform: 40 deg, x0.8, shift (5, -3) px about the image centre."""
    angle, s, t = math.radians(40.0), 0.8, torch.tensor([5.0, -3.0])
    c = torch.tensor([(W - 1) / 2, (H - 1) / 2])
    a = s * torch.tensor([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    m = torch.eye(3)
    m[:2, :2] = a
    m[:2, 2] = c + t - a @ c
    out = warp_labeled(_dot_batch(1), m[None])
    for k in range(3):
        err = (_centroid(out.images[0, k]) - out.keypoints[0, k].double()).norm()
        assert err < 0.1, (k, err)
    # the nose at (31.45, 40.15), 8.6 px below the centre, is rotated/scaled about the centre
    expected = a @ (KP[2] - c) + c + t
    torch.testing.assert_close(out.keypoints[0, 2], expected, atol=1e-4, rtol=0)


def test_hflip_is_exact_pixel_mirror_and_swaps_left_right() -> None:
    settings = AugmentConfig(
        rotation_deg=0,
        scale_min=1,
        scale_max=1,
        translate_fraction=0,
        hflip_prob=1.0,
        **GEOMETRY_ONLY,
    )
    batch = _dot_batch(2)
    batch.images = torch.rand(2, 3, H, W, generator=_gen(3))
    batch.visible[1, 0] = False  # ear_left unlabeled in sample 1
    batch.keypoints[1, 0] = 0.0
    out = augment_labeled(batch, settings, flip_permutation(NAMES, PAIRS), _gen(0))
    assert out.visible.tolist() == [[True, True, True], [True, False, True]]
    torch.testing.assert_close(out.images, batch.images.flip(-1), atol=1e-4, rtol=0)
    # the keypoint now called ear_left is the mirror image of the old ear_right, and vice versa
    mirrored = KP.clone()
    mirrored[:, 0] = W - 1 - KP[:, 0]
    torch.testing.assert_close(out.keypoints[0], mirrored[[1, 0, 2]], atol=1e-4, rtol=0)


def test_vflip_swaps_and_double_flip_keeps_identities() -> None:
    perm = flip_permutation(NAMES, PAIRS)
    base = dict(rotation_deg=0, scale_min=1, scale_max=1, translate_fraction=0, **GEOMETRY_ONLY)
    v = augment_labeled(_dot_batch(1), AugmentConfig(vflip_prob=1.0, **base), perm, _gen(0))
    expected = KP.clone()
    expected[:, 1] = H - 1 - KP[:, 1]
    torch.testing.assert_close(v.keypoints[0], expected[[1, 0, 2]], atol=1e-4, rtol=0)
    both = augment_labeled(
        _dot_batch(1), AugmentConfig(hflip_prob=1.0, vflip_prob=1.0, **base), perm, _gen(0)
    )
    # two mirrors make a 180-degree rotation: left stays left, and every dot is where its
    # unswapped keypoint says
    rotated = torch.stack([W - 1 - KP[:, 0], H - 1 - KP[:, 1]], dim=1)
    torch.testing.assert_close(both.keypoints[0], rotated, atol=1e-4, rtol=0)
    for k in range(3):
        assert (_centroid(both.images[0, k]) - both.keypoints[0, k].double()).norm() < 0.05


def test_flip_permutation() -> None:
    perm = flip_permutation(["a", "l1", "r1", "l2", "r2"], [("l1", "r1"), ("r2", "l2")])
    assert perm.dtype == torch.long
    assert perm.tolist() == [0, 2, 1, 4, 3]
    assert flip_permutation(NAMES, []).tolist() == [0, 1, 2]
    with pytest.raises(ProjectError, match=r"flip_pairs\[0\].*unknown keypoint 'ear_lft'"):
        flip_permutation(NAMES, [("ear_lft", "ear_right")])
    with pytest.raises(ProjectError, match=r"flip_pairs\[1\].*already in flip_pairs\[0\]"):
        flip_permutation(NAMES, [("ear_left", "ear_right"), ("nose", "ear_left")])
    with pytest.raises(ProjectError, match="itself"):
        flip_permutation(NAMES, [("nose", "nose")])


def test_keypoints_pushed_outside_become_invisible_with_zero_coords() -> None:
    batch = _dot_batch(2)
    batch.visible[1, 2] = False
    batch.keypoints[1, 2] = 0.0
    shift = torch.eye(3).repeat(2, 1, 1)
    shift[0, 0, 2] = 30.0  # ear_right x 38.8 -> 68.8 > 63.5; ear_left 24.3 -> 54.3 stays
    shift[1, 1, 2] = -31.0  # ear_left y 27.6 -> -3.4; ear_right 29.2 -> -1.8; nose -> 9.15
    out = warp_labeled(batch, shift)
    assert out.visible.tolist() == [[True, False, True], [False, False, False]]
    assert (out.keypoints[~out.visible] == 0).all()
    assert not torch.isnan(out.keypoints).any()
    torch.testing.assert_close(out.keypoints[0, 0], KP[0] + torch.tensor([30.0, 0.0]))


def test_random_augmentation_visibility_matches_frame_bounds() -> None:
    settings = AugmentConfig(rotation_deg=45, translate_fraction=0.3, hflip_prob=0.5)
    batch = _dot_batch(16)
    batch.keypoints = torch.rand(16, 3, 2, generator=_gen(5)) * (W - 1)
    out = augment_labeled(batch, settings, flip_permutation(NAMES, PAIRS), _gen(6))
    matrices = sample_affine(16, (H, W), settings, _gen(6))
    moved = warp_coords(batch.keypoints, matrices)
    inside = ((moved >= -0.5) & (moved <= W - 0.5)).all(-1)
    mirrored = torch.linalg.det(matrices[:, :2, :2]) < 0
    perm = flip_permutation(NAMES, PAIRS)
    assert torch.equal(out.visible, torch.where(mirrored[:, None], inside[:, perm], inside))
    assert 0 < out.visible.sum().item() < 48
    assert (out.keypoints[out.visible] >= -0.5).all() and (out.keypoints[out.visible] <= 63.5).all()
    assert (out.keypoints[~out.visible] == 0).all()


# --------------------------------------------------------------------------------------------
# photometric, determinism, settings


def test_photometric_changes_keep_keypoints_fixed() -> None:
    settings = AugmentConfig(
        rotation_deg=0,
        scale_min=1,
        scale_max=1,
        translate_fraction=0,
        brightness=0.3,
        contrast=0.3,
        blur_prob=1.0,
        noise_std=0.05,
    )
    batch = _dot_batch(4)
    out = augment_labeled(batch, settings, None, _gen(0))
    assert torch.equal(out.keypoints, batch.keypoints)
    assert torch.equal(out.visible, batch.visible)
    assert not torch.allclose(out.images, batch.images, atol=0.01)
    assert out.images.min() >= 0 and out.images.max() <= 1
    assert out.images.dtype == torch.float32


def test_brightness_is_a_per_image_gain_and_contrast_keeps_the_mean() -> None:
    still = dict(rotation_deg=0, scale_min=1, scale_max=1, translate_fraction=0)
    images = 0.25 + 0.5 * torch.rand(6, 3, 32, 32, generator=_gen(4))
    images[:, :, :4] = 0.0  # black stays black under a gain
    batch = LabeledBatch(
        images=images,
        keypoints=torch.zeros(6, 1, 2),
        visible=torch.zeros(6, 1, dtype=torch.bool),
        frame_index=torch.arange(6),
        orig_hw=torch.tensor([[32, 32]]).repeat(6, 1),
    )
    gain = AugmentConfig(**still, brightness=0.2, contrast=0, blur_prob=0, noise_std=0)
    out = augment_labeled(batch, gain, None, _gen(0)).images
    ratio = out[:, :, 4:] / images[:, :, 4:]
    per_image = ratio.flatten(1)
    torch.testing.assert_close(per_image.min(1).values, per_image.max(1).values, atol=1e-5, rtol=0)
    assert ((per_image >= 0.8 - 1e-6) & (per_image <= 1.2 + 1e-6)).all()
    assert per_image[:, 0].std() > 0.01  # drawn per image
    assert (out[:, :, :4] == 0).all()
    # mid-grey images, so that no value is clamped and the mean is exactly kept
    batch.images = 0.25 + 0.5 * torch.rand(6, 3, 32, 32, generator=_gen(5))
    con = AugmentConfig(**still, brightness=0, contrast=0.2, blur_prob=0, noise_std=0)
    out = augment_labeled(batch, con, None, _gen(0)).images
    torch.testing.assert_close(out.mean(dim=(1, 2, 3)), batch.images.mean(dim=(1, 2, 3)))
    assert not torch.allclose(out, batch.images, atol=1e-3)


def test_blur_alone_keeps_dots_centred() -> None:
    settings = AugmentConfig(
        rotation_deg=0,
        scale_min=1,
        scale_max=1,
        translate_fraction=0,
        brightness=0,
        contrast=0,
        blur_prob=1.0,
        blur_sigma_max=2.0,
        noise_std=0,
    )
    out = augment_labeled(_dot_batch(3), settings, None, _gen(1))
    for b in range(3):
        assert out.images[b, 0].max() < 0.999  # it did blur
        for k in range(3):
            assert (_centroid(out.images[b, k]) - KP[k].double()).norm() < 0.02


def test_blur_with_zero_sigma_is_identity_within_a_batch() -> None:
    images = torch.rand(3, 3, 16, 16, generator=_gen(2))
    out = _blur(images, torch.tensor([0.0, 1.0, 0.0]), radius=3)
    torch.testing.assert_close(out[[0, 2]], images[[0, 2]], atol=1e-6, rtol=0)
    assert (out[1] - images[1]).abs().max() > 0.05
    torch.testing.assert_close(out[1].mean(), images[1].mean(), atol=0.01, rtol=0)


def test_seeded_generator_is_deterministic_and_input_untouched() -> None:
    settings = AugmentConfig(hflip_prob=0.5, blur_prob=0.5)
    batch = _dot_batch(4)
    before = batch.images.clone()
    perm = flip_permutation(NAMES, PAIRS)
    a = augment_labeled(batch, settings, perm, _gen(42))
    b = augment_labeled(batch, settings, perm, _gen(42))
    c = augment_labeled(batch, settings, perm, _gen(43))
    assert torch.equal(a.images, b.images) and torch.equal(a.keypoints, b.keypoints)
    assert not torch.equal(a.images, c.images)
    assert torch.equal(batch.images, before)
    assert augment_labeled(batch, settings, perm, None).images.shape == batch.images.shape


def test_disabled_returns_batch_unchanged() -> None:
    batch = _dot_batch(2)
    assert augment_labeled(batch, AugmentConfig(enabled=False)) is batch
    frames = torch.rand(3, 3, H, W)
    out, m = augment_clip(frames, AugmentConfig(enabled=False))
    assert out is frames and torch.equal(m, torch.eye(3))


def test_zero_strength_is_identity_geometry_and_photometry() -> None:
    batch = _dot_batch(2)
    out = augment_labeled(batch, AugmentConfig(strength=0.0), None, _gen(0))
    torch.testing.assert_close(out.images, batch.images, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.keypoints, batch.keypoints, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "bad",
    [
        dict(hflip_prob=1.5),
        dict(scale_min=1.2, scale_max=1.1),
        dict(noise_std=-0.1),
        dict(contrast=1.0),
        dict(brightness=0.6, strength=2.0),
    ],
)
def test_settings_validation(bad: dict) -> None:
    cfg = VidposeConfig(augment=AugmentConfig(**bad))
    keys = [i.keys for i in find_issues(cfg)]
    assert len(keys) == 1 and keys[0][0].startswith("augment.")


# --------------------------------------------------------------------------------------------
# clips


def test_clip_shares_one_transform_and_unwarp_inverts_it() -> None:
    settings = AugmentConfig(
        rotation_deg=30,
        translate_fraction=0.1,
        blur_prob=1.0,
        brightness=0.3,
        contrast=0.3,
        noise_std=0.0,
    )
    frame = torch.stack([_blob(float(x), float(y)) for x, y in KP]).float()
    frames = frame[None].repeat(5, 1, 1, 1)
    out, m = augment_clip(frames, settings, _gen(7))
    assert out.shape == frames.shape and m.shape == (3, 3)
    for t in range(1, 5):
        assert torch.equal(out[t], out[0])
    # geometry only, for the centroid check: same draws, photometry switched off
    geo, m_geo = augment_clip(
        frames, AugmentConfig(rotation_deg=30, translate_fraction=0.1, **GEOMETRY_ONLY), _gen(7)
    )
    torch.testing.assert_close(m_geo, m)
    moved = warp_coords(KP, m)
    for k in range(3):
        assert (_centroid(geo[2, k]) - moved[k].double()).norm() < 0.1
    coords = torch.rand(5, 4, 2, generator=_gen(8)) * 255.0
    back = unwarp_coords(warp_coords(coords, m), m)
    assert (back - coords).abs().max() < 1e-4


def test_clip_noise_differs_per_frame_and_flips_only_when_asked() -> None:
    settings = AugmentConfig(hflip_prob=1.0, noise_std=0.05)
    frames = torch.full((3, 3, H, W), 0.5)
    out, m = augment_clip(frames, settings, _gen(0))
    assert torch.linalg.det(m[:2, :2]) > 0
    assert not torch.equal(out[0], out[1])
    _, m_flip = augment_clip(frames, settings, _gen(0), allow_flips=True)
    assert torch.linalg.det(m_flip[:2, :2]) < 0


def test_clip_is_deterministic() -> None:
    frames = torch.rand(4, 3, H, W, generator=_gen(1))
    a, ma = augment_clip(frames, AugmentConfig(), _gen(9))
    b, mb = augment_clip(frames, AugmentConfig(), _gen(9))
    assert torch.equal(a, b) and torch.equal(ma, mb)


# --------------------------------------------------------------------------------------------
# resizing and coordinate mapping


def test_resize_places_dots_where_orig_to_input_says() -> None:
    h0, w0, hw = 120, 200, (48, 80)
    pts = np.array([[57.3, 40.8], [140.6, 85.2]])
    img = sum(_blob(x, y, h0, w0, sigma=4.0) for x, y in pts)
    frames = (img.clamp(0, 1) * 255).round().to(torch.uint8)[None, :, :, None].repeat(1, 1, 1, 3)
    out = resize_frames(frames.numpy(), hw)
    assert out.shape == (1, 3, 48, 80) and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 1
    expected = orig_to_input(pts, (h0, w0), hw)
    for (x, y), e in zip(pts, expected):
        x_in, y_in = np.rint(e).astype(int)
        window = out[0, 0, y_in - 6 : y_in + 7, x_in - 6 : x_in + 7]
        c = _centroid(window).numpy() + np.array([x_in - 6, y_in - 6])
        assert np.abs(c - e).max() < 0.1, (x, y, c, e)


def test_coordinate_mapping_values_and_round_trip() -> None:
    # pixel-centre convention: the left edge -0.5 maps to -0.5 and the centre of a 2x downsample
    np.testing.assert_allclose(
        orig_to_input(np.array([[-0.5, 0.0]]), (100, 100), (50, 50)), [[-0.5, -0.25]]
    )
    rng = np.random.default_rng(0)
    coords = rng.uniform(0, 400, size=(3, 5, 2))
    orig_hw = np.array([[480, 640], [300, 400], [1024, 1280]])
    fwd = orig_to_input(coords, orig_hw[:, None, :], (256, 320))
    np.testing.assert_allclose(
        input_to_orig(fwd, orig_hw[:, None, :], (256, 320)), coords, atol=1e-9
    )
    t = torch.as_tensor(coords, dtype=torch.float32)
    back = input_to_orig(
        orig_to_input(t, torch.as_tensor(orig_hw)[:, None, :], (256, 320)),
        torch.as_tensor(orig_hw)[:, None, :],
        (256, 320),
    )
    assert isinstance(back, torch.Tensor) and back.dtype == torch.float32
    assert (back - t).abs().max() < 1e-3
    nan = orig_to_input(np.array([[np.nan, 1.0]]), (10, 10), (20, 20))
    assert np.isnan(nan[0, 0]) and nan[0, 1] == 2.5


def test_resize_rejects_wrong_shape() -> None:
    with pytest.raises(ValueError, match=r"\(B, H0, W0, 3\)"):
        resize_frames(np.zeros((4, 3, 10, 10), dtype=np.uint8), (8, 8))


# --------------------------------------------------------------------------------------------
# batch records


def test_batches_check_shapes_and_move() -> None:
    batch = _dot_batch(2)
    moved = batch.to("cpu")
    assert moved.batch_size == 2 and moved.input_hw == (H, W)
    with pytest.raises(ValueError, match="keypoints"):
        LabeledBatch(
            images=batch.images,
            keypoints=batch.keypoints[:1],
            visible=batch.visible,
            frame_index=batch.frame_index,
            orig_hw=batch.orig_hw,
        )
    clip = UnlabeledClip(
        frames=torch.zeros(4, 3, 8, 8), video_index=1, start_frame=10, orig_hw=(480, 640)
    ).to("cpu")
    assert clip.n_frames == 4 and clip.input_hw == (8, 8) and clip.orig_hw == (480, 640)
