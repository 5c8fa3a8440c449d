"""Austen corpus: fetched once from Debian into the user cache; tests copy it to check corruption handling."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from hf_resize.data import austen
from hf_resize.data.austen import (
    ALL_BOOKS,
    CALIBRATION_BOOKS,
    EVALUATION_BOOK,
    calibration_text,
    evaluation_text,
    fetch_austen,
    load_austen,
)


@pytest.fixture(scope="module")
def real_cache() -> Path:
    """The shared cache (fetched by `make setup`); needs apt-get for the first fetch."""
    if shutil.which("apt-get") is None and not austen._cache_ok(austen.default_cache_dir() / "austen"):
        pytest.skip("no apt-get and no cached Austen corpus")
    return fetch_austen()


@pytest.fixture
def copied_cache(real_cache: Path, tmp_path: Path) -> Path:
    shutil.copytree(real_cache, tmp_path / "austen")
    return tmp_path


def test_books_and_split() -> None:
    assert set(CALIBRATION_BOOKS) | {EVALUATION_BOOK} == set(ALL_BOOKS)
    assert EVALUATION_BOOK == "persuasion" and EVALUATION_BOOK not in CALIBRATION_BOOKS
    assert len(ALL_BOOKS) == 6


def test_cache_layout_and_manifest(real_cache: Path) -> None:
    manifest = json.loads((real_cache / "manifest.json").read_text())
    assert set(manifest["sha256"]) == set(ALL_BOOKS)
    for slug in ALL_BOOKS:
        assert (real_cache / f"{slug}.txt").stat().st_size > 300_000


def test_texts_are_the_novels(real_cache: Path) -> None:
    books = load_austen()
    assert books["pride_and_prejudice"].startswith("PRIDE AND PREJUDICE")
    assert "It is a truth universally acknowledged" in books["pride_and_prejudice"]
    assert books["emma"].startswith("EMMA")
    assert "Sir Walter Elliot" in books["persuasion"]


def test_calibration_and_evaluation_never_mix(real_cache: Path) -> None:
    calib, evaluation = calibration_text(), evaluation_text()
    assert evaluation == load_austen()["persuasion"]
    assert "Sir Walter Elliot, of Kellynch Hall" not in calib
    for slug in CALIBRATION_BOOKS:
        assert load_austen()[slug][:2000] in calib


def test_valid_cache_is_not_refetched(copied_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_download(workdir: Path) -> Path:
        raise AssertionError("should not download when the cache is valid")

    monkeypatch.setattr(austen, "_download_deb", no_download)
    assert load_austen(copied_cache)["emma"].startswith("EMMA")


def test_corrupt_cache_is_refetched(copied_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Path] = []
    real_download = austen._download_deb

    def counting(workdir: Path) -> Path:
        calls.append(workdir)
        return real_download(workdir)

    monkeypatch.setattr(austen, "_download_deb", counting)
    book = copied_cache / "austen" / "emma.txt"
    good = book.read_text(encoding="utf-8")
    book.write_text(good.replace("Emma", "Xmma", 1), encoding="utf-8")
    assert load_austen(copied_cache)["emma"] == good
    assert len(calls) == 1
    assert not list(copied_cache.glob("austen-*")), "temporary folder left behind"


def test_cache_check_rejects_damage(copied_cache: Path) -> None:
    folder = copied_cache / "austen"
    assert austen._cache_ok(folder)
    (folder / "manifest.json").write_text("not json")
    assert not austen._cache_ok(folder)
    (folder / "manifest.json").unlink()
    assert not austen._cache_ok(folder)


def test_env_var_sets_default_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_RESIZE_CACHE", str(tmp_path))
    assert austen.default_cache_dir() == tmp_path


def test_main_prints_path(real_cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert austen.main() == 0
    assert Path(capsys.readouterr().out.strip()) == real_cache
