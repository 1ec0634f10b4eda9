"""Training on several processes (``torchrun``): who this process is, and what ranks share.

    torchrun --nproc_per_node 2 -m rnnedge.cli train sentiment --batch-size 64 --out runs/s
    torchrun --nnodes 2 --nproc_per_node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29500 \
        -m rnnedge.cli train charlm ...          (or: torchrun ... $(which rnnedge) train ...)

(``python -m rnnedge.train`` does not exist: ``train/`` may not import the command line.)
One code path: a process started by torchrun finds RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR and MASTER_PORT in its environment and joins the process group (gloo on the
CPU, nccl on CUDA); a process without them is a world of one, and every helper here is
then the identity, with no collective.

What the ranks share, and why:
  - the global batch is the user's ``batch_size``; it must divide among the ranks (an
    ``InputError`` otherwise), so that a run's meaning does not depend on how many
    processes compute it;
  - a distributed *batch* sampler (``rows``): every rank draws the same seeded plan of
    global batches and keeps rows rank::size of each, weighted so that DDP's mean of the
    ranks' gradients is the gradient of the whole batch's mean loss. torch's
    ``DistributedSampler`` pads the data and batches each rank's share apart, so a
    2-process run would see other batches than the 1-process run; this one sees the same;
  - validation and the epoch's training loss are sums reduced over the ranks (``sum_all``), so
    the early-stopping decision and the best epoch are the same on every rank, and
    ``any_rank`` makes a time budget stop every rank at the same step;
  - only rank 0 holds the run directory and writes (``holding``); every rank reads the
    checkpoint it resumes from.

A peer that dies mid-collective makes the others fail at once with ``LostPeerError`` (gloo
and nccl see the closed connection); a peer that hangs, after ``RNNEDGE_DIST_TIMEOUT``
seconds (default 600). Not here: mixed precision (``precision.py``).
"""

import datetime
import functools
import os
from dataclasses import dataclass

import numpy as np

from rnnedge.runtime.atomic import fault
from rnnedge.runtime.errors import InputError, RnnedgeError, first_line

from . import rundir

TIMEOUT_ENV = "RNNEDGE_DIST_TIMEOUT"
DEFAULT_TIMEOUT_S = 600


class LostPeerError(RnnedgeError):
    """Another process of a multi-process training run stopped, or the network between them
    failed; this process stops too (there is no one to average gradients with)."""

    exit_code = 1


@dataclass(frozen=True)
class World:
    """This process's place in the run: rank ``rank`` of ``size``, GPU ``local_rank``."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self):
        return self.rank == 0


ONE = World()


def from_env(env=None):
    """The ``World`` that torchrun's variables describe; a world of one without them."""
    env = os.environ if env is None else env
    try:
        world = World(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)),
                      int(env.get("LOCAL_RANK", 0)))
    except ValueError as exc:
        raise InputError(f"RANK, WORLD_SIZE and LOCAL_RANK must be integers ({exc})") from None
    if not 0 <= world.rank < world.size:
        raise InputError(f"RANK {world.rank} is not in [0, WORLD_SIZE {world.size})")
    return world


def local_size(env=None):
    """How many processes of the run share this machine (torchrun's LOCAL_WORLD_SIZE; 1
    without it): they share its free cores (``common.free_cores``)."""
    env = os.environ if env is None else env
    try:
        size = int(env.get("LOCAL_WORLD_SIZE", 1))
    except ValueError as exc:
        raise InputError(f"LOCAL_WORLD_SIZE must be an integer ({exc})") from None
    if size < 1:
        raise InputError(f"LOCAL_WORLD_SIZE must be >= 1, not {size}")
    return size


def current():
    """The world of this process: the joined group's, else what the environment says."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), from_env().local_rank)
    return from_env()


def join(device):
    """(world, device): joins the process group of a multi-process run (once), on this
    process's GPU for CUDA. A world of one returns ``device`` as it is."""
    world = from_env()
    if world.size == 1:
        return world, device
    import torch
    import torch.distributed as dist

    if device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        seconds = float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT_S))
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                timeout=datetime.timedelta(seconds=seconds),
                                rank=world.rank, world_size=world.size)
    return world, device


def leave():
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def local_batch(batch_size, world):
    """Rows per rank of a global batch; a batch that does not divide is an ``InputError``."""
    if batch_size % world.size:
        raise InputError(f"batch_size {batch_size} does not divide among {world.size} training "
                         f"processes; give a multiple of {world.size}, or start "
                         f"{world.size} processes with a batch size they divide")
    return batch_size // world.size


def rows(batch, world):
    """(this rank's rows of the global ``batch``, their weight in the global mean loss).

    Rows rank::size; ``loss.sum() * weight`` on every rank, averaged by DDP, is the mean
    loss of the whole batch, whatever its length. A rank that gets no row (a short last
    batch) computes the first row with weight 0: DDP needs every rank in every step.
    """
    fault("step")  # a test kills one rank here (RNNEDGE_FAULT=kill:step@N)
    mine = batch[world.rank::world.size]
    if len(mine) == 0:
        return batch[:1], 0.0
    return mine, world.size / len(batch)


def shard(n, world):
    """Indices (rank::size) of the ``n`` items this rank evaluates."""
    return np.arange(world.rank, n, world.size)


def sum_all(values, world):
    """``values`` (numbers) summed over the ranks, as a list of Python floats (what a
    checkpoint's metrics may hold); the values themselves in a world of one."""
    values = np.asarray(values, dtype=np.float64)
    if world.size == 1:
        return values.tolist()
    import torch
    import torch.distributed as dist

    t = torch.from_numpy(values.copy())
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t)
    return t.cpu().tolist()


def any_rank(flag, world=None):
    """True on every rank when ``flag`` is true on one: a stop that all ranks take together."""
    world = world or current()
    return bool(sum_all([float(bool(flag))], world)[0] > 0)


def wrap(model, world):
    """``model`` inside DistributedDataParallel for a multi-process run (the step averages
    gradients over ranks); the model itself in a world of one."""
    if world.size == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [world.local_rank] if next(model.parameters()).is_cuda else None
    return DistributedDataParallel(model, device_ids=ids)


def trained_on(device, precision, world, threads):
    """What the checkpoint records of where it was trained (not a setting: see config.py);
    ``threads``: torch's CPU threads per process."""
    return {"device": device.type, "precision": precision, "world_size": world.size,
            "threads": threads}


def lost_peer(exc, world):
    """The ``LostPeerError`` for a collective that failed because a peer went away; None for
    an error of another kind."""
    import torch.distributed as dist

    text = str(exc)
    markers = ("Connection reset", "Connection closed", "Broken pipe", "timed out", "Timed out",
               "NCCL", "gloo", "ProcessGroup")
    if not (isinstance(exc, dist.DistError) or any(m in text for m in markers)):
        return None
    return LostPeerError(f"rank {world.rank} of {world.size}: lost the other training "
                         f"processes ({first_line(exc)}); one of them stopped or the network "
                         f"failed (see its log); this run stops here and resumes from its "
                         f"last.pt with --resume")


def holding(train):
    """Decorate ``train(out, ...)``: rank 0 holds the run directory ``out`` (``rundir.hold``)
    for the call and is its one writer; other ranks hold nothing and write nothing. The
    process group is left after the call, and a collective that failed because a peer died
    becomes a ``LostPeerError``."""

    @functools.wraps(train)
    def run(out, *args, **kwargs):
        world = from_env()
        try:
            if not world.main:
                return train(out, *args, **kwargs)
            with rundir.hold(out):
                return train(out, *args, **kwargs)
        except RuntimeError as exc:
            if world.size == 1 or lost_peer(exc, world) is None:
                raise
            raise lost_peer(exc, world) from exc
        finally:
            if world.size > 1:
                leave()

    return run
