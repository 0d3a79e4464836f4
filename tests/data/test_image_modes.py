"""read_image_rgb: every image mode a camera writes reads as the uint8 RGB it shows.

Each test writes a tiny image with known pixel values (numpy -> PIL -> file in tmp_path) and
checks the exact uint8 result. 16-bit grey is scaled over the full range,
round(v * 255 / 65535); the expected values below are worked out by hand or with exact
fractions, independently of the code under test.
"""

from __future__ import annotations

import struct
import warnings
import zlib
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vidpose.data.labeled import read_image_rgb
from vidpose.errors import ProjectError


def grey_rgb(values) -> np.ndarray:
    """(H, W) uint8 grey -> the (H, W, 3) RGB it should read as."""
    v = np.asarray(values, dtype=np.uint8)
    return np.repeat(v[..., None], 3, axis=2)


def full_range_8bit(v: int) -> int:
    """round(v * 255 / 65535) with exact fractions (never a tie)."""
    return int(Fraction(v * 255, 65535) + Fraction(1, 2))


def write_png16(path: Path, values: np.ndarray, colour_type: int) -> Path:
    """A 16-bit-per-sample PNG written by hand (Pillow cannot write 48-bit RGB or 16-bit LA).

    colour_type: 0 grey (H, W), 2 RGB (H, W, 3), 4 grey + alpha (H, W, 2).
    """
    values = np.asarray(values, dtype=np.uint16)
    height, width = values.shape[:2]
    rows = values.reshape(height, -1).astype(">u2")
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)  # filter type 0 on every row

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
    return path


def saved(im: Image.Image, path: Path, expected_mode: str) -> Path:
    """Save ``im`` and check the file reopens in the mode the test is about."""
    im.save(path)
    with Image.open(path) as back:
        assert back.mode == expected_mode
    return path


# --- 8-bit and smaller ------------------------------------------------------------------------


def test_grey_L(tmp_path):
    values = np.array([[0, 1, 127], [128, 254, 255]], dtype=np.uint8)
    path = saved(Image.fromarray(values), tmp_path / "l.png", "L")
    np.testing.assert_array_equal(read_image_rgb(path), grey_rgb(values))


def test_one_bit(tmp_path):
    bits = np.array([[True, False, True], [False, False, True]])
    path = saved(Image.fromarray(bits), tmp_path / "b.png", "1")
    np.testing.assert_array_equal(read_image_rgb(path), grey_rgb(bits * 255))


def test_grey_alpha_LA_drops_alpha(tmp_path):
    grey = np.array([[10, 200], [30, 40]], dtype=np.uint8)
    alpha = np.array([[0, 255], [128, 7]], dtype=np.uint8)
    im = Image.merge("LA", [Image.fromarray(grey), Image.fromarray(alpha)])
    path = saved(im, tmp_path / "la.png", "LA")
    # alpha is dropped, not composited: a transparent pixel keeps its grey value
    np.testing.assert_array_equal(read_image_rgb(path), grey_rgb(grey))


def test_rgb(tmp_path):
    rgb = np.array([[[0, 1, 2], [250, 128, 7]], [[255, 255, 255], [9, 99, 199]]], dtype=np.uint8)
    path = saved(Image.fromarray(rgb), tmp_path / "rgb.png", "RGB")
    np.testing.assert_array_equal(read_image_rgb(path), rgb)


def test_rgba_drops_alpha(tmp_path):
    rgba = np.array([[[10, 20, 30, 0], [40, 50, 60, 128], [70, 80, 90, 255]]], dtype=np.uint8)
    path = saved(Image.fromarray(rgba), tmp_path / "rgba.png", "RGBA")
    np.testing.assert_array_equal(read_image_rgb(path), rgba[..., :3])


PALETTE = [255, 0, 0, 0, 255, 0, 0, 0, 255, 17, 34, 51]
PALETTE_RGB = np.array(PALETTE, dtype=np.uint8).reshape(-1, 3)


def palette_image(indices: np.ndarray) -> Image.Image:
    im = Image.new("P", (indices.shape[1], indices.shape[0]))
    im.putpalette(PALETTE)
    im.putdata(indices.reshape(-1).tolist())
    return im


@pytest.mark.parametrize(
    "transparency",
    [None, 1, bytes([0, 128, 255, 0])],
    ids=["opaque", "one-transparent-index", "alpha-per-index"],
)
def test_palette(tmp_path, transparency):
    indices = np.array([[0, 1, 2], [3, 2, 0]])
    kwargs = {} if transparency is None else {"transparency": transparency}
    path = tmp_path / "p.png"
    palette_image(indices).save(path, **kwargs)
    with Image.open(path) as back:
        assert back.mode == "P"
        assert ("transparency" in back.info) == (transparency is not None)
    with warnings.catch_warnings():
        # Pillow warns when a palette with per-index alpha goes straight to RGB
        warnings.simplefilter("error")
        rgb = read_image_rgb(path)
    np.testing.assert_array_equal(rgb, PALETTE_RGB[indices])


def test_palette_alpha_PA(tmp_path):
    indices = np.array([[3, 0], [1, 2]])
    alpha = Image.fromarray(np.array([[0, 255], [9, 128]], dtype=np.uint8))
    im = palette_image(indices).convert("PA")
    im.putalpha(alpha)
    path = saved(im, tmp_path / "pa.tif", "PA")
    np.testing.assert_array_equal(read_image_rgb(path), PALETTE_RGB[indices])


def test_ycbcr_neutral_chroma_is_grey(tmp_path):
    luma = np.array([[0, 16, 128], [200, 235, 255]], dtype=np.uint8)
    neutral = Image.new("L", (3, 2), 128)
    im = Image.merge("YCbCr", [Image.fromarray(luma), neutral, neutral])
    path = saved(im, tmp_path / "ycc.tif", "YCbCr")
    np.testing.assert_array_equal(read_image_rgb(path), grey_rgb(luma))


# --- 16-bit -----------------------------------------------------------------------------------

# (16-bit value, the 8-bit value it reads as): worked out by hand from v / 257 rounded
HAND_16 = [
    (0, 0),
    (128, 0),  # 0.498
    (129, 1),  # 0.502
    (257, 1),
    (1000, 4),  # 3.89: a value 16-bit -> 8-bit by high byte would give 3
    (32767, 127),  # 127.498
    (32768, 128),  # 127.502
    (65534, 255),  # 254.996
    (65535, 255),
]


def test_16bit_grey_png_is_scaled_not_white(tmp_path):
    values = np.array([[v for v, _ in HAND_16]], dtype=np.uint16)
    path = saved(Image.fromarray(values), tmp_path / "g16.png", "I;16")
    np.testing.assert_array_equal(read_image_rgb(path), grey_rgb([[e for _, e in HAND_16]]))


def test_16bit_grey_every_value(tmp_path):
    values = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    path = saved(Image.fromarray(values), tmp_path / "all.png", "I;16")
    rgb = read_image_rgb(path)
    assert rgb.dtype == np.uint8 and rgb.shape == (256, 256, 3)
    expected = np.array([full_range_8bit(v) for v in range(65536)], dtype=np.uint8)
    np.testing.assert_array_equal(rgb[..., 0].reshape(-1), expected)
    np.testing.assert_array_equal(rgb[..., 1], rgb[..., 0])
    np.testing.assert_array_equal(rgb[..., 2], rgb[..., 0])


def test_same_scene_in_16_and_8_bit_reads_within_one_level(tmp_path):
    rng = np.random.default_rng(0)
    scene8 = rng.integers(0, 256, size=(12, 16), dtype=np.uint8)
    # what a 16-bit camera records of that scene: the 8-bit level plus finer detail below it
    detail = rng.integers(0, 256, size=(12, 16))
    scene16 = (scene8.astype(np.int64) * 256 + detail).astype(np.uint16)
    p8 = saved(Image.fromarray(scene8), tmp_path / "s8.png", "L")
    p16 = saved(Image.fromarray(scene16), tmp_path / "s16.png", "I;16")
    diff = read_image_rgb(p16).astype(int) - read_image_rgb(p8).astype(int)
    assert np.abs(diff).max() <= 1
    # and exactly equal when the 16-bit values are the 8-bit ones stretched (v * 257)
    exact = saved(Image.fromarray(scene8.astype(np.uint16) * 257), tmp_path / "x.png", "I;16")
    np.testing.assert_array_equal(read_image_rgb(exact), read_image_rgb(p8))


def test_16bit_big_endian_I16B(tmp_path):
    values = np.array([[v for v, _ in HAND_16]], dtype=">u2")
    path = saved(Image.fromarray(values), tmp_path / "g16b.tif", "I;16B")
    np.testing.assert_array_equal(read_image_rgb(path), grey_rgb([[e for _, e in HAND_16]]))


def test_mode_I_holding_16bit_values(tmp_path):
    values = np.array([[v for v, _ in HAND_16]], dtype=np.int32)
    path = saved(Image.fromarray(values), tmp_path / "i32.tif", "I")
    np.testing.assert_array_equal(read_image_rgb(path), grey_rgb([[e for _, e in HAND_16]]))


@pytest.mark.parametrize("bad", [-1, 65536, 1_000_000])
def test_mode_I_outside_16bit_range_is_refused(tmp_path, bad):
    values = np.array([[0, 1000, bad]], dtype=np.int32)
    path = saved(Image.fromarray(values), tmp_path / "wide.tif", "I")
    with pytest.raises(ProjectError) as info:
        read_image_rgb(path)
    message = str(info.value)
    assert str(path) in message and "'I'" in message and "0..65535" in message
    assert f"{min(0, bad)}..{max(1000, bad)}" in message


def test_48bit_rgb_png_reads_high_byte(tmp_path):
    # Pillow decodes 16-bit-per-channel PNGs to 8-bit RGB itself, keeping the high byte
    values = np.array([[[0, 257, 65535], [1000, 30000, 65280], [128, 129, 32768]]])
    path = write_png16(tmp_path / "rgb48.png", values, colour_type=2)
    with Image.open(path) as im:
        assert im.mode == "RGB"
    rgb = read_image_rgb(path)
    np.testing.assert_array_equal(rgb, values >> 8)
    # within one level of the full-range scaling used for 16-bit grey
    scaled = np.vectorize(full_range_8bit)(values)
    assert np.abs(rgb.astype(int) - scaled).max() <= 1


def test_16bit_grey_alpha_png_drops_alpha(tmp_path):
    values = np.array([[[1000, 0], [65535, 65535], [32768, 12]]])
    path = write_png16(tmp_path / "la16.png", values, colour_type=4)
    np.testing.assert_array_equal(read_image_rgb(path), grey_rgb(values[..., 0] >> 8))


# --- refused ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "suffix", "make"),
    [
        ("F", ".tif", lambda: Image.fromarray(np.array([[0.5, 1.5]], dtype=np.float32))),
        ("CMYK", ".tif", lambda: Image.new("CMYK", (2, 1), (0, 255, 0, 0))),
        ("CMYK", ".jpg", lambda: Image.new("CMYK", (2, 1), (0, 255, 0, 0))),
        ("LAB", ".tif", lambda: Image.new("LAB", (2, 1), (50, 128, 128))),
    ],
)
def test_unrepresentable_modes_are_refused_naming_file_and_mode(tmp_path, mode, suffix, make):
    path = saved(make(), tmp_path / f"odd{suffix}", mode)
    with pytest.raises(ProjectError) as info:
        read_image_rgb(path)
    message = str(info.value)
    assert message.startswith(f"{path}: image mode {mode!r}")
    assert "supported: " in message and "I;16" in message and "RGB" in message
