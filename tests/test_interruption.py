"""Killing ``hf-resize resize`` (SIGINT or SIGKILL) at random points never leaves a partial output folder.

After every kill the output folder is either absent or complete and loadable (for --overwrite runs: the old or the
new complete folder); SIGINT leaves no staging (``.OUT.partial-*``) or trash (``.OUT.old-*``) folder; whatever a
SIGKILL leaves behind is cleaned by the next run, which succeeds.

Each trial is the CLI's ``main`` in its own process, forked from a server that has already imported hf_resize and
transformers (importing torch takes seconds; the resize of a tiny model a fraction of one), so kill points spread
over loading, resizing and saving. Two more trials run the installed ``hf-resize`` console script end to end.
Trials: ``HF_RESIZE_INTERRUPT_TRIALS`` (default 20, including the two end-to-end ones).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import tiny_model
from reliability_helpers import word_tokenizer
from transformers import AutoModelForCausalLM

from hf_resize import cli


@pytest.fixture(autouse=True)
def _no_statistics_cache(monkeypatch):
    """Keep the on-disk statistics cache out of these tests (a hit would also hide recomputation)."""
    monkeypatch.setenv("HF_RESIZE_NO_CACHE", "1")


TRIALS = int(os.environ.get("HF_RESIZE_INTERRUPT_TRIALS", "20"))
END_TO_END = 2
PRELOAD = ["hf_resize", "hf_resize.cli", "hf_resize.data.models", "hf_resize.export", "hf_resize.resize",
           "transformers.models.qwen2.modeling_qwen2"]
survived = {"SIGINT": 0, "SIGKILL": 0}


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("src") / "tiny"
    tiny_model("qwen2", num_hidden_layers=3).save_pretrained(folder)
    word_tokenizer().save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def context():
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


def argv(source: Path, out: Path, overwrite: bool) -> list[str]:
    return ["resize", str(source), "--method", "magnitude", "--ratio", "0.5", "--groups", "mlp,heads,hidden",
            "--out", str(out), *(["--overwrite"] if overwrite else [])]


def leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.glob(f".{out.name}.*"))


def assert_complete(out: Path) -> None:
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "hf_resize.json"} <= names, names
    AutoModelForCausalLM.from_pretrained(out)  # loadable


def run_child(context, args: list[str], kill_after: float | None, sig: int) -> int | None:
    process = context.Process(target=cli.main, args=(args,))
    process.start()
    if kill_after is not None:
        process.join(kill_after)
        if process.is_alive():
            try:
                os.kill(process.pid, sig)
            except ProcessLookupError:  # finished in between
                pass
    process.join(60)
    assert not process.is_alive(), "the resize did not stop"
    return process.exitcode


def check_after_kill(out: Path, sig: int, had_old: bool) -> None:
    if out.exists():
        assert_complete(out)  # never partial: the old complete folder or the new complete one
    else:
        assert not (had_old and sig == signal.SIGINT), "SIGINT during --overwrite lost the old folder"
    if sig == signal.SIGINT:  # staging is removed on the way out (a trash folder may stay if the kill hit its rmtree)
        assert [name for name in leftovers(out) if ".partial-" in name] == []
    survived[signal.Signals(sig).name] += 1


def rerun_and_check(context, source: Path, out: Path) -> None:
    code = run_child(context, argv(source, out, overwrite=True), None, signal.SIGINT)
    assert code == 0
    assert_complete(out)
    assert leftovers(out) == []


def test_killed_resizes_leave_no_partial_folder(source, context, tmp_path):
    rng = random.Random(int(os.environ.get("HF_RESIZE_INTERRUPT_SEED", "0")))
    started = time.perf_counter()
    reference = tmp_path / "reference"
    assert run_child(context, argv(source, reference, overwrite=False), None, signal.SIGINT) == 0
    duration = time.perf_counter() - started  # one full run in a forked child, for spreading the kill points
    assert_complete(reference)
    for trial in range(TRIALS - END_TO_END):
        out = tmp_path / f"out{trial}"
        overwrite = trial % 3 == 2  # every third trial replaces an existing complete folder
        if overwrite:
            shutil.copytree(reference, out)
        sig = signal.SIGINT if trial % 2 == 0 else signal.SIGKILL
        run_child(context, argv(source, out, overwrite), rng.uniform(0.0, 1.2 * duration), sig)
        check_after_kill(out, sig, overwrite)
        if trial % 2 == 1 or not out.exists() or leftovers(out):
            rerun_and_check(context, source, out)  # cleans whatever a SIGKILL left; the rerun succeeds
    assert sum(survived.values()) == TRIALS - END_TO_END


def test_killed_console_script_end_to_end(source, tmp_path):
    script = Path(sys.executable).with_name("hf-resize")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "hf_resize.cli"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    out = tmp_path / "out"
    rng = random.Random(1)
    for sig in (signal.SIGINT, signal.SIGKILL)[:END_TO_END]:
        process = subprocess.Popen(command + argv(source, out, False), env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, text=True)
        # Importing torch is most of a run; wait for the model load to start, then kill during load/resize/save.
        seen = ""
        while "Loading weights" not in seen and process.poll() is None:
            seen += process.stderr.read(1)
        time.sleep(rng.uniform(0.0, 0.5))
        process.send_signal(sig)
        _, err = process.communicate(timeout=120)
        err = seen + err
        if process.returncode == 130:  # Ctrl-C inside main: one line, no traceback
            assert "interrupted" in err and "Traceback" not in err, err[-2000:]
        check_after_kill(out, sig, had_old=False)
    again = subprocess.run(command + argv(source, out, True), env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "Traceback" not in again.stderr, again.stderr[-2000:]
    assert_complete(out)
    assert leftovers(out) == []


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_next_save_cleans_what_a_sigkill_left(tmp_path):
    """Deterministic version of the SIGKILL cases: a dead run's staging and a half-done overwrite."""
    import hf_resize

    model = tiny_model("llama")
    out = tmp_path / "out"
    pid = _dead_pid()
    (tmp_path / f".out.partial-{pid}-abc").mkdir()  # killed while writing
    (tmp_path / f".out.partial-{pid}-abc" / "model.safetensors").write_bytes(b"half")
    old = tmp_path / f".out.old-{pid}-def" / "out"  # killed between the two renames of an overwrite
    hf_resize.save_resized(model, old.parent.parent / "previous")
    (old.parent.parent / "previous").rename(old.parent.mkdir() or old)
    live = tmp_path / f".out.partial-{os.getpid()}-ghi"  # a save in progress in a live process: left alone
    live.mkdir()
    with pytest.raises(hf_resize.errors.OutputExistsError):  # the previous folder is back, so it is refused
        hf_resize.save_resized(model, out)
    assert_complete_model(out)
    assert leftovers(out) == [live.name]
    hf_resize.save_resized(model, out, overwrite=True)
    assert_complete_model(out)
    live.rmdir()
    assert leftovers(out) == []


def assert_complete_model(out: Path) -> None:
    assert {"config.json", "model.safetensors"} <= {p.name for p in out.iterdir()}
    AutoModelForCausalLM.from_pretrained(out)


def entries(cache_dir: Path) -> list[Path]:
    """Published cache entries (entries are built in hidden temp folders and renamed into place)."""
    return sorted(p.parent for p in cache_dir.glob("*/manifest.json") if not p.parent.name.startswith("."))


def test_rerun_resumes_from_cached_statistics(source, context, tmp_path, monkeypatch):
    """SIGKILL a wanda_sp run as soon as its first statistics reach the cache: the cache holds only complete,
    loadable entries, and the rerun reads them instead of recomputing."""
    from reliability_helpers import run_cli_with_env

    from hf_resize.calibration import cache as statistics_cache

    text = tmp_path / "calibration.txt"
    text.write_text(" ".join("abcdefghijklmnopqrstuvwxyz"[(i * 7) % 26] for i in range(6000)))
    cache_dir = tmp_path / "cache"
    env = {"HF_RESIZE_STATISTICS_CACHE": str(cache_dir), "HF_RESIZE_NO_CACHE": ""}
    out = tmp_path / "out"
    args = ["resize", str(source), "--method", "wanda_sp", "--ratio", "0.5", "--groups", "mlp,heads",
            "--calibration", str(text), "--num-samples", "16", "--seq-len", "160", "--out", str(out), "--overwrite"]
    process = context.Process(target=run_cli_with_env, args=(env, args))
    process.start()
    while process.is_alive() and not entries(cache_dir):
        time.sleep(0.001)
    if process.is_alive():
        os.kill(process.pid, signal.SIGKILL)
    process.join(60)
    if out.exists():
        assert_complete(out)
    cached = entries(cache_dir)
    assert cached, "no statistics reached the cache"
    for entry in cached:  # complete and loadable: never a half-written entry
        kind = json.loads((entry / "manifest.json").read_text())["kind"]
        assert statistics_cache.load_entry(entry, kind) is not None

    hits, saves = [], []
    real_load, real_save = statistics_cache.load_entry, statistics_cache.save_entry
    monkeypatch.setattr(statistics_cache, "load_entry",
                        lambda path, kind, device="cpu": hits.append(kind) or real_load(path, kind, device))
    monkeypatch.setattr(statistics_cache, "save_entry",
                        lambda path, kind, *a, **k: saves.append(kind) or real_save(path, kind, *a, **k))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert cli.main(args) == 0
    assert_complete(out)
    reused = {json.loads((entry / "manifest.json").read_text())["kind"] for entry in cached}
    assert reused <= set(hits) and not reused & set(saves)  # read back, not recomputed
