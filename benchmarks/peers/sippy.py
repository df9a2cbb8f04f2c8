"""sippy (PyPI ``sippy``), the SIP stack of the Sippy B2BUA.

Parsing is what ``SipTransactionManager.handleIncoming`` does with a datagram: decode it to
``str``, then ``SipResponse(data)`` if it starts with ``SIP/2.0 `` else ``SipRequest(data)``.
Header bodies are parsed lazily by ``getHFBody``.  Serialising is ``localStr()`` (what the
transaction manager sends), encoded to bytes.
"""

from __future__ import annotations

from benchmarks.peers import Adapter


def load() -> Adapter:
    from sippy.SipRequest import SipRequest
    from sippy.SipResponse import SipResponse

    def parse(data):
        text = data.decode()
        if text.startswith("SIP/2.0 "):
            return SipResponse(text)
        return SipRequest(text)

    def read(m):
        cseq = m.getHFBody("cseq")
        contact = m.getHFBody("contact").getUrl().host if m.countHFs("contact") else None
        mf = m.getHFBody("max-forwards").getNum() if m.countHFs("max-forwards") else None
        # sippy keeps Content-Length aside from the header list and regenerates it on output;
        # the parsed header object is only reachable through the private attribute.
        cl = m._SipMsg__content_length
        return (
            m.getHFBody("via").getBranch(),
            m.getHFBody("from").getTag(),
            m.getHFBody("to").getTag(),
            m.getHFBody("call-id").body,
            cseq.getCSeqNum(),
            cseq.getCSeqMethod(),
            contact,
            mf,
            cl.getBody().number if cl is not None else None,
        )

    def serialize(m):
        return m.localStr().encode()

    return Adapter(
        name="sippy",
        distribution="sippy",
        parse=parse,
        read=read,
        serialize=serialize,
        # sippy raises bare Exception for missing headers and its own transaction manager
        # catches Exception around parsing: that is its rejection contract.
        errors=(Exception,),
        notes=["Content-Length read from the private SipMsg.__content_length header object"],
    )
