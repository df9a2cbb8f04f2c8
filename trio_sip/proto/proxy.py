# Proxy decisions, sans-I/O: RFC 3261 §16.3 (request validation), §16.4 (route information
# preprocessing), §16.5 (request targets), §16.6 (request forwarding), §16.7 (response
# processing, best response), §16.10 (CANCEL) and §16.11 (stateless proxies).
#
# Theory of operation: every function takes the message and a ProxyIdentity (the domains we
# are responsible for, the (host, port) pairs we listen on, the Proxy-Require extensions we
# support) and returns a value; the shell does the sending.
#
# * validate_request (§16.3), in the RFC's order: "reasonable syntax", URI scheme (416),
#   Max-Forwards ("If the Max-Forwards value is zero, the element MUST NOT forward the request.
#   If the request was for OPTIONS, the element MAY act as the final recipient and respond per
#   Section 11. Otherwise, the element MUST return a 483"), loop detection (482), Proxy-Require
#   (420 with Unsupported).
# * Loops (§16.3 step 4, §16.6 step 8): our branches are ``z9hG4bK<unique>.<loop>``, where
#   <loop> hashes "all information affecting processing of a request": the Request-URI as
#   received, To tag, From tag, Call-ID, CSeq number, the topmost Via (sent-by and branch) and
#   the Route values. "The request method MUST NOT be included", so a CANCEL and the ACK for a
#   non-2xx get the INVITE's branch; Proxy-Require and Proxy-Authorization are left out for the
#   same reason (§9.1 does not make a CANCEL carry them). A request that comes back with one of
#   our Vias is a loop when the hash of the request, with the Via that was topmost when we first
#   saw it (the one below ours), equals that Via's <loop> part; otherwise it spirals.
# * preprocess_routes (§16.4): a Request-URI we put in a Record-Route (a strict router sent it)
#   is replaced by the last Route value; a maddr naming us is stripped with the port and
#   transport; "If the first value in the Route header field indicates this proxy, the proxy
#   MUST remove that value from the request": every leading value naming us goes in one pass
#   (a Route set pointing back at us costs one pass, not one hop per value). ``own_route``
#   is the value that named us, whose ``dlg`` token ties an in-dialog request to a dialog we
#   record-routed (``route_token_ok``).
# * determine_targets (§16.5): an maddr, or a domain we are not responsible for, makes the
#   Request-URI the only target; otherwise the location service's contacts are the targets;
#   none: 480 ("SHOULD be the 480"), whether or not the address-of-record ever registered (a
#   404 for the never-registered would let anyone enumerate users).
# * forward_request (§16.6 steps 1-7): copy, Request-URI = target, Max-Forwards decremented
#   (70 when absent), Record-Route ``<sip:us;lr>`` for dialog-creating requests, the strict-route
#   fix-up (first Route without ``lr``: "place the Request-URI into the Route header field as
#   the last value ... place the first Route header field value into the Request-URI"), and the
#   next-hop URI (step 7: the first Route, else the Request-URI). The shell adds the Via (step 8)
#   with ``proxy_branch`` (stateful: random unique part) or ``stateless_branch`` (§16.11: "the
#   branch ... must be the same for retransmissions": derived from the received top Via);
#   given the site's secret, both end the unique part with a MAC over the received top Via,
#   and ``branch_belongs`` checks it on a response before it is forwarded upstream.
# * ResponseContext (§16.7): strips our Via, forwards provisionals other than 100 and every 2xx
#   to an INVITE at once; when every branch has a final response it picks the best: "MUST
#   choose from the 6xx class responses if any exist ... SHOULD choose from the lowest response
#   class ... give preference to ... 401, 407, 415, 420, and 484"; a chosen 401/407 collects
#   every WWW-Authenticate / Proxy-Authenticate of the other 401/407s; "If the only response
#   that was received is a 503, the proxy SHOULD generate a 500". A timed-out branch counts as a
#   408, a transport error as a 503 (§16.8, §16.9). A forwarded final response, a 6xx, and a
#   received CANCEL (§16.10) cancel the pending branches: at once when a provisional arrived,
#   else when one does (§9.1: "MUST wait for the arrival of a provisional response").
#
# Layout: this module is the public face; the code is split by concern into
# ``proxy_request.py`` (§16.3-16.5: ProxyIdentity, validation and loops, Route preprocessing,
# targets), ``proxy_forward.py`` (§16.6 and §16.11: forwarding, Record-Route, branches) and
# ``proxy_response.py`` (§16.7-16.10: the response context).
"""Proxy decisions: validation, routing, targets, forwarding, best response, branches."""

from __future__ import annotations

from .proxy_forward import DIALOG_CREATING as DIALOG_CREATING
from .proxy_forward import Forwarded as Forwarded
from .proxy_forward import branch_belongs as branch_belongs
from .proxy_forward import forward_request as forward_request
from .proxy_forward import proxy_branch as proxy_branch
from .proxy_forward import record_route_value as record_route_value
from .proxy_forward import route_token as route_token
from .proxy_forward import route_token_ok as route_token_ok
from .proxy_forward import stateless_branch as stateless_branch
from .proxy_request import Lookup as Lookup
from .proxy_request import ProxyIdentity as ProxyIdentity
from .proxy_request import Respond as Respond
from .proxy_request import determine_targets as determine_targets
from .proxy_request import find_loop as find_loop
from .proxy_request import is_own_uri as is_own_uri
from .proxy_request import is_own_via as is_own_via
from .proxy_request import loop_hash as loop_hash
from .proxy_request import own_route as own_route
from .proxy_request import preprocess_routes as preprocess_routes
from .proxy_request import validate_request as validate_request
from .proxy_response import Cancel as Cancel
from .proxy_response import Forward as Forward
from .proxy_response import ResponseContext as ResponseContext
from .proxy_response import strip_own_via as strip_own_via

__all__ = [
    "DIALOG_CREATING",
    "Cancel",
    "Forward",
    "Forwarded",
    "Lookup",
    "ProxyIdentity",
    "Respond",
    "ResponseContext",
    "branch_belongs",
    "determine_targets",
    "find_loop",
    "forward_request",
    "is_own_uri",
    "is_own_via",
    "loop_hash",
    "own_route",
    "preprocess_routes",
    "proxy_branch",
    "record_route_value",
    "route_token",
    "route_token_ok",
    "stateless_branch",
    "strip_own_via",
    "validate_request",
]
