"""Text from files, made safe to print on a terminal.

Strings stored in a file (a session description, a condition label, a column name, a group
name in an error message) may hold control characters: an escape sequence can recolour or
clear the terminal, rewrite its title, fake earlier output or, on some terminals, write to the
clipboard. Everything a command prints that came from a file goes through `printable`, which
shows every control character as a visible escape (``\\x1b``, ``\\n``) instead of sending it.
"""

from __future__ import annotations

import re

import pandas as pd

__all__ = ["printable", "printable_lines", "printable_table"]

# C0 and C1 control characters and DEL; also the Unicode line and paragraph separators and the
# bidirectional overrides, which reorder what the terminal shows.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match) -> str:
    char = match.group(0)
    named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
    if char in named:
        return named[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(value: object) -> str:
    """`value` as text with every control character (newlines too) escaped."""
    return _CONTROL.sub(_escape, str(value))


def printable_lines(text: str) -> str:
    """`text` with every control character escaped except the newlines between its lines
    (for output that the command itself laid out in lines)."""
    return "\n".join(printable(line) for line in str(text).split("\n"))


def printable_table(table: pd.DataFrame) -> pd.DataFrame:
    """A copy of `table` whose column names and text cells are `printable`."""
    out = table.copy()
    out.columns = [printable(c) for c in out.columns]
    for column in out.columns:
        if out[column].dtype == object:
            out[column] = [printable(v) if isinstance(v, str) else v for v in out[column]]
    return out
