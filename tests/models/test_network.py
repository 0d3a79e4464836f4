"""PoseNetwork end to end: split forward, input checks, channels_last + bf16 autocast, and a
tiny network overfitting synthetic dots (targets, loss, decoding and conventions agree)."""

from __future__ import annotations

import pytest
import torch

from vidpose.errors import ConfigError
from vidpose.losses import heatmap_loss, pixel_error
from vidpose.models import (
    HEADS,
    FrameStream,
    PoseNetwork,
    attach_head,
    build_network,
    gaussian_targets_px,
)


@pytest.fixture(scope="module")
def net() -> PoseNetwork:
    torch.manual_seed(0)
    return build_network("resnet18", "heatmap", n_keypoints=2).eval()


def test_forward_equals_forward_head_of_forward_features(net):
    x = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        full = net(x)
        feats = net.forward_features(x)
        split = net.forward_head(feats)
    assert feats.shape == (2, 512, 2, 3)
    assert torch.equal(full.coords, split.coords)
    assert torch.equal(full.heatmaps, split.heatmaps)
    assert full.heatmaps.shape == (2, 2, 16, 24) and full.heatmap_stride == 4
    assert (net.stride, net.n_keypoints, net.heatmap_stride) == (32, 2, 4)


@pytest.mark.parametrize("shape", [(1, 3, 65, 64), (1, 3, 64, 40), (1, 1, 64, 64), (3, 64, 64)])
def test_bad_image_shapes_are_rejected_with_the_shape(net, shape):
    with pytest.raises(ValueError, match=r"\(|multiple"):
        net(torch.rand(*shape))


def test_channels_last_and_bf16_autocast(net):
    cl = build_network("resnet18", "heatmap", n_keypoints=2).to(memory_format=torch.channels_last)
    x = torch.rand(2, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = cl(x)
        loss = heatmap_loss(
            out.heatmaps, torch.rand_like(out.heatmaps.float()), out.coords[..., 0] > -1
        )
    assert out.heatmaps.dtype == torch.bfloat16
    assert out.coords.dtype == torch.float32 and out.confidence.dtype == torch.float32
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in cl.parameters() if p.grad is not None)
    # Same weights in fp32 on contiguous input: the logits agree to bf16 accuracy. (Not the
    # coordinates: an untrained network's maps are nearly flat, so their arg-max is arbitrary.)
    cl.eval()
    with torch.no_grad():
        ref = cl(x.contiguous()).heatmaps
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = cl(x).heatmaps.float()
    assert (ref - low).abs().max() < 0.05 * ref.abs().max()


def test_heatmap_stride_is_passed_to_heatmap_heads_only():
    assert build_network("resnet18", "heatmap", 1, heatmap_stride=2).heatmap_stride == 2
    assert build_network("resnet18", "regression", 1, heatmap_stride=2).heatmap_stride is None


def test_unknown_names_and_options_are_config_errors():
    with pytest.raises(ConfigError, match=r"model\.head"):
        build_network("resnet18", "nope", 1)
    with pytest.raises(ConfigError, match=r"model\.backbone"):
        build_network("nope", "heatmap", 1)
    with pytest.raises(ConfigError, match="unknown option"):
        build_network("resnet18", "heatmap", 1, depth=3)


def _dot_images(points_px: torch.Tensor, size: int) -> torch.Tensor:
    """(B, K<=3, 2) points -> (B, 3, size, size) black images, keypoint k a Gaussian dot of
    radius ~1.5 px in colour channel k (red, green, ...), so every keypoint is identifiable."""
    b, k, _ = points_px.shape
    ys, xs = torch.meshgrid(torch.arange(size * 1.0), torch.arange(size * 1.0), indexing="ij")
    images = torch.zeros(b, 3, size, size)
    for i in range(b):
        for j in range(k):
            x, y = points_px[i, j]
            images[i, j] = torch.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * 1.5**2))
    return images


def test_tiny_network_overfits_dots_to_sub_2px():
    """resnet18 from scratch, 64 x 64, 4 images x 2 coloured dots at known sub-pixel points:
    80 Adam steps on the heatmap KL loss bring the eval-mode error below 2 px (typically
    ~0.2 px). This fails if targets, loss and decoding disagree on the pixel convention."""
    torch.manual_seed(0)
    points = torch.rand(4, 2, 2) * 48 + 8
    images = _dot_images(points, 64)
    visible = torch.ones(4, 2, dtype=torch.bool)
    model = build_network("resnet18", "heatmap", n_keypoints=2, heatmap_stride=4)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(80):
        out = model(images)
        target = gaussian_targets_px(points, *out.heatmaps.shape[-2:], out.heatmap_stride, 2.0)
        loss = heatmap_loss(out.heatmaps, target, visible, kind="kl")
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        out = model(images)
    err = pixel_error(out.coords, points)
    assert err.mean() < 2.0, err
    assert err.max() < 4.0, err
    assert out.confidence.mean() > 0.8


@pytest.mark.parametrize("head", HEADS.names())
@torch.no_grad()
def test_every_network_offers_the_one_interface_training_and_prediction_use(get_backbone, head):
    """For any head: labeled windows + a clip in one pass, windows alone, a frame stream and
    unrelated images agree with each other (eval mode, so batch composition does not matter)."""
    torch.manual_seed(0)
    net = attach_head(get_backbone("resnet18"), head, 2).eval()
    w = net.context_frames
    windows = torch.rand(3, w, 3, 32, 32)
    clip = torch.rand(w + 5, 3, 32, 32)
    labeled, on_clip = net.forward_train(windows, clip)
    assert labeled.combined.coords.shape == (3, 2, 2) and len(labeled.decoders) >= 1
    assert on_clip is not None and on_clip.combined.coords.shape == (6, 2, 2)
    assert len(on_clip.decoders) == len(labeled.decoders)
    ref = net.forward_windows(windows).combined
    torch.testing.assert_close(labeled.combined.coords, ref.coords, atol=1e-4, rtol=1e-4)
    assert net.forward_train(windows)[1] is None

    # The stream's frame t equals the window t-W//2..t+W//2 of the clip (edge-padded).
    half = w // 2
    idx = (torch.arange(len(clip))[:, None] + torch.arange(-half, half + 1)).clamp(0, len(clip) - 1)
    expected = net.forward_windows(clip[idx]).combined.coords
    stream = FrameStream(net)
    outs = [stream.push(clip[:4]), stream.push(clip[4:]), stream.finish()]
    got = torch.cat([o.coords for o in outs if o is not None])
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
    # Full-window clip predictions are the stream's predictions of the same frames.
    torch.testing.assert_close(
        on_clip.combined.coords, got[half : len(clip) - half], atol=1e-4, rtol=1e-4
    )

    images = torch.rand(2, 3, 32, 32)
    expected = net.forward_windows(images[:, None].expand(2, w, 3, 32, 32)).combined.coords
    torch.testing.assert_close(net.forward_images(images).coords, expected, atol=1e-4, rtol=1e-4)
