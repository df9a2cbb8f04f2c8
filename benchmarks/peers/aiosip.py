"""aiosip (PyPI ``aiosip``, last release 0.2.0 in 2017): its parser is
``aiosip.message.Message.from_raw_message``.

It does not import on Python 3.11: the package uses ``@asyncio.coroutine`` (removed in 3.11) and
``collections.MutableMapping`` (removed in 3.10), and ``aiosip.message`` itself does
``import aiosip``, so the parser cannot be loaded on its own.  ``load()`` tries anyway, so the
reason printed is the real exception of this run.
"""

from __future__ import annotations

from benchmarks.peers import Adapter, host_of_uri


def load() -> Adapter:
    from aiosip.message import Message

    def read(m):  # pragma: no cover - unreachable on Python >= 3.11
        h = m.headers
        cseq_num, cseq_method = h["CSeq"].split()
        contact = h.get("Contact")
        mf = h.get("Max-Forwards")
        return (
            m.from_details["params"].get("tag"),
            m.from_details["params"].get("tag"),
            m.to_details["params"].get("tag"),
            h["Call-ID"],
            int(cseq_num),
            cseq_method,
            host_of_uri(contact) if contact else None,
            int(mf) if mf else None,
            int(h.get("Content-Length", 0)),
        )

    return Adapter(
        name="aiosip",
        distribution="aiosip",
        parse=Message.from_raw_message,
        read=read,
        serialize=lambda m: str(m).encode(),
        errors=(ValueError,),
    )
