"""The UEA/UCR archive's ``.ts`` format, read line by line with the line number in every error.

The format (as written by the archive and by aeon/sktime): ``#`` comments, a header of
``@problemName``, ``@timeStamps``, ``@missing``, ``@univariate``, ``@dimensions``,
``@equalLength``, ``@seriesLength``, ``@classLabel true L1 L2 ...`` (or ``false``), then
``@data`` and one case per line: dimensions separated by ``:``, values by ``,``, the class
label last. Class indices follow the header's label order. Time stamps (``@timeStamps
true``) and regression targets (``@targetLabel true``) are refused. Missing values and
their policy: ``fill_missing``. The ``Series`` record and the other formats: ``series.py``.
"""

import math

import numpy as np

from rnnedge.runtime.errors import DataError

MISSING_TOKENS = ("?", "nan", "")
FLAGS = ("timestamps", "missing", "univariate", "equallength")


FLOAT32_MAX = float(np.finfo(np.float32).max)


def text_lines(path):
    """The lines of a UTF-8 text file, a byte-order mark (as Excel writes) dropped; another
    encoding is a ``DataError``, where decoding with replacement would turn a latin-1 label
    such as 'é' into U+FFFD silently."""
    with open(path, encoding="utf-8-sig", newline="") as fh:
        number = 0
        try:
            for number, line in enumerate(fh, start=1):
                yield line
        except UnicodeDecodeError as exc:
            utf16 = exc.object[:2] in (b"\xff\xfe", b"\xfe\xff")
            raise DataError(f"{path}: not UTF-8 text (near line {number + 1})"
                            f"{': it is UTF-16' if utf16 else ''}; save the file as UTF-8") from None


def read_ts(path, missing="error"):
    """(cases [(T, C) float32], label indices or None, class names or None, problem name)."""
    header, cases, labels, lines, name = {}, [], [], [], path.stem
    in_data = False
    for number, raw in enumerate(text_lines(path), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{path}, line {number}"
        if in_data:
            x, label = _ts_case(line, header, where, missing)
            cases.append(x)
            labels.append(label)
            lines.append(number)
        elif line.startswith("@"):
            in_data = _ts_header(line, header, where)
            name = header.get("problemname", name)
        else:
            raise DataError(f"{where}: data before @data; the header ends with an @data line")
    if "classlabel" not in header:
        raise DataError(f"{path}: no @classLabel line in the header")
    classes = header["classlabel"]
    _check_equal_length(path, header, cases, lines)
    return cases, (None if classes is None else labels), classes, name


def _ts_header(line, header, where):
    """Record one header line; True at ``@data``."""
    key, _, rest = line[1:].partition(" ")
    key, words = key.lower(), rest.split()
    if key == "data":
        if header.get("timestamps"):
            raise DataError(f"{where}: @timeStamps true is not supported; give values only")
        return True
    if key == "targetlabel" and words[:1] == ["true"]:
        raise DataError(f"{where}: @targetLabel (regression) is not supported; rnnedge classifies")
    if key in FLAGS:
        if words not in (["true"], ["false"]):
            raise DataError(f"{where}: @{line[1:].split()[0]} must be true or false")
        header[key] = words[0] == "true"
    elif key in ("dimensions", "serieslength"):
        if len(words) != 1 or not words[0].isdigit() or int(words[0]) < 1:
            raise DataError(f"{where}: @{key} needs one positive integer, got {rest!r}")
        header[key] = int(words[0])
    elif key == "classlabel":
        if not words or words[0] not in ("true", "false"):
            raise DataError(f"{where}: @classLabel must be 'true L1 L2 ...' or 'false'")
        if words[0] == "true" and len(words) < 2:
            raise DataError(f"{where}: @classLabel true lists no class labels")
        header[key] = words[1:] if words[0] == "true" else None
    elif key == "problemname":
        header[key] = rest.strip()
    return False


def _ts_case(line, header, where, missing):
    """((T, C) float32, label index or None) of one data line."""
    if "classlabel" not in header:
        raise DataError(f"{where}: @data came before @classLabel; the header must name the labels")
    fields = line.split(":")
    classes = header["classlabel"]
    label = None
    if classes is not None:
        name = fields.pop().strip()
        if name not in classes:
            raise DataError(f"{where}: class label {name!r} is not one of @classLabel "
                            f"{' '.join(classes)}")
        label = classes.index(name)
    dims = header.get("dimensions", 1 if header.get("univariate") else None)
    if dims is not None and len(fields) != dims:
        raise DataError(f"{where}: {len(fields)} dimension(s), the header says @dimensions {dims}"
                        f"{' (is the class label missing?)' if len(fields) == dims - 1 else ''}")
    channels = [parse_values(f.split(","), f"{where}, dimension {d + 1}") for d, f in enumerate(fields)]
    if len({len(c) for c in channels}) > 1:
        raise DataError(f"{where}: dimensions have different lengths "
                        f"{[len(c) for c in channels]}; every channel of a case needs one value per frame")
    x = np.stack(channels, axis=1).astype(np.float32)  # (T, C)
    return fill_missing(x, where, missing), label


def parse_values(tokens, where):
    out = []
    for k, token in enumerate(tokens, start=1):
        token = token.strip()
        if token.lower() in MISSING_TOKENS:
            out.append(math.nan)
            continue
        try:
            out.append(float(token))
        except ValueError:
            raise DataError(f"{where}, value {k}: {token!r} is not a number") from None
        if not math.isfinite(out[-1]) or abs(out[-1]) > FLOAT32_MAX:
            raise DataError(f"{where}, value {k}: {token!r} is not finite in float32 (|x| at "
                            f"most {FLOAT32_MAX:.4g}), as the model reads it")
    return out


def _check_equal_length(path, header, cases, lines):
    want = header.get("serieslength")
    if header.get("equallength") and cases and want is None:
        want = len(cases[0])
    if header.get("equallength") or "serieslength" in header:
        bad = next((k for k, x in enumerate(cases) if len(x) != want), None)
        if bad is not None:
            raise DataError(f"{path}, line {lines[bad]}: case {bad + 1} has {len(cases[bad])} "
                            f"frames, the header promises equal lengths of {want}")


def fill_missing(x, where, missing):
    """``x`` (T, C) with its NaNs refused or interpolated (see the module docstring)."""
    holes = np.isnan(x)
    if not holes.any():
        return x
    frame, channel = np.argwhere(holes)[0]
    if missing == "error":
        raise DataError(f"{where}: missing value at frame {frame + 1}, channel {channel + 1}; "
                        f"fill it, or read with missing='interpolate'")
    t = np.arange(len(x))
    for c in range(x.shape[1]):
        known = ~holes[:, c]
        if not known.any():
            raise DataError(f"{where}: channel {c + 1} has no value at all; nothing to interpolate from")
        x[:, c] = np.interp(t, t[known], x[known, c])
    return x
