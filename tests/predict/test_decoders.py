"""Decoder processes: the same frames as the reader in this process, errors per video."""

from __future__ import annotations

import queue
from pathlib import Path

import numpy as np
import pytest
import torch

from vidpose.errors import VideoError
from vidpose.predict.decoders import END, ProcessDecoders
from vidpose.video import open_video


def _reference(path) -> np.ndarray:
    with open_video(path, reader="pyav") as vr:
        return np.concatenate([np.asarray(b.frames) for b in vr.iter_batches(16)])


@pytest.fixture(scope="module")
def decoded(tiny_project_src, tmp_path_factory):
    """Two workers, one buffer each (so every batch waits for the previous one's release),
    over the tiny project's video twice and a corrupt file between them."""
    video = next((tiny_project_src / "videos").glob("*.mp4"))
    bad = tmp_path_factory.mktemp("bad") / "bad.mp4"
    bad.write_bytes(b"not a video" * 50)
    got: dict[int, list[torch.Tensor]] = {}
    starts: dict[int, list[int]] = {}
    events: dict[int, list] = {0: [], 1: [], 2: []}
    with ProcessDecoders(jobs=2, batch_size=16, slots=1) as dec:
        for i, path in enumerate([video, bad, video]):
            dec.submit(i, path)
        finished = 0
        while finished < 3:
            i, kind, payload = dec.get(timeout=120)
            events[i].append(kind if isinstance(kind, str) else type(kind))
            if kind == "open":
                got[i], starts[i] = [], []
            elif kind == END or isinstance(kind, BaseException):
                finished += 1
                if isinstance(kind, BaseException):
                    events[i].append(kind)
            else:
                got[i].append(kind.frames.clone())
                starts[i].append(kind.start)
                dec.release(payload)
        with pytest.raises(queue.Empty):
            dec.get(timeout=0.5)  # nothing more comes
    return video, got, starts, events


def test_frames_equal_the_readers_in_this_process(decoded):
    video, got, starts, _ = decoded
    ref = _reference(video)
    for i in (0, 2):
        frames = torch.cat(got[i]).numpy()
        assert frames.shape == ref.shape
        assert np.array_equal(frames, ref)
        assert starts[i] == list(range(0, len(ref), 16))


def test_a_corrupt_video_is_an_error_for_it_alone(decoded):
    _, _, _, events = decoded
    assert events[1][0] is VideoError
    assert "not a readable video" in str(events[1][1])
    assert events[0][0] == "open" and events[0][-1] == END
    assert events[2][0] == "open" and events[2][-1] == END


@pytest.mark.gpu
def test_nvdec_workers_hand_over_cuda_buffers(tiny_project_src):
    """A GPU reader in the workers: each batch is a CUDA tensor mapped from the worker's
    buffer (one slot, so each waits for the previous one's release), the video's frames in
    order across two parts, as PyAV decodes them up to the colour conversion."""
    pytest.importorskip("PyNvVideoCodec")
    video = next((tiny_project_src / "videos").glob("*.mp4"))
    ref = _reference(video)
    got: dict[int, list[torch.Tensor]] = {0: [], 1: []}
    with ProcessDecoders(2, 16, "nvdec", slots=1, device="cuda:0") as dec:
        dec.submit(0, video, 0, 16)
        dec.submit(1, video, 16, None)
        ended = 0
        while ended < 2:
            i, kind, payload = dec.get(timeout=120)
            assert not isinstance(kind, BaseException), kind
            if kind == END:
                ended += 1
            elif kind != "open":
                assert kind.frames.is_cuda and kind.valid.all()
                got[i].append(kind.frames.clone())
                torch.cuda.synchronize()
                dec.release(payload)
    frames = torch.cat(got[0] + got[1]).cpu().numpy()
    assert frames.shape == ref.shape
    assert np.abs(frames.astype(int) - ref.astype(int)).mean() < 2.0


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="at least 1"):
        ProcessDecoders(jobs=0, batch_size=16)


def _gone(pid: int) -> bool:
    """Whether ``pid`` has exited (a zombie waiting for its new parent counts as exited)."""
    import os

    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True
    except OSError:
        return not os.path.exists(f"/proc/{pid}")


@pytest.mark.skipif(not __import__("os").path.isdir("/proc"), reason="needs /proc")
def test_decoder_processes_stop_when_their_parent_is_killed(tmp_path):
    """A run killed with SIGKILL leaves no decoder process behind."""
    import subprocess
    import sys
    import time

    script = (
        "import sys, time\n"
        "from vidpose.predict.decoders import ProcessDecoders\n"
        "with ProcessDecoders(jobs=2, batch_size=4) as d:\n"
        "    print(' '.join(str(p.pid) for p in d._procs), flush=True)\n"
        "    time.sleep(600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert len(pids) == 2 and not any(_gone(p) for p in pids)
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not all(_gone(p) for p in pids):
        time.sleep(0.2)
    assert all(_gone(p) for p in pids), "decoder processes outlived their killed parent"


@pytest.mark.parametrize("as_module", [False, True], ids=["script", "python -m"])
def test_workers_do_not_run_the_parents_main_script_again(tmp_path, tiny_project_src, as_module):
    """multiprocessing makes a spawned or fork-server child import the parent's __main__ (a
    user's script, with all its imports) before its target runs; vidpose's workers skip it."""
    import subprocess
    import sys

    video = next((tiny_project_src / "videos").glob("*.mp4"))
    trace = tmp_path / "imports.txt"
    (tmp_path / "user_script.py").write_text(
        "import os\n"
        f"with open({str(trace)!r}, 'a') as fh:\n"
        "    fh.write(f'{os.getpid()} {__name__}\\n')\n"
        "from vidpose.predict.decoders import END, ProcessDecoders\n"
        "if __name__ == '__main__':\n"
        "    with ProcessDecoders(jobs=2, batch_size=16) as dec:\n"
        f"        dec.submit(0, {str(video)!r})\n"
        f"        dec.submit(1, {str(video)!r})\n"
        "        ended = frames = 0\n"
        "        workers = {p.pid for p in dec._procs}\n"
        "        while ended < 2:\n"
        "            i, kind, payload = dec.get(timeout=120)\n"
        "            if kind == END or isinstance(kind, BaseException):\n"
        "                ended += 1\n"
        "            elif kind != 'open':\n"
        "                frames += kind.frames.shape[0]\n"
        "                dec.release(payload)\n"
        "    print(frames, *sorted(workers))\n"
    )
    args = ["-m", "user_script"] if as_module else [str(tmp_path / "user_script.py")]
    done = subprocess.run(
        [sys.executable, *args], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    frames, *workers = done.stdout.split()
    with open_video(video, reader="pyav") as vr:
        assert int(frames) == 2 * vr.info.n_frames  # the workers did decode
    lines = trace.read_text().splitlines()
    assert [line.split()[1] for line in lines] == ["__main__"], lines
    assert not set(workers) & {line.split()[0] for line in lines}


def test_the_main_module_is_whole_again_once_workers_started():
    import sys

    from vidpose.predict.decoders import main_hidden

    main = sys.modules["__main__"]
    before = {k: main.__dict__[k] for k in ("__file__", "__spec__") if k in main.__dict__}
    with main_hidden():
        assert getattr(main, "__file__", None) is None
        assert getattr(main, "__spec__", None) is None
    assert {k: main.__dict__[k] for k in ("__file__", "__spec__") if k in main.__dict__} == before


def _server_probe(model, decoders: bool, call: str = "") -> str:
    """In a fresh interpreter: load ``model`` on CPU (or run ``call``); whether torch was
    imported each time the fork server was asked to start, and whether one runs after."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "import multiprocessing.forkserver as fs\n"
        "import vidpose.predict.processes as P\n"
        "from vidpose.predict.run import Predictor\n"
        "seen = []\n"
        "start = P.start_server\n"
        "def spy():\n"
        "    seen.append('torch' in sys.modules)\n"
        "    return start()\n"
        "P.start_server = spy\n"
        + (call or f"Predictor({str(model)!r}, device='cpu').load(decoders={decoders})")
        + "\n"
        "print(seen, fs._forkserver._forkserver_pid is not None)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


def test_loading_a_model_that_decodes_in_processes_starts_their_server_before_torch(
    tiny_model, tiny_video, tmp_path
):
    """The decoders' fork server imports torch and vidpose while the models load (it took
    ~2.8 s after the load here before the first decoder could start)."""
    import shutil

    import yaml

    model, video = tmp_path / "model", tiny_video
    shutil.copytree(tiny_model, model)
    cfg = yaml.safe_load((model / "config.yaml").read_text())
    cfg.setdefault("predict", {})["decoders"] = "processes"
    (model / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    assert _server_probe(model, True) == "[False] True"  # started, torch not yet imported
    assert _server_probe(model, False) == "[] False"  # a load that only checks: none
    assert _server_probe(tiny_model, True) == "[] False"  # decoder threads: none
    # a batch: before this process imports torch to count the GPUs, and again (running) in the
    # load; its decoders were forked from it
    batch = (
        "from vidpose.predict.batch import predict_batch\n"
        f"r = predict_batch({str(model)!r}, [{str(video)!r}], {str(tmp_path / 'out')!r}, "
        "device='cpu')\n"
        "assert [v.status for v in r.videos] == ['ok'], r.videos"
    )
    assert _server_probe(model, True, batch) == "[False, True] True"


def test_auto_decodes_in_processes_when_pyav_feeds_a_gpu(tmp_path, monkeypatch):
    """auto = processes for PyAV (auto or pyav) feeding CUDA; threads on CPU and for NVDEC;
    the same answer read from a saved config (the early start of the fork server)."""
    import yaml

    from vidpose.config import default_config
    from vidpose.predict import run
    from vidpose.predict.predictor import decode_in_processes

    assert default_config().predict.decoders == "auto"
    assert decode_in_processes("auto", torch.device("cuda", 0), "auto")
    assert decode_in_processes("auto", "cuda", "pyav")
    assert not decode_in_processes("auto", "cuda", "nvdec")
    assert not decode_in_processes("auto", torch.device("cpu"), "pyav")
    assert not decode_in_processes("threads", "cuda", "pyav")
    assert decode_in_processes("processes", "cpu", "auto")

    config = tmp_path / "config.yaml"

    def saved(**predict) -> Path:
        config.write_text(yaml.safe_dump({"predict": predict}))
        return config

    monkeypatch.setattr(run, "_gpu_present", lambda: True)
    assert run.decodes_in_processes(saved(decoders="auto", device="auto", reader="auto"))
    assert not run.decodes_in_processes(saved(decoders="auto", reader="nvdec"))
    assert not run.decodes_in_processes(saved(decoders="auto"), device="cpu")
    assert not run.decodes_in_processes(saved(decoders="threads"))
    monkeypatch.setattr(run, "_gpu_present", lambda: False)
    assert not run.decodes_in_processes(saved(decoders="auto", device="auto"))
    assert run.decodes_in_processes(saved(decoders="auto", device="cuda:1"))
    assert run.decodes_in_processes(saved(decoders="processes", device="cpu"))
    config.write_text("predict: [unclosed")
    assert not run.decodes_in_processes(config)  # loading the model says what is wrong


def test_decoder_processes_default_to_eight_per_gpu_at_most_half_the_cores():
    from vidpose.predict.predictor import DEFAULT_JOBS, default_jobs

    assert default_jobs(False, 32) == DEFAULT_JOBS == 4  # threads
    assert default_jobs(True, 16) == 8  # one GPU's share of the 2-H200 host: measured best
    assert default_jobs(True, 64) == 8
    assert default_jobs(True, 10) == 5
    assert default_jobs(True, 2) == 4  # never fewer than threads would decode


def test_buffers_go_back_as_soon_as_their_copies_are_done_whatever_the_caller_does():
    """_BufferReturns (CUDA runs): each buffer is handed back by its own thread once its
    event has passed, in order, while the predicting thread is busy elsewhere; wait() returns
    once all are back."""
    import threading

    from vidpose.predict.predictor import _BufferReturns

    class FakeEvent:
        def __init__(self) -> None:
            self.passed = threading.Event()

        def synchronize(self) -> None:
            assert self.passed.wait(5)

    class FakeProcs:
        def __init__(self) -> None:
            self.released: list = []
            self.changed = threading.Condition()

        def release(self, ticket) -> None:
            with self.changed:
                self.released.append(ticket)
                self.changed.notify_all()

    procs = FakeProcs()
    returns = _BufferReturns(procs, None)
    events = [FakeEvent() for _ in range(3)]
    for k, e in enumerate(events):
        returns.put(e, (0, k))
    events[0].passed.set()
    with procs.changed:  # handed back with no further call from this thread
        assert procs.changed.wait_for(lambda: procs.released == [(0, 0)], timeout=5)
    waiter = threading.Thread(target=returns.wait)
    waiter.start()
    waiter.join(0.2)
    assert waiter.is_alive()  # two buffers are still on the GPU
    events[1].passed.set()
    events[2].passed.set()
    waiter.join(5)
    assert not waiter.is_alive() and procs.released == [(0, 0), (0, 1), (0, 2)]
    returns.close()


_PRESTART_SCRIPT = """
import sys
import numpy as np
from vidpose.predict import decoders
from vidpose.predict.decoders import END

def decode_all(dec, video):
    dec.submit(0, video)
    frames = []
    while True:
        i, kind, payload = dec.get(timeout=120)
        if kind == END:
            return np.concatenate(frames)
        if isinstance(kind, BaseException):
            raise kind
        if kind != "open":
            frames.append(kind.frames.numpy().copy())
            dec.release(payload)

video = sys.argv[1]
assert decoders.prestart(2, 16, "pyav", planar=True)
spare = decoders._SPARE[-1][1]
assert all(p.is_alive() for p in spare._procs)
assert all(type(p).__name__ == "ForkProcess" for p in spare._procs)
other = decoders.started(2, 8, "pyav", planar=True)  # another batch size: new ones
assert other is not spare and decoders._SPARE[-1][1] is spare
assert all(type(p).__name__ != "ForkProcess" for p in other._procs)
got = decoders.started(2, 16, "pyav", planar=True)
assert got is spare and not decoders._SPARE
with got:
    frames = decode_all(got, video)
with other:
    assert np.array_equal(frames, decode_all(other, video))
assert not any(p.is_alive() for p in spare._procs)
print("ok", frames.shape[0])
"""


def test_prestarted_decoders_are_forked_here_and_handed_to_the_matching_request(
    tiny_project_src,
):
    """A GPU worker forks its decoders before its CUDA context (no second fork server to wait
    for): ``started`` hands exactly those to the prediction asking for the same arguments,
    and they decode what new ones decode; other arguments get new ones. In a fresh process,
    as a worker is (this one runs threads)."""
    import multiprocessing as mp
    import subprocess
    import sys

    if "fork" not in mp.get_all_start_methods():
        pytest.skip("needs fork")
    video = next((tiny_project_src / "videos").glob("*.mp4"))
    run = subprocess.run(
        [sys.executable, "-c", _PRESTART_SCRIPT, str(video)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.split()[:2] == ["ok", str(len(_reference(video)))]


def test_decoders_are_not_forked_beside_a_thread_or_for_a_gpu_reader():
    import threading

    from vidpose.predict import decoders

    before = len(decoders._SPARE)
    assert not decoders.prestart(2, 16, "nvdec", planar=True)
    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    try:
        assert not decoders.prestart(2, 16, "pyav", planar=True)  # a fork copies no thread
    finally:
        stop.set()
        t.join()
    assert len(decoders._SPARE) == before


_WORKER_SCRIPT = """
import sys
from pathlib import Path
from vidpose.config import load_config
from vidpose.predict import decoders
from vidpose.predict import run
from vidpose.predict.batch import PredictSettings, _prestart_decoders, _prestart_writers

model = Path(sys.argv[1])
settings = PredictSettings(model, Path(sys.argv[2]))
assert not _prestart_decoders(settings, "cpu", 3)  # a CPU worker's decoders are threads
assert _prestart_decoders(settings, "cuda:1", 3)
bs = load_config(model / "config.yaml").predict.batch_size
# the arguments the prediction on that GPU asks for (_MultiVideo._start_processes)
assert [k for k, _ in decoders._SPARE] == [(3, bs, "pyav", 3, True, None)], decoders._SPARE
spare = decoders._SPARE[0][1]
got = decoders.started(3, bs, "pyav", planar=True)
assert got is spare
assert _prestart_writers(settings, "cuda:1")  # and its tables' writers
pool, warming = run._SPARE_WRITERS[0]
assert [f.result(timeout=60) for f in warming] == [["vidpose.io", "vidpose.predict.metrics"]] * 4
pool.shutdown()
got.close()
print("ok")
"""


def test_a_gpu_worker_forks_the_decoders_its_prediction_will_ask_for(tiny_model, tmp_path):
    """Before its CUDA context, a local GPU worker forks the decoders its model will use
    (PyAV in processes for a GPU: planes, the model's batch size, its jobs), and its table
    writers, importing what a single model's tables need."""
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, "-c", _WORKER_SCRIPT, str(tiny_model), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip().endswith("ok")


def test_finished_tasks_buffers_are_unregistered_after_their_last_copy_off_the_caller(
    monkeypatch,
):
    """_Unpinner (CUDA runs): a finished task's page-locked buffers are unregistered by a
    thread of its own once the task's last copy has passed, whatever the predicting thread
    does meanwhile; close() waits until every buffer put is unregistered."""
    import threading

    import torch

    from vidpose.predict.predictor import _Unpinner

    unregistered: list[int] = []

    class FakeCudart:
        def cudaHostUnregister(self, key: int) -> int:
            unregistered.append(key)
            return 0

    monkeypatch.setattr(torch.cuda, "cudart", lambda: FakeCudart())

    class FakeEvent:
        def __init__(self) -> None:
            self.passed = threading.Event()

        def synchronize(self) -> None:
            assert self.passed.wait(5)

    unpinner = _Unpinner(None)
    first, second = FakeEvent(), FakeEvent()
    unpinner.put(first, {11: torch.zeros(1), 12: torch.zeros(1)})
    unpinner.put(second, {21: torch.zeros(1)})
    unpinner.put(None, {31: torch.zeros(1)})  # a task whose copies were all synchronous
    threading.Event().wait(0.2)
    assert unregistered == []  # its copy is still on the way
    first.passed.set()
    for _ in range(500):  # 5 s at most
        if unregistered == [11, 12]:
            break
        threading.Event().wait(0.01)
    assert unregistered == [11, 12]
    second.passed.set()
    unpinner.close()
    assert unregistered == [11, 12, 21, 31]
