"""Offline lm-eval tasks from Persuasion: deterministic files, never calibration text, loadable by lm-eval."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from hf_resize.data import austen
from hf_resize.evaluation import tasks as T


@pytest.fixture(scope="module")
def real_cache() -> Path:
    if shutil.which("apt-get") is None and not austen._cache_ok(austen.default_cache_dir() / "austen"):
        pytest.skip("no apt-get and no cached Austen corpus")
    return austen.fetch_austen().parent


@pytest.fixture(scope="module")
def generated(real_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The tasks generated into two fresh cache folders."""
    folders = []
    for name in ("a", "b"):
        root = tmp_path_factory.mktemp(name)
        shutil.copytree(real_cache / "austen", root / "austen")
        folders.append(T.task_dir(root))
    return folders[0], folders[1]


def _docs(folder: Path, task: str) -> list[dict]:
    return [json.loads(line) for line in (folder / f"{task}.jsonl").read_text(encoding="utf-8").splitlines()]


def test_files_are_deterministic(generated: tuple[Path, Path]) -> None:
    a, b = generated
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    assert names == sorted([f"{T.GROUP}.yaml"] + [f"{t}{ext}" for t in T.TASKS for ext in (".yaml", ".jsonl")])
    for name in names:
        text_a = (a / name).read_text(encoding="utf-8").replace(str(a.resolve()), "<dir>")
        text_b = (b / name).read_text(encoding="utf-8").replace(str(b.resolve()), "<dir>")
        assert text_a == text_b, name
    # YAMLs point at their own absolute JSONL file; a second call rewrites nothing.
    assert str((a / f"{T.PPL_TASK}.jsonl").resolve()) in (a / f"{T.PPL_TASK}.yaml").read_text()
    stamps = {p.name: p.stat().st_mtime_ns for p in a.iterdir()}
    assert T.task_dir(a.parent) == a
    assert stamps == {p.name: p.stat().st_mtime_ns for p in a.iterdir()}


def test_docs_shape(generated: tuple[Path, Path]) -> None:
    folder = generated[0]
    ppl = _docs(folder, T.PPL_TASK)
    assert [d["chapter"] for d in ppl] == list(range(1, 25, T.PPL_CHAPTER_STEP))
    assert ppl[0]["text"].startswith("Sir Walter Elliot")
    chapters = T.chapters()
    assert len(chapters) == 24 and "Finis" not in chapters[-1] and chapters[-1].endswith("national importance.")
    lastword = _docs(folder, T.LASTWORD_TASK)
    assert len(lastword) == T.MAX_LASTWORD_DOCS
    assert all(re.fullmatch(r" [A-Za-z]{3,}", d["target"]) for d in lastword)
    nextsent = _docs(folder, T.NEXTSENT_TASK)
    assert len(nextsent) == T.MAX_NEXTSENT_DOCS
    assert all(len(set(d["choices"])) == 4 and 0 <= d["label"] < 4 for d in nextsent)
    assert len({d["label"] for d in nextsent}) == 4  # the answer's position varies


def _norm(text: str) -> str:
    return " ".join(text.split())


def _words(text: str) -> list[str]:
    return re.findall(r"[A-Za-z']+", text.lower())


def test_text_comes_from_persuasion_only(generated: tuple[Path, Path]) -> None:
    folder = generated[0]
    persuasion = _norm(austen.evaluation_text())
    pieces = [d["text"] for d in _docs(folder, T.PPL_TASK)]
    pieces += [d["context"] + d["target"] for d in _docs(folder, T.LASTWORD_TASK)]
    pieces += [s for d in _docs(folder, T.NEXTSENT_TASK) for s in (d["context"], *d["choices"])]
    for piece in pieces:
        for paragraph in piece.split("\n\n"):
            assert _norm(paragraph) in persuasion
    # No 12-word run of any task text occurs in the calibration novels.
    n = 12
    calibration = _words(austen.calibration_text())
    seen = {" ".join(calibration[i : i + n]) for i in range(len(calibration) - n)}
    for piece in pieces:
        w = _words(piece)
        assert not any(" ".join(w[i : i + n]) in seen for i in range(len(w) - n))


def test_lm_eval_finds_the_tasks(generated: tuple[Path, Path]) -> None:
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(generated[0]), include_defaults=False)
    assert {T.GROUP, *T.TASKS} <= set(manager.all_tasks)
    by_name = manager.load([T.LASTWORD_TASK, T.NEXTSENT_TASK])["tasks"]
    nextsent = by_name[T.NEXTSENT_TASK]
    docs = list(nextsent.test_docs())
    assert len(docs) == T.MAX_NEXTSENT_DOCS
    assert nextsent.doc_to_choice(docs[0]) == docs[0]["choices"]
    assert nextsent.doc_to_target(docs[0]) == docs[0]["label"]
    lastword = by_name[T.LASTWORD_TASK]
    doc = next(iter(lastword.test_docs()))
    assert lastword.doc_to_text(doc) == doc["context"] and lastword.doc_to_target(doc) == doc["target"]
