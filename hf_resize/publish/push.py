"""Publish a resized model folder to the Hugging Face Hub with its generated model card, in one commit.

``push_folder`` stages exactly the files that go up (config, safetensors, tokenizer files, the per-layer remote
code when present, the ``hf_resize.json`` summary, any LICENSE/NOTICE, the generated README.md and the plot),
then calls ``HfApi.create_repo(exist_ok=True)`` and one ``HfApi.upload_folder``. With ``dry_run_dir`` the staged
folder is written there instead and nothing is uploaded.

Plain ``model.push_to_hub(repo)`` (transformers) also works on a resized model, but it writes transformers'
generic card unless the repository already has a README.md; use :func:`push_model` to get this card.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hf_resize.errors import HFResizeError, PushError
from hf_resize.publish.card import SUMMARY_FILE, build_model_card

# Everything a loader needs from a save_pretrained folder; anything else in the folder stays local.
UPLOAD_PATTERNS: tuple[str, ...] = (
    "config.json",
    "generation_config.json",
    "*.safetensors",
    "*.safetensors.index.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "*.tiktoken",
    "chat_template.jinja",
    "chat_template.json",
    "configuration_hf_resize.py",  # per-layer widths: the remote code named in config.json's auto_map
    "modeling_hf_resize.py",
    SUMMARY_FILE,
    "LICENSE*",
    "NOTICE*",
    "USE_POLICY*",
)
CARD_FILE = "README.md"


@dataclass(frozen=True)
class PushResult:
    """What was (or, for a dry run, would be) uploaded."""

    files: tuple[str, ...]  # paths in the repository, sorted
    left_out: tuple[str, ...]  # files of the folder that were not uploaded
    repo_id: str
    repo_url: str | None = None  # None for a dry run
    commit_url: str | None = None
    dry_run_dir: Path | None = None


def upload_plan(folder: str | os.PathLike) -> tuple[list[str], list[str]]:
    """``(files to upload, files left out)`` of a model folder; README.md is always replaced by the card."""
    folder = Path(folder)
    chosen, left_out = [], []
    for path in sorted(folder.iterdir()):
        name = path.name
        if path.is_file() and name != CARD_FILE and any(fnmatch.fnmatchcase(name, p) for p in UPLOAD_PATTERNS):
            chosen.append(name)
        else:
            left_out.append(name + ("/" if path.is_dir() else ""))
    return chosen, left_out


def push_folder(
    folder: str | os.PathLike,
    repo_id: str,
    token: str | None = None,
    private: bool = False,
    dry_run_dir: str | os.PathLike | None = None,
    commit_message: str | None = None,
    *,
    plot: str | os.PathLike | None = None,
    evaluation: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    endpoint: str | None = None,
    **card_options: Any,
) -> PushResult:
    """Upload a resized model folder with a generated model card to ``repo_id`` in a single commit.

    Args:
        folder: a folder written by ``hf_resize.save_resized`` (or ``save_pretrained``; safetensors only).
        repo_id: ``"user/name"`` (or ``"name"`` for your own namespace); created if missing.
        token: a Hub token with write access; default the stored login (``hf auth login``) or ``HF_TOKEN``.
        private: create the repository private. False leaves it to the Hub's default (public unless your
            organization defaults to private); an existing repository keeps its visibility.
        dry_run_dir: write exactly the folder that would be uploaded here (must not exist unless
            ``overwrite``) and upload nothing.
        commit_message: default "Upload <method>-resized model with hf_resize".
        plot: a PNG to embed in the card (copied next to it).
        evaluation: extra measurements for the card (see ``build_model_card``).
        endpoint: a Hub endpoint other than ``HF_ENDPOINT`` / https://huggingface.co.
        card_options: passed to :func:`hf_resize.publish.card.build_model_card` (``base_model``, ``license``,
            ``datasets``, ``tags``, ...).

    All checks (folder, repo id, card metadata, output folder) run before anything is written or sent.
    """
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    source = Path(folder)
    if not source.is_dir() or not (source / "config.json").is_file():
        raise HFResizeError(
            f"{source} is not a model folder (no config.json); pass a folder written by hf_resize.save_resized "
            "(hf-resize resize ... --out DIR)."
        )
    if not any(source.glob("*.safetensors")):
        raise HFResizeError(
            f"{source} has no .safetensors weights; hf_resize publishes safetensors only. Re-save the model with "
            "hf_resize.save_resized or save_pretrained(..., safe_serialization=True)."
        )
    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise HFResizeError(f"Invalid repository id {repo_id!r}: {exc} Use 'user/name'.") from None
    out = None
    if dry_run_dir is not None:
        from hf_resize.validation import check_output_dir

        out = check_output_dir(dry_run_dir, overwrite)
        if out.resolve() == source.resolve():
            raise HFResizeError("--dry-run needs a folder other than the model folder itself.")
    card = build_model_card(source, repo_id=repo_id, plot=plot, evaluation=evaluation, **card_options)
    files, left_out = upload_plan(source)
    if commit_message is None:
        method = _method(source)
        commit_message = f"Upload {method}-resized model with hf_resize" if method else "Upload resized model with hf_resize"

    staging = _staging_dir(source, out)
    try:
        for name in files:
            _place(source / name, staging / name, copy=out is not None)
        card.save(staging / CARD_FILE)
        if plot is not None:
            shutil.copyfile(plot, staging / Path(plot).name)
        uploaded = tuple(sorted(p.name for p in staging.iterdir()))
        if out is not None:
            from hf_resize.export import _move_into_place

            umask = os.umask(0)
            os.umask(umask)
            staging.chmod(0o777 & ~umask)  # mkdtemp made it private; the result is an ordinary folder
            _move_into_place(staging, out)
            return PushResult(uploaded, tuple(left_out), repo_id, dry_run_dir=out)
        repo_url, commit_url = _upload(staging, repo_id, token, private, commit_message, endpoint)
        return PushResult(uploaded, tuple(left_out), repo_url.repo_id, str(repo_url), commit_url)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def push_model(
    model: Any,
    repo_id: str,
    tokenizer: Any = None,
    *,
    summary: Mapping[str, Any] | None = None,
    token: str | None = None,
    private: bool = False,
    dry_run_dir: str | os.PathLike | None = None,
    commit_message: str | None = None,
    **options: Any,
) -> PushResult:
    """``model.push_to_hub`` with the hf_resize card: ``save_resized`` into a temporary folder, then ``push_folder``.

    ``summary`` is merged over ``model.hf_resize_info`` (e.g. ``{"source": "smollm2-135m", "evaluation": ...}``);
    ``options`` go to :func:`push_folder` (``plot``, ``evaluation``, ``base_model``, ``license``, ...).
    """
    from hf_resize.export import save_resized

    info = {**(getattr(model, "hf_resize_info", None) or {}), **(summary or {})}
    with tempfile.TemporaryDirectory(prefix="hf_resize-push-") as tmp:
        folder = save_resized(model, Path(tmp) / "model", tokenizer=tokenizer, summary=info or None)
        return push_folder(folder, repo_id, token=token, private=private, dry_run_dir=dry_run_dir,
                           commit_message=commit_message, **options)


def _method(folder: Path) -> str | None:
    try:
        method = json.loads((folder / SUMMARY_FILE).read_text()).get("method")
    except (OSError, ValueError, AttributeError):
        return None
    return str(method) if method else None


def _staging_dir(source: Path, out: Path | None) -> Path:
    """Next to the dry-run output (so it can be renamed into place) or next to the source (hard links work)."""
    parents: Sequence[Path] = [out.resolve().parent] if out is not None else [source.resolve().parent, Path(tempfile.gettempdir())]
    for parent in parents:
        try:
            return Path(tempfile.mkdtemp(prefix=".hf_resize-push-", dir=parent))
        except OSError:
            continue
    raise HFResizeError(f"Cannot create a staging folder next to {source} or in the temp folder; free some space.")


def _place(src: Path, dst: Path, copy: bool) -> None:
    if not copy:
        try:
            os.link(src, dst)  # the upload only reads it; no need to duplicate gigabytes of weights
            return
        except OSError:
            pass
    shutil.copyfile(src, dst)


def _upload(staging: Path, repo_id: str, token: str | None, private: bool, message: str, endpoint: str | None):
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    transport_errors: tuple[type[BaseException], ...] = (ConnectionError,)
    try:  # huggingface_hub's HTTP client; its network errors are not OSErrors
        import httpx2

        transport_errors += (httpx2.TransportError,)
    except ImportError:  # pragma: no cover - other huggingface_hub versions
        pass

    api = HfApi(endpoint=endpoint, token=token)
    try:
        repo_url = api.create_repo(repo_id, repo_type="model", private=True if private else None, exist_ok=True)
        info = api.upload_folder(
            repo_id=repo_url.repo_id, folder_path=staging, repo_type="model", commit_message=message
        )
    except OfflineModeIsEnabled:
        raise PushError("HF_HUB_OFFLINE is set; unset it to push, or use --dry-run to write the folder locally.") from None
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "?"
        raise PushError(
            f"The Hub refused the upload to {repo_id} (HTTP {status}: {str(exc).splitlines()[0]}). Check that the token "
            "has write access to that namespace (hf auth login, HF_TOKEN or --token)."
        ) from exc
    except transport_errors as exc:
        raise PushError(
            f"Could not reach the Hub at {api.endpoint} ({exc.__class__.__name__}). Check the network or HF_ENDPOINT; "
            "--dry-run writes the folder without uploading."
        ) from exc
    return repo_url, getattr(info, "commit_url", None)
