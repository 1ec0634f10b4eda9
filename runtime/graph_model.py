"""Any recurrent ONNX model at run time: checked feeds, named outputs, and streaming state.

``GraphModel(engine, signature, states)`` is the generic core every task builds on:
``run(feeds) -> {output: array}`` checks the feeds against the signature (names both ways,
dtype kind, rank, fixed dimensions, finite floats) before the engine sees them, and
``stream()`` carries the state pairs (state input -> the output that carries it forward)
between calls, so that feeding a sequence frame by frame equals feeding it whole. An
engine that makes those checks itself on the common case (the fast ones: ``checked_run``)
runs it in one pass, and hands anything else back to ``check`` and its typed errors.

State pairs come from the file's ``rnnedge.states`` metadata, else are inferred: an input
and an output of the same dtype and shape (batch axis included) that no other output
matches as well. ``states_source`` says which. Not here: reading files (``files.py``),
the task layers (``charlm.py``, ``sentiment.py``).
"""

import numpy as np

from .errors import InputError

FLOAT_KINDS, INT_KINDS = "f", "iu"
# The one rule for what a named axis is, used by the export gate, verify, bench and streaming
BATCH_NAMES = ("batch", "batch_size", "n")
TIME_NAMES = ("time", "seq", "sequence", "length", "frames", "steps")


def axis_role(dim):
    """"batch", "time" or None for an axis name (a fixed size is neither)."""
    if not isinstance(dim, str) or not dim:
        return None
    name = dim.lower()
    if name in BATCH_NAMES or "batch" in name:
        return "batch"
    return "time" if any(t in name for t in TIME_NAMES) else None


def is_batch_axis(dim):
    return axis_role(dim) == "batch"


def is_time_axis(dim):
    return axis_role(dim) == "time"


def same_shape(a, b):
    """Shapes that may be equal: same rank, batch axes in the same places, fixed sizes equal.

    A named axis on one side matches a size on the other: onnxruntime reports inferred sizes
    (``layers`` of a one-layer model as 1) where the graph names an axis.
    """
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if is_batch_axis(x) != is_batch_axis(y) or (isinstance(x, int) and isinstance(y, int)
                                                    and x > 0 and y > 0 and x != y):
            return False
    return True


def infer_states(signature):
    """{state input: state output} of inputs and outputs of equal dtype and (compatible) shape."""
    outputs = signature["outputs"]
    pairs = {}
    for i in signature["inputs"]:
        if not any(is_batch_axis(d) for d in i["shape"]) or len(i["shape"]) < 2:
            continue
        same = [o["name"] for o in outputs if o["type"] == i["type"]
                and same_shape(o["shape"], i["shape"]) and o["name"] not in pairs.values()]
        if len(same) > 1:  # prefer the output named after the input (h -> h_new, h0 -> hn)
            named = [n for n in same if n.startswith(i["name"].rstrip("0123456789_"))]
            same = named if len(named) == 1 else []
        if len(same) == 1:
            pairs[i["name"]] = same[0]
    return pairs


def all_finite(array):
    """No NaN or infinity in a float array; an engine may bring a faster one (``GraphModel``)."""
    return bool(np.isfinite(array).all())


class GraphModel:
    """A loaded model: ``run``, ``signature``, ``stream`` (when state pairs are known)."""

    def __init__(self, engine, signature, states=None, meta=None, path=None):
        self.engine, self.signature, self.meta, self.path = engine, signature, meta, path
        self.kind = meta.kind if meta is not None else "user"
        self.inputs = {i["name"]: i for i in signature["inputs"]}
        self.specs = {}  # name -> ``_spec``, filled on first use
        # an engine may bring a faster finiteness check of its own (the fast ones: numba)
        self.all_finite = engine.all_finite or all_finite
        # an engine may check the common case's feeds itself, as ``check`` would, in one pass
        # (the fast ones): ``run_checked(feeds)`` -> outputs, or None to take the long path
        self.run_checked = engine.checked_run(signature)
        # named axes two inputs share (``batch``, ``time``): the ONNX spec's same size
        shared = [(name, axis, dim) for name, i in self.inputs.items()
                  for axis, dim in enumerate(i["shape"]) if isinstance(dim, str) and dim]
        self.shared_axes = [e for e in shared if sum(e[2] == f[2] for f in shared) > 1]
        self.output_names = [o["name"] for o in signature["outputs"]]
        self.states_source = "metadata" if states is not None else "inferred"
        self.states = dict(states) if states is not None else infer_states(signature)
        bad = [k for k, v in self.states.items() if k not in self.inputs or v not in self.output_names]
        if bad:
            raise InputError(f"state pairs {bad} name inputs or outputs the graph does not have")

    @property
    def core(self):
        """The ``GraphModel`` under a task layer: for a user's file, the model itself."""
        return self

    def check(self, feeds):
        """The feeds as contiguous arrays of the graph's dtypes; typed errors for anything else."""
        if type(feeds) is not dict or len(feeds) != len(self.inputs) or any(
                n not in feeds for n in self.inputs):  # the common case skips the two lists
            self._check_names(feeds)
        arrays = {name: self.check_one(name, feeds[name]) for name in self.inputs}
        sizes = {}
        for name, axis, dim in self.shared_axes:  # onnxruntime would broadcast some of these
            first, size = sizes.setdefault(dim, (name, arrays[name].shape[axis]))
            if arrays[name].shape[axis] != size:
                raise InputError(f"{name} has {dim} {arrays[name].shape[axis]} on axis {axis} "
                                 f"where {first} has {size}: inputs must agree on {dim}")
        return arrays

    def _check_names(self, feeds):
        if not isinstance(feeds, dict):
            raise InputError(f"feeds must be a dict of input name -> array, not {type(feeds).__name__}")
        missing = [n for n in self.inputs if n not in feeds]
        extra = [n for n in feeds if n not in self.inputs]
        if missing or extra:
            raise InputError(f"feeds {'lack ' + ', '.join(missing) if missing else ''}"
                             f"{'; ' if missing and extra else ''}"
                             f"{'have unknown ' + ', '.join(extra) if extra else ''}; the model takes "
                             + ", ".join(f"{i['name']} {i['type']}{list(i['shape'])}"
                                         for i in self.inputs.values()))

    def check_one(self, name, value):
        want, kinds, rank, fixed = self.specs.get(name) or self._spec(name)
        array = value if type(value) is np.ndarray else np.asarray(value)
        same = array.dtype == want  # the common case, per streamed frame: no cast to check
        if not same and array.dtype.kind not in kinds:
            raise InputError(f"{name} must be {want.name}, not {array.dtype.name}")
        if array.ndim != rank:
            raise InputError(f"{name} has shape {array.shape}; the model takes {rank} "
                             f"dimensions {list(self.inputs[name]['shape'])}")
        for axis, dim in fixed:
            if array.shape[axis] != dim:
                raise InputError(f"{name} has size {array.shape[axis]} on axis {axis}; the model "
                                 f"takes {dim}")
        if array.size == 0:
            raise InputError(f"{name} is empty (shape {array.shape})")
        if same:
            cast = array if array.flags.c_contiguous else np.ascontiguousarray(array)
        else:
            with np.errstate(over="ignore"):  # 1e300 as float32 is inf: refused below, not run
                cast = np.ascontiguousarray(array, dtype=want)
        if want.kind in FLOAT_KINDS and not self.all_finite(cast):
            raise InputError(f"{name} holds NaN or infinite values, or values beyond {want.name}'s "
                             f"range (about {float(np.finfo(want).max):.1e})")
        if want.kind in INT_KINDS and not same and not np.array_equal(cast, array):
            raise InputError(f"{name} holds values beyond {want.name}'s range")
        return cast

    def _spec(self, name):
        """(dtype, dtype kinds it is cast from, rank, ((axis, fixed size), ...)) of an input,
        worked out once: per streamed frame, ``np.dtype`` of a name alone costs ~0.4 µs."""
        spec = self.inputs[name]
        want = np.dtype(spec["type"])
        kinds = (FLOAT_KINDS if want.kind in FLOAT_KINDS else INT_KINDS if want.kind in INT_KINDS
                 else want.kind)
        fixed = tuple((axis, dim) for axis, dim in enumerate(spec["shape"])
                      if isinstance(dim, int) and dim > 0)
        self.specs[name] = (want, kinds, len(spec["shape"]), fixed)
        return self.specs[name]

    def run(self, feeds):
        """One call of the graph: {input: array} -> {output: array}."""
        if self.run_checked is not None and type(feeds) is dict and len(feeds) == len(self.inputs):
            out = self.run_checked(feeds)
            if out is not None:
                return out
        return self.engine.run(self.check(feeds))

    def zero_states(self, batch=1):
        """Zero initial states for ``batch`` rows (the batch axis by its name)."""
        out = {}
        for name in self.states:
            spec = self.inputs[name]
            dims = [batch if is_batch_axis(d) else d for d in spec["shape"]]
            if not all(isinstance(d, int) and d > 0 for d in dims):
                raise InputError(f"cannot make an initial {name}: its shape {spec['shape']} has an "
                                 f"axis that is neither fixed nor named batch; pass it to step()")
            out[name] = np.zeros(dims, np.dtype(spec["type"]))
        return out

    def stream(self, batch=1, states=None):
        """A ``GraphStream`` from ``states`` (default: zeros of ``batch`` rows)."""
        if not self.states:
            raise InputError("this model has no state pairs (no rnnedge.states metadata and no input "
                             "and output of equal shape): it runs whole sequences only, with run()")
        return GraphStream(self, batch, states)


class GraphStream:
    """One stream through a model: ``step(feeds)`` carries the states between calls."""

    def __init__(self, model, batch=1, states=None):
        self.model, self.batch = model, batch
        self.reset(states)

    def reset(self, states=None):
        self.states = self.model.zero_states(self.batch) if states is None else dict(states)

    def step(self, feeds):
        """Run one chunk (any number of frames) from the carried states; return every output."""
        given = [n for n in feeds if n in self.model.states]
        if given:
            raise InputError(f"{', '.join(given)} are carried by the stream; reset(states) sets them")
        out = self.model.run({**feeds, **self.states})
        self.states = {i: out[o] for i, o in self.model.states.items()}
        return out
