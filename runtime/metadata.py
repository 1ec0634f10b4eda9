"""The ``rnnedge.*`` metadata of a model file, parsed and validated in one place.

Every exported file, whatever its kind, carries one schema (``export/metadata.py`` writes
it); every value is a string, JSON where structured:

=======================  ============================================================
``rnnedge.format``       "2" (files of format "1" are read and translated here)
``rnnedge.kind``         one of ``KINDS``: what the file is, and so which task layer serves it
``rnnedge.config``       the model's config (object; ``{}`` for a user's module)
``rnnedge.vocab``        characters (charlm), the tokenizer (sentiment), class names (series)
``rnnedge.metrics``      the training run's metrics (object)
``rnnedge.signature``    the inputs and outputs with the axis names the exporter was given
``rnnedge.states``       state pairs {input: output} (object; ``{}``: none)
``rnnedge.lengths``      the name of the true-lengths input, or null
``rnnedge.golden``       the golden bundle (``golden.py``), PyTorch's outputs at export
``rnnedge.user``         the user's own metadata (object; a series file's normalisation)
``rnnedge.export``       how the file was exported (object)
``rnnedge.versions``     the versions that wrote it (object)
=======================  ============================================================

A file without ``rnnedge.*`` keys is of kind ``user`` with nothing declared (``rnnedge``
False). A malformed value raises ``ModelFileError`` naming the key: nothing read from a file
is trusted as written. Not here: reading the file (``files.py``), the golden bundle's
arrays (``golden.py``, decoded on demand).
"""

import json
from dataclasses import dataclass, field

from .errors import ModelFileError

FORMAT = "2"
SUPPORTED_FORMATS = ("1", "2")
KINDS = ("charlm", "sentiment", "series", "user")
KIND_NAMES = {"charlm": "a charlm model", "sentiment": "a sentiment model", "series": "a series model",
              "user": "a user model (your own module's export, or a file without rnnedge metadata)"}
MAX_JSON_CHARS = 16 << 20  # a config or vocabulary is KBs; the golden bundle is not parsed here


@dataclass(frozen=True)
class Metadata:
    kind: str            # one of KINDS
    rnnedge: bool        # the file carries rnnedge metadata
    config: dict
    vocab: object        # list (charlm characters, series classes) or dict (sentiment tokenizer)
    metrics: dict
    states: object       # {input: output}, or None when undeclared (inferred from the graph)
    signature: object    # {"inputs": [...], "outputs": [...]} or None
    lengths: object      # name of the lengths input or None
    user: dict
    export: dict
    versions: dict
    props: dict = field(repr=False)  # every metadata key of the file, raw strings

    @property
    def variant(self):
        return self.props.get("rnnedge.variant")


def props_of(model):
    """The string metadata properties of an ``onnx.ModelProto``."""
    return {p.key: p.value for p in model.metadata_props}


def read_metadata(model, path="model"):
    """``Metadata`` of an ``onnx.ModelProto``."""
    return parse(props_of(model), path)


def parse(props, path="model"):
    """``Metadata`` of a file's string properties; ``ModelFileError`` naming a malformed key."""
    if not any(k.startswith("rnnedge.") for k in props):
        return Metadata("user", False, {}, [], {}, None, None, None, {}, {}, {}, dict(props))
    version = props.get("rnnedge.format")
    if version not in SUPPORTED_FORMATS:
        raise ModelFileError(f"{path} has rnnedge format {_shown(version)}; this runtime reads "
                             f"{', '.join(SUPPORTED_FORMATS)}: export it again with this rnnedge")
    read = _Reader(props, path)
    kind = read.kind() if version == FORMAT else None
    user = read.json("rnnedge.user", dict, {})
    config = read.json("rnnedge.config", dict, {})
    vocab = read.json("rnnedge.vocab", (list, dict), [])
    if version == "1":  # "task": charlm, sentiment or generic; a series file said so in "user"
        kind, config, vocab = _format1(read, user, config, vocab)
    states = read.json("rnnedge.states", dict, None)
    if states is not None and not all(isinstance(k, str) and isinstance(v, str)
                                      for k, v in states.items()):
        read.fail("rnnedge.states", "must map input names to output names")
    if version == "1" and kind in ("charlm", "sentiment"):  # fixed by the exporter then
        lstm = {"c0": "cn"} if config.get("cell") == "lstm" else {}
        states = {"h0": "hn", **lstm} if kind == "charlm" else {}
    lengths = read.json("rnnedge.lengths", (str, type(None)), None)
    return Metadata(kind, True, config, vocab, read.json("rnnedge.metrics", dict, {}), states,
                    read.signature(), lengths, user, read.json("rnnedge.export", dict, {}),
                    read.json("rnnedge.versions", dict, {}), dict(props))


def _format1(read, user, config, vocab):
    """(kind, config, vocab) of a format-1 file: its task, a series file's user metadata."""
    task = read.props.get("rnnedge.task")
    if task in ("charlm", "sentiment"):
        return task, config, vocab
    if task != "generic":
        read.fail("rnnedge.task", f"is {_shown(task)}; this runtime knows charlm, sentiment and "
                                  "generic")
    if user.get("task") == "series":
        if not isinstance(user.get("config"), dict) or not isinstance(user.get("classes"), list):
            read.fail("rnnedge.user", "says series but lacks its config or classes")
        return "series", user["config"], user["classes"]
    return "user", config, vocab


class _Reader:
    """Typed reads of the props of one file, each failure naming the file and the key."""

    def __init__(self, props, path):
        self.props, self.path = props, path

    def fail(self, key, why):
        raise ModelFileError(f"{self.path}: metadata {key} {why}; the file is damaged or was "
                             f"altered after export: export it again")

    def kind(self):
        kind = self.props.get("rnnedge.kind")
        if kind not in KINDS:
            self.fail("rnnedge.kind", f"is {_shown(kind)}, not one of {', '.join(KINDS)}")
        return kind

    def json(self, key, types, default):
        text = self.props.get(key)
        if text is None:
            return default
        if len(text) > MAX_JSON_CHARS:
            self.fail(key, f"is {len(text):,} characters long (at most {MAX_JSON_CHARS:,})")
        try:
            value = json.loads(text)
        except (ValueError, RecursionError) as exc:
            self.fail(key, f"is not JSON ({type(exc).__name__}: {str(exc)[:80]})")
        if not isinstance(value, types):
            wanted = " or ".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))
            self.fail(key, f"must be a JSON {wanted.replace('NoneType', 'null')}, "
                           f"not {type(value).__name__}")
        return value

    def signature(self):
        sig = self.json("rnnedge.signature", dict, None)
        if sig is None:
            return None
        for side in ("inputs", "outputs"):
            entries = sig.get(side)
            if not isinstance(entries, list) or not all(
                    isinstance(e, dict) and isinstance(e.get("name"), str)
                    and isinstance(e.get("dtype", e.get("type")), str)
                    and isinstance(e.get("shape"), list)
                    and all(isinstance(d, (int, str)) for d in e["shape"]) for e in entries):
                self.fail("rnnedge.signature", f"has no readable {side!r} list of "
                                               "{name, dtype, shape}")
        return {side: [{"name": e["name"], "type": e.get("dtype", e.get("type")),
                        "shape": e["shape"]} for e in sig[side]] for side in ("inputs", "outputs")}


def _shown(value):
    """A value read from a file, safe to print: no control characters reach the terminal."""
    text = repr(value)
    return "".join(ch if ch.isprintable() else "?" for ch in text[:60])
