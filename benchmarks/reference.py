"""Expected values for the check step, extracted independently of every stack under test.

Deliberately plain string handling that is only good enough for the well-formed ``basic/``
messages (long or compact header names, no folding, one value per header line); it is the yard
stick the adapters are checked against, so it uses none of their code.
"""

from __future__ import annotations

COMPACT = {
    "v": "via",
    "f": "from",
    "t": "to",
    "i": "call-id",
    "m": "contact",
    "l": "content-length",
}


def _param(value: str, name: str) -> str | None:
    """A ``;name=value`` parameter after the URI (outside ``<...>``)."""
    tail = (
        value.rsplit(">", 1)[1] if ">" in value else value.split(";", 1)[-1] if ";" in value else ""
    )
    for part in tail.split(";"):
        key, _, val = part.strip().partition("=")
        if key.lower() == name:
            return val
    return None


def _uri_host(value: str) -> str:
    uri = value.split("<", 1)[1].split(">", 1)[0] if "<" in value else value.split(";", 1)[0]
    rest = uri.split(":", 1)[1].split(";", 1)[0].rsplit("@", 1)[-1]
    return rest[: rest.index("]") + 1] if rest.startswith("[") else rest.split(":", 1)[0]


def expected_values(data: bytes) -> tuple:
    """The nine values (see :mod:`benchmarks.peers`) of one message."""
    head = data.split(b"\r\n\r\n", 1)[0].decode("utf-8")
    first: dict[str, str] = {}
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        first.setdefault(COMPACT.get(name, name), value.strip())
    seq, method = first["cseq"].split()
    via = first["via"]
    return (
        _param(via, "branch"),
        _param(first["from"], "tag"),
        _param(first["to"], "tag"),
        first["call-id"],
        int(seq),
        method,
        _uri_host(first["contact"]) if "contact" in first else None,
        int(first["max-forwards"]) if "max-forwards" in first else None,
        int(first["content-length"]),
    )
