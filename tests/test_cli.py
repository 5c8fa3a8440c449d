"""CLI: help a newcomer can follow, user errors as one line with distinct exit codes, info on a tiny model."""

from __future__ import annotations

import pytest
from conftest import tiny_model

from hf_resize.cli import main
from hf_resize.errors import ConfigError, OutputExistsError, UnsupportedModelError


def test_help_lists_commands_and_examples(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for word in ("resize", "eval", "info", "demo", "examples:", "smollm2-135m"):
        assert word in text


def test_info_on_local_folder(tmp_path, capsys):
    model = tiny_model("llama")
    model.save_pretrained(tmp_path / "m")
    assert main(["info", str(tmp_path / "m")]) == 0
    out = capsys.readouterr().out
    assert "MLP groups: 2, widths 64" in out and "heads 6 in KV groups 2" in out and "hidden width: 48" in out


def test_bad_ratio_is_one_line_error(tmp_path, capsys):
    model = tiny_model("llama")
    model.save_pretrained(tmp_path / "m")
    capsys.readouterr()
    code = main(["resize", str(tmp_path / "m"), "--ratio", "1.5", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == ConfigError.exit_code and err.count("\n") == 1 and "[0, 1)" in err
    assert "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_existing_output_refused_before_loading(tmp_path, capsys):
    (tmp_path / "o").mkdir()
    code = main(["resize", "does-not-matter", "--ratio", "0.2", "--out", str(tmp_path / "o")])
    assert code == OutputExistsError.exit_code and "--overwrite" in capsys.readouterr().err


def test_resize_and_eval_roundtrip(tmp_path, capsys):
    model = tiny_model("qwen2")
    model.save_pretrained(tmp_path / "m")
    code = main(["resize", str(tmp_path / "m"), "--method", "magnitude", "--ratio", "0.5", "--groups", "mlp,heads",
                 "--out", str(tmp_path / "o")])
    assert code == 0, capsys.readouterr().err
    assert "removed" in capsys.readouterr().out
    assert main(["info", str(tmp_path / "o")]) == 0
    assert "widths 32" in capsys.readouterr().out


def test_unknown_family_exit_code(tmp_path, capsys):
    from transformers import GPT2Config, GPT2LMHeadModel

    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50)).save_pretrained(tmp_path / "g")
    code = main(["resize", str(tmp_path / "g"), "--ratio", "0.2", "--out", str(tmp_path / "o")])
    assert code == UnsupportedModelError.exit_code and "Supported:" in capsys.readouterr().err


def test_exit_codes_are_distinct():
    from hf_resize import errors

    classes = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, errors.HFResizeError)]
    codes = [c.exit_code for c in classes]
    assert len(set(codes)) == len(codes) and 2 not in codes and 0 not in codes
