"""Supervised vs semi-supervised vs context vs a smoothed ensemble, scored on shifted sessions.

    uv run python bench/semisupervised_shift.py [--seeds 3] [--steps 1000] [--batch 16]
        [--backbone resnet50] [--size 256] [--frames 600] [--labeled 60] [--shifted 2]
        [--shift strong] [--conditions supervised,semi,context_supervised,context_semi,ensemble]
        [--members 4] [--ensemble-of auto] [--extra semi:losses.temporal.weight=0.01 ...]
        [--device auto] [--out JSON] [key=value ...]
    uv run python bench/semisupervised_shift.py --merge A.json B.json --out JSON

Smoke check (CPU, a few minutes):

    uv run python bench/semisupervised_shift.py --device cpu --steps 20 --seeds 1 --size 64 \\
        --frames 60 --labeled 12 --out /tmp/shift_smoke.json

For each seed: synthesize a project with one labeled session (``session00``, ``--labeled``
frames) and ``--shifted`` unlabeled sessions with a domain shift (``shift00``, ...; another
floor, lamp, animal size, contrast, blur and camera placement, see vidpose.synthetic.shift),
all videos in ``videos/`` so that semi-supervised training sees the shifted sessions' video.
Train every condition with the same labels, seed and number of steps:

- ``supervised``: the default single-frame heatmap model;
- ``semi``: plus ``model.losses=[--losses]`` (temporal + single-view PCA);
- ``context_supervised`` / ``context_semi``: the same with ``model.head=heatmap_context``;
- ``ensemble``: ``--members`` models of the best of the conditions above (``--ensemble-of
  auto``: the lowest shifted-session median error over visible keypoints, mean over seeds;
  or name one), differing only in ``training.seed`` (seed + 1000 i; member 0 is the
  condition's own model), Kalman-smoothed with ``vidpose.smooth.smooth_poses`` (auto
  smoothing). The members' per-frame median, unsmoothed, is reported too.

Positional ``key=value`` overrides apply to every condition, ``--extra COND:key=value`` to one.
Each model predicts every video; scores compare every frame with ``ground_truth/<stem>_full.csv``:

- ``shifted``: all frames of the shifted sessions, pooled (and each session on its own);
- ``in_distribution``: the labeled session's frames more than 2 frames away from a labeled
  frame (a context model sees the 2 neighbours of a labeled frame) plus every frame of any
  other unshifted session (``--videos`` > 1). Semi-supervised conditions saw these videos
  unlabeled, as they saw the shifted ones.

Per group: median / 95th percentile / mean pixel error over visible keypoints (inside the frame
and not hidden) and over occluded ones (inside, hidden; scored against where they truly are);
the jump fraction, bench/semisupervised_synthetic.py's spurious jump per keypoint move: a
keypoint's predicted position moves more than ``--jump-px`` between consecutive frames while
its true position moved less (moves where the keypoint is outside the frame in either frame
are left out), as a share of all keypoint moves, and the share of frame pairs with any such
jump (that script's ``jump_frame_fraction``). ``--jump-px`` defaults to 20 px at 256 px,
scaled with ``--size``.

Prints one table (mean ± sd over seeds; an ensemble's ``train s`` is all its members') and
writes the settings, every run, the shifted
sessions' factors and the summary to ``--out`` after every run (a stopped run keeps what it
finished). To spread the seeds over several calls, run ``--seeds 1 --first-seed K`` with a
fixed ``--ensemble-of`` and pool the files with ``--merge``.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from vidpose.config import compose_config
from vidpose.errors import VidposeError
from vidpose.io import Poses, read_poses
from vidpose.predict import load_model
from vidpose.smooth import smooth_poses
from vidpose.synthetic import CONTEXT_FRAMES, SyntheticProject, synthesize_project
from vidpose.synthetic.shift import check_shift_kinds, shift_magnitude
from vidpose.training import train

SEMI = "semi"
CONDITIONS = ("supervised", SEMI, "context_supervised", "context_semi")
ENSEMBLE = "ensemble"
GROUPS = ("shifted", "in_distribution")
METRICS = (
    "visible_median_px",
    "visible_p95_px",
    "visible_mean_px",
    "occluded_median_px",
    "occluded_p95_px",
    "jump_fraction",
    "jump_frame_fraction",
)
MEMBER_SEED_STEP = 1000


def condition_overrides(losses: str) -> dict[str, list[str]]:
    semi = [f"model.losses=[{losses}]"]
    return {
        "supervised": [],
        SEMI: semi,
        "context_supervised": ["model.head=heatmap_context"],
        "context_semi": ["model.head=heatmap_context", *semi],
    }


# -- scoring -----------------------------------------------------------------------------------


def errors(
    pred: np.ndarray, full: Poses, keep: np.ndarray, jump_px: float
) -> dict[str, np.ndarray]:
    """Raw errors of predictions (N, K, 2) against a ``_full.csv`` table on frames ``keep``."""
    occluded = full.keypoint_columns["occluded"] > 0.5
    outside = full.keypoint_columns["outside"] > 0.5
    err = np.linalg.norm(pred - full.coords, axis=2)
    rows = keep[:, None]
    pairs = keep[1:] & keep[:-1]
    move_pred = np.linalg.norm(np.diff(pred, axis=0), axis=2)
    move_true = np.linalg.norm(np.diff(full.coords, axis=0), axis=2)
    counted = pairs[:, None] & ~outside[1:] & ~outside[:-1]
    jumps = (move_pred > jump_px) & (move_true < jump_px) & counted
    return {
        "visible": err[rows & ~occluded & ~outside],
        "occluded": err[rows & occluded],
        "jumps": jumps[counted],
        "jump_frames": jumps.any(axis=1)[pairs],
        "missing": np.isnan(pred[keep]).any(axis=2).ravel(),
    }


def summarize(raw: dict[str, np.ndarray]) -> dict[str, float]:
    out: dict[str, float] = {}
    for group in ("visible", "occluded"):
        e = raw[group][np.isfinite(raw[group])]
        out[f"{group}_median_px"] = float(np.median(e)) if e.size else float("nan")
        out[f"{group}_p95_px"] = float(np.percentile(e, 95)) if e.size else float("nan")
        out[f"{group}_mean_px"] = float(np.mean(e)) if e.size else float("nan")
        out[f"{group}_n"] = int(e.size)
    out["jump_fraction"] = float(np.mean(raw["jumps"])) if raw["jumps"].size else float("nan")
    out["jump_frame_fraction"] = (
        float(np.mean(raw["jump_frames"])) if raw["jump_frames"].size else float("nan")
    )
    out["missing_fraction"] = float(np.mean(raw["missing"])) if raw["missing"].size else 0.0
    return out


def held_out(n_frames: int, labeled: list[int]) -> np.ndarray:
    """Frames more than CONTEXT_FRAMES away from every labeled frame."""
    keep = np.ones(n_frames, dtype=bool)
    for t in labeled:
        keep[max(0, t - CONTEXT_FRAMES) : t + CONTEXT_FRAMES + 1] = False
    return keep


def score(preds: dict[str, np.ndarray], proj: SyntheticProject, jump_px: float) -> dict:
    """Scores of one model's (or ensemble's) predictions of every session."""
    raws: dict[str, dict[str, dict[str, np.ndarray]]] = {g: {} for g in GROUPS}
    for s in proj.sessions:
        full = read_poses(s.ground_truth_full)
        if s.kind == "shifted":
            group, keep = "shifted", np.ones(full.n_frames, dtype=bool)
        elif s.kind == "labeled":
            group, keep = "in_distribution", held_out(full.n_frames, s.labeled_frames)
        else:
            group, keep = "in_distribution", np.ones(full.n_frames, dtype=bool)
        raws[group][s.stem] = errors(preds[s.stem], full, keep, jump_px)
    out: dict = {}
    for group, per in raws.items():
        pooled = {k: np.concatenate([r[k] for r in per.values()]) for k in next(iter(per.values()))}
        out[group] = summarize(pooled)
    out["per_session"] = {stem: summarize(r) for per in raws.values() for stem, r in per.items()}
    return out


# -- summary -----------------------------------------------------------------------------------


def summary(runs: list[dict]) -> dict:
    """Per condition and group: mean, sd and n over seeds of each metric."""
    out: dict = {}
    for name in dict.fromkeys(r["condition"] for r in runs):
        rs = [r for r in runs if r["condition"] == name]
        out[name] = {"train_seconds": float(np.mean([r["train_seconds"] for r in rs]))}
        for group in GROUPS:
            out[name][group] = {}
            for m in METRICS:
                v = np.array([r[group][m] for r in rs], dtype=float)
                v = v[np.isfinite(v)]
                out[name][group][m] = {
                    "mean": float(v.mean()) if v.size else float("nan"),
                    "sd": float(v.std(ddof=1)) if v.size > 1 else 0.0,
                    "n": int(v.size),
                }
    return out


def table(summ: dict) -> str:
    def ms(d: dict, scale: float = 1.0, digits: int = 1) -> str:
        return f"{scale * d['mean']:.{digits}f} ± {scale * d['sd']:.{digits}f}"

    lines = [
        "| condition | shifted visible med / p95 (px) | shifted occluded med / p95 (px) | "
        "shifted jumps (%) | in-dist visible med / p95 (px) | in-dist occluded med (px) | "
        "in-dist jumps (%) | train s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, s in summ.items():
        sh, ind = s["shifted"], s["in_distribution"]
        lines.append(
            f"| {name} | {ms(sh['visible_median_px'])} / {ms(sh['visible_p95_px'])} | "
            f"{ms(sh['occluded_median_px'])} / {ms(sh['occluded_p95_px'])} | "
            f"{ms(sh['jump_fraction'], 100, 2)} | {ms(ind['visible_median_px'])} / "
            f"{ms(ind['visible_p95_px'])} | {ms(ind['occluded_median_px'])} | "
            f"{ms(ind['jump_fraction'], 100, 2)} | {s['train_seconds']:.0f} |"
        )
    return "\n".join(lines)


# -- running -----------------------------------------------------------------------------------


def parse_extra(items: list[str], allowed: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for item in items:
        name, sep, override = item.partition(":")
        if not sep or "=" not in override or name not in allowed:
            raise SystemExit(
                f"--extra {item!r}: expected CONDITION:key=value with CONDITION one of "
                f"{', '.join(allowed)}"
            )
        out.setdefault(name, []).append(override)
    return out


class Bench:
    """One invocation: projects, trained conditions, ensembles; writes ``--out`` as it goes."""

    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.cond = condition_overrides(args.losses)
        self.extra = parse_extra(args.extra, [*CONDITIONS, ENSEMBLE])
        self.base = [
            f"model.backbone={args.backbone}",
            f"model.pretrained={str(args.pretrained).lower()}",
            f"data.image_height={args.size}",
            f"data.image_width={args.size}",
            f"training.max_steps={args.steps}",
            f"training.batch_size={args.batch}",
            f"training.device={args.device}",
            *args.overrides,
        ]
        self.jump_px = args.jump_px if args.jump_px is not None else 20.0 * args.size / 256
        self.runs: list[dict] = []
        self.sessions: dict[int, dict] = {}
        self.preds: dict[tuple[str, int], dict[str, Poses]] = {}
        self.activity: dict[str, dict] = {}  # model tag -> metrics.json "unsupervised"
        self.t0 = time.perf_counter()
        self.ensemble_of: str | None = None
        self.check()

    def check(self) -> None:
        """Refuse bad shift settings and overrides before any work."""
        a = self.args
        if a.shifted < 1 or a.seeds < 1 or a.members < 1:
            raise SystemExit("error: --shifted, --seeds and --members must be at least 1")
        try:
            shift_magnitude(a.shift)
            check_shift_kinds(a.shift_kinds)
            for name in CONDITIONS:
                extra = [*self.extra.get(name, []), *self.extra.get(ENSEMBLE, [])]
                compose_config(None, [*self.base, *self.cond[name], *extra])
        except VidposeError as exc:
            raise SystemExit(f"error: {exc}") from None

    def project(self, seed: int) -> SyntheticProject:
        path = self.work / f"project{seed}"
        a = self.args
        if path.is_dir():
            shutil.rmtree(path)
        proj = synthesize_project(
            path,
            seed=seed,
            n_labeled=a.labeled,
            n_videos=a.videos,
            n_frames=a.frames,
            size=(a.size, a.size),
            difficulty=a.difficulty,
            shifted_sessions=a.shifted,
            shift=a.shift,
            shift_kinds=a.shift_kinds,
        )
        self.sessions[seed] = {
            s.stem: {"kind": s.kind, "factors": s.shift.factors()} for s in proj.sessions
        }
        return proj

    def train_predict(
        self, proj: SyntheticProject, overrides: list[str], tag: str
    ) -> tuple[dict[str, Poses], float, float]:
        """Train one model, predict every session; returns predictions, train and predict s."""
        model_dir = self.work / f"model_{tag}"
        res = train(proj.project_dir, [*self.base, *overrides], model_dir=model_dir, progress=False)
        device = None if self.args.device == "auto" else self.args.device
        model = load_model(res.model_dir, device=device)
        t1 = time.perf_counter()
        preds = {s.stem: model.predict_video(s.video) for s in proj.sessions}
        predict_s = time.perf_counter() - t1
        self.activity[tag] = res.metrics.get("unsupervised", {})
        del model
        if not self.args.keep_models:
            shutil.rmtree(model_dir, ignore_errors=True)
        return preds, res.train_seconds, predict_s

    def labelled(self, name: str) -> str:
        """The condition's name in the results, with ``--label`` (to pool variants)."""
        return f"{name}[{self.args.label}]" if self.args.label else name

    def record(self, row: dict) -> None:
        self.runs.append(row)
        short = {k: row[k] for k in ("seed", "condition", "train_seconds")}
        short.update({f"{g}_visible_median_px": row[g]["visible_median_px"] for g in GROUPS})
        short["shifted_jump_fraction"] = row["shifted"]["jump_fraction"]
        print(json.dumps(short), flush=True)
        self.write()

    def run_condition(self, proj: SyntheticProject, seed: int, name: str) -> None:
        overrides = [*self.cond[name], *self.extra.get(name, []), f"training.seed={seed}"]
        tag = f"{name}_s{seed}"
        preds, train_s, predict_s = self.train_predict(proj, overrides, tag)
        self.preds[(name, seed)] = preds
        self.save_member(name, seed, 0, preds, train_s, predict_s)
        coords = {stem: p.coords for stem, p in preds.items()}
        self.record(
            {
                "seed": seed,
                "condition": self.labelled(name),
                "base_condition": name,
                "overrides": overrides,
                "train_seconds": train_s,
                "predict_seconds": predict_s,
                "loss_activity": self.activity.get(tag, {}),
                **score(coords, proj, self.jump_px),
            }
        )

    def member_path(self, of: str, seed: int, index: int, folder: Path | None = None) -> Path:
        folder = folder if folder is not None else self.args.save_preds
        return folder / f"{self.labelled(of)}_s{seed}_m{index}.pkl"

    def save_member(
        self, of: str, seed: int, index: int, preds: dict, train_s: float, predict_s: float
    ) -> None:
        """With --save-preds: one model's predictions, for --ensemble-from in another process."""
        if self.args.save_preds is None:
            return
        self.args.save_preds.mkdir(parents=True, exist_ok=True)
        path = self.member_path(of, seed, index)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(pickle.dumps({"preds": preds, "train_s": train_s, "predict_s": predict_s}))
        tmp.replace(path)

    def run_member(self, proj: SyntheticProject, seed: int, of: str, index: int) -> None:
        """--member I: train only ensemble member I of --ensemble-of and save its predictions."""
        overrides = [
            *self.cond[of],
            *self.extra.get(of, []),
            *self.extra.get(ENSEMBLE, []),
            f"training.seed={seed + MEMBER_SEED_STEP * index}",
        ]
        preds, t, p = self.train_predict(proj, overrides, f"ens_{of}_s{seed}_m{index}")
        self.save_member(of, seed, index, preds, t, p)
        coords = {stem: q.coords for stem, q in preds.items()}
        self.record(
            {
                "seed": seed,
                "condition": self.labelled(f"member{index}({of})"),
                "overrides": overrides,
                "train_seconds": t,
                "predict_seconds": p,
                **score(coords, proj, self.jump_px),
            }
        )

    def run_ensemble(self, proj: SyntheticProject, seed: int, of: str) -> None:
        members: list[dict[str, Poses]] = []
        train_s = predict_s = 0.0
        member_seeds = [seed + MEMBER_SEED_STEP * i for i in range(self.args.members)]
        for i, member_seed in enumerate(member_seeds):
            if self.args.ensemble_from is not None:  # trained by other processes
                path = self.member_path(of, seed, i, self.args.ensemble_from)
                saved = pickle.loads(path.read_bytes())
                members.append(saved["preds"])
                train_s, predict_s = train_s + saved["train_s"], predict_s + saved["predict_s"]
                continue
            if i == 0 and (of, seed) in self.preds:
                members.append(self.preds[(of, seed)])
                prior = next(
                    r for r in self.runs if r.get("base_condition") == of and r["seed"] == seed
                )
                train_s += prior["train_seconds"]
                predict_s += prior["predict_seconds"]
                continue
            overrides = [
                *self.cond[of],
                *self.extra.get(of, []),
                *self.extra.get(ENSEMBLE, []),
                f"training.seed={member_seed}",
            ]
            preds, t, p = self.train_predict(proj, overrides, f"ens_{of}_s{seed}_m{i}")
            members.append(preds)
            train_s, predict_s = train_s + t, predict_s + p
        t1 = time.perf_counter()
        smoothed = {s.stem: smooth_poses([m[s.stem] for m in members]) for s in proj.sessions}
        smooth_s = time.perf_counter() - t1
        median = {
            s.stem: np.nanmedian(np.stack([m[s.stem].coords for m in members]), axis=0)
            for s in proj.sessions
        }
        common = {
            "seed": seed,
            "of": of,
            "member_seeds": member_seeds,
            "train_seconds": train_s,
            "predict_seconds": predict_s,
        }
        n = self.args.members
        self.record(
            {
                **common,
                "condition": self.labelled(f"{ENSEMBLE}{n}_median({of})"),
                **score(median, proj, self.jump_px),
            }
        )
        self.record(
            {
                **common,
                "condition": self.labelled(f"{ENSEMBLE}{n}_kalman({of})"),
                "smooth_seconds": smooth_s,
                **score({k: v.coords for k, v in smoothed.items()}, proj, self.jump_px),
            }
        )

    def choose(self) -> str:
        a = self.args
        if a.ensemble_of != "auto":
            return a.ensemble_of
        trained = [r for r in self.runs if r.get("base_condition") in CONDITIONS]
        if not trained:
            raise SystemExit("--ensemble-of auto needs another condition in --conditions")
        scores = {
            name: np.mean(
                [r["shifted"]["visible_median_px"] for r in trained if r["base_condition"] == name]
            )
            for name in dict.fromkeys(r["base_condition"] for r in trained)
        }
        return min(scores, key=scores.get)

    def run(self) -> None:
        a = self.args
        seeds = list(range(a.first_seed, a.first_seed + a.seeds))
        singles = [c for c in a.conditions if c != ENSEMBLE]
        projects = {}
        for seed in seeds:
            t = time.perf_counter()
            projects[seed] = self.project(seed)
            print(f"seed {seed}: project in {time.perf_counter() - t:.1f} s", flush=True)
            if a.member is not None:
                self.run_member(projects[seed], seed, a.ensemble_of, a.member)
                continue
            for name in singles:
                self.run_condition(projects[seed], seed, name)
        if a.member is not None:
            return
        if ENSEMBLE in a.conditions:
            self.ensemble_of = self.choose()
            print(f"ensemble of {a.members} x {self.ensemble_of}", flush=True)
            for seed in seeds:
                self.run_ensemble(projects[seed], seed, self.ensemble_of)
                self.preds = {k: v for k, v in self.preds.items() if k[1] != seed}

    def result(self) -> dict:
        a = self.args
        cuda = torch.cuda.is_available() and a.device != "cpu"
        summ = summary(self.runs)
        return {
            "benchmark": "semisupervised_shift",
            "note": a.note,
            "settings": {
                **{k: v for k, v in vars(a).items() if k not in ("merge", "out")},
                "out": str(a.out),
                "jump_px": self.jump_px,
            },
            "base_overrides": self.base,
            "condition_overrides": {
                **{k: [*v, *self.extra.get(k, [])] for k, v in self.cond.items()},
                ENSEMBLE: self.extra.get(ENSEMBLE, []),
            },
            "ensemble_of": self.ensemble_of,
            "device": torch.cuda.get_device_name() if cuda else platform.processor() or "cpu",
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "total_seconds": time.perf_counter() - self.t0,
            "sessions": {str(k): v for k, v in self.sessions.items()},
            "runs": self.runs,
            "summary": summ,
            "table": table(summ),
        }

    def write(self) -> None:
        self.args.out.parent.mkdir(parents=True, exist_ok=True)
        self.args.out.write_text(json.dumps(self.result(), indent=1, default=str) + "\n")


def merge(paths: list[Path], out: Path) -> dict:
    parts = [json.loads(p.read_text()) for p in paths]
    runs = [r for p in parts for r in p["runs"]]
    summ = summary(runs)
    merged = {
        **parts[0],
        "merged_from": [str(p) for p in paths],
        "sessions": {k: v for p in parts for k, v in p["sessions"].items()},
        "total_seconds": sum(p["total_seconds"] for p in parts),
        "runs": runs,
        "summary": summ,
        "table": table(summ),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(merged, indent=1, default=str) + "\n")
    return merged


def conditions_type(text: str) -> list[str]:
    names = [c.strip() for c in text.split(",") if c.strip()]
    allowed = [*CONDITIONS, ENSEMBLE]
    bad = [c for c in names if c not in allowed]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated subset of {','.join(allowed)}"
        )
    return names


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--seeds", type=int, default=3, help="number of seeds (projects)")
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--backbone", default="resnet50")
    ap.add_argument("--pretrained", action="store_true", help="ImageNet weights (default: none)")
    ap.add_argument("--size", type=int, default=256, help="frame height and width, px")
    ap.add_argument("--frames", type=int, default=600, help="frames per session")
    ap.add_argument("--labeled", type=int, default=60)
    ap.add_argument("--videos", type=int, default=1, help="unshifted sessions (first labeled)")
    ap.add_argument("--shifted", type=int, default=2, help="shifted sessions")
    ap.add_argument("--shift", default="strong", help="mild, strong or a number 0-2")
    ap.add_argument("--shift-kinds", default=None, help="comma-separated factors (default all)")
    ap.add_argument("--difficulty", default="medium")
    ap.add_argument("--losses", default="temporal,pca_singleview", help="semi conditions' losses")
    ap.add_argument(
        "--conditions",
        type=conditions_type,
        default=[*CONDITIONS, ENSEMBLE],
        help=f"comma-separated subset of {','.join([*CONDITIONS, ENSEMBLE])}",
    )
    ap.add_argument("--members", type=int, default=4, help="ensemble size")
    ap.add_argument(
        "--ensemble-of", default="auto", choices=["auto", *CONDITIONS], help="ensemble's condition"
    )
    ap.add_argument(
        "--extra",
        action="append",
        default=[],
        metavar="COND:key=value",
        help="an override for one condition (ensemble: its extra members only); repeatable",
    )
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--jump-px", type=float, default=None, help="default 20 * size / 256")
    ap.add_argument("--keep-models", action="store_true", help="keep model dirs in --workdir")
    ap.add_argument("--workdir", type=Path, default=None, help="default: a temporary folder")
    ap.add_argument("--note", default="")
    ap.add_argument(
        "--label",
        default="",
        help="results name conditions NAME[LABEL], so that runs of one condition with "
        "different overrides can be pooled with --merge",
    )
    ap.add_argument(
        "--save-preds",
        type=Path,
        default=None,
        help="save each model's predictions here (member 0 of its condition's ensemble)",
    )
    ap.add_argument(
        "--member",
        type=int,
        default=None,
        help="train only ensemble member I (>= 1) of --ensemble-of per seed, into --save-preds",
    )
    ap.add_argument(
        "--ensemble-from",
        type=Path,
        default=None,
        help="ensemble members' predictions saved by other processes (--save-preds): "
        "smooth and score them instead of training",
    )
    ap.add_argument("--merge", type=Path, nargs="+", help="pool these result files instead")
    ap.add_argument("--out", type=Path, default=Path("bench/results/semisupervised_shift.json"))
    ap.add_argument("overrides", nargs="*", help="key=value for every condition")
    args = ap.parse_args(argv)

    if args.merge:
        print(merge(args.merge, args.out)["table"])
        return 0
    if args.member is not None and (
        args.member < 1 or args.save_preds is None or args.ensemble_of == "auto"
    ):
        ap.error("--member I needs I >= 1, --save-preds and a named --ensemble-of")
    if args.ensemble_from is not None and args.ensemble_of == "auto":
        ap.error("--ensemble-from needs a named --ensemble-of")
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        bench = Bench(args, work)
        bench.run()
        bench.write()
    print(bench.result()["table"])
    print(f"total {time.perf_counter() - bench.t0:.0f} s; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
