"""The command-line contract every command keeps: its errors, exit codes and warning lines, and files
written whole or not at all. Standard library only, so any module can import it.

A command reports bad input as one "error: ..." line (no traceback) and each problem it worked
around as one "warning: ..." line, and exits with one of the codes below.
"""

import contextlib
import os
import sys
from pathlib import Path

EXIT_ERROR = 1  # nothing done: one "error:" line says why
EXIT_USAGE = 2  # a bad command line (argparse's code): the line names the flag
EXIT_WARNINGS = 3  # done, but not with every file as given: the "warning:" lines say which
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports Ctrl-C


class UsageError(ValueError):
    """A bad command line: the message names the flag; the commands exit with EXIT_USAGE."""


class DataError(Exception):
    """Bad input data: the message names the file and what to do."""


def run(main, *errors: type[Exception]) -> None:
    """A command's main as a user runs it: the bad input it expects (`errors`: a missing file, a
    malformed one) ends it with one "error:" line and EXIT_ERROR, not a traceback."""
    try:
        main()
    except errors as e:
        sys.exit(f"error: {e}")


def warning_line(message, category, filename, lineno, line=None) -> str:
    """warnings.formatwarning in the project's style: "warning: <message>", one line, without the
    source file, line and code that Python shows (the message names the data file to look at)."""
    return f"warning: {message}\n"


@contextlib.contextmanager
def atomic_path(path: str | Path):
    """Yields a temporary path beside `path` to write; it becomes `path` when the block ends and is
    removed if the block fails. Readers (and a rerun after a crash, Ctrl-C or a full disk) see the
    old file or the whole new one, never half of one. The process id in the name keeps two
    processes writing the same file (DDP ranks, parallel runs) out of each other's way."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
