"""trio-sip itself (Contract 1 in docs/architecture.md)."""

from __future__ import annotations

from benchmarks.peers import Adapter


def load() -> Adapter:
    import trio_sip

    try:
        parse_message = trio_sip.parse_message
    except AttributeError:  # not re-exported yet: the core module directly
        from trio_sip.proto.parse import parse_message

    def read(m):
        contacts = m.contacts
        vias = m.vias
        return (
            vias[0].branch if vias else None,
            m.from_.tag,
            m.to.tag,
            m.call_id,
            m.cseq.seq,
            m.cseq.method,
            contacts[0].uri.host if contacts else None,
            m.max_forwards,
            m.content_length,
        )

    return Adapter(
        name="trio-sip",
        distribution="trio-sip",
        parse=parse_message,
        read=read,
        serialize=bytes,
        errors=(trio_sip.ParseError,),
        # bytes() of an unedited parsed message is the received header bytes + body; evolve()
        # with no change gives the same message without them, so bytes() runs the writer.
        full_write=lambda m: m.evolve(),
        notes=["serialise: bytes() of an unedited parsed message returns the received bytes"],
    )
