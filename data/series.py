"""Labelled real-valued sequences: the UEA/UCR ``.ts`` format, ``.npz`` and CSV; Japanese Vowels.

``load_series(path)`` reads one file into a ``Series``: ``X`` a list of (T_i, C) float32
arrays (one per case, lengths may differ), ``y`` int64 labels indexing ``classes`` (None
for an unlabelled file). Formats, by suffix:

- ``.ts``, the UEA/UCR archive's format (``ts_format.py``): header, comments, multivariate
  or univariate, equal or variable length, string class labels in the header's order.
- ``.npz``: ``X`` (cases, time, channels), optional ``lengths`` (cases,) (default: full),
  ``y`` (cases,) of ints or strings, optional ``classes`` (names of int labels).
- ``.csv``: a header row, one row per frame: ``id``, ``t``, the channel columns (every
  other column, in file order) and an optional ``label`` column, constant within a case.
  Cases keep the order of their first row; frames are sorted by ``t``.

Missing values (``?``, ``NaN``, an empty CSV cell) follow ``missing``: ``"error"`` (the
default) stops with a ``DataError`` naming the line (row) and the channel; ``"interpolate"``
fills each gap linearly in time from its neighbours in the same channel (the nearest value
at either end); a channel with no value at all in a case is still an error. Text files are
UTF-8 (a byte-order mark, as Excel writes, is dropped; UTF-16 and any other encoding are
refused, naming the first bad byte, never decoded with replacement); every value must be
finite in float32, as the model reads it; class names must be distinct printable text; a case
holds at most ``ts_format.MAX_CASE_VALUES`` values (10 million), and a long ``.ts`` line is
parsed in chunks, so reading costs a small multiple of the file's size. Every bad file is a
``DataError`` that names the file and the line or case. Torch-free; numpy only.
"""

import csv
import math
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnedge.runtime.errors import DataError, InputError

from .download import data_dir as resolve_data_dir
from .download import fetch
from .ts_format import check_case_size, fill_missing, parse_values, read_ts, text_lines

VOWELS_URL = "https://www.timeseriesclassification.com/aeon-toolkit/JapaneseVowels.zip"
VOWELS_DIR = "JapaneseVowels"
MISSING = ("error", "interpolate")


@dataclass(frozen=True)
class Series:
    X: list  # [(T_i, C) float32]
    y: object  # int64 (N,) indices into classes, or None when the file has no labels
    classes: tuple  # class names, in label order
    name: str = ""

    @property
    def lengths(self):
        return np.array([len(x) for x in self.X], dtype=np.int64)

    @property
    def channels(self):
        return self.X[0].shape[1]


def load_series(path, missing="error"):
    """The cases of a ``.ts``, ``.npz`` or ``.csv`` file (see the module docstring)."""
    if missing not in MISSING:
        raise InputError(f"missing must be one of {', '.join(MISSING)}, not {missing!r}")
    path = Path(path)
    if not path.is_file():
        raise DataError(f"series file {path} {'is a directory' if path.is_dir() else 'does not exist'}")
    readers = {".ts": _read_ts, ".npz": read_npz, ".csv": read_csv}
    reader = readers.get(path.suffix.lower())
    if reader is None:
        raise DataError(f"{path}: unknown file type {path.suffix!r}; use .ts, .npz or .csv")
    series = reader(path, missing)
    if not series.X:
        raise DataError(f"{path} holds no cases")
    widths = sorted({x.shape[1] for x in series.X})
    if len(widths) > 1:
        raise DataError(f"{path}: cases have different channel counts {widths}; every case "
                        f"needs the same channels")
    for k, x in enumerate(series.X):  # 1e39 is finite as text, infinite as the model reads it
        if not np.isfinite(x).all():
            frame, channel = np.argwhere(~np.isfinite(x))[0]
            raise DataError(f"{path}: case {k + 1}, frame {frame + 1}, channel {channel + 1} is "
                            f"not finite in float32 (|x| at most {np.finfo(np.float32).max:.4g})")
    names = [str(c) for c in series.classes]
    if len(set(names)) != len(names) or not all(n.strip() and n.isprintable() for n in names):
        raise DataError(f"{path}: class names must be distinct, printable and not empty; got "
                        f"{', '.join(repr(n) for n in names)[:200]}")
    return series


def _read_ts(path, missing):
    cases, labels, classes, name = read_ts(path, missing)
    y = None if labels is None else np.array(labels, dtype=np.int64)
    return Series(cases, y, tuple(classes or ()), name)


def load_vowels(split, data_dir=None):
    """Japanese Vowels ``"train"`` (270 cases) or ``"test"`` (370), downloaded when missing."""
    if split not in ("train", "test"):
        raise InputError(f"split must be 'train' or 'test', not {split!r}")
    folder = resolve_data_dir(data_dir) / VOWELS_DIR
    path = folder / f"JapaneseVowels_{split.upper()}.ts"
    if not path.is_file():
        extract_ts(fetch(VOWELS_URL, folder / "JapaneseVowels.zip"), folder)
    return load_series(path)


def extract_ts(archive, folder):
    """Write the ``.ts`` members of the zip ``archive`` into ``folder`` (by base name)."""
    try:
        with zipfile.ZipFile(archive) as zf:
            members = [m for m in zf.namelist() if m.lower().endswith(".ts")]
            if not members:
                raise DataError(f"{archive} holds no .ts file; delete it and retry")
            for member in members:
                (folder / Path(member).name).write_bytes(zf.read(member))
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{archive} is not a readable zip ({exc}); delete it so that a fresh "
                        f"copy is downloaded") from exc


def read_npz(path, missing="error"):
    """A ``Series`` of arrays ``X`` (N, T, C), ``lengths`` (N,), ``y`` (N,), ``classes``."""
    try:
        with open(path, "rb") as fh:  # ours to close: np.load leaks it on a truncated archive
            loaded = np.load(fh, allow_pickle=False)
            if not isinstance(loaded, np.lib.npyio.NpzFile):
                raise DataError(f"{path} holds one array (an .npy file?), not an .npz archive of "
                                f"X, lengths and y; save it with np.savez")
            with loaded as npz:
                arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise DataError(f"{path} is not a readable .npz without pickled objects "
                        f"({type(exc).__name__}: {exc or 'empty'})") from exc
    X = arrays.get("X")
    if X is None or X.ndim != 3 or X.dtype.kind not in "fiu":
        raise DataError(f"{path}: needs a numeric array X of shape (cases, time, channels), "
                        f"found {None if X is None else X.shape}")
    lengths = arrays.get("lengths", np.full(len(X), X.shape[1]))
    if lengths.shape != (len(X),) or lengths.dtype.kind not in "iu" or \
            lengths.min(initial=1) < 1 or lengths.max(initial=0) > X.shape[1]:
        raise DataError(f"{path}: lengths must be (cases,) integers in [1, {X.shape[1]}]")
    if X.shape[2] < 1:
        raise DataError(f"{path}: X has no channels (shape {X.shape}); it needs at least one")
    check_case_size(X.shape[1] * X.shape[2], f"{path}, each case")
    with np.errstate(over="ignore"):  # beyond float32 becomes inf: refused by load_series
        cases = [fill_missing(X[k, :n].astype(np.float32), f"{path}, case {k + 1}", missing)
                 for k, n in enumerate(lengths)]
    y, classes = _labels(arrays.get("y"), arrays.get("classes"), len(X), path)
    return Series(cases, y, classes, path.stem)


def _labels(y, classes, n, path):
    """(int64 indices or None, class names) of ints with optional names, or of strings."""
    if y is None:
        return None, ()
    if y.shape != (n,):
        raise DataError(f"{path}: y must have one label per case, shape ({n},), not {y.shape}")
    if y.dtype.kind in "iu" and classes is not None:
        names = [str(c) for c in classes]
        if y.min(initial=0) < 0 or y.max(initial=0) >= len(names):
            raise DataError(f"{path}: integer labels must lie in [0, {len(names)})")
        return y.astype(np.int64), tuple(names)
    if y.dtype.kind not in "iuU":
        raise DataError(f"{path}: y must hold integer or text labels, not {y.dtype}")
    return encode_labels([str(v) for v in y])  # integers without names: the values present


def encode_labels(names):
    """(int64 indices, classes): classes sorted numerically when all are numbers, else by text."""
    unique = set(names)
    numeric = all(_is_number(u) for u in unique)
    classes = tuple(sorted(unique, key=(lambda u: (float(u), u)) if numeric else None))
    index = {c: k for k, c in enumerate(classes)}
    return np.array([index[v] for v in names], dtype=np.int64), classes


def _is_number(text):
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def read_csv(path, missing="error", id_column="id", time_column="t", label_column="label"):
    """A ``Series`` of a CSV with one row per frame (see the module docstring)."""
    reader = csv.reader(text_lines(path))
    header = next(reader, None)
    if header is None:
        raise DataError(f"{path} is empty; the first row names the columns")
    names = [h.strip() for h in header]
    for need in (id_column, time_column):
        if need not in names:
            raise DataError(f"{path}, line 1: no {need!r} column (found {', '.join(names)})")
    channels = [k for k, h in enumerate(names) if h not in (id_column, time_column, label_column)]
    if not channels:
        raise DataError(f"{path}, line 1: no channel column besides {id_column}, "
                        f"{time_column} and {label_column}")
    rows = _csv_cases(reader, names, channels, path, time_column, id_column, label_column)
    X, labels = [], []
    for case, (frames, label) in rows.items():
        frames.sort(key=lambda f: f[0])
        times = [f[0] for f in frames]
        if len(set(times)) != len(times):
            raise DataError(f"{path}: case {case!r} has two rows with the same {time_column}")
        x = np.array([f[1] for f in frames], dtype=np.float32)  # (T, C)
        X.append(fill_missing(x, f"{path}, case {case!r}", missing))
        labels.append(label)
    if label_column not in names:
        return Series(X, None, (), path.stem)
    y, classes = encode_labels(labels)
    return Series(X, y, classes, path.stem)


def _csv_cases(reader, names, channels, path, time_column, id_column, label_column):
    """{case id: ([(t, [values])], label)} in order of first appearance."""
    col = {n: k for k, n in enumerate(names)}
    cases = {}
    for number, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue
        where = f"{path}, line {number}"
        if len(row) != len(names):
            raise DataError(f"{where}: {len(row)} fields, the header has {len(names)}")
        try:
            t = float(row[col[time_column]])
        except ValueError:
            t = math.nan
        if not math.isfinite(t):
            raise DataError(f"{where}: {time_column} {row[col[time_column]]!r} is not a finite "
                            f"number") from None
        values = parse_values([row[k] for k in channels], where)
        label = row[col[label_column]].strip() if label_column in col else None
        frames, first = cases.setdefault(row[col[id_column]].strip(), ([], label))
        if label != first:
            raise DataError(f"{where}: label {label!r} differs from {first!r} earlier in the case")
        frames.append((t, values))
        check_case_size(len(frames) * len(values), f"{where}, case {row[col[id_column]].strip()!r}")
    return cases


def split_stratified(y, fraction, seed=0, where="the training data"):
    """(train indices, validation indices): ``fraction`` of each class, at least one, seeded;
    a class keeps at least one case for training, so a class of one case lends none to
    validation, and data with no class of two cases is refused (nothing to validate on)."""
    if not 0.0 < fraction < 1.0:
        raise InputError(f"val_fraction must be in (0, 1), not {fraction}")
    rng = np.random.default_rng(seed)
    val = []
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        take = min(max(1, round(fraction * len(members))), len(members) - 1)
        val.extend(rng.choice(members, size=take, replace=False) if take > 0 else [])
    if not val:
        raise DataError(f"{where}: the validation split would be empty: {len(y)} cases for "
                        f"{len(np.unique(y))} classes, and no class has 2 or more cases, so none "
                        f"can be held out for validation (early stopping needs it); give at "
                        f"least 2 cases of each class")
    is_val = np.zeros(len(y), dtype=bool)
    is_val[np.array(val, dtype=np.int64)] = True
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def relabel(series, classes, where="data"):
    """``series.y`` as indices into ``classes`` (a model's), matched by class name."""
    if series.y is None:
        raise DataError(f"{where} has no class labels; evaluation needs labelled cases")
    unknown = sorted(set(series.classes) - set(classes))
    if unknown:
        raise DataError(f"{where} has class(es) {', '.join(unknown)} that the model does not know "
                        f"(it knows {', '.join(classes)})")
    index = np.array([list(classes).index(c) for c in series.classes], dtype=np.int64)
    return index[series.y]
