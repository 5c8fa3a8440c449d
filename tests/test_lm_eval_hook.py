"""``lm_eval --model hf-resize`` works from the plain lm_eval command (the .pth startup hook), offline with the
local Austen tasks, and the hook costs other Python processes nothing."""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def test_the_hook_is_installed_in_site_packages() -> None:
    folders = [Path(p) for p in site.getsitepackages()]
    assert any((folder / "hf_resize_lm_eval.pth").is_file() for folder in folders), folders


def test_other_python_processes_import_nothing() -> None:
    out = subprocess.run([sys.executable, "-c", "import sys; print(sorted(m for m in sys.modules if m.startswith(('lm_eval', 'hf_resize'))))"],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['hf_resize_lm_eval_hook']"


def test_plain_lm_eval_command_resizes_on_the_fly_with_the_local_tasks(tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    command = [
        str(BIN / "lm_eval"), "--model", "hf-resize",
        "--model_args", "pretrained=smollm2-135m,method=magnitude,ratio=0.25,max_length=512",
        "--tasks", "austen_persuasion_lastword", "--limit", "2", "--batch_size", "1",
        "--output_path", str(tmp_path / "out"),
    ]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    files = list((tmp_path / "out").rglob("results_*.json"))
    assert len(files) == 1
    scores = json.loads(files[0].read_text())
    assert "acc,none" in scores["results"]["austen_persuasion_lastword"]
    assert scores["config"]["model_args"]["method"] == "magnitude"
    assert scores["config"]["model_num_parameters"] < 134_515_008  # SmolLM2-135M dense: the model was resized
