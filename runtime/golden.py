"""Golden input/output bundles carried inside an ONNX file's metadata (``rnnedge.golden``).

A bundle is a list of ``Case(inputs, outputs)``: inputs and the outputs the trained
module (PyTorch) gave for them. It is stored as base64 text of ``np.savez_compressed``
with keys ``"<case>/in/<name>"`` and ``"<case>/out/<name>"``, so a device can check
itself against the trained model with numpy alone. This module is numpy only; it does
not run a model.
"""

import base64
import binascii
import io
import zipfile
from dataclasses import dataclass

import numpy as np

from .errors import ModelFileError

KEY = "rnnedge.golden"
SIDES = {"in": "inputs", "out": "outputs"}
MAX_BYTES = 64 << 20  # unpacked; three small cases of a large model are a few MB
MAX_ARRAYS = 1000


@dataclass(frozen=True)
class Case:
    inputs: dict
    outputs: dict


def encode(cases):
    """Base64 text of the cases, inputs and outputs keyed ``"<i>/in/<name>"``, ``"<i>/out/<name>"``."""
    arrays = {}
    for i, case in enumerate(cases):
        for side, attr in SIDES.items():
            for name, value in getattr(case, attr).items():
                arrays[f"{i}/{side}/{name}"] = np.asarray(value)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def decode(text):
    """The list of ``Case`` that ``encode`` wrote; ``ModelFileError`` when the text is corrupt
    or would unpack beyond ``MAX_BYTES`` (a few small cases hold KBs; a crafted archive of
    zeros could ask for GBs, which is refused before anything is unpacked)."""
    if len(text) > 4 * MAX_BYTES // 3 + 4:
        raise ModelFileError(f"the golden bundle ({KEY}) is {len(text):,} characters, more than "
                             f"a bundle of {MAX_BYTES:,} bytes; export the model again")
    try:
        data = io.BytesIO(base64.b64decode(text, validate=True))
        with zipfile.ZipFile(data) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
        if unpacked > MAX_BYTES or len(archive.infolist()) > MAX_ARRAYS:
            raise ModelFileError(f"the golden bundle ({KEY}) unpacks to {unpacked:,} bytes in "
                                 f"{len(archive.infolist())} arrays (at most {MAX_BYTES:,} in "
                                 f"{MAX_ARRAYS}); export the model again")
        data.seek(0)
        with np.load(data, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (binascii.Error, ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise ModelFileError(f"the golden bundle ({KEY}) is corrupt ({type(exc).__name__}: {exc}); "
                             f"export the model again") from exc
    cases = {}
    for key, value in arrays.items():
        index, side, name = _split(key)
        case = cases.setdefault(index, {"inputs": {}, "outputs": {}})
        case[SIDES[side]][name] = value
    return [Case(**cases[i]) for i in sorted(cases)]


def from_props(props):
    """The golden cases of a file's metadata props (a dict of strings); [] when it has none."""
    text = props.get(KEY)
    return decode(text) if text else []


def check_fits(cases, signature, path="model"):
    """Each case's inputs and outputs name the graph's own, with its dtypes and ranks; a
    ``ModelFileError`` naming the case and array otherwise (a bundle that decodes but
    belongs to another graph)."""
    specs = {side: {v["name"]: v for v in signature[side]} for side in ("inputs", "outputs")}
    for k, case in enumerate(cases):
        for side, arrays in (("inputs", case.inputs), ("outputs", case.outputs)):
            if sorted(arrays) != sorted(specs[side]):
                raise ModelFileError(f"{path}: golden case {k} has {side} {sorted(arrays)}; the "
                                     f"graph's are {sorted(specs[side])}: the file was altered "
                                     f"after export: export it again")
            for name, value in arrays.items():
                spec = specs[side][name]
                if value.dtype != np.dtype(spec["type"]) or value.ndim != len(spec["shape"]) or \
                        any(isinstance(d, int) and d > 0 and d != n
                            for d, n in zip(spec["shape"], value.shape)):
                    raise ModelFileError(
                        f"{path}: golden case {k} {side[:-1]} {name} is {value.dtype} "
                        f"{value.shape}; the graph's is {spec['type']} {spec['shape']}: the file "
                        f"was altered after export: export it again")


def _split(key):
    index, side, name = (key.split("/", 2) + ["", ""])[:3]
    if not index.isdigit() or side not in SIDES or not name:
        raise ModelFileError(f"the golden bundle ({KEY}) holds an unexpected entry {key!r}; "
                             f"export the model again")
    return int(index), side, name
