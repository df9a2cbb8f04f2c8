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
        # Headers.get() and Message.cseq return None for an absent header.
        h = m.headers
        seq, method = m.cseq or (None, None)
        contact = h.get("Contact")
        mf = h.get("Max-Forwards")
        cl = h.get("Content-Length")
        fr, to = h.get("From"), h.get("To")
        via = h.get("Via")
        return (
            parse_via_list(via)[0].params.get("branch") if via else None,
            NameAddr.parse(fr).params.get("tag") if fr is not None else None,
            NameAddr.parse(to).params.get("tag") if to is not None else None,
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
