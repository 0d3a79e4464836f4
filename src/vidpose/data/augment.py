"""Augmentation on the training device, with keypoints transformed exactly like the pixels.

Everything here runs on whatever device the tensors live on (CUDA or CPU, same code path), in
batched tensor ops with no Python loop over samples; on CUDA, augmenting a batch or a clip makes
no host-device sync (checked with ``torch.cuda.set_sync_debug_mode("error")``).

Coordinate convention (the whole package uses it): pixel ``i`` covers ``[i - 0.5, i + 0.5]``,
so integer coordinates are pixel *centres*; (3.0, 5.0) is the centre of pixel x=3, y=5. The frame
spans ``[-0.5, W - 0.5] x [-0.5, H - 0.5]``.

Geometry. Each sample gets one 3x3 affine matrix ``M`` that maps input-pixel coordinates of the
original image to input-pixel coordinates of the augmented image:
``M = T(c + t) @ R(angle) @ S(scale) @ F(flips) @ T(-c)`` with ``c = ((W-1)/2, (H-1)/2)`` the
image centre. Pixels are resampled with :func:`vidpose._warp.warp_images` (bilinear
``grid_sample`` with ``align_corners=True``, whose -1 and +1 are the centres of the first and last
pixels), so the very same ``M`` transforms keypoints, and a horizontal flip is the exact mirror
``x -> W - 1 - x``. It is plain torch built from device tensors only, so a whole augmented training
step can be captured as one CUDA graph (kornia's ``warp_affine`` copies host tensors to the
device on every call).

Regions that come from outside the original image are filled with zeros (black): reflection
would invent mirrored, unlabeled copies of body parts. Keypoints pushed outside the frame become
missing (``visible`` False, coordinates zeroed, see :mod:`vidpose.data.batches`).

Mirroring (an odd number of flips) swaps left/right keypoint identities through ``flip_perm``
(see :func:`flip_permutation`); a horizontal plus a vertical flip is a 180-degree rotation and
swaps nothing.

Photometric changes (brightness, contrast, Gaussian blur, Gaussian noise; clamped to [0, 1]) move
no pixel, so keypoints are untouched by them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from vidpose._warp import invert_affine, warp_images
from vidpose.config.schema import AugmentConfig
from vidpose.data.batches import LabeledBatch
from vidpose.errors import ProjectError

__all__ = [
    "augment_clip",
    "augment_labeled",
    "flip_permutation",
    "sample_affine",
    "unwarp_coords",
    "warp_coords",
    "warp_labeled",
]


# ---------------------------------------------------------------------------------------------
# keypoint identities under mirroring


def _scale_range(settings: AugmentConfig) -> tuple[float, float]:
    s = settings.strength
    return 1.0 + (settings.scale_min - 1.0) * s, 1.0 + (settings.scale_max - 1.0) * s


def _blur_radius(settings: AugmentConfig) -> int:
    """Half-width of the blur kernel at the largest sigma; 0 when blur is off."""
    sigma = settings.blur_sigma_max * settings.strength
    if settings.blur_prob <= 0.0 or sigma <= 0.0:
        return 0
    return math.ceil(3.0 * sigma)


def flip_permutation(
    keypoint_names: Sequence[str], flip_pairs: Sequence[Sequence[str]]
) -> torch.Tensor:
    """(K,) int64 permutation that swaps each left/right pair; unpaired keypoints map to themselves.

    After mirroring, the keypoint called ``names[j]`` sits where ``names[perm[j]]`` was drawn:
    ``keypoints_mirrored = M(keypoints)[:, perm]``. The permutation is its own inverse.

    Raises:
        ProjectError: a pair names an unknown keypoint, a keypoint twice, or one keypoint in two
            pairs (the message names the pair, as in ``vidpose.yaml``'s ``flip_pairs``).
    """
    names = list(keypoint_names)
    index = {name: i for i, name in enumerate(names)}
    perm = list(range(len(names)))
    paired: dict[str, int] = {}
    for i, pair in enumerate(flip_pairs):
        if len(pair) != 2:
            raise ProjectError(f"flip_pairs[{i}]: expected a pair of keypoint names, got {pair!r}")
        a, b = pair
        for name in (a, b):
            if name not in index:
                raise ProjectError(
                    f"flip_pairs[{i}]: unknown keypoint {name!r}; known keypoints: {names}"
                )
            if name in paired:
                raise ProjectError(
                    f"flip_pairs[{i}]: keypoint {name!r} is already in flip_pairs[{paired[name]}]"
                )
        if a == b:
            raise ProjectError(f"flip_pairs[{i}]: a keypoint cannot pair with itself ({a!r})")
        paired[a] = paired[b] = i
        perm[index[a]], perm[index[b]] = index[b], index[a]
    return torch.tensor(perm, dtype=torch.long)


# ---------------------------------------------------------------------------------------------
# affine matrices and coordinates


def warp_coords(coords: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Apply affine matrices to points.

    Args:
        coords: (..., K, 2) (x, y) points.
        matrix: (..., 3, 3) affine matrices whose leading dims broadcast against coords' (...);
            a single (3, 3) applies to all.

    Returns:
        (..., K, 2) transformed points, in coords' dtype.
    """
    m = matrix.to(coords.dtype)
    a = m[..., None, :2, :2]
    t = m[..., None, :2, 2]
    return (a @ coords[..., None]).squeeze(-1) + t


def unwarp_coords(coords_aug: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Map points from augmented input pixels back to original input pixels.

    Args:
        coords_aug: (T, K, 2) (or any (..., K, 2)) points in the augmented image, e.g. predictions.
        matrix: (3, 3) (or (..., 3, 3)) original -> augmented matrix from :func:`augment_clip`.

    Returns:
        (T, K, 2) points in original input pixels, in coords_aug's dtype (computed in float64).
    """
    inv = invert_affine(matrix.to(torch.float64))
    return warp_coords(coords_aug.to(torch.float64), inv).to(coords_aug.dtype)


def _uniform(
    n: int, columns: int, generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    """(n, columns) U[0, 1) on ``device``, drawn from ``generator`` wherever that lives."""
    if generator is None:
        return torch.rand((n, columns), device=device)
    u = torch.rand((n, columns), generator=generator, device=generator.device)
    return u.to(device)


def _same_device(a: torch.device, b: torch.device) -> bool:
    # torch.Generator(device="cuda").device has no index while tensors report "cuda:0"
    return a.type == b.type and (a.index is None or b.index is None or a.index == b.index)


def _randn_like(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Standard normal noise shaped like ``x``, on x's device, reproducible from ``generator``."""
    if generator is None:
        return torch.randn_like(x)
    if not _same_device(generator.device, x.device):
        # Drawing a large tensor on another device and copying it would be slow; seed a local
        # generator on x's device from the given one instead, which stays deterministic.
        seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
        generator = torch.Generator(device=x.device)
        generator.manual_seed(seed)
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


_N_DRAWS = 10  # columns of U[0, 1) per sample; see _Draws


@dataclass
class _Draws:
    """Random parameters of N samples (all (N,) or (N, 3, 3) tensors on the target device).

    brightness and contrast are multiplicative factors (1 = unchanged).
    """

    matrices: torch.Tensor
    brightness: torch.Tensor
    contrast: torch.Tensor
    blur_sigma: torch.Tensor  # 0 = no blur


def _matrices_from_uniform(
    u: torch.Tensor, input_hw: tuple[int, int], settings: AugmentConfig, allow_flips: bool
) -> torch.Tensor:
    h, w = input_hw
    s = settings.strength
    angle = (2.0 * u[:, 0] - 1.0) * math.radians(settings.rotation_deg * s)
    lo, hi = _scale_range(settings)
    scale = lo + (hi - lo) * u[:, 1]
    tx = (2.0 * u[:, 2] - 1.0) * settings.translate_fraction * s * w
    ty = (2.0 * u[:, 3] - 1.0) * settings.translate_fraction * s * h
    one = torch.ones_like(angle)
    if allow_flips:
        fx = torch.where(u[:, 4] < settings.hflip_prob, -one, one)
        fy = torch.where(u[:, 5] < settings.vflip_prob, -one, one)
    else:
        fx = fy = one
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    # linear part R(angle) @ S(scale) @ F(fx, fy)
    a, b = cos * fx, -sin * fy
    c, d = sin * fx, cos * fy
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    m = torch.zeros((u.shape[0], 3, 3), dtype=u.dtype, device=u.device)
    m[:, 0, 0], m[:, 0, 1], m[:, 0, 2] = a, b, cx + tx - (a * cx + b * cy)
    m[:, 1, 0], m[:, 1, 1], m[:, 1, 2] = c, d, cy + ty - (c * cx + d * cy)
    m[:, 2, 2] = 1.0
    return m


def _draw(
    n: int,
    input_hw: tuple[int, int],
    settings: AugmentConfig,
    generator: torch.Generator | None,
    device: torch.device,
    allow_flips: bool,
) -> _Draws:
    u = _uniform(n, _N_DRAWS, generator, device).to(torch.float32)
    s = settings.strength
    blur_on = u[:, 8] < settings.blur_prob
    sigma = u[:, 9] * settings.blur_sigma_max * s
    return _Draws(
        matrices=_matrices_from_uniform(u, input_hw, settings, allow_flips),
        brightness=1.0 + (2.0 * u[:, 6] - 1.0) * settings.brightness * s,
        contrast=1.0 + (2.0 * u[:, 7] - 1.0) * settings.contrast * s,
        blur_sigma=torch.where(blur_on, sigma, torch.zeros_like(sigma)),
    )


def sample_affine(
    n: int,
    input_hw: tuple[int, int],
    settings: AugmentConfig,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    allow_flips: bool = True,
) -> torch.Tensor:
    """(n, 3, 3) float32 random original -> augmented matrices in input pixels (geometry only).

    Uses the same draws as :func:`augment_labeled` for the same generator state.
    """
    return _draw(n, input_hw, settings, generator, torch.device(device), allow_flips).matrices


def in_frame(coords: torch.Tensor, input_hw: tuple[int, int]) -> torch.Tensor:
    """(..., K) bool: input-pixel points (..., K, 2) inside the frame (pixel centres)."""
    h, w = input_hw
    x, y = coords[..., 0], coords[..., 1]
    return (x >= -0.5) & (x <= w - 0.5) & (y >= -0.5) & (y <= h - 0.5)


def warp_labeled(
    batch: LabeledBatch, matrices: torch.Tensor, flip_perm: torch.Tensor | None = None
) -> LabeledBatch:
    """Apply given original -> augmented matrices to a labeled batch (images and keypoints).

    Samples whose matrix mirrors (negative determinant) have their keypoints re-indexed by
    ``flip_perm``; keypoints that land outside the frame become invisible with zero coordinates.
    A batch with ``windows`` has every frame of a sample's window warped by its matrix.

    Args:
        batch: the batch to transform.
        matrices: (B, 3, 3) affine matrices in input pixels.
        flip_perm: (K,) int64 from :func:`flip_permutation`; None means mirroring changes no
            keypoint's identity.
    """
    windows = batch.as_windows()
    b, w = windows.shape[:2]
    warped = warp_images(windows.flatten(0, 1), matrices.repeat_interleave(w, dim=0))
    warped = warped.unflatten(0, (b, w))
    kp = warp_coords(batch.keypoints, matrices)
    visible = batch.visible
    if flip_perm is not None:
        perm = flip_perm.to(kp.device)
        m = matrices
        mirrored = (m[:, 0, 0] * m[:, 1, 1] - m[:, 0, 1] * m[:, 1, 0]) < 0
        kp = torch.where(mirrored[:, None, None], kp[:, perm], kp)
        visible = torch.where(mirrored[:, None], visible[:, perm], visible)
    visible = visible & in_frame(kp, batch.input_hw)
    kp = torch.where(visible[..., None], kp, torch.zeros_like(kp))
    return LabeledBatch(
        images=warped[:, w // 2],
        keypoints=kp,
        visible=visible,
        frame_index=batch.frame_index,
        orig_hw=batch.orig_hw,
        windows=None if batch.windows is None else warped,
    )


# ---------------------------------------------------------------------------------------------
# photometric


def _blur(images: torch.Tensor, sigma: torch.Tensor, radius: int) -> torch.Tensor:
    """Separable Gaussian blur with a per-image sigma; sigma 0 leaves an image unchanged.

    A grouped convolution (one group per image channel) instead of kornia's gaussian_blur2d,
    whose check that sigma > 0 reads the values back to the host (a sync on every step) and
    which cannot express "no blur" for part of a batch.

    Args:
        images: (N, C, H, W).
        sigma: (N,) in pixels, >= 0.
        radius: kernel half-width in pixels (the kernel has 2 * radius + 1 taps).
    """
    n, ch, h, w = images.shape
    radius = min(radius, h - 1, w - 1)  # reflect padding needs radius < size
    x = torch.arange(-radius, radius + 1, device=images.device, dtype=images.dtype)
    s = sigma.to(images.dtype).clamp_min(1e-6)[:, None]
    k = torch.exp(-0.5 * (x[None, :] / s) ** 2)
    k = k / k.sum(dim=1, keepdim=True)
    k = k.repeat_interleave(ch, dim=0)  # (N*C, taps)
    flat = images.reshape(1, n * ch, h, w)
    flat = F.pad(flat, (radius, radius, radius, radius), mode="reflect")
    flat = F.conv2d(flat, k[:, None, :, None], groups=n * ch)
    flat = F.conv2d(flat, k[:, None, None, :], groups=n * ch)
    return flat.reshape(n, ch, h, w)


def _photometric(
    images: torch.Tensor,
    draws: _Draws,
    mean: torch.Tensor,
    settings: AugmentConfig,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Contrast about ``mean`` ((N,) or scalar), brightness gain, blur, noise; clamped to [0, 1]."""
    c = draws.contrast[:, None, None, None]
    g = draws.brightness[:, None, None, None]
    m = mean.reshape(-1, 1, 1, 1) if mean.ndim else mean
    # ((x - m) * c + m) * g as one fused pass over the images (this is memory-bound)
    out = torch.addcmul(m * (1.0 - c) * g, images, c * g)
    radius = _blur_radius(settings)
    if radius > 0:
        if out.device.type == "cpu":
            # On CPU, skip the images that draw no blur (most of them by default); on an
            # accelerator, selecting them would need a host sync, and blurring all is cheap.
            idx = torch.nonzero(draws.blur_sigma > 0).squeeze(1)
            if idx.numel():
                out[idx] = _blur(out[idx], draws.blur_sigma[idx], radius)
        else:
            out = _blur(out, draws.blur_sigma, radius)
    std = settings.noise_std * settings.strength
    if std > 0:
        out.add_(_randn_like(out, generator), alpha=std)
    return out.clamp_(0.0, 1.0)


# ---------------------------------------------------------------------------------------------
# public entry points


def augment_labeled(
    batch: LabeledBatch,
    settings: AugmentConfig,
    flip_perm: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> LabeledBatch:
    """Randomly augment a labeled batch on its own device; the input batch is not modified.

    Per sample: rotation about the image centre, isotropic scale, translation, optional flips
    (mirrored samples re-index keypoints by ``flip_perm``), then contrast, brightness, blur with
    probability ``blur_prob``, and Gaussian noise, clamped to [0, 1]. Keypoints follow the
    geometry exactly; those pushed outside the frame become invisible. A batch with ``windows``
    gets one draw per sample shared by the W frames of its window (pixel noise alone is drawn
    per frame), so neighbours stay aligned with the labeled frame.

    Args:
        batch: images (B, 3, H, W) (and windows (B, W, 3, H, W)) float32 in [0, 1], keypoints
            (B, K, 2) input pixels.
        settings: magnitudes and probabilities; ``enabled=False`` returns ``batch`` itself.
        flip_perm: (K,) from :func:`flip_permutation`; None means mirroring swaps nothing.
        generator: makes the result reproducible; may live on another device than the batch.
    """
    if not settings.enabled:
        return batch
    b, w = batch.as_windows().shape[:2]
    draws = _draw(b, batch.input_hw, settings, generator, batch.images.device, allow_flips=True)
    out = warp_labeled(batch, draws.matrices, flip_perm)
    flat = out.as_windows().flatten(0, 1)
    per_frame = _Draws(
        matrices=draws.matrices,
        brightness=draws.brightness.repeat_interleave(w),
        contrast=draws.contrast.repeat_interleave(w),
        blur_sigma=draws.blur_sigma.repeat_interleave(w),
    )
    mean = flat.reshape(b, -1).mean(dim=1).repeat_interleave(w)
    frames = _photometric(flat, per_frame, mean, settings, generator).unflatten(0, (b, w))
    out.images = frames[:, w // 2]
    if out.windows is not None:
        out.windows = frames
    return out


def augment_clip(
    frames: torch.Tensor,
    settings: AugmentConfig,
    generator: torch.Generator | None = None,
    allow_flips: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Augment T consecutive frames with one shared transform.

    Geometry, contrast, brightness and blur are drawn once and applied identically to every
    frame (temporal losses need consecutive frames to stay consistent); only the pixel noise is
    drawn per frame. Flips are off unless ``allow_flips``: a mirrored clip would also swap
    left/right identities in the predictions, which :func:`unwarp_coords` does not undo (check
    ``det(matrix[:2, :2]) < 0`` and re-index with ``flip_perm`` if you allow them).

    Args:
        frames: (T, 3, H, W) float32 in [0, 1].
        settings: as for :func:`augment_labeled`.
        generator: makes the result reproducible.
        allow_flips: draw flips with ``hflip_prob`` / ``vflip_prob``.

    Returns:
        frames_aug (T, 3, H, W) float32 in [0, 1], and matrix (3, 3) float32 mapping original
        input-pixel coordinates to augmented ones (identity when ``settings.enabled`` is False).
    """
    if not settings.enabled:
        return frames, torch.eye(3, dtype=torch.float32, device=frames.device)
    t, _, h, w = frames.shape
    draws = _draw(1, (h, w), settings, generator, frames.device, allow_flips=allow_flips)
    warped = warp_images(frames, draws.matrices)
    shared = _Draws(
        matrices=draws.matrices,
        brightness=draws.brightness.expand(t),
        contrast=draws.contrast.expand(t),
        blur_sigma=draws.blur_sigma.expand(t),
    )
    out = _photometric(warped, shared, warped.mean(), settings, generator)
    return out, draws.matrices[0]
