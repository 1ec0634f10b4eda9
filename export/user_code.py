"""The user's own code as the export runs it: their file, their factory, their forward.

Whatever that code raises, ``SystemExit`` included, becomes one ``InputError`` line that
names the code, what it was doing and, for ``forward``, the inputs it was given (shapes,
dtypes, and the values of small integer inputs such as lengths), so that a module's own
error never reads as an exporter's failure and a stray ``sys.exit()`` never ends the
command silently. This module calls nothing itself and imports no torch.
"""

import contextlib

import numpy as np

from rnnedge.runtime.errors import InputError, RnnedgeError, first_line

SHOWN_VALUES = 8  # a 1-D integer input up to this size is shown with its values


class ModuleRaised(InputError):
    """The user's forward raised on inputs the gate made; ``cause`` is what it raised."""

    def __init__(self, message, cause):
        super().__init__(message)
        self.cause = cause


class UserExit(InputError):
    """The user's code called ``sys.exit()`` or raised ``SystemExit``: named, never obeyed."""

    def __init__(self, who, code, doing):
        self.who, self.code, self.doing = who, code, doing
        super().__init__(f"{who} raised SystemExit({code!r}) while {doing}; a module file must "
                         f"build and run without exiting: remove the exit")

    def by(self, who):
        """The same exit, told of ``who`` (e.g. ``net.py:build`` on the command line)."""
        return UserExit(who, self.code, self.doing)


def describe(names, arrays):
    """``"x float32 (2, 7, 40), lengths int64 (2,) = [7, 3]"`` of numpy inputs."""
    parts = []
    for name, array in zip(names, arrays):
        array = np.asarray(array)
        text = f"{name} {array.dtype} {tuple(array.shape)}"
        if array.ndim == 1 and np.issubdtype(array.dtype, np.integer) and array.size <= SHOWN_VALUES:
            text += f" = {array.tolist()}"
        parts.append(text)
    return ", ".join(parts)


@contextlib.contextmanager
def running(who, doing):
    """Run a block of the user's code (importing their file, calling their factory)."""
    try:
        yield
    except SystemExit as exc:
        raise UserExit(who, exc.code, doing) from None
    except RnnedgeError:
        raise
    except Exception as exc:  # the user's code raises anything
        raise InputError(f"{who} raised {type(exc).__name__} while {doing}: "
                         f"{first_line(exc)[:300]}") from exc


@contextlib.contextmanager
def forward(names, arrays, hints=tuple):
    """Run the user's forward on inputs the gate made (numpy ``arrays`` named ``names``);
    ``hints()``: lines of advice should it raise."""
    try:
        yield
    except SystemExit as exc:
        raise UserExit("your module", exc.code, f"running forward on the gate's inputs "
                       f"({describe(names, arrays)})") from None
    except RnnedgeError:
        raise
    except Exception as exc:  # the module's own error: say which inputs it got
        message = (f"your module raised on the gate's inputs: {type(exc).__name__}: "
                   f"{first_line(exc)[:300]} (inputs: {describe(names, arrays)})")
        raise ModuleRaised("\n".join([message, *hints()]), exc) from exc
