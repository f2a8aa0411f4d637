"""The ``nnlift`` command: a thin layer over the library that prints tables and progress.

One module per command group (``data``, ``evaluate``, ``nnn``, ``blend``,
``items``, ``qdrant``, ``blocks``, ``info``); ``common`` holds what they share.
"""

from __future__ import annotations

import sys

from ..errors import MissingExtraError, NnliftError
from .common import Text, UserError, app, errors, typer  # first: it names the pip install if the cli extra is missing
from . import data, evaluate, nnn, blend, items, qdrant, blocks, info  # noqa: E402, F401, I001 - each registers its commands, in --help order

__all__ = ["app", "main", "UserError"]


def _say_error(message: str) -> None:
    errors.print(Text.assemble(("error:", "red"), " ", message))


def main() -> None:
    """Entry point: nnlift's own errors (bad input, a refused save) become one line and exit code 2.

    Any other exception is a bug and keeps its traceback.
    """
    try:
        code = app(standalone_mode=False)  # a command's typer.Exit(code) comes back as its return value
        if isinstance(code, int) and not isinstance(code, bool) and code:
            sys.exit(code)
    except MissingExtraError as exc:
        _say_error(str(exc))
        sys.exit(3)
    except (UserError, NnliftError) as exc:
        _say_error(str(exc))
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        errors.print("aborted")
        sys.exit(1)
    except Exception as exc:
        # Usage errors from typer's (vendored) click carry show() and exit_code.
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):
            exc.show()
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":  # pragma: no cover
    main()
