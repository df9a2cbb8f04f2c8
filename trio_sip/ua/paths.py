# The configured proxies of a call, and the destinations of seed 002's cycling rows.
#
# Seed 002: the 200 OK to an initial INVITE, BYE and CANCEL "are retried continuously for 32
# seconds total (cycling through the list of configured proxies)", only when
# sip_transaction_timeout < 32000. What "the list of configured proxies" is for us
# (docs/failover.md, "The configured proxies"):
#
# * a UserAgent: ``open_user_agent(proxies=[...])``, or ``proxies=`` of one ``ua.call`` or
#   ``IncomingCall.accept`` -- SIP URIs (each resolved by RFC 3263: every address of the name,
#   as seed 002 configures a proxy cluster as one FQDN with several A records) or Targets;
# * an Endpoint: the first hop of the call's connection (its outbound proxy, else its server),
#   its other outbound proxies, then the first hops of the other connections in configuration
#   order (seed 001: "proxy0 and proxy1 are equivalent to the SIP Endpoint SDK connections").
#
# A request or response in a cycling row goes first where RFC 3261 sends it (the 2xx: the
# arrival flow, §18.2.2; an ACK or BYE: the dialog's next hop, §12.2.1.1; a CANCEL: where its
# INVITE went, §9.1), then to the other addresses of that hop, then to the configured proxies'
# addresses, without duplicates. A proxy that does not resolve is left out (logged).
"""The configured proxies (``ProxyList``) and the cycle lists built from them."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from trio_sip.failover import Destination, FailoverClient
from trio_sip.proto.errors import SipError
from trio_sip.proto.target import Target
from trio_sip.proto.uri import SipUri

__all__ = ["ProxyList", "cycle_targets", "cycle_targets_nowait", "merge"]

logger = logging.getLogger("trio_sip.ua")

#: The configured proxies: SIP URIs (``str`` or ``SipUri``, each resolved per RFC 3263) or
#: Targets, in order of preference.
ProxyList = Sequence[SipUri | str | Target]


def merge(groups: Iterable[Iterable[Target]], *, exclude: Iterable[Target] = ()) -> list[Target]:
    """The targets of ``groups`` in order, each (transport, address, port) once, none of
    ``exclude``."""
    seen = {t.key for t in exclude}
    out: list[Target] = []
    for group in groups:
        for target in group:
            if target.key not in seen:
                seen.add(target.key)
                out.append(target)
    return out


def cycle_targets_nowait(
    client: FailoverClient, sources: Sequence[Destination]
) -> list[Target] | None:
    """:func:`cycle_targets` without DNS, or None when a name must be looked up first."""
    groups: list[list[Target]] = []
    for source in sources:
        try:
            found = client.targets_nowait(source)
        except SipError as exc:
            logger.info("configured proxy %s left out: %s", source, exc)
            continue
        if found is None:
            return None
        groups.append(found)
    return merge(groups)


async def cycle_targets(client: FailoverClient, sources: Sequence[Destination]) -> list[Target]:
    """Every target of every source (RFC 3263; each source's own order by the blacklist),
    in order, without duplicates; a source that does not resolve is left out."""
    groups: list[list[Target]] = []
    for source in sources:
        try:
            groups.append(await client.targets(source))
        except SipError as exc:
            logger.info("configured proxy %s left out: %s", source, exc)
    return merge(groups)
