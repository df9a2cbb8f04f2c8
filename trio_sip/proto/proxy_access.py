# Who may use the proxy for what, sans-I/O: RFC 3261 §22.3 (a proxy challenges with 407 and
# Proxy-Authenticate), §22.1 (ACK and CANCEL cannot be challenged), §21.4.4 (403:
# "Authorization will not help") and §26.1.5 (elements that anyone can make send traffic
# anywhere become amplifiers). A proxy that forwards anything for anyone is also the classic
# toll-fraud relay: calls to foreign domains and gateways billed to the site.
#
# Theory of operation: ``AccessPolicy.decide`` looks at one request after Route preprocessing
# (§16.4) and says ALLOW, AUTHENTICATE (challenge with 407 unless Proxy-Authorization proves a
# user of ours) or FORBID (403). Its inputs:
#
# * the source address: ``trusted`` networks (gateways, peer sites, test rigs) are allowed
#   everything without authentication;
# * whether the request belongs to a dialog we record-routed (a To tag and our Route with a
#   token that matches its Call-ID and tags, ``proxy_forward.route_token_ok``): allowed, it
#   goes where the dialog's route set and remote target say;
# * the destination: *local* when no Route is left and the Request-URI is in our domain (the
#   location service gives the targets), else *foreign* (another domain, an IP address, a
#   ``tel:`` URI, a Route to another element), and then whether it is one of our ``peers``;
# * the From domain: *local* when it is one of ours (a user of ours, or someone claiming to
#   be one).
#
# Relaying to a foreign destination is governed by ``relay``: "none" (the default) forbids it,
# "peers" allows only domains in ``peers``, "any" allows all. A forbidden relay is answered 403
# rather than 404: §16.5 makes a foreign Request-URI the target of a proxy (it does handle
# that domain, by forwarding), so refusing is policy, which is what 403 means ("The server
# understood the request, but is refusing to fulfill it. Authorization will not help, and the
# request SHOULD NOT be repeated", §21.4.4); 404 would tell the caller that the user does not
# exist ("definitive information that the user does not exist", §21.4.5), which is neither true
# nor ours to say.
#
# Authentication applies when the site has credentials, per ``proxy_auth``: "all" (the default)
# challenges every request from an untrusted source that is not in a dialog of ours; "local"
# only those whose From is in our domain or that would be relayed (other domains may call our
# users: open federation, as a default Kamailio configuration does); "none" never (only the
# registrar authenticates). A site without credentials authenticates nobody. An authenticated
# user whose From is in our domain must be that From's user (403 otherwise).
"""Proxy access policy: trusted sources, relaying, which requests are challenged."""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Iterable

import attrs

from .errors import ConfigError

__all__ = ["Access", "AccessPolicy"]

RELAY_MODES = ("none", "peers", "any")
AUTH_MODES = ("all", "local", "none")

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Access(enum.Enum):
    """What :meth:`AccessPolicy.decide` says about a request."""

    ALLOW = "allow"
    AUTHENTICATE = "authenticate"
    FORBID = "forbid"


def _networks(values: Iterable[str]) -> tuple[_Network, ...]:
    out = []
    for value in values:
        try:
            out.append(ipaddress.ip_network(str(value).strip("[]"), strict=False))
        except ValueError:
            raise ConfigError(
                "trusted", value, "IP addresses or networks (e.g. '10.0.0.5', '10.1.0.0/16')"
            ) from None
    return tuple(out)


@attrs.frozen(slots=True)
class AccessPolicy:
    """``trusted`` source networks, the ``relay`` mode and the ``proxy_auth`` mode (see the
    module comment). Build it with :meth:`make` to have the values checked."""

    trusted: tuple[_Network, ...] = ()
    relay: str = "none"
    proxy_auth: str = "all"

    @classmethod
    def make(
        cls, trusted: Iterable[str] = (), relay: str = "none", proxy_auth: str = "all"
    ) -> AccessPolicy:
        """Check and build; bad values raise ConfigError naming the setting."""
        if isinstance(trusted, str):
            trusted = [trusted]
        if relay not in RELAY_MODES:
            raise ConfigError("relay", relay, " or ".join(f'"{m}"' for m in RELAY_MODES))
        if proxy_auth not in AUTH_MODES:
            raise ConfigError("proxy_auth", proxy_auth, " or ".join(f'"{m}"' for m in AUTH_MODES))
        return cls(_networks(trusted), relay, proxy_auth)

    def is_trusted(self, source: str | None) -> bool:
        """True if ``source`` (an IP address) is in a trusted network."""
        if source is None or not self.trusted:
            return False
        try:
            address = ipaddress.ip_address(source.strip("[]"))
        except ValueError:
            return False
        return any(address in network for network in self.trusted)

    def decide(
        self,
        *,
        source: str | None,
        in_dialog: bool,
        local_destination: bool,
        peer_destination: bool,
        local_from: bool,
        authenticating: bool,
    ) -> Access:
        """ALLOW, AUTHENTICATE or FORBID one request (see the module comment).
        ``authenticating``: the site has credentials."""
        if in_dialog or self.is_trusted(source):
            return Access.ALLOW
        relay_ok = self.relay == "any" or (self.relay == "peers" and peer_destination)
        if not local_destination and not relay_ok:
            return Access.FORBID
        if not authenticating or self.proxy_auth == "none":
            return Access.ALLOW
        if self.proxy_auth == "all" or local_from or not local_destination:
            return Access.AUTHENTICATE
        return Access.ALLOW
