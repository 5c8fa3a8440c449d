"""Every row of docs/bad_input.md: the input is refused with its error class / exit code and a one-line message.

Rows already covered elsewhere are listed in docs/bad_input.md with their test; this file covers the rest, plus a
CLI fuzz test (random argument lists never raise or print a traceback).
"""

from __future__ import annotations

import atexit
import contextlib
import io
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch
from conftest import tiny_model
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_helpers import word_tokenizer

import hf_resize
from hf_resize.cli import main
from hf_resize.errors import (
    CalibrationError,
    ConfigError,
    DataUnavailableError,
    HFResizeError,
    OutputExistsError,
    UnsupportedModelError,
)


@pytest.fixture(autouse=True)
def _no_statistics_cache(monkeypatch):
    """Keep the on-disk statistics cache out of these tests (a hit would also hide recomputation)."""
    monkeypatch.setenv("HF_RESIZE_NO_CACHE", "1")


TOKENS = torch.randint(3, 97, (16, 160), generator=torch.Generator().manual_seed(0))


def cli(argv: list[str], capsys) -> tuple[int, str]:
    """Run the CLI; return (exit code, stderr), asserting the one-line, no-traceback contract for errors."""
    capsys.readouterr()
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if code != 0:
        lines = [line for line in err.splitlines() if line.startswith("hf-resize: error:")]
        assert len(lines) == 1, err
    return code, err


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("models") / "tiny"
    tiny_model("llama").save_pretrained(path)
    return path


def _nothing_written(tmp_path: Path, keep: tuple[str, ...] = ()) -> None:
    assert sorted(p.name for p in tmp_path.iterdir() if p.name not in keep) == []


# --- ratios and options --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ratio", ["1.5", "1", "-0.1", "nan", "inf"])
def test_ratio_out_of_range(ratio, model_dir, tmp_path, capsys):
    code, err = cli(["resize", model_dir, "--ratio", ratio, "--out", tmp_path / "o"], capsys)
    assert code == ConfigError.exit_code and "[0, 1)" in err
    _nothing_written(tmp_path)


def test_ratio_not_a_number_is_a_usage_error(model_dir, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["resize", str(model_dir), "--ratio", "a lot", "--out", str(tmp_path / "o")])
    assert info.value.code == 2 and "ratio must be a number" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("groups", "ratio", "extra", "match"),
    [
        ("heads", "0.01", [], "granularity cannot meet it"),  # 3 query heads per KV group: 1% removes nothing
        ("heads", "0.9", ["--head-mode", "kv_groups"], "would remove all"),  # 2 KV groups: 90% removes both
        ("mlp", "0.999", [], "would remove all"),
    ],
)
def test_ratio_unreachable_at_the_granularity(groups, ratio, extra, match, model_dir, tmp_path, capsys):
    code, err = cli(["resize", model_dir, "--ratio", ratio, "--groups", groups, *extra, "--out", tmp_path / "o"], capsys)
    assert code == ConfigError.exit_code and match in err
    _nothing_written(tmp_path)


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--method", "wanda_sp", "--groups", "mlp,hidden"], "cannot reduce the hidden"),
        (["--method", "nope"], "Unknown method"),
        (["--groups", "mlp,bogus"], "groups must be"),
        (["--option", "foo=1"], "has no option"),
        (["--option", "groups=5"], "groups must be"),
        (["--option", "seed=\"a\""], "seed must be an integer"),
        (["--method", "wanda_sp", "--option", "damping=-1"], "damping"),
        (["--method", "wanda_sp", "--option", "compensate=\"magic\""], "compensate"),
    ],
)
def test_conflicting_or_unknown_options(argv, match, model_dir, tmp_path, capsys):
    code, err = cli(["resize", model_dir, "--ratio", "0.25", *argv, "--out", tmp_path / "o"], capsys)
    assert code == ConfigError.exit_code and match in err
    _nothing_written(tmp_path)


def test_body_target_no_uniform_ratio_reaches():
    model = tiny_model("llama", num_attention_heads=1, num_key_value_heads=1)  # one head: nothing to remove
    with pytest.raises(ConfigError, match="No width ratio"):
        hf_resize.resize(model, hf_resize.MagnitudeConfig(ratio=0.2, groups=("heads",), target="body"))


def test_config_rejects_conflicts_in_python():
    with pytest.raises(ConfigError, match="hidden"):
        hf_resize.WandaSPConfig(ratio=0.2, groups=("mlp", "hidden"))
    with pytest.raises(ConfigError, match="no option"):
        hf_resize.MagnitudeConfig.from_dict({"ratio": 0.2, "dampening": 1})


# --- calibration data -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda d: d / "empty.txt", "is empty"),
        (lambda d: d / "short.txt", "tokens but"),
        (lambda d: d / "binary.txt", "not UTF-8"),
        (lambda d: d / "bad.jsonl", "not valid JSON"),
        (lambda d: d / "missing.txt", "not found"),
    ],
    ids=["empty", "too-short", "binary", "bad-jsonl", "missing"],
)
def test_bad_calibration_text(make, match, tmp_path):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "short.txt").write_text("a b c d e f")
    (tmp_path / "binary.txt").write_bytes(bytes(range(256)) * 8)
    (tmp_path / "bad.jsonl").write_text('{"text": "ok"}\n{oops\n')
    tokenizer = word_tokenizer()
    model = tiny_model("llama")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CalibrationError, match=match):
        hf_resize.resize(model, hf_resize.WandaSPConfig(ratio=0.25), calibration=str(make(tmp_path)),
                         tokenizer=tokenizer, num_samples=4, seq_len=16)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize(
    ("calibration", "match"),
    [
        (torch.zeros(0, 0, dtype=torch.long), "at least 2048"),
        (torch.randint(3, 97, (2, 10)), "at least 2048"),
        (torch.rand(16, 160), "integer tensor"),
        (torch.randint(3, 500, (16, 160)), r"must lie in \[0, 97\)"),
        ([1, 2, 3], "only strings"),
        (12345, "Unsupported calibration source"),
        ("some text", "needs a tokenizer"),
    ],
    ids=["empty-tensor", "too-short-tensor", "float-tensor", "ids-outside-vocab", "list-of-ints", "int", "no-tokenizer"],
)
def test_bad_calibration_values(calibration, match):
    model = tiny_model("llama")
    tokenizer = None
    if isinstance(calibration, (list, int)):
        tokenizer = word_tokenizer()
    with pytest.raises(CalibrationError, match=match):
        hf_resize.resize(model, hf_resize.WandaSPConfig(ratio=0.25), calibration=calibration, tokenizer=tokenizer)


def test_nan_activations_during_calibration_are_refused_before_any_change():
    model = tiny_model("llama")
    with torch.no_grad():  # finite weights whose activations overflow float32
        for proj in (model.model.layers[0].mlp.gate_proj, model.model.layers[0].mlp.up_proj):
            proj.weight.mul_(1e25)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CalibrationError, match="NaN or Inf"):
        hf_resize.resize(model, hf_resize.WandaSPConfig(ratio=0.25, groups=("mlp", "heads")), calibration=TOKENS)
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_nan_in_precomputed_statistics_is_refused():
    from hf_resize.calibration import collect_statistics

    model = tiny_model("llama")
    stats = collect_statistics(model, TOKENS, hf_resize.WandaSPConfig.needs)
    stats["mlp_gram"][1][0, 0] = float("nan")
    with pytest.raises(CalibrationError, match=r"layer\(s\) \[1\]"):
        hf_resize.resize(model, hf_resize.WandaSPConfig(ratio=0.25), statistics=stats)


# --- models ---------------------------------------------------------------------------------------------------------


def test_partially_offloaded_weights_are_refused():
    from accelerate import cpu_offload

    model = tiny_model("llama")
    cpu_offload(model.model.layers[1], execution_device=torch.device("cpu"))  # params on meta with an _hf_hook
    with pytest.raises(UnsupportedModelError, match="offloaded by accelerate"):
        hf_resize.resize(model, hf_resize.MagnitudeConfig(ratio=0.25))


def test_not_a_transformers_model():
    with pytest.raises(UnsupportedModelError, match="PreTrainedModel"):
        hf_resize.resize(torch.nn.Linear(4, 4), hf_resize.MagnitudeConfig(ratio=0.25))


def test_inf_weights_via_cli(tmp_path, capsys):
    model = tiny_model("qwen2")
    with torch.no_grad():
        model.model.layers[0].mlp.up_proj.weight[0, 0] = float("nan")
    model.save_pretrained(tmp_path / "m")
    code, err = cli(["resize", tmp_path / "m", "--ratio", "0.25", "--out", tmp_path / "o"], capsys)
    assert code == UnsupportedModelError.exit_code and "NaN or Inf" in err
    _nothing_written(tmp_path, keep=("m",))


@pytest.mark.parametrize(
    "damage",
    ["invalid-json", "unknown-model-type", "no-model-type", "truncated-weights", "no-weights"],
)
def test_malformed_model_folder_is_one_line(damage, tmp_path, capsys):
    folder = tmp_path / "m"
    tiny_model("llama").save_pretrained(folder)
    config = folder / "config.json"
    if damage == "invalid-json":
        config.write_text("{not json")
    elif damage == "unknown-model-type":
        config.write_text(json.dumps({**json.loads(config.read_text()), "model_type": "nope"}))
    elif damage == "no-model-type":
        config.write_text(json.dumps({"hidden_size": 4}))
    elif damage == "truncated-weights":
        with open(folder / "model.safetensors", "r+b") as handle:
            handle.truncate(100)
    else:
        (folder / "model.safetensors").unlink()
    for argv in (["resize", folder, "--ratio", "0.25", "--out", tmp_path / "o"], ["info", folder]):
        code, err = cli(argv, capsys)
        assert code == UnsupportedModelError.exit_code and "Could not load the model folder" in err, err
    _nothing_written(tmp_path, keep=("m",))


def test_folder_without_config(tmp_path, capsys):
    (tmp_path / "m").mkdir()
    code, err = cli(["info", tmp_path / "m"], capsys)
    assert code == DataUnavailableError.exit_code and "no config.json" in err


# --- output folders -------------------------------------------------------------------------------------------------


def test_output_under_a_file_is_refused(model_dir, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    code, err = cli(["resize", model_dir, "--ratio", "0.25", "--out", tmp_path / "file" / "o"], capsys)
    assert code == OutputExistsError.exit_code and "writable" in err


def test_output_path_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "o").write_text("x")
    with pytest.raises(OutputExistsError, match="not a folder"):
        hf_resize.save_resized(tiny_model("llama"), tmp_path / "o", overwrite=True)
    assert (tmp_path / "o").read_text() == "x"


def test_read_only_output_location_is_refused(model_dir, tmp_path, capsys):
    if os.geteuid() == 0:  # root ignores directory permissions; /proc refuses even root
        target = Path("/proc/hf-resize-test/o")
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        target = ro / "o"
    try:
        code, err = cli(["resize", model_dir, "--ratio", "0.25", "--out", target], capsys)
    finally:
        if os.geteuid() != 0:
            (tmp_path / "ro").chmod(0o755)
    assert code == OutputExistsError.exit_code and "writable" in err
    assert not target.exists()


# --- CLI fuzz -------------------------------------------------------------------------------------------------------

_FUZZ_ROOT = Path(tempfile.mkdtemp(prefix="hf-resize-fuzz-"))
atexit.register(shutil.rmtree, _FUZZ_ROOT, True)
_FUZZ_MODEL = _FUZZ_ROOT / "tiny"
_FUZZ_BROKEN = _FUZZ_ROOT / "broken"


def _fuzz_setup() -> None:
    if not _FUZZ_MODEL.exists():
        tiny_model("llama").save_pretrained(_FUZZ_MODEL)
        _FUZZ_BROKEN.mkdir()
        (_FUZZ_BROKEN / "config.json").write_text("{")


WORDS = st.sampled_from(
    ["resize", "info", "eval", "push", "--help", "-h", "--ratio", "--method", "--groups", "--target", "--head-mode",
     "--calibration", "--num-samples", "--seq-len", "--seed", "--option", "--out", "--overwrite", "--methods",
     "--max-windows", "--window", "--tasks", "--limit", "--dry-run", "--trust-remote-code", "magnitude",
     "wanda_sp", "mlp", "heads", "hidden", "mlp,heads", "body", "width", "kv_groups", "0", "0.25", "0.5", "-1",
     "1e9", "nan", "x", "", "=", "ratio=0.3", "damping=-1", "groups=[]", "seed=1.5", "me/repo",
     str(_FUZZ_MODEL), str(_FUZZ_BROKEN), str(_FUZZ_ROOT / "missing"), "/dev/null", "./nowhere"]
)
OUTS = st.sampled_from(["out", "out", "exists", "file/out"])


@settings(max_examples=int(os.environ.get("HF_RESIZE_FUZZ_EXAMPLES", "40")), deadline=None, database=None,
          derandomize="HF_RESIZE_FUZZ_EXAMPLES" not in os.environ,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture])
@given(words=st.lists(st.one_of(WORDS, st.text(max_size=8)), max_size=10), out=OUTS, with_out=st.booleans())
def test_cli_fuzz_never_prints_a_traceback(words, out, with_out):
    _fuzz_setup()
    if words and words[0] == "demo":  # the demo resizes the real SmolLM2: minutes, not a fuzz case
        words = words[1:]
    if words and words[0] in ("eval", "push") and not any(w.startswith("-h") or w == "--help" for w in words):
        # eval/push would score Persuasion or contact the Hub: fuzz only their argument parsing and model loading.
        words = [words[0], str(_FUZZ_ROOT / "missing"), *words[1:]]
    workdir = Path(tempfile.mkdtemp(dir=_FUZZ_ROOT))
    (workdir / "exists").mkdir()
    (workdir / "file").write_text("x")
    argv = list(words) + (["--out", str(workdir / out)] if with_out else [])
    stdout, stderr = io.StringIO(), io.StringIO()
    old = os.getcwd()
    try:
        os.chdir(workdir)
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                code = main(argv)
            except SystemExit as exit_info:  # argparse: usage errors (2) and --help (0)
                code = exit_info.code
    finally:
        os.chdir(old)
        shutil.rmtree(workdir, ignore_errors=True)
    assert "Traceback" not in stderr.getvalue()
    assert code in (0, 2) or code in {c.exit_code for c in _error_classes()}, (argv, code, stderr.getvalue()[-500:])


def _error_classes():
    import hf_resize.errors as errors

    return [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, HFResizeError)]
