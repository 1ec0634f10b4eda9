"""The character corpus: Hamlet by default, any UTF-8 text file on request. Torch-free.

The play is ``hamlet_pg2265.txt`` in the data directory. Where it is missing it is
downloaded from Project Gutenberg; the file served there today has another header
and wrapping than ours, so the play is located by its own first and last lines
(the title line before ``Actus Primus`` and the ``FINIS`` line), never by offsets.
"""

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnedge.runtime.errors import DataError

from .download import data_dir, fetch
from .ts_format import text_lines

HAMLET_FILE = "hamlet_pg2265.txt"
HAMLET_URL = "https://www.gutenberg.org/cache/epub/2265/pg2265.txt"
_FIRST_SCENE = re.compile(r"^\s*Actus Primus", re.MULTILINE)
_TITLE = re.compile(r"^\s*The Tragedie of Hamlet\s*$", re.MULTILINE | re.IGNORECASE)
_FINIS = re.compile(r"^\s*FINIS\..*$", re.MULTILINE)


def extract_play(raw):
    """Cut the play out of a Gutenberg file: from its title line to the end of FINIS."""
    raw = raw.replace("\r\n", "\n")
    scene = _FIRST_SCENE.search(raw)
    if scene is None:
        raise DataError("no 'Actus Primus' line found: this is not the Hamlet etext 2265")
    titles = [m for m in _TITLE.finditer(raw, 0, scene.start())]
    start = titles[-1].start() if titles else scene.start()
    finis = _FINIS.search(raw, scene.end())
    if finis is None:
        raise DataError("no 'FINIS.' line found after the play: the Hamlet etext looks truncated")
    return raw[start:finis.end()].lstrip() + "\n"


def load_text(text=None, data_dir_=None):
    """The corpus as one string: ``text`` (a UTF-8 file) when given, else Hamlet."""
    if text is not None:
        path = Path(text)
        if not path.is_file():
            raise DataError(f"text file {path} {'is a directory' if path.is_dir() else 'does not exist'}")
        # the readers' one rule (UTF-8, a BOM dropped), newlines as Python reads text
        corpus = "".join(text_lines(path)).replace("\r\n", "\n").replace("\r", "\n")
        if len(corpus) < 100:
            raise DataError(f"{path} holds {len(corpus)} characters; a corpus needs at least 100")
        return corpus
    path = data_dir(data_dir_) / HAMLET_FILE
    if not path.is_file():
        fetch(HAMLET_URL, path)
    return extract_play(path.read_text(encoding="utf-8", errors="replace"))


@dataclass(frozen=True)
class CharCorpus:
    """A corpus split 90/10 into training and validation ids over one vocabulary."""

    vocab: tuple  # characters, sorted; id = position
    train: np.ndarray  # int64 [n_train]
    val: np.ndarray  # int64 [n_val]

    @classmethod
    def from_text(cls, corpus, train_fraction=0.9):
        vocab = tuple(sorted(set(corpus)))
        index = {ch: i for i, ch in enumerate(vocab)}
        ids = np.fromiter((index[ch] for ch in corpus), dtype=np.int64, count=len(corpus))
        cut = int(len(ids) * train_fraction)
        return cls(vocab, ids[:cut], ids[cut:])


def stream_windows(ids, batch_size, num_steps, offset=0):
    """The chapter's layout: ``batch_size`` parallel streams cut into windows.

    Stream b holds a contiguous slice of the text, so window w+1 of row b continues
    window w of row b and the hidden state can flow across windows. Yields
    ``(x, y)`` int64 arrays of shape (B, num_steps), ``y`` being ``x`` shifted by one.
    """
    ids = ids[offset:]
    n = (len(ids) - 1) // batch_size
    if n < 1:
        raise DataError(f"{len(ids)} characters cannot fill {batch_size} streams")
    xs = ids[: n * batch_size].reshape(batch_size, n)  # (B, n)
    ys = ids[1: n * batch_size + 1].reshape(batch_size, n)  # (B, n)
    for start in range(0, n, num_steps):
        yield xs[:, start:start + num_steps], ys[:, start:start + num_steps]
