"""The README's quick start and own-model sections run as written, in order, as a newcomer
would paste them: every bash line through bash in a fresh folder (the repository's
``configs/`` beside it), every python block through the project's Python there.

Three things differ from the README, each named in ``SHRINK`` and ``PROVIDED``: training lines
get flags that cut them to seconds (a tiny model, one epoch), long measurements get smaller
counts, and the file the README calls "your frames" is cut from the Japanese Vowels test set.
Everything else (paths, flags, the order, the Python) is the README's text. Needs torch and
the three data sets; without them the test skips, saying which is missing.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import unavailable
from test_readme import ROOT, logical_lines, split

SECTIONS = ("## Quick start", "## Deploy your own model")

# (pattern a line starts with, flags appended): each cuts minutes of work to seconds
SHRINK = [
    (r"rnnedge train charlm\b", "--epochs 1 --embed-dim 16 --hidden-size 32 --batch-size 16 "
                                "--num-steps 50"),
    (r"rnnedge train sentiment\b", "--epochs 1 --embed-dim 16 --hidden-size 16 --max-len 60 "
                                   "--max-vocab 3000 --val-size 500"),
    (r"rnnedge train series\b", "--epochs 2 --average-from 0"),
    (r"rnnedge evaluate \S+ --split test\b", "--limit 400"),
    (r"rnnedge bench \S*charlm", "--steps 40 --warmup 5"),
    (r"rnnedge bench \S*sentiment", "--cases 8"),
    (r"rnnedge bench kws", "--steps 40 --warmup 5"),
    (r"rnnedge generate", "--length 40"),
]
TIMEOUT_S = 900


def shrink(line):
    """``line`` with the flags of its ``SHRINK`` entry placed before its comment."""
    code, comment = re.match(r"^(.*?)(\s+#.*)?$", line).groups()
    for pattern, flags in SHRINK:
        if re.match(pattern, code.strip()):
            code = f"{code} {flags}"
    return code + (comment or "")


def sections(path, titles):
    """The code blocks (language, first line, lines) under the ``## `` headings ``titles``."""
    prose, blocks = split(path)
    headings = [(n, line) for n, line in prose if line.startswith("## ")]
    spans = []
    for i, (start, title) in enumerate(headings):
        if title.strip() in titles:
            end = headings[i + 1][0] if i + 1 < len(headings) else 10 ** 9
            spans.append((start, end))
    return [b for b in blocks if any(s < b[1] < e for s, e in spans)]


def script(path, titles):
    """The steps of the sections in order: ("bash", line) or ("python", code) or
    ("file", (name, text)) for a python block whose first line is ``# NAME.py``."""
    steps = []
    for language, first, lines in sections(path, titles):
        if language == "bash":
            steps += [("bash", (n, shrink(line))) for n, line in logical_lines(lines, first)
                      if line.strip() and not line.strip().startswith("#")]
        elif language == "python":
            name = re.match(r"#\s*(\w+\.py)\s*$", lines[0]) if lines else None
            code = "\n".join(lines) + "\n"
            steps.append(("file", (name.group(1), code)) if name else ("python", (first, code)))
    return steps


def test_the_shrinking_only_appends_flags_and_keeps_comments():
    assert shrink("rnnedge train charlm --out runs/charlm --max-minutes 5      # best.pt") == \
        ("rnnedge train charlm --out runs/charlm --max-minutes 5 --epochs 1 --embed-dim 16 "
         "--hidden-size 32 --batch-size 16 --num-steps 50      # best.pt")
    assert shrink("rnnedge export a.pt --out b.onnx") == "rnnedge export a.pt --out b.onnx"


def test_the_sections_hold_what_the_run_needs():
    kinds = [kind for kind, _ in script(ROOT / "README.md", SECTIONS)]
    assert kinds.count("bash") >= 20 and kinds.count("python") >= 3 and kinds.count("file") == 1


def provided(folder, data):
    """What the README leaves to the reader: ``my_recordings.ts`` (their frames), made from the
    first 20 utterances of the Japanese Vowels test set."""
    source = data / "JapaneseVowels" / "JapaneseVowels_TEST.ts"
    lines = source.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().lower() == "@data") + 1
    (folder / "my_recordings.ts").write_text("\n".join(lines[:start + 20]) + "\n")


def test_the_readme_quick_start_and_own_model_run_as_written(tmp_path, data_dir, imdb_dir):
    pytest.importorskip("torch")
    if not (data_dir / "JapaneseVowels" / "JapaneseVowels_TEST.ts").is_file():
        unavailable("Japanese Vowels", f"no JapaneseVowels/JapaneseVowels_TEST.ts in {data_dir}")
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    provided(tmp_path, data_dir)
    env = {**os.environ, "RNNEDGE_DATA": str(data_dir),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "PYTHONPATH": str(tmp_path)}
    failures = []
    for kind, step in script(ROOT / "README.md", SECTIONS):
        if kind == "file":
            name, code = step
            (tmp_path / name).write_text(code)
            continue
        number, text = step
        command = (["bash", "-eo", "pipefail", "-c", text] if kind == "bash"
                   else [sys.executable, "-c", text])
        done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=TIMEOUT_S)
        if done.returncode != 0:
            tail = (done.stdout + done.stderr).strip().splitlines()[-6:]
            failures.append(f"README.md line {number}: exit {done.returncode}\n    "
                            f"{text.strip()[:200]}\n      " + "\n      ".join(tail))
            break  # later steps need what this one makes
    assert not failures, "\n".join(failures)
