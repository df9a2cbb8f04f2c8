"""aiosipua (PyPI ``aiosipua``): ``SipMessage.parse(bytes)``, typed properties parsed on access
(``via``, ``from_addr``, ``to_addr``, ``cseq``, ``contact``, ``content_length``),
``bytes(message)``."""

from __future__ import annotations

from benchmarks.peers import Adapter


def load() -> Adapter:
    from aiosipua import SipMessage

    def read(m):
        cseq = m.cseq
        contact = m.contact
        mf = m.get_header("Max-Forwards")
        return (
            m.via[0].branch,
            m.from_addr.tag,
            m.to_addr.tag,
            m.call_id,
            cseq.seq,
            cseq.method,
            contact[0].uri.host if contact else None,
            int(mf) if mf is not None else None,
            m.content_length,
        )

    return Adapter(
        name="aiosipua",
        distribution="aiosipua",
        parse=SipMessage.parse,
        read=read,
        serialize=bytes,
        errors=(ValueError,),  # documented: "Raises: ValueError"
        notes=["no typed Max-Forwards accessor: the adapter calls int() on the header text"],
    )
