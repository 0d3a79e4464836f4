"""The temporal-context network: windows, edge padding, one backbone pass per frame, selection.

A tiny ResNet-18 context network (K=2, W=5, 32 x 32 inputs, random weights, eval mode) on random
frames: the reference for every frame t is ``forward_windows`` on frames
``clamp(t-2..t+2, 0, N-1)`` (edge padding), computed independently.
"""

from __future__ import annotations

import pytest
import torch

from vidpose.errors import ConfigError
from vidpose.models import (
    ContextPoseNetwork,
    FrameStream,
    HeadOutput,
    attach_head,
    build_network,
    select_more_confident,
)
from vidpose.models.context import edge_padded_windows

K, W, S = 2, 5, 32


@pytest.fixture
def net(get_backbone) -> ContextPoseNetwork:
    torch.manual_seed(0)
    n = attach_head(get_backbone("resnet18"), "heatmap_context", K, heatmap_stride=4)
    assert isinstance(n, ContextPoseNetwork)
    # Random temporal weights: at init the mix copies the centre frame, which would hide
    # a wrong neighbour order.
    for conv in n.head.temporal.values():
        torch.nn.init.normal_(conv.weight, std=0.02)
    return n.eval()


def _counting(net: ContextPoseNetwork) -> list[int]:
    """Wrap net.forward_features; the returned list gets the batch size of every call."""
    calls: list[int] = []
    inner = net.forward_features

    def wrapped(images):
        calls.append(int(images.shape[0]))
        return inner(images)

    net.forward_features = wrapped  # type: ignore[method-assign]
    return calls


def test_edge_padded_windows_clamp_at_both_ends():
    idx = edge_padded_windows(6, 5)
    assert idx[0].tolist() == [0, 0, 0, 1, 2]
    assert idx[1].tolist() == [0, 0, 1, 2, 3]
    assert idx[3].tolist() == [1, 2, 3, 4, 5]
    assert idx[5].tolist() == [3, 4, 5, 5, 5]
    assert edge_padded_windows(1, 3).tolist() == [[0, 0, 0]]


@pytest.mark.parametrize("n_frames, batch", [(11, 4), (11, 11), (2, 1), (1, 3), (5, 2)])
@torch.no_grad()
def test_frame_stream_equals_edge_padded_windows_with_one_backbone_pass_per_frame(
    net, n_frames, batch
):
    torch.manual_seed(1)
    frames = torch.rand(n_frames, 3, S, S)
    expected = net.forward_windows(frames[edge_padded_windows(n_frames, W)]).combined

    calls = _counting(net)
    stream = FrameStream(net)
    outs = []
    for s in range(0, n_frames, batch):
        out = stream.push(frames[s : s + batch])
        if out is not None:
            outs.append(out)
    last = stream.finish()
    assert last is not None
    outs.append(last)
    assert sum(calls) == n_frames
    got = torch.cat([o.coords for o in outs])
    assert got.shape == expected.coords.shape == (n_frames, K, 2)
    torch.testing.assert_close(got, expected.coords, atol=1e-4, rtol=1e-4)
    conf = torch.cat([o.confidence for o in outs])
    torch.testing.assert_close(conf, expected.confidence, atol=1e-5, rtol=1e-4)


@torch.no_grad()
def test_forward_sequence_gives_the_full_window_centres(net):
    torch.manual_seed(2)
    frames = torch.rand(7, 3, S, S)
    seq = net.forward_sequence(net.forward_features(frames))
    assert seq.combined.coords.shape == (3, K, 2)  # centres 2, 3, 4
    windows = torch.stack([frames[t - 2 : t + 3] for t in (2, 3, 4)])
    ref = net.forward_windows(windows)
    torch.testing.assert_close(seq.context.coords, ref.context.coords, atol=1e-4, rtol=1e-4)


@torch.no_grad()
def test_window_frame_order_matters_and_single_head_sees_only_the_centre(net):
    torch.manual_seed(3)
    frames = torch.rand(1, W, 3, S, S)
    a = net.forward_windows(frames)
    shuffled = frames[:, [4, 3, 2, 1, 0]]  # same centre, neighbours reversed
    b = net.forward_windows(shuffled)
    torch.testing.assert_close(a.single.heatmaps, b.single.heatmaps)
    assert not torch.allclose(a.context.heatmaps, b.context.heatmaps)


@torch.no_grad()
def test_untrained_temporal_mix_copies_the_centre_frame(get_backbone):
    torch.manual_seed(0)
    n = attach_head(get_backbone("resnet18"), "heatmap_context", K).eval()
    feats = [n.forward_features(torch.rand(2, 3, S, S)) for _ in range(W)]
    mixed = n.head.mix(feats)
    assert 32 in mixed and set(mixed) == {int(s) for s in n.head.temporal}
    for s, f in mixed.items():
        torch.testing.assert_close(f, feats[W // 2][s])


def test_select_more_confident_takes_each_keypoint_from_the_surer_head():
    single = HeadOutput(
        coords=torch.tensor([[[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]]),
        confidence=torch.tensor([[0.9, 0.2, 0.5]]),
        heatmaps=torch.zeros(1, 3, 4, 4),
        heatmap_stride=4,
    )
    context = HeadOutput(
        coords=torch.tensor([[[10.0, 10.0], [20.0, 20.0], [30.0, 30.0]]]),
        confidence=torch.tensor([[0.1, 0.8, 0.5]]),
        heatmaps=torch.ones(1, 3, 4, 4),
        heatmap_stride=4,
    )
    out = select_more_confident(single, context)
    assert out.coords[0, :, 0].tolist() == [1.0, 20.0, 30.0]  # tie -> context
    assert out.confidence[0].tolist() == pytest.approx([0.9, 0.8, 0.5])
    assert out.heatmaps[0, :, 0, 0].tolist() == [0.0, 1.0, 1.0]


@torch.no_grad()
def test_combined_output_is_the_per_keypoint_selection(net):
    torch.manual_seed(4)
    both = net.forward_windows(torch.rand(3, W, 3, S, S))
    ref = select_more_confident(both.single, both.context)
    torch.testing.assert_close(both.combined.coords, ref.coords)
    assert net(torch.rand(3, W, 3, S, S)).coords.shape == (3, K, 2)


def test_window_shape_and_context_frames_are_checked(net):
    with pytest.raises(ValueError, match=r"\(B, 5, 3, H, W\)"):
        net.forward_windows(torch.rand(2, 3, 3, S, S))
    with pytest.raises(ConfigError, match="context_frames=4"):
        build_network("resnet18", "heatmap_context", 2, context_frames=4)


def test_context_head_trains_both_decoders(net):
    net.train()
    both = net.forward_windows(torch.rand(2, W, 3, S, S))
    (
        both.single.heatmaps.float().pow(2).mean() + both.context.heatmaps.float().pow(2).mean()
    ).backward()
    for mod in (net.head.final, net.head.context_decoder.final, *net.head.temporal.values()):
        assert mod.weight.grad is not None and mod.weight.grad.abs().sum() > 0
