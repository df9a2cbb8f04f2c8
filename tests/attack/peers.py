"""The legitimate traffic around a fuzz run: a registration and real calls, made with trio-sip's
own user agent over real sockets (each function runs its own ``trio.run``, bounded by
``timeout`` seconds)."""

from __future__ import annotations

import random

import trio

from trio_sip.proto.auth import CredentialStore, DigestClient
from trio_sip.proto.message import Request
from trio_sip.proto.target import Target
from trio_sip.stack import open_stack
from trio_sip.ua import open_user_agent

__all__ = ["place_call", "register_binding"]


async def _call(
    destination: str, source: str, aor: str, outbound_proxy: str | None, password: str | None
) -> str:
    user = aor.split(":", 1)[1].split("@", 1)[0]
    credentials = CredentialStore(default=(user, password)) if password else None
    async with (
        open_user_agent([("UDP", source, 0)], aor=aor, credentials=credentials) as ua,
        ua.call(destination, outbound_proxy=outbound_proxy) as call,
    ):
        await call.wait_answered()
        await call.hangup()
        ended = await call.wait_ended()
    return f"answered, ended ({ended.reason.value})"


def place_call(
    destination: str,
    source: str,
    *,
    aor: str = "sip:fuzzer@127.0.0.2",
    outbound_proxy: str | None = None,
    password: str | None = None,
    timeout: float = 30.0,
) -> str:
    """A call to ``destination`` from ``source`` (an IP), answered and hung up; a line saying
    how it went. Raises if it was not answered within ``timeout`` seconds."""

    async def run() -> str:
        with trio.fail_after(timeout):
            return await _call(destination, source, aor, outbound_proxy, password)

    return trio.run(run)


async def _register(
    registrar: tuple[str, int],
    source: str,
    user: str,
    password: str,
    domain: str,
    contact: str,
    call_id: str,
) -> int:
    async with open_stack([("UDP", source, 0)]) as stack:
        to = Target("UDP", *registrar)

        def register(seq: int) -> Request:
            return Request(
                "REGISTER",
                f"sip:{domain}",
                [
                    ("Max-Forwards", "70"),
                    ("From", f"<sip:{user}@{domain}>;tag=fuzz-reg"),
                    ("To", f"<sip:{user}@{domain}>"),
                    ("Call-ID", call_id or f"fuzz-reg-{user}@{source}"),
                    ("CSeq", f"{seq} REGISTER"),
                    ("Contact", f"<{contact}>"),
                    ("Expires", "3600"),
                ],
            )

        first = await stack.request(register(1), to)
        if first.status_code != 401:
            return first.status_code
        client = DigestClient(CredentialStore(default=(user, password)), random.Random())
        client.handle_challenge(401, first.www_authenticate, sent=[])
        second = register(2)
        for name, value in client.authorization_headers("REGISTER", second.uri_text):
            second = second.evolve(headers=second.headers.append(name, value))
        return (await stack.request(second, to)).status_code


def register_binding(
    registrar: tuple[str, int],
    source: str,
    *,
    user: str,
    password: str,
    domain: str,
    contact: str,
    timeout: float = 30.0,
    call_id: str = "",
) -> int:
    """Register ``contact`` for ``user`` with digest (401, then credentials), for an hour; the
    final status (200 when it worked). The binding stays (no unregistration). Another
    registration of the same binding needs another ``call_id`` (its CSeq starts at 1 again:
    §10.3 step 7 refuses it in the same Call-ID)."""

    async def run() -> int:
        with trio.fail_after(timeout):
            return await _register(registrar, source, user, password, domain, contact, call_id)

    return trio.run(run)
