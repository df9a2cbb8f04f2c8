"""Digest authentication for SIP (RFC 3261 §22, RFC 7616, RFC 8760), sans-I/O.

Theory of operation
-------------------
A server challenges a request with 401 + ``WWW-Authenticate`` (a UAS or registrar) or
407 + ``Proxy-Authenticate`` (a proxy); the client repeats the request with ``Authorization``
or ``Proxy-Authorization`` "for each realm" it was challenged for (§22.3).

* Header values: ``<scheme> <auth-param> *("," <auth-param>)``, ``name = token /
  quoted-string``; names are case-insensitive, quoted strings may contain ``\\"`` escapes.
  :func:`parse_challenge` / :func:`parse_credentials` keep every parameter (unknown ones too)
  in order, so ``str()`` gives the header value back; malformed values raise
  :class:`~trio_sip.proto.errors.ParseError` (400).
* The response (RFC 7616 §3.4.1), with ``H`` the algorithm's hash in lower-case hex::

      A1 = username ":" realm ":" password              (-sess: H(A1) ":" nonce ":" cnonce)
      A2 = method ":" uri                               (auth-int: ... ":" H(body))
      response = H(H(A1) ":" nonce ":" nc ":" cnonce ":" qop ":" H(A2))
      response = H(H(A1) ":" nonce ":" H(A2))            (no qop: RFC 2069 compatibility)

* Algorithms MD5, SHA-256 and SHA-512-256, each also ``-sess``; with several challenges for
  one realm "the UAC MUST use the topmost header field value that it supports", preferring
  SHA-512-256, then SHA-256, then MD5 (RFC 8760 §2.4).
* qop: ``auth`` when offered, else ``auth-int`` (then the body is hashed into A2).
* "nc ... MUST be incremented for each request that uses the same nonce" (RFC 7616 §3.4);
  cnonces come from an injected :class:`random.Random`. The client keeps the challenge, so
  later requests (REGISTER refreshes) are authorised up front with the next nonce-count.
* RFC 7616 §3.3: ``stale=true`` means the nonce expired but the credentials were good: retry
  with the new nonce "without re-prompting the user". A new challenge for a realm the request
  already carried credentials for, without stale=true, means the credentials were refused.

Servers use :meth:`Challenge.digest` to build challenges, :func:`verify` to check answers and
:func:`make_nonce` / :func:`check_nonce` for stateless, HMAC-protected, time-limited nonces.

Layout: this module is the public face; the code is split by concern into
:mod:`~trio_sip.proto.auth_values` (header values: parse and format),
:mod:`~trio_sip.proto.auth_digest` (the arithmetic, :func:`verify`, nonces) and
:mod:`~trio_sip.proto.auth_client` (:class:`CredentialStore`, :class:`DigestClient`).
"""

from __future__ import annotations

from .auth_client import CredentialStore as CredentialStore
from .auth_client import DigestClient as DigestClient
from .auth_digest import ALGORITHMS as ALGORITHMS
from .auth_digest import Ha1 as Ha1
from .auth_digest import NonceStatus as NonceStatus
from .auth_digest import check_nonce as check_nonce
from .auth_digest import choose_qop as choose_qop
from .auth_digest import make_credentials as make_credentials
from .auth_digest import make_nonce as make_nonce
from .auth_digest import nonce_issued as nonce_issued
from .auth_digest import verify as verify
from .auth_values import AuthenticationFailed as AuthenticationFailed
from .auth_values import AuthParam as AuthParam
from .auth_values import Challenge as Challenge
from .auth_values import Credentials as Credentials
from .auth_values import parse_challenge as parse_challenge
from .auth_values import parse_credentials as parse_credentials

__all__ = [
    "ALGORITHMS",
    "AuthParam",
    "AuthenticationFailed",
    "Challenge",
    "CredentialStore",
    "Credentials",
    "DigestClient",
    "Ha1",
    "NonceStatus",
    "check_nonce",
    "choose_qop",
    "make_credentials",
    "make_nonce",
    "nonce_issued",
    "parse_challenge",
    "parse_credentials",
    "verify",
]
