"""pyVoIP (PyPI ``pyVoIP``).

``pyVoIP.SIP`` cannot be imported first (circular import with ``pyVoIP.VoIP``); its users import
``pyVoIP.VoIP`` (``VoIPPhone``), which loads it, so the adapter does the same.  ``SIPMessage(data)``
parses eagerly into dicts.  pyVoIP 1.6.8 only accepts INVITE/ACK/BYE/CANCEL requests
(``pyVoIP.SIPCompatibleMethods``) and has no message serialiser: it builds outgoing messages as
strings in ``SIPClient.gen_*``.
"""

from __future__ import annotations

from benchmarks.peers import Adapter, host_of_uri


def load() -> Adapter:
    import pyVoIP.VoIP  # noqa: F401  (must come before pyVoIP.SIP)
    from pyVoIP.SIP import SIPMessage, SIPParseError

    def read(m):
        h = m.headers
        contact = h.get("Contact")
        mf = h.get("Max-Forwards")
        cseq = h["CSeq"]
        return (
            h["Via"][0].get("branch"),
            h["From"]["tag"] or None,
            h["To"]["tag"] or None,
            h["Call-ID"],
            int(cseq["check"]),
            cseq["method"],
            host_of_uri(contact.split("<", 1)[-1].split(">", 1)[0]) if contact else None,
            int(mf) if mf is not None else None,
            h.get("Content-Length"),
        )

    return Adapter(
        name="pyVoIP",
        distribution="pyVoIP",
        parse=SIPMessage,
        read=read,
        serialize=None,
        no_serialize_reason="no message serialiser (outgoing messages are built as strings)",
        errors=(SIPParseError,),
        notes=[
            "Contact is kept as raw text: the adapter extracts the URI host itself",
            "Max-Forwards and CSeq number are strings: the adapter calls int()",
        ],
    )
