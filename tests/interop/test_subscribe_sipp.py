"""SUBSCRIBE/NOTIFY (RFC 6665) against sipp on loopback, both ways, every run bounded.

* sipp as the notifier: it answers our SUBSCRIBE with 200 and ``Expires: 6`` (we asked for
  10: §4.2.1.1, the notifier may shorten it), sends a NOTIFY ``active;expires=6``, takes our
  refresh (in the dialog, to its Contact; due ``refresh_delay(6)`` = 3 s after the 2xx and
  the NOTIFY that made it active, §4.1.2.2), answers it and sends another NOTIFY (§4.2.1.2),
  then ends the subscription with ``terminated;reason=noresource`` (§4.1.3: no new
  subscription after that reason).
* sipp sends a NOTIFY for a subscription it already terminated: §4.1.3 says the subscriber
  "MUST return a 481 Subscription does not exist" (expected to fail today: see the marker).
* sipp as the subscriber: our ``Notifier`` answers its SUBSCRIBE with 200 and Expires, sends
  the first NOTIFY at once; sipp unsubscribes (``Expires: 0`` in the dialog) and gets the
  200 and the terminating NOTIFY.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from trio_sip.proto.registration import refresh_delay
from trio_sip.proto.subscription import SubscriptionState
from trio_sip.proto.target import Target
from trio_sip.stack import IncomingRequest
from trio_sip.ua import open_user_agent
from trio_sip.ua.subscription import (
    Notification,
    Notifier,
    ServerSubscription,
    SubscriptionEvent,
)

from .peers import free_port
from .sipp import ALL_CALLS_OK, SippRun, run_sipp, sipp_argv, wait_udp_bound, write_scenario

pytestmark = pytest.mark.interop

HOST = "127.0.0.1"
SS = SubscriptionState
GRANTED = 6


def _notify(cseq: int, state: str, body: str = "") -> str:
    """sipp's NOTIFY in the dialog (From and To swapped from the SUBSCRIBE's)."""
    content = "Content-Type: text/plain\n      " if body else ""
    return f"""  <send retrans="500">
    <![CDATA[
      NOTIFY [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From:[$local];tag=[pid]SIPpTag01[call_number]
      To:[$remote]
      Call-ID: [call_id]
      CSeq: {cseq} NOTIFY
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Max-Forwards: 70
      Event: presence
      Subscription-State: {state}
      {content}Content-Length: [len]

      {body}
    ]]>
  </send>
"""


#: sipp takes a SUBSCRIBE (its From and To kept for its NOTIFYs) and accepts it for 6 s.
NOTIFIER_HEAD = f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="presence notifier">
  <recv request="SUBSCRIBE" rrs="true">
    <action>
      <ereg regexp=".*" search_in="hdr" header="From:" check_it="true" assign_to="remote"/>
      <ereg regexp=".*" search_in="hdr" header="To:" check_it="true" assign_to="local"/>
      <ereg regexp=".*" search_in="hdr" header="Expires:" check_it="true" assign_to="asked"/>
      <log message="asked for[$asked]"/>
    </action>
  </recv>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Expires: {GRANTED}
      Content-Length: 0
    ]]>
  </send>
"""

#: sipp takes the 200 to its NOTIFY, then our refresh, and accepts it for 6 s again.
NOTIFIER_REFRESH = f"""  <recv response="200"/>
  <recv request="SUBSCRIBE">
    <action>
      <ereg regexp=".*" search_in="hdr" header="Expires:" check_it="true" assign_to="again"/>
      <log message="refresh asked for[$again]"/>
    </action>
  </recv>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Expires: {GRANTED}
      Content-Length: 0
    ]]>
  </send>
"""

#: sipp answers a SUBSCRIBE, notifies, takes one refresh, notifies again, terminates.
NOTIFIER = (
    NOTIFIER_HEAD
    + _notify(1, f"active;expires={GRANTED}", "open")
    + NOTIFIER_REFRESH
    + _notify(2, f"active;expires={GRANTED}", "away")
    + '  <recv response="200"/>\n  <pause milliseconds="500"/>\n'
    + _notify(3, "terminated;reason=noresource")
    + '  <recv response="200"/>\n</scenario>\n'
)


#: sipp ends the subscription, then sends a NOTIFY for it anyway: §4.1.3 wants a 481.
STALE_NOTIFY = (
    NOTIFIER_HEAD
    + _notify(1, f"active;expires={GRANTED}", "open")
    + '  <recv response="200"/>\n'
    + _notify(2, "terminated;reason=noresource")
    + '  <recv response="200"/>\n'
    + _notify(3, f"active;expires={GRANTED}", "open")
    + '  <recv response="481"/>\n</scenario>\n'
)

#: sipp subscribes, takes the 200 and the first NOTIFY, unsubscribes, takes the last NOTIFY.
SUBSCRIBER = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="presence subscriber">
  <send retrans="500">
    <![CDATA[
      SUBSCRIBE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 SUBSCRIBE
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Max-Forwards: 70
      Event: presence
      Accept: text/plain
      Expires: 60
      Content-Length: 0
    ]]>
  </send>
  <recv response="200" rrs="true">
    <action>
      <ereg regexp="30" search_in="hdr" header="Expires:" check_it="true"
            assign_to="granted"/>
    </action>
  </recv>
  <recv request="NOTIFY">
    <action>
      <ereg regexp="active;expires=(29|30)" search_in="hdr" header="Subscription-State:"
            check_it="true" assign_to="first"/>
      <ereg regexp="presence" search_in="hdr" header="Event:" check_it="true" assign_to="event"/>
      <ereg regexp="sip:" search_in="hdr" header="Contact:" check_it="true" assign_to="target"/>
      <ereg regexp="open" search_in="body" check_it="true" assign_to="body"/>
      <log message="granted [$granted], first NOTIFY [$event] [$first] [$target] [$body]"/>
    </action>
  </recv>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
  <pause milliseconds="300"/>
  <send retrans="500">
    <![CDATA[
      SUBSCRIBE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 2 SUBSCRIBE
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Max-Forwards: 70
      Event: presence
      Expires: 0
      Content-Length: 0
    ]]>
  </send>
  <recv response="200"/>
  <recv request="NOTIFY">
    <action>
      <ereg regexp="terminated" search_in="hdr" header="Subscription-State:"
            check_it="true" assign_to="last"/>
      <log message="last NOTIFY [$last]"/>
    </action>
  </recv>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
</scenario>
"""


async def test_our_subscriber_against_a_sipp_notifier(tmp_path: Path) -> None:
    sipp_address = (HOST, free_port(HOST))
    scenario = write_scenario(tmp_path, "notifier", NOTIFIER)
    argv = sipp_argv(scenario=scenario, local=sipp_address, calls=1, timeout=30)
    result: list[SippRun] = []
    async with (
        open_user_agent([("UDP", HOST, 0)], aor=f"sip:alice@{HOST}") as alice,
        trio.open_nursery() as nursery,
    ):

        async def sipp() -> None:
            with trio.fail_after(40):
                result.append(await run_sipp(argv, tmp_path))

        nursery.start_soon(sipp)
        await wait_udp_bound(sipp_address, timeout=10)
        sub = await alice.subscriptions.subscribe(
            f"<sip:bob@{HOST}:{sipp_address[1]}>", "presence", Target("UDP", *sipp_address),
            local=str(alice.aor), contact=str(alice.contact), expires=10, reg_interval=0,
            accept="text/plain",
        )  # fmt: skip
        events = sub.events()
        notes = sub.notifications()
        with trio.fail_after(10):
            await sub.wait_active()
        active_at = trio.current_time()
        first: Notification = await anext(notes)
        assert (first.state.value, first.state.expires) == ("active", GRANTED)
        assert (first.content_type, first.body.strip()) == ("text/plain", b"open")
        # The refresh is due refresh_delay(6) = 3 s after the NOTIFY active;expires=6 that
        # made the subscription active (the 2xx just before it asked for the same).
        refresh_at = sub.statistics()["next_attempt"]
        assert refresh_at is not None
        assert refresh_delay(GRANTED) == 3.0
        assert 2.5 <= refresh_at - active_at <= 3.0 + 0.5
        with trio.fail_after(10):
            for _ in range(200):  # poll the request count: the refresh is not an event
                if sub.requests >= 2:
                    break
                await trio.sleep(0.02)
        refreshed_at = trio.current_time()
        assert sub.requests == 2
        assert refresh_at - 0.1 <= refreshed_at <= refresh_at + 0.5
        second: Notification = await anext(notes)
        assert (second.state.value, second.body.strip()) == ("active", b"away")
        with trio.fail_after(10):
            last: Notification = await anext(notes)
        assert (last.state.value, last.state.reason) == ("terminated", "noresource")
        got: list[SubscriptionEvent] = []
        with trio.fail_after(5):
            async for event in events:
                got.append(event)
                if event.new is SS.TERMINATED or len(got) > 5:
                    break
        assert sub.state is SS.TERMINATED
        assert [(e.old, e.new) for e in got] == [
            (SS.IDLE, SS.SUBSCRIBING),  # the state when events() was made
            (SS.SUBSCRIBING, SS.ACTIVE),
            (SS.ACTIVE, SS.TERMINATED),
        ], got
        assert got[-1].reason == "NOTIFY terminated;reason=noresource", got
        with trio.fail_after(40):
            while not result:
                await trio.sleep(0.1)
    run = result[0]
    assert run.returncode == ALL_CALLS_OK, run.describe()
    assert sub.requests == 2  # no resubscription after noresource, no unsubscribe needed


async def test_sipp_subscriber_against_our_notifier(tmp_path: Path) -> None:
    accepted: list[ServerSubscription] = []
    async with (
        open_user_agent([("UDP", HOST, 0)], aor=f"sip:bob@{HOST}") as bob,
        trio.open_nursery() as nursery,
    ):
        notifier = Notifier(bob.stack, nursery, "presence", contact=str(bob.contact),
                            failover=bob.failover, max_expires=30)  # fmt: skip

        async def on_subscribe(incoming: IncomingRequest) -> None:
            if not await notifier.handle(incoming):
                sub = await notifier.accept(incoming, body=b"open", content_type="text/plain")
                accepted.append(sub)

        bob.route("SUBSCRIBE", on_subscribe)
        (_, address) = bob.stack.listening[0]
        scenario = write_scenario(tmp_path, "subscriber", SUBSCRIBER)
        argv = sipp_argv(
            scenario=scenario, local=(HOST, free_port(HOST)), remote=address, timeout=20
        )
        with trio.fail_after(30):
            run = await run_sipp(argv, tmp_path)
        assert run.returncode == ALL_CALLS_OK, run.describe()
        assert len(accepted) == 1
        with trio.fail_after(5):
            await accepted[0].wait_terminated()
        assert accepted[0].terminated
        assert notifier.subscriptions == {}
        nursery.cancel_scope.cancel()


async def test_notify_after_the_subscription_ended_gets_481(tmp_path: Path) -> None:
    sipp_address = (HOST, free_port(HOST))
    scenario = write_scenario(tmp_path, "stale", STALE_NOTIFY)
    argv = sipp_argv(scenario=scenario, local=sipp_address, calls=1, timeout=15)
    async with (
        open_user_agent([("UDP", HOST, 0)], aor=f"sip:alice@{HOST}") as alice,
        trio.open_nursery() as nursery,
    ):
        result: list[SippRun] = []

        async def sipp() -> None:
            with trio.fail_after(20):
                result.append(await run_sipp(argv, tmp_path))

        nursery.start_soon(sipp)
        await wait_udp_bound(sipp_address, timeout=10)
        sub = await alice.subscriptions.subscribe(
            f"<sip:bob@{HOST}:{sipp_address[1]}>", "presence", Target("UDP", *sipp_address),
            local=str(alice.aor), contact=str(alice.contact), expires=10, reg_interval=0,
        )  # fmt: skip
        notes = sub.notifications()
        with trio.fail_after(10):
            first = await anext(notes)
            last = await anext(notes)
        assert (first.state.value, last.state.value) == ("active", "terminated")
        with trio.fail_after(25):
            while not result:
                await trio.sleep(0.1)
        assert sub.state is SS.TERMINATED
        late = [n for n in sub.history if n.new is not SS.TERMINATED and n.old is SS.TERMINATED]
        assert late == []  # the ended subscription did not come back to life
        assert result[0].returncode == ALL_CALLS_OK, result[0].describe()
