"""The one base class of expected failures.

A `UserError` is bad input or a bad setting the user can fix: its message is one line that names the file
(and line, or id) at fault and says what to do. The CLI and the DVC stages print it as that one line and
exit non-zero; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """An expected failure; `str(exc)` is the whole message a user sees."""

    exit_code = 1
