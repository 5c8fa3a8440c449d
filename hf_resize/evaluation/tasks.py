"""Offline lm-eval tasks built from the held-out evaluation novel (Persuasion).

lm-eval's built-in tasks download their data from the Hub; these three need nothing but the Austen cache:

- ``austen_persuasion_ppl``: rolling log-likelihood of each chapter (word/byte perplexity, bits per byte);
- ``austen_persuasion_lastword``: predict the last word of a passage (``acc`` = greedy match, like LAMBADA);
- ``austen_persuasion_nextsent``: pick the true next sentence among four (``acc``, ``acc_norm``); the three
  distractors are sentences of similar length drawn, with a fixed seed, from elsewhere in the book.

The group ``austen`` runs all three. ``task_dir()`` writes the task YAMLs and their JSONL data (deterministic,
generated on demand into ``<hf_resize cache>/lm_eval_tasks``) and returns the folder to pass as
``lm_eval.tasks.TaskManager(include_path=...)`` or ``lm_eval --include_path``. Only Persuasion is read; the
calibration novels never are.
"""

from __future__ import annotations

import json
import os
import random
import re
import tempfile
from pathlib import Path

from hf_resize.data.austen import default_cache_dir, evaluation_text

GROUP = "austen"
TAG = "austen_persuasion"  # lm-eval tag on each of the three tasks
PPL_TASK = "austen_persuasion_ppl"
LASTWORD_TASK = "austen_persuasion_lastword"
NEXTSENT_TASK = "austen_persuasion_nextsent"
TASKS: tuple[str, ...] = (PPL_TASK, LASTWORD_TASK, NEXTSENT_TASK)

# Sizes: a full run of all three on SmolLM2-135M takes a few minutes on 2 CPU cores (~150-300 tokens/s there).
PPL_CHAPTER_STEP = 6  # chapters 1, 7, 13, 19 (~15k tokens)
MAX_LASTWORD_DOCS = 200  # passages of 20-60 words (~10k tokens)
MAX_NEXTSENT_DOCS = 100  # 4 choices x (context + sentence) (~25k tokens)
SEED = 1234
# Bump when the generated data or YAML changes meaning (recorded in each task's metadata).
DATA_VERSION = 1

_CHAPTER = re.compile(r"^Chapter \d+\s*$", re.MULTILINE)
_ABBREVIATIONS = {"Mr", "Mrs", "Dr", "St", "Esq", "Wm", "Messrs", "Col", "Capt", "Rev", "Sir"}
# A sentence ends at . ! or ? (optionally followed by a closing quote) before whitespace and a capital/quote.
_BOUNDARY = re.compile(r"(?<=[.!?])([\"']?)\s+(?=[\"'(]?[A-Z])")


def chapters(text: str | None = None) -> list[str]:
    """Persuasion's chapters (front matter and the closing "Finis" dropped), paragraphs kept, lines unwrapped."""
    text = evaluation_text() if text is None else text
    parts = _CHAPTER.split(text)[1:]
    out = []
    for part in parts:
        part = re.sub(r"\n\s*Finis\s*$", "", part.strip())
        paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", part) if p.strip()]
        out.append("\n\n".join(paragraphs))
    return out


def split_sentences(paragraph: str) -> list[str]:
    """A small rule-based splitter; enough for Austen's punctuation (initials and Esq./St. are not boundaries)."""
    sentences: list[str] = []
    start = 0
    for match in _BOUNDARY.finditer(paragraph):
        end = match.start() + len(match.group(1))
        before = paragraph[start:match.start()]
        last_token = before.rsplit(None, 1)[-1].rstrip(".!?") if before.split() else ""
        if last_token in _ABBREVIATIONS or (len(last_token) == 1 and last_token.isupper()):
            continue
        sentence = paragraph[start:end].strip()
        if sentence:
            sentences.append(sentence)
        start = match.end()
    tail = paragraph[start:].strip()
    if tail:
        sentences.append(tail)
    return sentences


def _paragraphs(chapter_texts: list[str]) -> list[list[str]]:
    """Sentences of every paragraph of the book, in order."""
    return [split_sentences(p) for chapter in chapter_texts for p in chapter.split("\n\n")]


def ppl_docs(chapter_texts: list[str], step: int = PPL_CHAPTER_STEP) -> list[dict]:
    """Every ``step``-th chapter, whole (rolling log-likelihood splits it into ``max_length`` windows)."""
    return [{"chapter": i + 1, "text": text} for i, text in enumerate(chapter_texts) if i % step == 0]


_LAST_WORD = re.compile(r"^(.*\S)\s+([A-Za-z]{3,})([.!?]?[\"']?)$", re.DOTALL)


def lastword_docs(chapter_texts: list[str], n: int = MAX_LASTWORD_DOCS, seed: int = SEED) -> list[dict]:
    """Passages (a sentence with up to two preceding sentences of its paragraph, 20-60 words) whose last word,
    a plain word of 3+ letters, is the target; trailing punctuation is dropped as in LAMBADA."""
    candidates = []
    for paragraph in _paragraphs(chapter_texts):
        for i in range(len(paragraph)):
            passage = " ".join(paragraph[max(0, i - 2) : i + 1])
            words = len(passage.split())
            match = _LAST_WORD.match(passage)
            if match and 20 <= words <= 60:
                candidates.append({"context": match.group(1), "target": " " + match.group(2)})
    rng = random.Random(seed)
    keep = sorted(rng.sample(range(len(candidates)), min(n, len(candidates))))
    return [{"id": k, **candidates[i]} for k, i in enumerate(keep)]


def nextsent_docs(chapter_texts: list[str], n: int = MAX_NEXTSENT_DOCS, seed: int = SEED) -> list[dict]:
    """Context: up to two sentences of a paragraph (12-50 words); choices: the true next sentence (5-30 words)
    and three sentences of similar length (0.5x-2x the words) from at least 20 sentences away, drawn with
    ``seed``; label: the true sentence's index."""
    flat: list[str] = []
    items = []  # (context, index of the true next sentence in flat)
    for paragraph in _paragraphs(chapter_texts):
        base = len(flat)
        flat.extend(paragraph)
        for i in range(1, len(paragraph)):
            context = " ".join(paragraph[max(0, i - 2) : i])
            if 12 <= len(context.split()) <= 50 and 5 <= len(paragraph[i].split()) <= 30:
                items.append((context, base + i))
    lengths = [len(s.split()) for s in flat]
    rng = random.Random(seed)
    chosen = sorted(rng.sample(range(len(items)), min(n, len(items))))
    docs = []
    for k, item in enumerate(chosen):
        context, true_index = items[item]
        true = flat[true_index]
        length = len(true.split())
        pool = [
            j for j, (s, words) in enumerate(zip(flat, lengths, strict=True))
            if abs(j - true_index) >= 20 and 0.5 * length <= words <= 2 * length and s != true
        ]
        distractors = [flat[j] for j in rng.sample(pool, 3)]
        label = rng.randrange(4)
        choices = distractors[:label] + [true] + distractors[label:]
        docs.append({"id": k, "context": context, "choices": choices, "label": label})
    return docs


def _task_yaml(name: str, data_file: Path, body: str) -> str:
    return (
        f"task: {name}\n"
        f"tag:\n  - {TAG}\n"
        "dataset_path: json\n"
        "dataset_name: null\n"
        "dataset_kwargs:\n"
        f"  data_files:\n    test: {json.dumps(str(data_file))}\n"
        "test_split: test\n"
        f"{body}"
        f"metadata:\n  version: {DATA_VERSION}.0\n"
    )


_PPL_BODY = """output_type: loglikelihood_rolling
doc_to_text: ""
doc_to_target: "{{text}}"
should_decontaminate: true
doc_to_decontamination_query: "{{text}}"
metric_list:
  - metric: word_perplexity
    higher_is_better: false
  - metric: byte_perplexity
    higher_is_better: false
  - metric: bits_per_byte
    higher_is_better: false
"""

_LASTWORD_BODY = """output_type: loglikelihood
doc_to_text: "{{context}}"
doc_to_target: "{{target}}"
target_delimiter: ""
metric_list:
  - metric: perplexity
    aggregation: perplexity
    higher_is_better: false
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""

_NEXTSENT_BODY = """output_type: multiple_choice
doc_to_text: "{{context}}"
doc_to_choice: choices
doc_to_target: label
target_delimiter: " "
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
"""

_GROUP_YAML = f"""group: {GROUP}
task:
  - {PPL_TASK}
  - {LASTWORD_TASK}
  - {NEXTSENT_TASK}
metadata:
  version: {DATA_VERSION}.0
"""


def _write_if_changed(path: Path, content: str) -> None:
    """Write atomically, and only when the content differs (keeps datasets' cache of the file valid)."""
    if path.is_file() and path.read_text(encoding="utf-8") == content:
        return
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _jsonl(docs: list[dict]) -> str:
    return "".join(json.dumps(doc, ensure_ascii=False, sort_keys=True) + "\n" for doc in docs)


def task_dir(cache_dir: Path | str | None = None) -> Path:
    """(Re)generate the task YAMLs and JSONL data; return the folder for ``TaskManager(include_path=...)``.

    Files are rewritten only when their content would change, so repeated calls are cheap and safe to run
    concurrently. ``cache_dir`` defaults to ``hf_resize.data.austen.default_cache_dir()``; the Austen text is
    fetched into it if needed.
    """
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    folder = root / "lm_eval_tasks"
    folder.mkdir(parents=True, exist_ok=True)
    chapter_texts = chapters(evaluation_text(root))
    data = {
        PPL_TASK: (ppl_docs(chapter_texts), _PPL_BODY),
        LASTWORD_TASK: (lastword_docs(chapter_texts), _LASTWORD_BODY),
        NEXTSENT_TASK: (nextsent_docs(chapter_texts), _NEXTSENT_BODY),
    }
    for name, (docs, body) in data.items():
        data_file = folder / f"{name}.jsonl"
        _write_if_changed(data_file, _jsonl(docs))
        _write_if_changed(folder / f"{name}.yaml", _task_yaml(name, data_file.resolve(), body))
    _write_if_changed(folder / f"{GROUP}.yaml", _GROUP_YAML)
    return folder


def main() -> int:
    """``python -m hf_resize.evaluation.tasks``: generate the tasks and print the folder."""
    print(task_dir())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
