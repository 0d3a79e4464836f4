"""Concatenate N copies of a video by remuxing (no re-encoding: the same encoded stream).

    uv run python bench/make_long_video.py VIDEO OUT.mp4 --copies 10

Used to build the 9,940-frame version of the mirror-mouse test video (994 frames x 10) that the
published throughput figures refer to.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import av


def remux_copies(src: Path, dst: Path, copies: int) -> int:
    """Write ``copies`` back-to-back copies of ``src``'s video stream to ``dst``; frames out."""
    with av.open(str(src)) as inp:
        in_stream = inp.streams.video[0]
        packets = [p for p in inp.demux(in_stream) if p.dts is not None]
    first = min(p.pts for p in packets if p.pts is not None)
    last = max(p.pts for p in packets if p.pts is not None)
    step = (last - first) // max(1, len(packets) - 1)
    span = last - first + step
    n = 0
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        in_stream = inp.streams.video[0]
        out_stream = out.add_stream_from_template(in_stream)
        stamps = [(p.pts, p.dts) for p in packets]  # packets are re-muxed: keep the originals
        for c in range(copies):
            for p, (pts, dts) in zip(packets, stamps):
                p.stream = out_stream
                p.pts = None if pts is None else pts - first + c * span
                p.dts = dts - first + c * span
                out.mux(p)
                n += 1
    return n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("video", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--copies", type=int, default=10)
    args = ap.parse_args(argv)
    n = remux_copies(args.video, args.out, args.copies)
    print(f"wrote {args.out}: {n} packets")
    return 0


if __name__ == "__main__":
    sys.exit(main())
