"""aiosipua (PyPI ``aiosipua``): ``SipMessage.parse(bytes)``, typed properties parsed on access
(``via``, ``from_addr``, ``to_addr``, ``cseq``, ``contact``, ``content_length``),
``bytes(message)``."""

from __future__ import annotations

from benchmarks.peers import Adapter


def load() -> Adapter:
    from aiosipua import SipMessage

    def read(m):
        # from_addr, to_addr and cseq are Optional in aiosipua's API: None when absent.
        cseq = m.cseq
        contact = m.contact
        mf = m.get_header("Max-Forwards")
        fr, to = m.from_addr, m.to_addr
        vias = m.via
        return (
            vias[0].branch if vias else None,
            fr.tag if fr is not None else None,
            to.tag if to is not None else None,
            m.call_id,
            cseq.seq if cseq is not None else None,
            cseq.method if cseq is not None else None,
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
