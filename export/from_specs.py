"""``rnnedge export --model``: the user's module from its file, its examples from input specs.

``export_from_specs`` loads ``path/to/file.py:factory`` (and a state_dict), makes example
tensors from specs such as ``feats:float32[batch,time,40]`` (true lengths in [1, time] for
the lengths input, given or found by its name; a time at least ``min_time`` long) and
calls ``export_model``. A module file that exits (``sys.exit()``) while it is imported,
built or run is named in one line. This module parses and delegates; the gate is
``export_model``'s.
"""

import json
from pathlib import Path

from rnnedge.runtime.errors import InputError

from .user_code import UserExit
from .user_model import export_model
from .user_spec import (axis_kind, example_from_specs, lengths_input, load_user_module,
                        parse_input_spec, parse_state_spec)


def export_from_specs(model, out, *, weights=None, inputs=(), outputs=(), states=(), lengths=None,
                      min_time=None, metadata=None, exporter="auto", batch=2, time=10):
    """Export the module ``model`` (``"path/to/file.py:factory"``) builds; return the report.

    ``inputs`` are input specs (``parse_input_spec``), ``outputs`` the output names,
    ``states`` ``"in=out"`` pairs, ``metadata`` a dict or the path of a JSON file; the other
    keywords are ``export_model``'s. The example's time length is ``time``, or ``min_time``
    when that is longer.
    """
    if not inputs or not outputs:
        raise InputError("--model needs at least one --input NAME:DTYPE[DIMS] and one --output NAME")
    specs = [parse_input_spec(text) for text in inputs]
    pairs = dict(parse_state_spec(text) for text in states)
    module = load_user_module(model, weights)
    true_lengths = lengths or lengths_input(
        [(s[0], s[1], [axis_kind(d) if isinstance(d, str) else None for d in s[2]])
         for s in specs if s[0] not in pairs])
    time = max(time, min_time) if isinstance(min_time, int) else time
    example, axes = example_from_specs(specs, batch=batch, time=time, lengths=true_lengths)
    sources = [Path(model.rpartition(":")[0])] + ([Path(weights)] if weights else [])
    try:
        return export_model(module, example, out, input_names=[s[0] for s in specs],
                            output_names=list(outputs), dynamic_axes=axes, states=pairs or None,
                            lengths=lengths, min_time=min_time, metadata=_metadata(metadata),
                            exporter=exporter, sources=sources)
    except UserExit as exc:
        raise exc.by(model) from None


def _metadata(metadata):
    if not isinstance(metadata, (str, Path)):
        return metadata
    try:
        return json.loads(Path(metadata).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"--metadata {metadata}: not a readable JSON file ({exc})") from exc
