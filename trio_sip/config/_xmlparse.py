"""XML text to an element tree, for the ``SipEndpoint.config`` loader (:mod:`.xml`).

Theory of operation: the SDK's file is a sequence of sibling containers, not one XML
document, and the snippets its documentation shows are fragments (a lone ``<domain>``, a
``<domain>`` whose ``</domain>`` was cut off at the end of the sample). So the text is parsed
inside a synthetic root element by expat, building :mod:`xml.etree.ElementTree` elements, and
when the input *ends* with elements still open they are closed there: nothing after them can
say where else they would have ended, so this loses nothing. Everything else that is not
well-formed (a mismatched end tag in the middle, a bad attribute) is an error naming the line
and column, and for a mismatched tag the element left open and the line it was opened on.

Security: defusedxml is not a dependency, so any DOCTYPE or ENTITY declaration is refused before
parsing (this blocks entity-expansion "billion laughs" and external-entity attacks); expat never
fetches external resources, and undefined entities are errors.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from xml.parsers import expat

from ..proto.errors import ConfigError
from .model import ConfigErrors

__all__ = ["parse_fragment"]

_DECLARATION_RE = re.compile(r"\A\s*<\?xml[^>]*\?>")
_ENCODING_RE = re.compile(rb"\A\s*<\?xml[^>]*encoding\s*=\s*[\"']([A-Za-z0-9._-]+)[\"']")
_DTD_RE = re.compile(r"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
ROOT = "trio-sip-root"
_PREFIX = f"<{ROOT}>"


def _fail(source: str, value: object, allowed: str) -> ConfigErrors:
    return ConfigErrors([ConfigError(source, value, allowed)])


def decode(data: str | bytes, source: str) -> str:
    """Text in its declared encoding (or a BOM's; UTF-8 by default), without DTDs."""
    if isinstance(data, bytes):
        match = _ENCODING_RE.match(data)
        encoding = match.group(1).decode("ascii") if match else "utf-8"
        if data.startswith(b"\xef\xbb\xbf"):
            encoding = "utf-8-sig"
        elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
            encoding = "utf-16"
        try:
            text = data.decode(encoding)
        except (LookupError, UnicodeDecodeError) as exc:
            raise _fail(source, encoding, f"text in the declared encoding ({exc})") from None
    else:
        text = data
    text = text.removeprefix("\ufeff")
    dtd = _DTD_RE.search(text)
    if dtd:
        allowed = "no DOCTYPE or ENTITY declaration (refused: entity-expansion defence)"
        raise _fail(source, f"<!{dtd.group(1)}", allowed)
    # Keep line and column numbers: blank the declaration out instead of deleting it.
    return _DECLARATION_RE.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)


def parse_fragment(data: str | bytes, source: str) -> ET.Element:
    """The synthetic root holding every top-level element of ``data`` (see the module doc)."""
    text = decode(data, source)
    builder = ET.TreeBuilder()
    parser = expat.ParserCreate()
    opened: list[tuple[str, int]] = []  # (tag, line) of each open element, the root first

    def start(tag: str, attrib: dict[str, str]) -> None:
        builder.start(tag, attrib)
        opened.append((tag, parser.CurrentLineNumber))

    def end(tag: str) -> None:
        builder.end(tag)
        opened.pop()

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    lines = text.split("\n")
    last_line, last_column = len(lines), len(lines[-1]) + (len(_PREFIX) if len(lines) == 1 else 0)
    try:
        parser.Parse(_PREFIX, False)
        parser.Parse(text, False)
        # The end of the input closes what is still open (a fragment cut off at its end).
        parser.Parse("".join(f"</{tag}>" for tag, _ in reversed(opened)), True)
    except expat.ExpatError as exc:
        line, column = exc.lineno, exc.offset
        reason = expat.ErrorString(exc.code)
        if (line, column) >= (last_line, last_column):
            where, reason = f"line {last_line} (the end)", f"{reason}: the input ends inside a tag"
        else:
            where = f"line {line}, column {column + 1 - (len(_PREFIX) if line == 1 else 0)}"
        if exc.code == expat.errors.codes[expat.errors.XML_ERROR_TAG_MISMATCH] and opened:
            tag, at = opened[-1]
            reason = (
                f"{reason}: an end tag that closes no open element"
                if tag == ROOT
                else f"{reason}: <{tag}> opened on line {at} is not closed before it"
            )
        raise _fail(source, where, f"well-formed XML ({reason})") from None
    root = builder.close()
    assert root.tag == ROOT
    return root
