# A location store in Redis, shared by the registrar/proxy nodes of a cluster (issue #16,
# docs/scaling.md). RFC 3261 §10.3 step 7: a REGISTER's binding updates "MUST be committed
# (that is, made visible to the proxy or redirect server) if and only if all binding updates
# and additions succeed"; here they must also survive two nodes handling REGISTERs for the
# same AOR at once.
#
# Theory of operation. Data, per AOR and for the whole store (prefix ``trio-sip:``):
#
# * ``trio-sip:aor:<aor>``: a hash, one field per binding (contact key -> JSON of contact,
#   expiry in ms of the server's clock, Call-ID, CSeq, branch, q) and ``_v``, the version:
#   a random token written with every change. The key expires (PEXPIREAT) with its latest
#   binding, so Redis itself forgets an AOR whose bindings have all expired.
# * ``trio-sip:bindings``: a sorted set of every binding (``<aor>\n<contact key>``) scored by
#   its expiry: the count that ``Limits.max_bindings`` bounds (ZCOUNT of what has not
#   expired; the expired are removed on every commit).
#
# Reads run a script that takes the server's TIME and the hash in one step: a binding whose
# expiry has passed on the server's clock is never returned, by any node, whatever the node's
# clock says. Nothing is cached in the node: every lookup asks Redis.
#
# Writes are compare-and-set, so the §10.3 rules run in Python (``proto.location``) and never
# race: ``update`` reads the AOR's bindings and version, runs the pure ``change`` on them, and
# commits with a script that replaces the AOR's bindings only if the version is still the one
# it read (scripts run atomically: no other command runs in between). Another node's commit in
# between changes the version: the commit is refused and ``update`` starts again from what is
# there now (at most ``attempts`` times; then 503). A version is a fresh random token rather
# than a counter, so an AOR that expired and was registered again is never taken for the one
# that was read (no ABA).
#
# Failures: every command is bounded by ``timeout`` seconds; a refused or lost connection, a
# timeout or a Redis error raise StoreUnavailable (the registrar and the proxy answer 503 with
# Retry-After). coredis opens a new connection for the next command, so a node recovers by
# itself when Redis comes back; the scripts are loaded again if Redis lost them.
"""RedisLocationStore (coredis, under Trio through anyio) and open_redis_store."""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, cast

import trio

if TYPE_CHECKING:  # an optional dependency (the redis extra)
    import coredis

from ..proto.errors import ConfigError
from ..proto.location import Binding, Planned, by_q
from ._store import Change, StoreUnavailable

__all__ = ["RedisLocationStore", "open_redis_store"]

#: KEYS: the AOR's hash, the index. ARGV[1] "1": count the index too.
_READ = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local total = -1
if ARGV[1] == '1' then total = redis.call('ZCOUNT', KEYS[2], '(' .. now, '+inf') end
return {now, total, redis.call('HGETALL', KEYS[1])}
"""

#: KEYS: the AOR's hash, the index. ARGV: expected version ('' for none), new version, AOR,
#: then (contact key, JSON, expiry ms) per binding. Returns 1 (committed) or 0 (changed).
_COMMIT = """
local current = redis.call('HGET', KEYS[1], '_v') or ''
if current ~= ARGV[1] then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
for _, key in ipairs(redis.call('HKEYS', KEYS[1])) do
  if key ~= '_v' then redis.call('ZREM', KEYS[2], ARGV[3] .. '\\n' .. key) end
end
redis.call('DEL', KEYS[1])
if #ARGV < 6 then return 1 end
local fields = {'_v', ARGV[2]}
local latest = 0
for i = 4, #ARGV, 3 do
  local expires = tonumber(ARGV[i + 2])
  fields[#fields + 1] = ARGV[i]
  fields[#fields + 1] = ARGV[i + 1]
  redis.call('ZADD', KEYS[2], expires, ARGV[3] .. '\\n' .. ARGV[i])
  if expires > latest then latest = expires end
end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('PEXPIREAT', KEYS[1], latest)
return 1
"""

#: KEYS: the index. The number of bindings that have not expired.
_COUNT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
"""


class RedisLocationStore:
    """A :class:`~trio_sip.location.LocationStore` in Redis (see the module comment). Made by
    :func:`open_redis_store`; ``client`` is a ``coredis.Redis`` with ``decode_responses``."""

    def __init__(
        self,
        client: coredis.Redis[str],
        *,
        prefix: str = "trio-sip:",
        timeout: float = 1.0,
        attempts: int = 32,
    ) -> None:
        if not timeout > 0:
            raise ConfigError("timeout", timeout, "a number of seconds greater than 0")
        if attempts < 1:
            raise ConfigError("attempts", attempts, "an integer of at least 1")
        from coredis.exceptions import RedisError

        self._errors: tuple[type[Exception], ...] = (RedisError, OSError)
        self.client = client
        self.prefix = prefix
        self.timeout = timeout
        self.attempts = attempts
        self._index = f"{prefix}bindings"
        self._read = client.register_script(_READ)
        self._commit = client.register_script(_COMMIT)
        self._count = client.register_script(_COUNT)
        #: Commits refused because another node changed the AOR first (then retried).
        self.conflicts = 0

    def _key(self, aor: str) -> str:
        return f"{self.prefix}aor:{aor}"

    async def _call(self, script: Any, keys: Sequence[str], args: Sequence[str]) -> Any:
        try:
            with trio.fail_after(self.timeout):
                return await script(keys=list(keys), args=list(args))
        except trio.TooSlowError:
            raise StoreUnavailable(f"Redis did not answer within {self.timeout} s") from None
        except self._errors as exc:
            raise StoreUnavailable(f"Redis: {exc}") from exc

    async def _snapshot(
        self, aor: str, *, total: bool
    ) -> tuple[float, int, dict[str, Binding], str]:
        now_ms, count, flat = await self._call(
            self._read, [self._key(aor), self._index], ["1" if total else "0"]
        )
        now = int(now_ms) / 1000
        fields = dict(zip(flat[::2], flat[1::2], strict=True))
        version = fields.pop("_v", "")
        current = {}
        for key, text in fields.items():
            binding = _decode(aor, text)
            if binding.expires_at > now:
                current[key] = binding
        return now, int(count), current, version

    async def lookup(self, aor: str) -> list[Binding]:
        _, _, current, _ = await self._snapshot(aor, total=False)
        return by_q(current.values())

    async def update(self, aor: str, change: Change) -> Planned:
        for _ in range(self.attempts):
            now, total, current, version = await self._snapshot(aor, total=True)
            planned = change(current, now, total)
            if planned.updated is None:
                return planned
            args = [version, secrets.token_hex(8), aor, *_encode(planned.updated)]
            if await self._call(self._commit, [self._key(aor), self._index], args):
                return planned
            self.conflicts += 1
        raise StoreUnavailable(f"{aor} changed {self.attempts} times while being updated")

    async def count(self) -> int:
        return int(await self._call(self._count, [self._index], []))

    async def aclose(self) -> None:
        return None  # the client is closed by open_redis_store


def _encode(updated: Mapping[str, Binding]) -> list[str]:
    out: list[str] = []
    for key, b in updated.items():
        if math.isinf(b.expires_at):
            continue  # static bindings stay in the node's own LocationService
        expires_ms = round(b.expires_at * 1000)
        data = [b.contact, expires_ms, b.call_id, b.cseq, b.branch, b.q]
        out += [key, json.dumps(data, separators=(",", ":")), str(expires_ms)]
    return out


def _decode(aor: str, text: str) -> Binding:
    contact, expires_ms, call_id, cseq, branch, q = json.loads(text)
    return Binding(aor, contact, expires_ms / 1000, call_id, cseq, branch, q)


@asynccontextmanager
async def open_redis_store(
    url: str,
    *,
    prefix: str = "trio-sip:",
    command_timeout: float = 1.0,
    max_connections: int = 64,
) -> AsyncIterator[RedisLocationStore]:
    """A :class:`RedisLocationStore` on the Redis at ``url`` (``redis://host:port/db``,
    ``rediss://`` for TLS, ``unix:///path``), with coredis. Nothing is sent until the first
    request: a node starts while Redis is down, answers 503 meanwhile, and recovers when it
    returns. ``command_timeout`` bounds each command and each connection attempt (seconds)."""
    try:
        import coredis
        from coredis.retry import NoRetryPolicy
    except ImportError:
        raise ConfigError(
            "location", url, "memory:, or redis:// with coredis (pip install trio-sip[redis])"
        ) from None
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError("location", url, "memory:, redis://host:port/db or rediss://...")
    try:
        client = coredis.Redis.from_url(
            url,
            decode_responses=True,
            connect_timeout=command_timeout,
            stream_timeout=command_timeout,
            max_connections=max_connections,
            retry_policy=NoRetryPolicy(),  # we answer 503 at once; the client tries again
        )
    except ValueError as exc:
        raise ConfigError("location", url, f"a Redis URL ({exc})") from None
    async with cast("Any", client):
        store = RedisLocationStore(client, prefix=prefix, timeout=command_timeout)
        yield store
