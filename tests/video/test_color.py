"""Planar (I420) frames from PyAV and their conversion to RGB in torch."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch

from vidpose.video import open_video
from vidpose.video.color import i420_shape, i420_to_rgb, nv12_to_rgb


def _write(path, frames, codec="libx264", pix_fmt="yuv420p", **stream_opts):
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=30)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = pix_fmt
        for key, value in stream_opts.items():
            setattr(stream.codec_context, key, value)
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def test_planar_batches_convert_to_the_rgb_batches(mp4_video, ids):
    """Same frames, same validity; the torch conversion within 2 levels of FFmpeg's, on
    colourful H.264 frames, for sequential and sought batches."""
    with open_video(mp4_video, planar=True) as a, open_video(mp4_video) as b:
        assert (a.pixels, b.pixels) == ("i420", "rgb")
        h, w = a.info.height, a.info.width
        for start, stop in ((0, None), (13, 31)):
            pairs = zip(a.iter_batches(7, start, stop), b.iter_batches(7, start, stop), strict=True)
            for pa, pb in pairs:
                assert pa.pixels == "i420" and pb.pixels == "rgb"
                assert pa.frames.shape == (len(pa.valid), *i420_shape(h, w))
                assert np.array_equal(pa.indices, pb.indices)
                assert np.array_equal(pa.valid, pb.valid)
                rgb = i420_to_rgb(torch.from_numpy(pa.frames)).numpy()
                assert np.array_equal(ids(rgb), pa.indices)
                diff = np.abs(rgb.astype(int) - pb.frames.astype(int))
                assert diff.max() <= 2 and diff.mean() < 0.5


def test_planar_matches_nv12_conversion(mp4_video):
    """I420 and NV12 of the same picture convert to identical RGB."""
    with av.open(str(mp4_video)) as c:
        frame = next(c.decode(video=0))
    h, w = frame.height, frame.width
    nv12 = torch.from_numpy(frame.reformat(format="nv12").to_ndarray())[None]
    i420 = torch.from_numpy(frame.reformat(format="yuv420p").to_ndarray())[None]
    assert i420.shape[1:] == i420_shape(h, w)
    assert torch.equal(i420_to_rgb(i420), nv12_to_rgb(nv12, h, w))


@pytest.mark.parametrize(
    ("pix_fmt", "codec", "size", "opts"),
    [
        ("yuv444p", "libx264", (48, 64), {}),  # not 4:2:0
        ("yuvj420p", "mjpeg", (48, 64), {}),  # full range
        ("yuv420p", "libx264", (48, 64), {"colorspace": 1}),  # BT.709 signalled
    ],
)
def test_videos_the_planes_cannot_stand_for_come_as_rgb(
    tmp_path, synth_frames, pix_fmt, codec, size, opts
):
    suffix = ".avi" if codec == "mjpeg" else ".mp4"
    frames = synth_frames[:10, : size[0], : size[1]]
    path = _write(tmp_path / f"v{suffix}", np.ascontiguousarray(frames), codec, pix_fmt, **opts)
    with open_video(path, reader="pyav", planar=True) as vr:
        batch = next(vr.iter_batches(4))
        assert vr.pixels == "rgb" and batch.pixels == "rgb"
        assert batch.frames.shape == (4, size[0], size[1], 3)


def test_i420_known_colours_and_odd_sizes():
    h, w = 2, 4
    i420 = torch.zeros(3, *i420_shape(h, w), dtype=torch.uint8)
    flat = i420.reshape(3, -1)
    flat[0, : h * w], flat[0, h * w :] = 16, 128  # black
    flat[1, : h * w], flat[1, h * w :] = 235, 128  # white
    flat[2, : h * w], flat[2, h * w : h * w + 2], flat[2, h * w + 2 :] = 81, 90, 240  # red
    rgb = i420_to_rgb(i420).to(torch.int)
    assert (rgb[0] == 0).all() and (rgb[1] == 255).all()
    assert (rgb[2, ..., 0] >= 253).all() and (rgb[2, ..., 1:] <= 2).all()
    with pytest.raises(ValueError, match="even frame size, got 3x4"):
        i420_shape(3, 4)


MIRROR_VIDEO = (
    Path(__file__).resolve().parents[2].parent
    / "shared/data/mirror-mouse-example/videos/test_vid.mp4"
)


def _rgb_then_resized(i420: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    import torch.nn.functional as F

    rgb = i420_to_rgb(i420).permute(0, 3, 1, 2).float() / 255.0
    return F.interpolate(rgb, size=size, mode="bilinear", align_corners=False, antialias=True)


@pytest.mark.skipif(not MIRROR_VIDEO.exists(), reason="needs ../shared/data/mirror-mouse-example")
def test_the_network_input_made_at_its_size_is_the_resized_rgb_within_a_level():
    """i420_to_input (planes resized, then the colour matrix at the network's size) against
    i420_to_rgb then the resize, on the real mirror-mouse frames (406 x 396 -> 256 x 256)."""
    from vidpose.video.color import i420_to_input

    with open_video(MIRROR_VIDEO, planar=True) as vr:
        batch = next(iter(vr.iter_batches(16, 0, 16)))
    i420 = torch.as_tensor(np.asarray(batch.frames))
    new = i420_to_input(i420, (256, 256))
    old = _rgb_then_resized(i420, (256, 256))
    assert new.shape == old.shape == (16, 3, 256, 256) and new.dtype == torch.float32
    levels = ((new - old) * 255).abs().flatten()
    assert float(levels.mean()) < 0.25
    assert float(levels.kthvalue(int(0.999 * levels.numel())).values) < 1.0
    assert float(levels.max()) < 12  # dark edges: clamped after the resize here
    assert abs(float(((new - old) * 255).mean())) < 0.1  # the rounding's mean is kept


def test_the_network_input_follows_colour_ramps_and_keeps_the_size_when_asked():
    """Colourful planes (every chroma value in use): within a level of the resized RGB; at
    the frames' own size, exactly i420_to_rgb's values."""
    from vidpose.video.color import i420_to_input

    h, w = 406, 396
    y = torch.linspace(20, 230, w).repeat(h, 1)
    cb = torch.linspace(40, 220, w // 2).repeat(h // 2, 1)
    cr = torch.linspace(220, 40, h // 2)[:, None].repeat(1, w // 2)
    planes = torch.cat([y.flatten(), cb.flatten(), cr.flatten()]).round().to(torch.uint8)
    i420 = planes.reshape(1, h * 3 // 2, w)
    levels = ((i420_to_input(i420, (256, 256)) - _rgb_then_resized(i420, (256, 256))) * 255).abs()
    assert float(levels.max()) < 1.0
    same = i420_to_input(i420, (h, w))
    rgb = i420_to_rgb(i420).permute(0, 3, 1, 2).float() / 255.0
    assert same.shape == (1, 3, h, w)
    assert torch.equal(same, rgb)
