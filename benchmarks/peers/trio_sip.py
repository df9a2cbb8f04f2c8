"""trio-sip itself (Contract 1 in docs/architecture.md), pure-Python and mypyc-compiled builds.

``trio-sip`` is the pure-Python core: the worker runs from the repository root, so it imports
the source tree.  ``trio-sip-mypyc`` is the compiled core (``TRIO_SIP_COMPILE=1 pip install .``,
docs/benchmarks.md): its worker keeps the repository root off the front of ``sys.path``
so the *installed* package is imported.  Each adapter checks ``trio_sip.proto.is_compiled()``
and refuses to run (reported as unavailable) if the build is not the one its name says.
"""

from __future__ import annotations

from benchmarks.peers import Adapter


def load(compiled: bool = False) -> Adapter:
    import trio_sip
    from trio_sip.proto import is_compiled

    if is_compiled() is not compiled:
        from trio_sip.proto import parse

        want = "the mypyc-compiled core" if compiled else "the pure-Python core"
        hint = " (build it: TRIO_SIP_COMPILE=1 pip install .)" if compiled else ""
        raise RuntimeError(f"needs {want}{hint}; imported {parse.__file__}")

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
        name="trio-sip-mypyc" if compiled else "trio-sip",
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
