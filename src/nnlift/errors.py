"""nnlift's own exceptions.

Every error the library raises on purpose is an :class:`NnliftError`, and also
the builtin exception a caller would expect (``ValueError``, ``TypeError``,
``KeyError``, ``ImportError``), so ``except ValueError`` keeps working. The
command line prints these as one short line with exit code 2; any other
exception is a bug and keeps its traceback.

Examples
--------
>>> import nnlift
>>> try:
...     nnlift.topk([[1.0, 0.0]], [[1.0, 0.0]], k=0)
... except nnlift.InputError as exc:
...     print(isinstance(exc, ValueError), exc)
True k must be >= 1; got 0
"""

from __future__ import annotations

__all__ = ["NnliftError", "InputError", "InputTypeError", "UnknownIdError", "MissingExtraError"]


class NnliftError(Exception):
    """Base of every error nnlift raises on purpose: a user-facing message, not a bug."""


class InputError(NnliftError, ValueError):
    """An argument has a value outside what it accepts; the message names the argument."""


class InputTypeError(NnliftError, TypeError):
    """An argument has the wrong type; the message names the argument."""


class UnknownIdError(NnliftError, KeyError):
    """An id that is not in the index or collection."""

    def __str__(self) -> str:  # KeyError's str() adds quotes around the message
        return str(self.args[0]) if self.args else ""


class MissingExtraError(NnliftError, ImportError):
    """An optional dependency is missing; the message names the ``pip install`` to run."""
