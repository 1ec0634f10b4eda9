"""The numba engine: a small ONNX graph interpreter whose recurrent nodes run on the reference.

``LSTM``, ``GRU`` and ``RNN`` nodes go to ``reference.bind_node`` (numba kernels that
follow the ONNX spec); every other operator comes from the numpy table of
``graph_ops.py``. This module walks graphs: it binds each node once at load, folds
nodes whose inputs are all constants, and runs ``Loop`` and ``If`` by running their
subgraphs with the same machinery, seeing the values of the enclosing scopes. Weights
come from the ONNX initializers, never from PyTorch, so this is a second, independent
reading of the exported file. Anything it does not implement raises
``UnsupportedError`` at load, naming the operator, the node and the attribute.
"""

import numpy as np
from onnx import helper, numpy_helper

from . import graph_ops, shape_ops
from .errors import InputError, ModelFileError, UnsupportedError

RECURRENT = {"LSTM", "GRU", "RNN"}
CONTROL_FLOW = {"Loop", "If"}
IMPLEMENTED = frozenset(graph_ops.OPS) | RECURRENT | CONTROL_FLOW
_DOMAINS = ("", "ai.onnx")
# numpy's own failures on values a graph cannot run on; reported with the node
_NODE_ERRORS = (ValueError, IndexError, TypeError, KeyError, ZeroDivisionError)


class Interpreter:
    """Runs an ``onnx.ModelProto`` node by node; ``run(feeds) -> {output name: array}``."""

    def __init__(self, model, kernel="numba"):
        opsets = [o.version for o in model.opset_import if o.domain in _DOMAINS]
        if not opsets:
            raise UnsupportedError("the model imports no default ONNX opset; the numba engine "
                                   "runs ai.onnx operators only")
        unknown = sorted(_op_types(model.graph) - IMPLEMENTED)
        if unknown:
            raise UnsupportedError(f"the numba engine does not implement {', '.join(unknown)}")
        with np.errstate(all="ignore"):  # nodes on constants run here
            self.graph = Graph(model.graph, opsets[0], kernel)
        self.inputs = [name for name in self.graph.inputs if name not in self.graph.defaults]
        self.outputs = list(self.graph.outputs)

    def run(self, feeds):
        missing = [name for name in self.inputs if name not in feeds]
        if missing:
            raise InputError(f"missing model input {', '.join(missing)}; the model takes "
                             f"{', '.join(self.inputs)}")
        env = {**self.graph.constants, **self.graph.defaults, **feeds}
        with np.errstate(all="ignore"):  # inf and nan propagate silently, as in onnxruntime
            self.graph.run(env)
        return {name: np.asarray(env[name]) for name in self.outputs}


class Graph:
    """One graph or subgraph: constants known at load and the nodes left to run.

    ``outer`` holds the constants of the enclosing scopes, ``visible`` every name they
    define so far: a subgraph reads both as the spec's implicit inputs.
    """

    def __init__(self, graph, opset, kernel, outer=None, visible=frozenset()):
        self.inputs = [i.name for i in graph.input]
        self.outputs = [o.name for o in graph.output]
        self.output_types = [o.type.tensor_type for o in graph.output]
        initializers = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        # an initializer that is also an input is that input's default, not a constant
        self.defaults = {n: v for n, v in initializers.items() if n in self.inputs}
        self.constants = dict(outer or {})
        self.constants.update((n, v) for n, v in initializers.items() if n not in self.inputs)
        known = set(visible) | set(self.inputs) | set(initializers)
        self.steps = []
        for node in graph.node:
            _check_defined(node.op_type, node.name, node.input, known)
            run = self._bind(node, opset, kernel, known)
            known.update(node.output)
            names = list(node.input)
            scoped = node.op_type in CONTROL_FLOW
            if scoped or node.op_type in RECURRENT or not all(
                    n in self.constants for n in names if n):
                self.steps.append((node, run, names, list(node.output), scoped))
                continue
            # every input known at load: compute once (weight slicing in a Loop body, Constant)
            results = _call(node, run, [self.constants[n] if n else None for n in names],
                            None, ModelFileError)
            self.constants.update((n, v) for n, v in zip(node.output, results) if n)
        _check_defined(graph.name, "outputs", self.outputs, known)

    def _bind(self, node, opset, kernel, known):
        if node.op_type in RECURRENT:
            from .reference import bind_node

            # the fast kernels pack W, R and B from the constants now, not on the first call
            return bind_node(node, engine=kernel, constants=self.constants)
        if node.op_type in CONTROL_FLOW:
            names = ("body",) if node.op_type == "Loop" else ("else_branch", "then_branch")
            graphs = [Graph(g, opset, kernel, self.constants, frozenset(known))
                      for g in _subgraphs(node, names)]
            return _bind_loop(node, *graphs) if node.op_type == "Loop" else _bind_if(*graphs)
        return graph_ops.bind(node, opset)

    def run(self, env):
        """Run the nodes on ``env`` (names -> arrays), adding every value they compute."""
        for node, run, inputs, outputs, scoped in self.steps:
            results = _call(node, run, [env[n] if n else None for n in inputs],
                            env if scoped else None, InputError)
            for name, value in zip(outputs, results):
                if name:
                    env[name] = value
        return env


def _call(node, run, args, scope, error):
    """``run(args)``, or ``run(args, scope)`` for a node with subgraphs; numpy errors named."""
    try:
        return run(args) if scope is None else run(args, scope)
    except _NODE_ERRORS as err:
        shapes = ", ".join("-" if a is None else str(np.shape(a)) for a in args)
        raise error(f"{node.op_type} node {node.name!r} failed on inputs shaped ({shapes}): "
                    f"{err}") from err


def _op_types(graph):
    """The operators of ``graph`` and its subgraphs; other domains keep their prefix."""
    found = set()
    for node in graph.node:
        found.add(node.op_type if node.domain in _DOMAINS else f"{node.domain}.{node.op_type}")
        for attribute in node.attribute:
            for sub in ([attribute.g] if attribute.type == attribute.GRAPH else attribute.graphs):
                found |= _op_types(sub)
    return found


def _check_defined(what, name, inputs, known):
    undefined = [n for n in inputs if n and n not in known]
    if undefined:
        raise ModelFileError(f"{what} {name!r} reads {', '.join(undefined)}, which no input, "
                             "initializer or earlier node defines (is the graph sorted?)")


def _subgraphs(node, names):
    """The graph attributes ``names`` of a Loop or If node, checked to be all it has."""
    attributes = {a.name: a for a in node.attribute}
    for attribute in attributes:
        if attribute not in names:
            raise UnsupportedError(f"{node.op_type} node {node.name!r}: attribute {attribute} "
                                   "is not supported by the numba engine")
    missing = [name for name in names if name not in attributes]
    if missing:
        raise ModelFileError(f"{node.op_type} node {node.name!r} lacks its {missing[0]} graph")
    return [helper.get_attribute_value(attributes[name]) for name in names]


def _scalar(value):
    return np.asarray(value).reshape(-1)[0]


MAX_LOOP_TRIPS = 1_000_000  # a scripted cell loop over time: one trip a step (seconds here)


def _bind_loop(node, body):
    """Loop-13: ``M`` and ``cond`` bound the trips; scan outputs stack along a new axis 0.

    The body's condition ends the loop even where the node omits ``cond``, as in
    onnxruntime and onnx's reference (the spec's pseudo-code says it is then ignored).
    """
    carried = len(node.input) - 2
    scans = len(body.outputs) - 1 - carried
    if carried < 0 or scans < 0 or len(body.inputs) != 2 + carried:
        raise ModelFileError(f"Loop node {node.name!r}: its body takes {len(body.inputs)} "
                             f"inputs and gives {len(body.outputs)} outputs for "
                             f"{len(node.input)} node inputs")
    has_m, has_cond = bool(node.input[0]), bool(node.input[1])
    empty_scans = [_empty_scan(t) for t in body.output_types[1 + carried:]]

    def run(args, env):
        trips = int(_scalar(args[0])) if has_m else None
        cond = bool(_scalar(args[1])) if has_cond else True
        values, stacked = list(args[2:]), [[] for _ in range(scans)]
        scope = {**env, **body.constants}
        i = 0
        while cond and (trips is None or i < trips):
            if i == MAX_LOOP_TRIPS:
                raise InputError(f"Loop node {node.name!r} runs past {MAX_LOOP_TRIPS:,} trips "
                                 f"({'no bound' if trips is None else f'bound {trips:,}'}): "
                                 f"refused rather than run for hours; a recurrent loop over "
                                 f"time takes one trip a step")
            scope.update(zip(body.inputs, [np.array(i, np.int64), np.array(cond)] + values))
            body.run(scope)
            results = [scope[name] for name in body.outputs]
            cond = bool(_scalar(results[0]))
            values = results[1:1 + carried]
            for store, value in zip(stacked, results[1 + carried:]):
                store.append(value)
            i += 1
        return values + [np.stack(store) if store else empty
                         for store, empty in zip(stacked, empty_scans)]

    return run


def _empty_scan(tensor_type):
    """A scan output of no trips: (0, declared dims...) as onnxruntime gives, unknown dims 0."""
    dims = [d.dim_value for d in tensor_type.shape.dim]
    return np.zeros([0] + dims, shape_ops.DTYPES.get(tensor_type.elem_type, np.float32))


def _bind_if(else_branch, then_branch):
    """If-13: run the branch ``cond`` picks and return its outputs."""
    def run(args, env):
        branch = then_branch if bool(_scalar(args[0])) else else_branch
        scope = branch.run({**env, **branch.constants})
        return [scope[name] for name in branch.outputs]

    return run
