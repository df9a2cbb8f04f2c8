# Identifiers a UA invents: RFC 3261 §8.1.1.7 (Via branch: unique per transaction, starting
# with the magic cookie "z9hG4bK"), §19.3 (tags: at least 32 bits of randomness) and §8.1.1.4
# (Call-ID: globally unique, usually random@host).
#
# Theory of operation: every function takes the random source as an argument, so the core
# stays deterministic under test (seed a ``random.Random``) while production passes a
# ``random.SystemRandom``. Values use a URL- and token-safe alphabet, so they need no quoting
# in any header or URI.
"""Random Via branches, tags and Call-IDs from an injected ``random.Random``."""

from __future__ import annotations

import random

from .fields import MAGIC_COOKIE

__all__ = ["new_branch", "new_call_id", "new_tag"]

_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def _word(rng: random.Random, length: int) -> str:
    # One draw of 6 bits per character (one ``os.urandom`` call for a SystemRandom, not one
    # per character), written in base 62: ``length`` characters carry log2(62) ~ 5.95 bits each.
    n = rng.getrandbits(6 * length)
    out = []
    for _ in range(length):
        n, r = divmod(n, 62)
        out.append(_ALPHABET[r])
    return "".join(out)


def new_branch(rng: random.Random) -> str:
    """A Via branch: the magic cookie plus 16 random characters (~95 bits)."""
    return MAGIC_COOKIE + _word(rng, 16)


def new_tag(rng: random.Random) -> str:
    """A From/To tag: 10 random characters (~59 bits, §19.3 asks for 32)."""
    return _word(rng, 10)


def new_call_id(rng: random.Random, host: str | None = None) -> str:
    """A Call-ID: 20 random characters, ``@host`` appended when a host is given."""
    word = _word(rng, 20)
    return f"{word}@{host}" if host else word
