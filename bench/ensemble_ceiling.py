"""How fast can M ensemble members train at once on one GPU? The hardware's side of it.

    python bench/ensemble_ceiling.py [--members 5] [--batch-size 16] [--size 256]
        [--backbone resnet50] [--steps 200] [--out JSON]

``vidpose train --seeds ...`` trains members at once, each a whole training run in its own
thread with its own CUDA stream (:mod:`vidpose.training.concurrent`). Whether that can ever cost
less than M times one member depends on the GPU: do M members' kernels overlap, and does the
work of M members cost less than M times one member's? This bench times bare training steps
(vidpose's network, bf16 autocast, channels_last, heatmap MSE, Adam, the whole step a CUDA
graph; synthetic inputs, no data loading, no Lightning), so that the host costs nothing:

- one:       one member's step, replayed;
- serial:    M members' graphs replayed one after another on one stream;
- streams:   M members' graphs, each replayed on its own stream (what threads + streams give
             at best);
- branches:  one graph holding all M members' steps on M forked streams (one launch per step);
- stacked:   M members as one network of stacked weights (``torch.func.functional_call`` under
             ``vmap``: grouped convolutions; contiguous memory format, which vmap needs), one
             step for all, if it can be captured;
- batch:     one member at batch M x B (what a single large step costs: a floor).

Reported: milliseconds of GPU time per step of all members (CUDA events over ``--steps``
steps after warm-up) and its ratio to one member's step.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from vidpose.models.network import build_network


def make_member(
    backbone: str, keypoints: int, seed: int, device: torch.device, channels_last: bool = True
) -> nn.Module:
    torch.manual_seed(seed)
    net = build_network(backbone, "heatmap_fpn", keypoints).to(device)
    if channels_last:
        net.use_channels_last()
    return net


def adam(params) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=1e-3, capturable=True, foreach=True)


class Member:
    """One member's static inputs, network, optimizer and step."""

    def __init__(self, net: nn.Module, batch: int, size: int, keypoints: int, device) -> None:
        self.net = net
        self.opt = adam(net.parameters())
        g = torch.Generator(device=device).manual_seed(int(torch.randint(1 << 30, ())))
        self.images = torch.rand(batch, 3, size, size, device=device, generator=g).to(
            memory_format=torch.channels_last
        )
        h = size // 4
        self.target = torch.rand(batch, keypoints, h, h, device=device, generator=g)

    def step(self) -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False):
            out = self.net(self.images)
            loss = (out.heatmaps.float() - self.target).square().mean()
        loss.backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=False)


def warm(fns: list[Callable[[], None]], times: int = 3) -> None:
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(times):
            for f in fns:
                f()
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()


def capture(fn: Callable[[], None]) -> torch.cuda.CUDAGraph:
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        fn()
    torch.cuda.synchronize()
    return g


def timed(launch: Callable[[], None], steps: int) -> float:
    """ms per call of ``launch`` (GPU time through the host's launches)."""
    for _ in range(5):
        launch()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(steps):
        launch()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / steps


def run(args: argparse.Namespace) -> dict:
    device = torch.device("cuda")
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    torch.set_float32_matmul_precision("high")
    m, b, s, k = args.members, args.batch_size, args.size, args.keypoints
    results: dict[str, dict] = {}

    def record(name: str, fn: Callable[[], dict]) -> None:
        t0 = time.perf_counter()
        try:
            results[name] = fn()
        except Exception as exc:  # a variant that cannot run is reported, not fatal
            results[name] = {"error": f"{type(exc).__name__}: {exc}"}
            traceback.print_exc()
        results[name]["setup_and_run_seconds"] = time.perf_counter() - t0
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        print(name, json.dumps(results[name]), flush=True)

    def one() -> dict:
        mem = Member(make_member(args.backbone, k, 0, device), b, s, k, device)
        warm([mem.step])
        g = capture(mem.step)
        return {"ms": timed(g.replay, args.steps)}

    def warmed_members() -> list[Member]:
        mems = [Member(make_member(args.backbone, k, i, device), b, s, k, device) for i in range(m)]
        warm([x.step for x in mems])
        return mems

    def on_streams(calls: list[Callable[[], None]], streams: list[torch.cuda.Stream]) -> None:
        """Each call on its own stream, forked from the current one and joined back to it."""
        cur = torch.cuda.current_stream()
        for st, call in zip(streams, calls, strict=True):
            st.wait_stream(cur)
            with torch.cuda.stream(st):
                call()
        for st in streams:
            cur.wait_stream(st)

    def serial_or_streams(streams: bool) -> dict:
        mems = warmed_members()  # kept: the graphs use their weights and inputs
        graphs = [capture(x.step) for x in mems]
        replays = [g.replay for g in graphs]
        if not streams:
            return {"ms": timed(lambda: [r() for r in replays], args.steps)}
        ss = [torch.cuda.Stream() for _ in graphs]
        return {"ms": timed(lambda: on_streams(replays, ss), args.steps)}

    def branches() -> dict:
        steps = [x.step for x in warmed_members()]  # bound methods keep the members
        ss = [torch.cuda.Stream() for _ in steps]
        g = capture(lambda: on_streams(steps, ss))
        return {"ms": timed(g.replay, args.steps)}

    def stacked() -> dict:
        from torch.func import functional_call, stack_module_state, vmap

        # vmap cannot ask a tensor whether it is channels_last: contiguous weights here
        nets = [make_member(args.backbone, k, i, device, channels_last=False) for i in range(m)]
        params, buffers = stack_module_state(nets)
        params = {n: p.detach().requires_grad_() for n, p in params.items()}
        base = nets[0]
        opt = adam(list(params.values()))
        images = torch.rand(m, b, 3, s, s, device=device)
        target = torch.rand(m, b, k, s // 4, s // 4, device=device)

        def fwd(p, bu, x):
            return functional_call(base, (p, bu), (x,)).heatmaps

        def step() -> None:
            with torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False):
                heat = vmap(fwd, randomness="different")(params, buffers, images)
                loss = (heat.float() - target).square().mean() * m
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=False)

        warm([step])
        try:
            g = capture(step)
            return {"ms": timed(g.replay, args.steps), "graph": True}
        except Exception as exc:
            print("stacked: capture failed, timing eagerly:", exc, flush=True)
            return {"ms": timed(step, max(20, args.steps // 5)), "graph": False}

    def batch() -> dict:
        mem = Member(make_member(args.backbone, k, 0, device), m * b, s, k, device)
        warm([mem.step])
        g = capture(mem.step)
        return {"ms": timed(g.replay, args.steps)}

    record("one", one)
    record("serial", lambda: serial_or_streams(False))
    record("streams", lambda: serial_or_streams(True))
    record("branches", branches)
    if not args.skip_stacked:
        record("stacked", stacked)
    record("batch", batch)
    one_ms = results["one"].get("ms")
    for r in results.values():
        if one_ms and "ms" in r:
            r["ratio_to_one"] = r["ms"] / one_ms
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--members", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--keypoints", type=int, default=17)
    p.add_argument("--backbone", default="resnet50")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--cudnn-benchmark", action="store_true")
    p.add_argument("--skip-stacked", action="store_true")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    if not torch.cuda.is_available():
        sys.exit("ensemble_ceiling.py measures a CUDA GPU; none is visible")
    report = {
        "benchmark": "ensemble_ceiling",
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "host": platform.node(),
        "settings": {k: v for k, v in vars(args).items() if k != "out"} | {"out": None},
        "results": run(args),
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
