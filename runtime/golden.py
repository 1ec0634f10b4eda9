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
    """The list of ``Case`` that ``encode`` wrote; ``ModelFileError`` when the text is corrupt."""
    try:
        with np.load(io.BytesIO(base64.b64decode(text, validate=True)), allow_pickle=False) as npz:
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


def _split(key):
    index, side, name = (key.split("/", 2) + ["", ""])[:3]
    if not index.isdigit() or side not in SIDES or not name:
        raise ModelFileError(f"the golden bundle ({KEY}) holds an unexpected entry {key!r}; "
                             f"export the model again")
    return int(index), side, name
