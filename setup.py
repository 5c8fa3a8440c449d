"""Packaging is in pyproject.toml; this file only ships ``hf_resize_lm_eval.pth`` into site-packages (wheel and
editable installs), the startup hook that makes ``lm_eval --model hf-resize`` work (see hf_resize_lm_eval_hook.py).
"""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.editable_wheel import editable_wheel

PTH = "hf_resize_lm_eval.pth"


class BuildPyWithPth(build_py):
    """Regular wheels: files at the wheel's root land in site-packages."""

    def run(self) -> None:
        super().run()
        self.copy_file(PTH, str(Path(self.build_lib) / PTH))


class EditableWheelWithPth(editable_wheel):
    """PEP 660 editable installs (``pip install -e``) never run build_py's copy: add the file to the wheel."""

    def run(self) -> None:
        super().run()
        wheels = sorted(Path(self.dist_dir).glob("*.whl"), key=lambda p: p.stat().st_mtime)
        if not wheels:
            raise RuntimeError(f"no editable wheel found in {self.dist_dir} to add {PTH} to")
        _add_to_wheel(wheels[-1], PTH, Path(PTH).read_bytes())


def _add_to_wheel(wheel: Path, name: str, data: bytes) -> None:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    staged = wheel.with_suffix(".tmp")
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(staged, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            content = src.read(item.filename)
            if item.filename.endswith(".dist-info/RECORD"):
                content = content.rstrip(b"\n") + f"\n{name},sha256={digest},{len(data)}\n".encode()
            if item.filename != name:
                dst.writestr(item, content)
        dst.writestr(name, data)
    staged.replace(wheel)


setup(cmdclass={"build_py": BuildPyWithPth, "editable_wheel": EditableWheelWithPth})
