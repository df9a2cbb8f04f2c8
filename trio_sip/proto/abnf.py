# Character classes and the few scanning primitives of RFC 3261 §25.1 shared by the URI,
# header and field parsers.
#
# Theory of operation: SIP header values are mostly simple, so every helper has a fast path
# that uses C-level ``str`` methods (``find``/``split``) and only falls back to a character
# loop when a quoted-string (``"..."``, with ``\`` quoted-pairs, §25.1) or an angle-bracketed
# URI (``<...>``) could hide a separator. Each loop is linear in the input: nothing here
# backtracks, so a hostile header costs O(n).
"""Character classes and linear scanners for the SIP grammar (RFC 3261 §25.1)."""

from __future__ import annotations

import re
import types
from typing import Final

from .errors import ParseError

__all__ = [
    "TOKEN_CHARS",
    "TOKEN_RE",
    "bad_nul",
    "excerpt",
    "is_token",
    "quote",
    "scan_quoted",
    "split_top",
    "unquote",
]

# token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")  (§25.1)
TOKEN_CHARS = r"A-Za-z0-9\-.!%*_+`'~"
"""The token characters as the body of a regex character class (``[...]``)."""
TOKEN_RE = re.compile(f"[{TOKEN_CHARS}]+")
_token_match = TOKEN_RE.fullmatch

LWS = " \t"


def _probe() -> None:
    """A function, to tell whether this module was compiled (mypyc makes it a builtin)."""


STRING_FAST_PATHS: Final = not isinstance(_probe, types.FunctionType)
"""Whether the fast paths of the URI, address and Via parsers use plain string operations
(the compiled build, where they beat a regular expression) or one regular expression each
(pure Python, where one C call beats a dozen bytecodes). Both give what the general parsers
give; tests/proto/test_message.py checks both kinds in either build."""


def is_token(text: str) -> bool:
    """True if ``text`` is a non-empty RFC 3261 token."""
    # Most tokens are plain ASCII words ("INVITE", "UDP", "tag"): two C calls, no regex.
    return (text.isalnum() and text.isascii()) or _token_match(text) is not None


def excerpt(text: str, limit: int = 60) -> str:
    """``repr`` of ``text`` cut to ``limit`` characters, for error messages: a hostile 48 KB
    header must not become a 48 KB exception message, log line or reason phrase."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"


def bad_nul(line: str) -> bool:
    """True if ``line`` holds a NUL that is not the escaped character of a quoted-pair inside a
    quoted string, the only place §25.1 allows one (``quoted-pair = "\\" (%x00-09 / %x0B-0C /
    %x0E-7F)``, RFC 4475 intmeth). Call it only for a line that holds a NUL."""
    quoted = False
    i = 0
    n = len(line)
    while i < n:
        c = line[i]
        if c == '"':
            quoted = not quoted
        elif c == "\\" and quoted:
            i += 1  # the escaped character, whatever it is
        elif c == "\0":
            return True
        i += 1
    return False


def scan_quoted(text: str, start: int) -> int:
    """Return the index just after the quoted-string that opens at ``text[start] == '"'``.

    Raises ParseError if the closing quote is missing (§25.1 quoted-string / quoted-pair).
    """
    i = start + 1
    n = len(text)
    # The next quote is searched for again only once a quoted-pair has stepped past it, so a
    # string of many backslashes costs O(n), not O(n) per backslash.
    q = text.find('"', i)
    while True:
        b = text.find("\\", i, q if q >= 0 else n)
        if b >= 0:
            # A quoted-pair: the backslash escapes the next character, whatever it is.
            if b + 1 >= n:
                break
            i = b + 2
            if q >= 0 and q < i:
                q = text.find('"', i)
            continue
        if q < 0:
            break
        return q + 1
    raise ParseError(f"unterminated quoted string in {excerpt(text)}")


def unquote(text: str) -> str:
    """Strip the quotes of a quoted-string and resolve its quoted-pairs."""
    inner = text[1:-1]
    if "\\" not in inner:
        return inner
    out = []
    i = 0
    n = len(inner)
    while i < n:
        c = inner[i]
        if c == "\\" and i + 1 < n:
            out.append(inner[i + 1])
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def quote(text: str) -> str:
    """Make a quoted-string of ``text`` (escaping ``"`` and ``\\``)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def split_top(text: str, sep: str) -> list[str]:
    """Split ``text`` on ``sep`` where it is not inside a quoted-string or ``<...>``.

    The pieces are returned unstripped. Raises ParseError for an unterminated quote.
    """
    if '"' not in text and "<" not in text:
        return text.split(sep)
    parts = []
    start = 0
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c == '"':
            i = scan_quoted(text, i)
            continue
        if c == "<":
            j = text.find(">", i + 1)
            if j < 0:
                raise ParseError(f"unterminated '<' in {excerpt(text)}")
            i = j + 1
            continue
        if c == sep:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    parts.append(text[start:])
    return parts
