"""The settings of a training run: the config dataclasses, presets, flags, and the rule for resume.

Torch-free, so that the command line can show the defaults without importing torch.

Each setting is written once, in a task's config dataclasses (``CharLMConfig`` and
``CharTrainConfig``, ``SentimentConfig`` and ``SentimentTrainConfig``, ``SeriesConfig`` and
``SeriesTrainConfig``): its name, type, default and help (``setting``). The command line
makes its flags from these fields (``cli/train.py``), in their order; a field the training
loop fills in from the data (``from_data``: a vocabulary size) is neither a flag nor a
setting. A preset file
(``configs/*.toml``, flat ``key = value`` pairs, as nanoGPT's ``config/``) overrides them,
and the settings given by the caller (command-line flags) override the preset. A preset may
also hold one table, ``[expect]``: the band its model should reach (``expect.py``).

Resume, the same in every task: the run continues with the checkpoint's model config and
training settings. ``epochs`` may be raised to train longer; any other setting given with a
value that differs from the checkpoint's is refused with the list of differences, never
silently ignored. A resume goes on with the epoch after the checkpoint's, also when that
one was cut short by the time budget (its record says ``"partial": true``): the rest of a
partial epoch is not trained. Not settings: ``max_minutes``, ``device``, ``threads``, the
data paths and the number of training processes (torchrun's WORLD_SIZE), which belong to one
invocation: a run trained on N processes resumes on one and the other way round.
``batch_size`` is the global batch, divided among the processes. ``precision`` (fp32, bf16,
fp16) is a setting: it changes what is computed, so a resume keeps it; the checkpoint also
records where it was trained (``trained_on``: device, precision, world size, threads).
"""

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

from rnnedge.runtime.errors import InputError
from rnnedge.runtime.tokenizer import KEEP

CELLS = ("lstm", "gru", "rnn")  # nn.LSTM, nn.GRU, nn.RNN
NONLINEARITIES = ("tanh", "relu")  # of the rnn cell
HEADS = ("last", "mean", "max")
PRECISIONS = ("fp32", "bf16", "fp16")


def setting(default, help="", off=None):
    """A field the user sets (a flag, a preset key) with its ``help`` for the command line;
    ``off``, for a bool, names the flag that sets it False (``--bidirectional/--unidirectional``).
    A plain field (``epochs: int = 8``) is a setting too, its help the default alone."""
    return field(default=default, metadata={"help": help, "off": off})


def from_data(default=dataclasses.MISSING):
    """A field the training loop fills in from the data (a vocabulary size), never the user."""
    return field(default=default, metadata={"from_data": True})


def one_of(names):
    return f"{', '.join(names[:-1])} or {names[-1]}"


# help texts of settings in several configs
CELL = one_of(CELLS)
NONLINEARITY = f"rnn: {one_of(NONLINEARITIES)}"
HEAD = one_of(HEADS)
PRECISION = f"{one_of(PRECISIONS)} (autocast; fp16 on CUDA only)"
CLIP = "global gradient norm"


@dataclass(frozen=True)
class CharLMConfig:
    vocab_size: int = from_data()
    embed_dim: int = 64
    hidden_size: int = 256
    num_layers: int = 2
    dropout: float = 0.1  # between recurrent layers, as nn.LSTM applies it
    cell: str = setting("lstm", CELL)
    nonlinearity: str = setting("tanh", NONLINEARITY)

    def __post_init__(self):
        check_model(self, ("vocab_size", "embed_dim", "hidden_size", "num_layers"))


@dataclass(frozen=True)
class CharTrainConfig:
    epochs: int = 20
    seed: int = 0
    precision: str = setting("fp32", PRECISION)
    batch_size: int = setting(32, "parallel streams")
    num_steps: int = setting(100, "BPTT window")
    lr: float = 2e-3
    clip: float = setting(5.0, CLIP)  # <= 0 turns clipping off

    def __post_init__(self):
        check_training(self)


@dataclass(frozen=True)
class SentimentConfig:
    """Model and tokenizer settings; the defaults are chosen on the IMDb validation split.

    Against the defaults (0.899 validation accuracy after 6 epochs), one change at a time:
    ``head="last"`` 0.861, ``keep="last", max_len=200`` 0.881, ``keep="last"`` (400) 0.896.
    """

    vocab_size: int = from_data(0)  # 0 until the vocabulary is built from the training split
    embed_dim: int = 64
    hidden_size: int = 128
    num_layers: int = 1
    dropout: float = 0.4  # on embeddings, between recurrent layers, before the linear layer
    cell: str = setting("lstm", CELL)
    nonlinearity: str = setting("tanh", NONLINEARITY)
    # the last (valid) position, or the masked mean or max of the valid outputs
    head: str = setting("mean", HEAD)
    bidirectional: bool = setting(False, off="unidirectional")
    max_len: int = setting(400, "tokens kept per review")  # by the keep policy
    keep: str = setting("head_tail", one_of(KEEP))
    min_count: int = 2  # a word needs this many training occurrences to get an id
    max_vocab: int = 30000  # ids in all, <pad> and <unk> included

    def __post_init__(self):
        check_model(self, ("embed_dim", "hidden_size", "num_layers", "max_len"))
        if self.keep not in KEEP:
            raise InputError(f"keep must be one of {', '.join(KEEP)}, not {self.keep!r}")


@dataclass(frozen=True)
class SentimentTrainConfig:
    epochs: int = 8
    seed: int = 0
    precision: str = setting("fp32", PRECISION)
    batch_size: int = 64
    lr: float = 2e-3
    clip: float = setting(1.0, CLIP)
    patience: int = 2  # epochs without a better validation accuracy before stopping
    val_size: int = 2500

    def __post_init__(self):
        check_training(self)
        if self.patience < 1 or self.val_size < 1:
            raise InputError(f"patience and val_size must be >= 1, not {self.patience} and "
                             f"{self.val_size}")


def check_model(c, sizes):
    """Typed errors for a model config: the cell, its nonlinearity, the head, sizes, dropout."""
    if c.cell not in CELLS:
        raise InputError(f"cell must be one of {', '.join(CELLS)}, not {c.cell!r}")
    if c.nonlinearity not in NONLINEARITIES:
        raise InputError(f"nonlinearity must be tanh or relu, not {c.nonlinearity!r}")
    if hasattr(c, "head") and c.head not in HEADS:
        raise InputError(f"head must be one of {', '.join(HEADS)}, not {c.head!r}")
    if min(getattr(c, n) for n in sizes) < 1:
        raise InputError(f"{', '.join(sizes[:-1])} and {sizes[-1]} must be >= 1")
    if not 0.0 <= c.dropout < 1.0:
        raise InputError(f"dropout must be in [0, 1), not {c.dropout}")


MAX_LR = 10.0  # Adam's step is about lr per weight: anything above diverges at once


def check_training(tc):
    """Typed errors for training settings that cannot train (before any data is read)."""
    if not (math.isfinite(tc.lr) and 0 < tc.lr <= MAX_LR):
        raise InputError(f"lr must be a number in (0, {MAX_LR:g}], not {tc.lr!r}")
    if not math.isfinite(tc.clip):
        raise InputError(f"clip must be a finite number (<= 0 turns clipping off), not {tc.clip!r}")
    for name in ("batch_size", "epochs") + (("num_steps",) if hasattr(tc, "num_steps") else ()):
        if getattr(tc, name) < 1:
            raise InputError(f"{name} must be >= 1, not {getattr(tc, name)}")
    if tc.precision not in PRECISIONS:
        raise InputError(f"precision must be one of {', '.join(PRECISIONS)}, not {tc.precision!r}")


# What a resumed run may change: the length of the run, not what it computes.
CHANGEABLE_ON_RESUME = ("epochs",)


def fields(cls):
    return {f.name: f for f in dataclasses.fields(cls)}


def setting_fields(cls):
    """The fields of ``cls`` the user sets, in order: all but those filled in from the data."""
    return [f for f in dataclasses.fields(cls) if not f.metadata.get("from_data")]


def read_preset(path):
    """The TOML of a preset file, as a dict; typed errors for a file that is not one."""
    import tomllib

    path = Path(path)
    if not path.is_file():
        raise InputError(f"preset {path} {'is a directory' if path.is_dir() else 'does not exist'}")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"preset {path} is not valid TOML ({exc})") from exc


def load_preset(path):
    """The settings of a TOML preset file, as a dict; typed errors for a bad file. Its one
    table, [expect], is not settings: ``expect.py`` reads it."""
    data = read_preset(path)
    nested = [k for k, v in data.items() if isinstance(v, dict) and k != "expect"]
    if nested:
        raise InputError(f"preset {path}: tables [{', '.join(nested)}] are not settings; "
                         "write flat `name = value` lines (the one table a preset may hold "
                         "is [expect], the band its model should reach)")
    return {k: v for k, v in data.items() if not (k == "expect" and isinstance(v, dict))}


def gather(model_cls, train_cls, preset=None, given=None):
    """(model settings, training settings) from the preset and the given (non-None) values.

    A field filled in from the data (``from_data``: ``vocab_size``) is no setting.
    """
    chosen = dict(load_preset(preset)) if preset else {}
    chosen.update({k: v for k, v in (given or {}).items() if v is not None})
    model_f, train_f = fields(model_cls), fields(train_cls)
    known = {f.name: f for f in setting_fields(model_cls) + setting_fields(train_cls)}
    unknown = sorted(set(chosen) - set(known))
    if unknown:
        raise InputError(f"unknown setting(s) {', '.join(unknown)}; the settings are "
                         f"{', '.join(sorted(known))}")
    for name, value in chosen.items():
        check_type(name, value, known[name].type)
    return ({k: v for k, v in chosen.items() if k in model_f},
            {k: v for k, v in chosen.items() if k in train_f})


def check_type(name, value, want):
    kinds = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,)}
    want = want if isinstance(want, str) else want.__name__
    ok = isinstance(value, kinds.get(want, (object,))) and not (want != "bool" and isinstance(value, bool))
    if not ok:
        raise InputError(f"setting {name} must be a {want}, not {value!r}")


def resumed(ckpt, train_cls, model_settings, train_settings, path):
    """The training config of a resumed run: the checkpoint's, with ``epochs`` as given.

    Refuses any other given setting that differs from the checkpoint's, naming each one.
    """
    # a setting newer than the checkpoint was trained at its default
    defaults = {k: f.default for k, f in fields(train_cls).items()}
    saved = {**ckpt["config"], **defaults, **ckpt.get("train_config", {})}
    given = {**model_settings, **train_settings}
    differ = [f"{k} {saved[k]!r} in the checkpoint, {v!r} given" for k, v in given.items()
              if k not in CHANGEABLE_ON_RESUME and k in saved and saved[k] != v]
    if differ:
        raise InputError(f"--resume continues {path} with its own settings; " + "; ".join(differ)
                         + ". Drop those settings, or start a fresh run in another --out")
    tc = train_cls(**{k: v for k, v in saved.items() if k in fields(train_cls)})
    return dataclasses.replace(tc, **{k: train_settings[k] for k in CHANGEABLE_ON_RESUME
                                      if k in train_settings})


@dataclass(frozen=True)
class SeriesConfig:
    """A classifier of real-valued frames (``series_model.py``); channels and classes come from
    the training data, the rest are the defaults of ``configs/vowels_gru.toml``."""

    channels: int = from_data(0)  # 0 until the training data is read
    num_classes: int = from_data(0)  # likewise
    hidden_size: int = 64
    num_layers: int = 1
    dropout: float = 0.0  # between recurrent layers and before the linear layer
    cell: str = setting("gru", CELL)
    nonlinearity: str = setting("tanh", NONLINEARITY)
    # the last (valid) frame, or the masked mean or max of the valid outputs
    head: str = setting("mean", HEAD)
    bidirectional: bool = setting(False, off="unidirectional")

    def __post_init__(self):
        check_model(self, ("hidden_size", "num_layers"))


@dataclass(frozen=True)
class SeriesTrainConfig:
    epochs: int = 60
    seed: int = 0
    precision: str = setting("fp32", PRECISION)
    batch_size: int = 16
    lr: float = 3e-3
    clip: float = setting(1.0, CLIP)
    patience: int = 15  # epochs without a better validation accuracy before stopping
    val_fraction: float = 0.2  # of each class of the training data, for early stopping
    noise: float = setting(0.0, "std of Gaussian noise on the normalised training frames")
    # with no early stopping (``averaging.py``)
    average_from: int = setting(0, "best.pt = the mean weights of epochs N.. (SWA; 0: the "
                                   "best epoch by validation)")

    def __post_init__(self):
        check_training(self)
        if self.patience < 1:
            raise InputError(f"patience must be >= 1, not {self.patience}")
        if not 0.0 < self.val_fraction < 1.0:
            raise InputError(f"val_fraction must be in (0, 1), not {self.val_fraction}")
        if not (math.isfinite(self.noise) and self.noise >= 0):
            raise InputError(f"noise must be a number >= 0, not {self.noise!r}")
        if not 0 <= self.average_from <= self.epochs:
            raise InputError(f"average_from must be 0 (off) or an epoch from 1 to epochs "
                             f"({self.epochs}), not {self.average_from}")
