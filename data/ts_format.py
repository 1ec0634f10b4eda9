"""The UEA/UCR archive's ``.ts`` format, read line by line with the line number in every error.

The format (as written by the archive and by aeon/sktime): ``#`` comments, a header of
``@problemName``, ``@timeStamps``, ``@missing``, ``@univariate``, ``@dimensions``,
``@equalLength``, ``@seriesLength``, ``@classLabel true L1 L2 ...`` (or ``false``), then
``@data`` and one case per line: dimensions separated by ``:``, values by ``,``, the class
label last. Class indices follow the header's label order. Time stamps (``@timeStamps
true``) and regression targets (``@targetLabel true``) are refused. Missing values and
their policy: ``fill_missing``. The ``Series`` record and the other formats: ``series.py``.

Also here, shared by every text reader of ``data/`` (CSV series, labeled reviews):
``text_lines`` (UTF-8 or a ``DataError`` naming the first bad byte) and ``parse_values``.
A case holds at most ``MAX_CASE_VALUES`` values; a long line is parsed ``CHUNK`` characters
at a time into float32, so memory stays a small multiple of the line's size.
"""

import codecs
import math

import numpy as np

from rnnedge.runtime.errors import DataError

MISSING_TOKENS = ("?", "nan", "")
FLAGS = ("timestamps", "missing", "univariate", "equallength")
FLOAT32_MAX = float(np.finfo(np.float32).max)
# Values in one case, all channels together; more is refused (``check_case_size``). A case
# of 10 million values is 40 MB of float32; one line of a .ts file holds one case.
MAX_CASE_VALUES = 10_000_000
CHUNK = 1 << 16  # characters of a long channel parsed at a time: bounds the tokens alive


def text_lines(path):
    """The lines of a UTF-8 text file, a byte-order mark (as Excel writes) dropped; another
    encoding is a ``DataError`` naming the first bad byte, where decoding with replacement
    would turn a latin-1 label such as 'é' into U+FFFD silently."""
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
    nul = head.find(b"\x00")
    if head[:2] in (b"\xff\xfe", b"\xfe\xff") or nul in (0, 1):  # a BOM, or ASCII as UTF-16
        raise DataError(f"{path} is UTF-16; save it as UTF-8")
    if nul > 0:  # valid UTF-8, but no text: a binary file
        raise DataError(f"{path} holds a NUL byte at byte offset {nul}: it is not text; save "
                        f"it as UTF-8 text")
    with open(path, encoding="utf-8-sig", newline="") as fh:
        try:  # yield from: no reference to a (long) line is kept while the caller parses it
            yield from fh
        except UnicodeDecodeError:
            raise _not_utf8(path) from None


def _not_utf8(path):
    """The ``DataError`` of ``path``, whose bytes are not all UTF-8: where the first bad one is."""
    decoder, offset, lines = codecs.getincrementaldecoder("utf-8")(), 0, 0
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(1 << 20)
            pending = len(decoder.getstate()[0])  # bytes of a character begun in the last chunk
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                bad = offset - pending + exc.start
                line = lines + chunk[:max(bad - offset, 0)].count(b"\n") + 1
                return DataError(f"{path}: not UTF-8 text at byte offset {bad} (line {line}: "
                                 f"byte 0x{exc.object[exc.start]:02x}); save it as UTF-8")
            if not chunk:
                return DataError(f"{path}: not UTF-8 text; save it as UTF-8")
            offset, lines = offset + len(chunk), lines + chunk.count(b"\n")


def check_case_size(values, where):
    """Refuse a case of more than ``MAX_CASE_VALUES`` values before it is parsed."""
    if values > MAX_CASE_VALUES:
        raise DataError(f"{where}: the case holds {values:,} values, more than the limit of "
                        f"{MAX_CASE_VALUES:,} per case (rnnedge.data.ts_format.MAX_CASE_VALUES); "
                        f"cut it into shorter cases")


def read_ts(path, missing="error"):
    """(cases [(T, C) float32], label indices or None, class names or None, problem name)."""
    header, cases, labels, lines, name = {}, [], [], [], path.stem
    in_data, number = False, 0
    for line in text_lines(path):  # not enumerate: its cached tuple would keep a long line alive
        number, line = number + 1, line.strip()
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
        twice = next((w for k, w in enumerate(words[1:]) if w in words[1:k + 1]), None)
        if twice is not None:
            raise DataError(f"{where}: @classLabel lists {twice!r} twice; class names must be "
                            f"distinct")
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
    check_case_size(sum(f.count(",") + 1 for f in fields), where)
    channels = [parse_channel(f, f"{where}, dimension {d + 1}") for d, f in enumerate(fields)]
    if len({len(c) for c in channels}) > 1:
        raise DataError(f"{where}: dimensions have different lengths "
                        f"{[len(c) for c in channels]}; every channel of a case needs one value per frame")
    x = np.stack(channels, axis=1)  # (T, C) float32
    return fill_missing(x, where, missing), label


def parse_channel(text, where):
    """float32 (T,) of one channel's comma-separated values, parsed ``CHUNK`` characters at a
    time: a long case costs its text and its values, not a Python object per value."""
    out, start, done = np.empty(text.count(",") + 1, dtype=np.float32), 0, 0
    while start <= len(text):
        end = text.find(",", start + CHUNK)
        end = len(text) if end < 0 else end
        tokens = text[start:end].split(",")
        out[done:done + len(tokens)] = parse_values(tokens, where, done)
        start, done = end + 1, done + len(tokens)
    return out


def parse_values(tokens, where, before=0):
    """float64 (len(tokens),) of the text ``tokens``, NaN where a value is missing (``?``,
    ``NaN``, empty); ``before``: values of the same channel before these, for the numbers in
    errors. A value beyond float32 (``1e39``), as the model reads it, is a ``DataError``."""
    try:
        values = np.fromiter(map(float, tokens), dtype=np.float64, count=len(tokens))
    except ValueError:  # a missing value or not a number: one at a time, to say which
        values = np.array([_value(t, where, before + k) for k, t in enumerate(tokens, 1)],
                          dtype=np.float64)
    bad = np.flatnonzero(np.isinf(values) | (np.abs(values) > FLOAT32_MAX))
    if bad.size:
        raise DataError(f"{where}, value {before + bad[0] + 1}: {tokens[bad[0]].strip()!r} is not "
                        f"finite in float32 (|x| at most {FLOAT32_MAX:.4g}), as the model reads it")
    return values


def _value(token, where, k):
    token = token.strip()
    if token.lower() in MISSING_TOKENS:
        return math.nan
    try:
        return float(token)
    except ValueError:
        raise DataError(f"{where}, value {k}: {token!r} is not a number") from None


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
