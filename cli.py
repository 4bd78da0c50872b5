"""The command-line contract every command keeps: its errors, exit codes and warning lines.
Standard library only, so any module can import it.

A command reports bad input as one "error: ..." line (no traceback) and each problem it worked
around as one "warning: ..." line, and exits with one of the codes below.
"""

EXIT_ERROR = 1  # nothing done: one "error:" line says why
EXIT_USAGE = 2  # a bad command line (argparse's code): the line names the flag
EXIT_WARNINGS = 3  # done, but not with every file as given: the "warning:" lines say which
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports Ctrl-C


class UsageError(ValueError):
    """A bad command line: the message names the flag; the commands exit with EXIT_USAGE."""


class DataError(Exception):
    """Bad input data: the message names the file and what to do."""


def warning_line(message, category, filename, lineno, line=None) -> str:
    """warnings.formatwarning in the project's style: "warning: <message>", one line, without the
    source file, line and code that Python shows (the message names the data file to look at)."""
    return f"warning: {message}\n"
