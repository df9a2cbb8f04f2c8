"""sipmessage (PyPI ``sipmessage``): ``Message.parse(bytes)``, typed properties parsed on access,
``bytes(message)``."""

from __future__ import annotations

from benchmarks.peers import Adapter


def load() -> Adapter:
    from sipmessage import Message

    def read(m):
        cseq = m.cseq
        contact = m.contact
        vias = m.via
        return (
            vias[0].parameters.get("branch") if vias else None,
            m.from_address.parameters.get("tag"),
            m.to_address.parameters.get("tag"),
            m.call_id,
            cseq.sequence,
            cseq.method,
            contact[0].uri.host if contact else None,
            m.max_forwards,
            m.content_length,
        )

    return Adapter(
        name="sipmessage",
        distribution="sipmessage",
        parse=Message.parse,
        read=read,
        serialize=bytes,
        errors=(ValueError,),  # documented: "If parsing fails, a ValueError is raised."
    )
