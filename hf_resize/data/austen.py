"""Jane Austen's six novels, fetched from the Debian package ``r-cran-janeaustenr``.

The package stores the books in R lazy-load files; we decode them with ``rdata`` (no R needed)
and cache one UTF-8 text per novel plus a manifest of sha256 sums, so a corrupt cache is detected.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import struct
import subprocess
import tempfile
import warnings
import zlib
from pathlib import Path

from hf_resize.errors import DataUnavailableError

DEBIAN_PACKAGE = "r-cran-janeaustenr"
_RDATA_DIR = "usr/lib/R/site-library/janeaustenr/data"

# R object name -> cache slug. Slugs are the public names used everywhere else.
_R_NAMES: dict[str, str] = {
    "emma": "emma",
    "mansfieldpark": "mansfield_park",
    "northangerabbey": "northanger_abbey",
    "persuasion": "persuasion",
    "prideprejudice": "pride_and_prejudice",
    "sensesensibility": "sense_and_sensibility",
}
ALL_BOOKS: tuple[str, ...] = tuple(_R_NAMES.values())
CALIBRATION_BOOKS: tuple[str, ...] = (
    "emma",
    "mansfield_park",
    "northanger_abbey",
    "pride_and_prejudice",
    "sense_and_sensibility",
)
# Held out: never used for calibration, so quality numbers are not measured on seen text.
EVALUATION_BOOK = "persuasion"
assert EVALUATION_BOOK not in CALIBRATION_BOOKS

_MANIFEST = "manifest.json"


def default_cache_dir() -> Path:
    """``$HF_RESIZE_CACHE`` or ``~/.cache/hf_resize``."""
    env = os.environ.get("HF_RESIZE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "hf_resize"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _download_deb(workdir: Path) -> Path:
    """``apt-get download`` the package; run ``apt-get update`` only if the first try fails."""

    def attempt() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["apt-get", "download", DEBIAN_PACKAGE], cwd=workdir, capture_output=True, text=True
        )

    try:
        result = attempt()
        if result.returncode != 0:
            subprocess.run(["apt-get", "update"], capture_output=True, text=True)
            result = attempt()
    except FileNotFoundError as exc:  # no apt-get on this machine
        raise DataUnavailableError(
            f"apt-get not found, so the Austen corpus cannot be fetched. On a Debian-like machine run "
            f"`apt-get download {DEBIAN_PACKAGE}`, or pass your own calibration text (a .txt/.jsonl file)."
        ) from exc
    debs = sorted(workdir.glob(f"{DEBIAN_PACKAGE}_*.deb"))
    if result.returncode != 0 or not debs:
        raise DataUnavailableError(
            f"`apt-get download {DEBIAN_PACKAGE}` failed: {result.stderr.strip()[-500:]}. "
            "Check network access to the Debian mirror (or run `apt-get update`), "
            "or pass your own calibration text (a .txt/.jsonl file)."
        )
    return debs[-1]


def _decode_rdata(data_dir: Path) -> dict[str, str]:
    """Decode R's lazy-load database: gzip index (.rdx) + zlib-compressed entries (.rdb)."""
    import rdata  # local import: only needed while fetching

    def convert(raw: bytes) -> object:
        with warnings.catch_warnings():  # rdata warns "Unknown file type: assumed RDS"; it is right
            warnings.simplefilter("ignore")
            return rdata.conversion.convert(rdata.parser.parse_data(raw))

    index = convert(gzip.decompress((data_dir / "Rdata.rdx").read_bytes()))
    rdb = (data_dir / "Rdata.rdb").read_bytes()
    books: dict[str, str] = {}
    for r_name, slug in _R_NAMES.items():
        offset, length = (int(x) for x in index["variables"][r_name])  # type: ignore[index]
        blob = rdb[offset : offset + length]
        (size,) = struct.unpack(">I", blob[:4])
        raw = zlib.decompress(blob[4:])
        if len(raw) != size:
            raise DataUnavailableError(
                f"{DEBIAN_PACKAGE}: entry {r_name!r} is truncated; delete the cache and fetch again."
            )
        lines = convert(raw)
        # Each book is a character vector of lines; NA lines (None) become blank lines.
        books[slug] = "\n".join("" if line is None else str(line) for line in lines) + "\n"  # type: ignore[union-attr]
    return books


def _cache_ok(folder: Path) -> bool:
    """True when every book exists and matches the sha256 in the manifest."""
    manifest_path = folder / _MANIFEST
    if not manifest_path.is_file():
        return False
    try:
        manifest = json.loads(manifest_path.read_text())
        for slug in ALL_BOOKS:
            path = folder / f"{slug}.txt"
            if not path.is_file() or _sha256(path.read_bytes()) != manifest["sha256"][slug]:
                return False
    except (ValueError, KeyError, TypeError):
        return False
    return True


def fetch_austen(cache_dir: Path | None = None) -> Path:
    """Return ``<cache>/austen``, downloading and decoding the Debian package if the cache is not valid."""
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = root / "austen"
    if _cache_ok(target):
        return target
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="austen-", dir=root) as tmp:
        tmp_path = Path(tmp)
        deb = _download_deb(tmp_path)
        extracted = tmp_path / "deb"
        subprocess.run(["dpkg-deb", "-x", str(deb), str(extracted)], check=True, capture_output=True)
        books = _decode_rdata(extracted / _RDATA_DIR)
        # Write into a sibling folder, then swap in with rename so readers never see half a cache.
        staging = tmp_path / "austen"
        staging.mkdir()
        sums: dict[str, str] = {}
        for slug, text in books.items():
            data = text.encode("utf-8")
            (staging / f"{slug}.txt").write_bytes(data)
            sums[slug] = _sha256(data)
        manifest = {"source": f"debian:{DEBIAN_PACKAGE}:{deb.name}", "sha256": sums}
        (staging / _MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        if target.exists():
            target.rename(tmp_path / "old")  # move the bad copy aside; it is deleted with tmp
        try:
            staging.rename(target)
        except OSError:
            if not _cache_ok(target):  # else another process finished first: use its copy
                raise
    return target


def load_austen(cache_dir: Path | None = None) -> dict[str, str]:
    """Slug -> full text of each novel; a cache that fails its sha256 check is fetched again."""
    folder = fetch_austen(cache_dir)
    return {slug: (folder / f"{slug}.txt").read_text(encoding="utf-8") for slug in ALL_BOOKS}


def calibration_text(cache_dir: Path | None = None) -> str:
    """The five calibration novels joined; never includes the evaluation book."""
    books = load_austen(cache_dir)
    return "\n\n".join(books[slug] for slug in CALIBRATION_BOOKS)


def evaluation_text(cache_dir: Path | None = None) -> str:
    """Persuasion, the held-out evaluation novel."""
    return load_austen(cache_dir)[EVALUATION_BOOK]


def clear_austen_cache(cache_dir: Path | None = None) -> None:
    """Delete the cached texts (used by tests and ``make clean``)."""
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    shutil.rmtree(root / "austen", ignore_errors=True)


def main() -> int:
    """``python -m hf_resize.data.austen``: fetch (if needed) and print the cache folder."""
    print(fetch_austen())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
