"""The IMDb movie reviews (Maas et al., ACL 2011) and user-supplied labeled files.

``load_imdb(split)`` reads the 25,000 labeled reviews of ``train`` or ``test`` from
the data directory (``train.download.data_dir``), trying in turn
``aclImdb_labeled.tar.gz``, the official ``aclImdb_v1.tar.gz``, an extracted
``aclImdb/`` folder, and finally downloading the official archive. Labels come from
the ``pos``/``neg`` folders, the star rating from the ``<id>_<rating>.txt`` file
name; ``train/unsup`` is skipped. Both splits are read in one pass over the archive
and cached in memory for the rest of the process.

``load_labeled_file`` reads a CSV or JSON-lines file of (text, label) rows, and
``split_train_val`` carves a fixed-seed, stratified validation split out of the
training reviews. This module is torch-free; it does not tokenise.
"""

import csv
import json
import os
import re
import tarfile
import zlib
from pathlib import Path
from typing import NamedTuple, Optional

import numpy as np

from rnnedge.runtime.errors import DataError, InputError

from .download import data_dir as resolve_data_dir
from .download import fetch
from .ts_format import text_lines

URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
ARCHIVES = ("aclImdb_labeled.tar.gz", "aclImdb_v1.tar.gz")
SPLITS = ("train", "test")
# aclImdb/<split>/<pos|neg>/<id>_<rating>.txt; train/unsup does not match.
_MEMBER = re.compile(r"(?:^|/)aclImdb/(train|test)/(pos|neg)/(\d+)_(\d+)\.txt$")
_LABELS = {"0": 0, "1": 1, "neg": 0, "pos": 1, "negative": 0, "positive": 1,
           "false": 0, "true": 1}
_CACHE = {}


class Review(NamedTuple):
    """One labeled review; ``rating`` is the IMDb star rating, None when unknown."""

    text: str
    label: int
    rating: Optional[int]
    id: str


def load_imdb(split, data_dir=None):
    """The labeled reviews of ``split`` ("train" or "test"), negatives first, by id."""
    if split not in SPLITS:
        raise InputError(f"IMDb split must be 'train' or 'test', not {split!r}")
    source = _find_source(resolve_data_dir(data_dir))
    key = str(source.resolve())
    if key not in _CACHE:
        reader = _read_folder if source.is_dir() else _read_archive
        _CACHE[key] = _check_splits(reader(source), source)
    return list(_CACHE[key][split])


def _find_source(root):
    """The first of the two archives or the extracted folder in ``root``, else download."""
    for name in ARCHIVES:
        if (root / name).is_file():
            return root / name
    if (root / "aclImdb").is_dir():
        return root / "aclImdb"
    return fetch(URL, root / ARCHIVES[1])


def _record(split, folder, num, rating, raw, where):
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{where} is not UTF-8 text ({exc}); the IMDb copy is damaged, "
                        f"delete it so that a fresh one is downloaded") from exc
    return Review(text, int(folder == "pos"), int(rating), f"{split}/{folder}/{num}")


def _read_archive(path):
    """Both splits from a tar.gz, reading members sequentially (no random access)."""
    found = {split: [] for split in SPLITS}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                match = _MEMBER.search(member.name)
                if match and member.isfile():
                    raw = tar.extractfile(member).read()
                    found[match[1]].append(_record(*match.groups(), raw, f"{path}:{member.name}"))
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise DataError(f"{path} is not a readable tar.gz archive ({exc}); delete it so that "
                        f"a fresh copy is downloaded, or point --data-dir elsewhere") from exc
    return found


def _read_folder(root):
    """Both splits from an extracted ``aclImdb/`` folder."""
    found = {split: [] for split in SPLITS}
    for split in SPLITS:
        for folder in ("neg", "pos"):
            sub = root / split / folder
            if not sub.is_dir():
                continue
            for entry in os.scandir(sub):
                match = _MEMBER.search(f"aclImdb/{split}/{folder}/{entry.name}")
                if match and entry.is_file():
                    raw = Path(entry.path).read_bytes()
                    found[split].append(_record(*match.groups(), raw, entry.path))
    return found


def _check_splits(found, source):
    """Sort each split into a source-independent order; an empty split is an error."""
    for split, records in found.items():
        if not records:
            raise DataError(f"{source} holds no aclImdb/{split}/pos or neg reviews; it is not "
                            f"the IMDb data set, or it is incomplete")
        records.sort(key=lambda r: (r.label, int(r.id.rsplit("/", 1)[1])))
    return found


def load_labeled_file(path, text_column="text", label_column="label"):
    """Reviews from a ``.csv`` or JSON-lines (``.jsonl``/``.ndjson``) file of UTF-8 text (a
    byte-order mark, as Excel writes, is dropped; another encoding is refused).

    Labels may be 0/1, pos/neg, positive/negative or true/false (any case).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"labeled file {path} {'is a directory' if path.is_dir() else 'does not exist'}")
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl", ".ndjson"):
        raise DataError(f"{path}: unknown file type {suffix!r}; use .csv or .jsonl (JSON lines)")
    lines = text_lines(path)  # UTF-8, a byte-order mark dropped; else a DataError naming the byte
    rows = list(_csv_rows(lines) if suffix == ".csv" else _jsonl_rows(lines, path))
    if not rows:
        raise DataError(f"{path} holds no rows")
    return [_row_record(row, where, path, text_column, label_column) for where, row in rows]


def _csv_rows(lines):
    # Quoted fields may span lines, so a CSV record is named by its row number.
    for number, row in enumerate(csv.DictReader(lines), start=1):
        yield f"row {number}", row


def _jsonl_rows(lines, path):
    for line, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}, line {line}: not valid JSON ({exc})") from exc
        if not isinstance(row, dict):
            raise DataError(f"{path}, line {line}: expected a JSON object, "
                            f"got {type(row).__name__}")
        yield f"line {line}", row


def _row_record(row, where, path, text_column, label_column):
    for column in (text_column, label_column):
        if row.get(column) is None:
            raise DataError(f"{path}, {where}: no {column!r} column; name the columns "
                            f"with --text-column / --label-column (found {sorted(row)})")
    text = row[text_column]
    if not isinstance(text, str):
        raise DataError(f"{path}, {where}: {text_column!r} must be a string, not {text!r}")
    label = _LABELS.get(str(row[label_column]).strip().lower())
    if label is None:
        raise DataError(f"{path}, {where}: label {row[label_column]!r} is not binary; use 0/1, "
                        f"neg/pos or false/true")
    return Review(text, label, None, f"{path.name}:{where.split()[1]}")


def split_train_val(records, val_size=2500, seed=0):
    """``(train, val)``: a stratified random ``val_size`` records, both in input order.

    Each class gives its share of ``val_size`` (rounded), so validation keeps the
    label balance of ``records``; the same ``seed`` always picks the same reviews.
    """
    if not 0 < val_size < len(records):
        raise InputError(f"val_size must be between 1 and {len(records) - 1} for "
                         f"{len(records)} records, not {val_size}")
    labels = np.array([r.label for r in records])
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    chosen, left = [], val_size
    for k, label in enumerate(classes):
        members = np.flatnonzero(labels == label)
        share = round(val_size * len(members) / len(records))
        take = left if k == len(classes) - 1 else share
        chosen.append(rng.choice(members, size=min(take, len(members)), replace=False))
        left -= len(chosen[-1])
    is_val = np.zeros(len(records), dtype=bool)
    is_val[np.concatenate(chosen)] = True
    return ([r for r, v in zip(records, is_val) if not v],
            [r for r, v in zip(records, is_val) if v])
