"""The ``rnnedge.*`` metadata of a model file, read back into a ``Metadata`` record.

The export side writes these keys (``export/metadata.py``); every value is a string, JSON
where structured. Not here: reading the file itself (``files.py``).
"""

import json
from dataclasses import dataclass

from .errors import ModelFileError

SUPPORTED_FORMATS = {"1"}


@dataclass(frozen=True)
class Metadata:
    task: str
    config: dict
    vocab: object  # list of characters (charlm) or the tokenizer dict (sentiment)
    metrics: dict
    props: dict  # every rnnedge.* key, raw strings


def read_metadata(model, path="model"):
    return metadata_from_props({p.key: p.value for p in model.metadata_props}, path)


def props_of(model):
    """The string metadata properties of an ``onnx.ModelProto``."""
    return {p.key: p.value for p in model.metadata_props}


def is_rnnedge(props):
    return "rnnedge.task" in props


def metadata_from_props(props, path="model"):
    """``Metadata`` of the ``rnnedge.*`` string properties of a model file."""
    if "rnnedge.task" not in props:
        raise ModelFileError(f"{path} is an ONNX model without rnnedge metadata; "
                             "export it with `rnnedge export`")
    if props.get("rnnedge.format") not in SUPPORTED_FORMATS:
        raise ModelFileError(f"{path} has rnnedge format {props.get('rnnedge.format')!r}; "
                             f"this runtime reads {', '.join(sorted(SUPPORTED_FORMATS))}")
    loads = lambda key, default: json.loads(props[key]) if key in props else default
    return Metadata(props["rnnedge.task"], loads("rnnedge.config", {}), loads("rnnedge.vocab", []),
                    loads("rnnedge.metrics", {}), props)
