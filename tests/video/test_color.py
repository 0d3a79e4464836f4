"""Planar (I420) frames from PyAV and their conversion to RGB in torch."""

from __future__ import annotations

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
