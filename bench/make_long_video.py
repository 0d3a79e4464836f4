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
    """Write ``copies`` back-to-back copies of ``src``'s video stream to ``dst``; frames out.

    Each copy is demuxed afresh from ``src`` (PyAV 17 refuses to mux a packet twice, or one
    whose container is closed).
    """
    with av.open(str(src)) as inp:
        stamps = [p.pts for p in inp.demux(inp.streams.video[0]) if p.dts is not None]
    first, last = min(stamps), max(stamps)
    step = (last - first) // max(1, len(stamps) - 1)
    span = last - first + step
    n = 0
    with av.open(str(dst), "w") as out:
        out_stream = None
        for c in range(copies):
            with av.open(str(src)) as inp:
                in_stream = inp.streams.video[0]
                if out_stream is None:
                    out_stream = out.add_stream_from_template(in_stream)
                for p in inp.demux(in_stream):
                    if p.dts is None:  # the demuxer's flush packet
                        continue
                    p.stream = out_stream
                    p.pts = None if p.pts is None else p.pts - first + c * span
                    p.dts = p.dts - first + c * span
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
