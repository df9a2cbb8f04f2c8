"""opensip (PyPI ``opensip``): ``opensip.message.parse_message(bytes)`` keeps header values as
text; structured values come from ``opensip.headers`` (``parse_via_list``,
``parse_address_list``), the way ``opensip.ua`` reads them.  Serialising is ``encode()``."""

from __future__ import annotations

from benchmarks.peers import Adapter


def load() -> Adapter:
    from opensip.exceptions import SIPParseError
    from opensip.headers import NameAddr, parse_address_list, parse_via_list
    from opensip.message import parse_message

    def read(m):
        h = m.headers
        seq, method = m.cseq
        contact = h.get("Contact")
        mf = h.get("Max-Forwards")
        cl = h.get("Content-Length")
        return (
            parse_via_list(h.get("Via"))[0].params.get("branch"),
            NameAddr.parse(h.get("From")).params.get("tag"),
            NameAddr.parse(h.get("To")).params.get("tag"),
            m.call_id,
            seq,
            method,
            parse_address_list(contact)[0].uri.host if contact else None,
            int(mf) if mf is not None else None,
            int(cl) if cl is not None else None,
        )

    return Adapter(
        name="opensip",
        distribution="opensip",
        parse=parse_message,
        read=read,
        serialize=lambda m: m.encode(),
        errors=(SIPParseError,),
        notes=["Max-Forwards and Content-Length are text: the adapter calls int()"],
    )
