"""Modules whose forward takes or returns dicts, tuples or lists of tensors, flattened.

The exporters and the gate deal in named tensors. A forward that takes
``{"feats": x, "h": h}`` (or a state tuple ``(h, c)``) gets its example flattened to
tensors, dict entries named by their keys, and is wrapped in a module whose forward takes
those tensors in that order, rebuilds the structure and returns its outputs flattened the
same way (a returned dict's entries named by their keys). Modules that take and return
plain tensors are not wrapped. This module wraps; it exports nothing.
"""

from rnnedge.runtime.errors import InputError


def leaves(value, where="example_inputs"):
    """[(dict key or None, tensor)] of a nested example in forward's order; refuses anything
    that is not a tensor, a tuple/list of them or a dict of them with string keys."""
    import torch

    if isinstance(value, torch.Tensor):
        return [(None, value)]
    if isinstance(value, (tuple, list)):
        return [leaf for i, item in enumerate(value) for leaf in leaves(item, f"{where}[{i}]")]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return [(key if k is None else k, t) for key, item in value.items()
                for k, t in leaves(item, f"{where}[{key!r}]")]
    raise InputError(f"{where} is {type(value).__name__}; export_model takes tensors, or tuples, "
                     f"lists and dicts (string keys) of tensors, which become named inputs")


def flat_inputs(example_inputs, input_names):
    """The example's tensors, one per ONNX input; dict entries must be named by their keys."""
    found = leaves(tuple(example_inputs))
    keyed = [key or f"<{i}>" for i, (key, _) in enumerate(found)]
    nested = len(found) != len(example_inputs) or any(key for key, _ in found)
    if nested and len(input_names) != len(found):
        raise InputError(f"the example holds {len(found)} tensors, each an ONNX input: name them "
                         f"in order, dict entries by their keys: input_names={keyed}")
    for name, (key, _) in zip(input_names, found):
        if key is not None and name != key:
            raise InputError(f"input_names names {name!r} where the example's dict has {key!r}: "
                             f"name dict entries by their keys, in order: input_names={keyed}")
    return tuple(t for _, t in found)


def is_flat(example_inputs, result):
    """Tensors in, a tensor or a tuple/list of tensors out: nothing to wrap."""
    import torch

    return (all(isinstance(t, torch.Tensor) for t in example_inputs)
            and (isinstance(result, torch.Tensor) or isinstance(result, (tuple, list))
                 and all(isinstance(t, torch.Tensor) for t in result)))


def check_output_names(result, output_names):
    """A returned dict's entries must be named by their keys, in order."""
    found = leaves(result, "the module's output")
    keyed = [key or f"<{i}>" for i, (key, _) in enumerate(found)]
    for name, (key, _) in zip(output_names, found):
        if key is not None and name != key:
            raise InputError(f"output_names names {name!r} where the module's output dict has "
                             f"{key!r}: name dict entries by their keys, in order: "
                             f"output_names={keyed}")


def flat_module(module, example_inputs):
    """A module whose forward takes the example's tensors flat and returns its outputs flat."""
    import torch
    from torch import nn

    structure = tuple(example_inputs)

    def rebuild(value, tensors):
        if isinstance(value, torch.Tensor):
            return next(tensors)
        if isinstance(value, dict):
            return {k: rebuild(v, tensors) for k, v in value.items()}
        return type(value)(rebuild(v, tensors) for v in value)

    class Flat(nn.Module):
        def __init__(self):
            super().__init__()
            self.module = module

        def forward(self, *tensors):
            args = rebuild(structure, iter(tensors))
            return tuple(t for _, t in leaves(self.module(*args), "the module's output"))

    Flat.__name__ = Flat.__qualname__ = f"Flat{type(module).__name__}"
    return Flat().train(module.training)
