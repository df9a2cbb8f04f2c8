"""Dialogs: RFC 3261 §12 (creation, state, in-dialog requests), §13-§15 (INVITE, re-INVITE, BYE).

Theory of operation
-------------------
A :class:`Dialog` is the state two user agents share for one call (or subscription): its id,
sequence numbers, addresses, remote target and route set. It never performs I/O: the shell
tells it what was sent and received, and asks it to build in-dialog requests
(:mod:`trio_sip.proto.dialog_requests`, also reachable as methods).

* §12: "A dialog is identified at each UA with a dialog ID, which consists of a Call-ID
  value, a local tag and a remote tag." A UAC's local tag is its From tag; a UAS's is its To tag.
* §12.1.1 (UAS): "The route set MUST be set to the list of URIs in the Record-Route header
  field from the request, taken in order"; "The remote target MUST be set to the URI from the
  Contact header field of the request"; the remote sequence number is the request's CSeq and the
  local one is empty. §12.1.2 (UAC): the route set is the response's Record-Route "taken in
  reverse order", the remote target its Contact; the local sequence number is the request's.
  "If the request arrived over TLS, and the Request-URI contained a SIPS URI, the 'secure'
  flag is set to TRUE."
* §12.1: "A dialog established by a non-final response to a request is in the 'early' state";
  a 2xx makes it "confirmed". §13.2.2.4: on a 2xx "the route set for the dialog MUST be
  recomputed based on the 2xx response". A forked INVITE gets 1xx/2xx with several To tags:
  each tag is its own dialog (:class:`DialogSet` keys them by id).
* §12.2.1.2: "If the response for a request within a dialog is a 481 ... or a 408 ..., the UAC
  SHOULD terminate the dialog". A 2xx to a target refresh request (re-INVITE, UPDATE) replaces
  the remote target with its Contact; §12.2.2 does the same for incoming target refreshes.
* §12.2.2: "If the remote sequence number was not empty, but the sequence number of the
  request is lower than the remote sequence number, the request is out of order and MUST be
  rejected with a 500"; a request whose To tag names no dialog gets "481 Call/Transaction Does
  Not Exist" (§12.2.2 / §8.2.2.2).
* §14.1 glare: "A UAS that receives an INVITE on a dialog while an INVITE it had sent on that
  dialog is in progress MUST return a 491 (Request Pending)". On a 491 the UAC waits T: "If the
  UAC is the owner of the Call-ID of the dialog ID ..., T has a randomly chosen value between
  2.1 and 4 seconds in units of 10 ms. If the UAC is not the owner ..., T has a randomly chosen
  value of between 0 and 2 seconds in units of 10 ms." §14.2: a second INVITE before the final
  response to the first gets 500 with "a Retry-After ... between 0 and 10 seconds".

In-dialog requests (ACK, BYE, re-INVITE, INFO, MESSAGE, CANCEL) are built by
:mod:`trio_sip.proto.dialog_requests`, which also holds the two 2xx machines:
:class:`AckWait` (UAS, §13.3.1.4: "The 2xx response is passed to the transport with an interval
that starts at T1 seconds and doubles for each retransmission until it reaches T2 seconds ...
If the server retransmits the 2xx response for 64*T1 seconds without receiving an ACK, the
dialog is confirmed, but the session SHOULD be terminated ... with a BYE") and
:class:`AckResender` (UAC, §13.2.2.4: "The UAC core MUST generate an ACK request for each 2xx
received from the transaction layer"; RFC 6026 §7.2 passes 2xx retransmissions up for 64*T1).
"""

from __future__ import annotations

import enum
import random
from collections.abc import Iterator

import attrs

from .errors import RemoteProtocolError
from .fsm import step
from .message import Request, Response, make_response
from .uri import NameAddress, SipUri, Uri, parse_name_addr, parse_uri

__all__ = [
    "TARGET_REFRESH_METHODS",
    "TRANSITIONS",
    "Dialog",
    "DialogId",
    "DialogSet",
    "DialogState",
    "DialogTrigger",
    "glare_retry_delay",
]

#: Requests that replace the remote target with their Contact (RFC 3261 §12.2, RFC 3311,
#: RFC 6665 §4.1.2.4 for SUBSCRIBE/NOTIFY, RFC 3515 for REFER).
TARGET_REFRESH_METHODS = frozenset({"INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY", "REFER"})


class DialogState(enum.Enum):
    """The states of a dialog (RFC 3261 §12): early, confirmed, terminated."""

    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


class DialogTrigger(enum.Enum):
    """What moves a :class:`Dialog` (the triggers of :data:`TRANSITIONS`)."""

    #: A 1xx (with a To tag) to the dialog-creating INVITE.
    PROVISIONAL = "1xx"
    #: A 2xx to the dialog-creating INVITE, sent or received.
    SUCCESS = "2xx"
    #: A 300-699 final response to the dialog-creating INVITE, sent or received.
    FAILURE = "failure"
    #: A BYE sent (its answer received) or received.
    BYE = "bye"
    #: §12.2.1.2: a 481 or 408 answer to any request of the dialog, sent or received.
    GONE = "481 or 408 answer"
    #: A target refresh request received (re-INVITE, UPDATE, SUBSCRIBE, NOTIFY, REFER).
    TARGET_REFRESH = "target refresh"
    #: :meth:`Dialog.terminate` (e.g. our 2xx was never ACKed and a BYE went out).
    TERMINATE = "terminate"


S = DialogState
DT = DialogTrigger
#: state -> {trigger: next state}; an event missing from a state's row is illegal there
#: (:func:`~trio_sip.proto.fsm.step` raises LocalProtocolError). Self-loops are events that
#: leave the state as it is: a target refresh in an early dialog (UPDATE, RFC 3311), a late
#: BYE answer or 481/408 after the end.
TRANSITIONS: dict[DialogState, dict[DialogTrigger, DialogState]] = {
    S.EARLY: {
        DT.PROVISIONAL: S.EARLY,
        DT.SUCCESS: S.CONFIRMED,
        DT.FAILURE: S.TERMINATED,
        DT.BYE: S.TERMINATED,
        DT.GONE: S.TERMINATED,
        DT.TARGET_REFRESH: S.EARLY,
        DT.TERMINATE: S.TERMINATED,
    },
    S.CONFIRMED: {
        DT.SUCCESS: S.CONFIRMED,
        DT.TARGET_REFRESH: S.CONFIRMED,
        DT.BYE: S.TERMINATED,
        DT.GONE: S.TERMINATED,
        DT.TERMINATE: S.TERMINATED,
    },
    S.TERMINATED: {
        DT.BYE: S.TERMINATED,
        DT.GONE: S.TERMINATED,
        DT.TERMINATE: S.TERMINATED,
    },
}


@attrs.frozen
class DialogId:
    """``(Call-ID, local tag, remote tag)`` as seen from this user agent (§12)."""

    call_id: str
    local_tag: str
    remote_tag: str


#: The random source of dialogs made without one (glare delays, Retry-After): one shared
#: ``random.Random`` instead of a 2.5 KB one per dialog.
_SHARED_RNG = random.Random()


def glare_retry_delay(owner: bool, rng: random.Random) -> float:
    """§14.1: seconds to wait after a 491, in 10 ms units (2.10-4.00 s for the Call-ID's owner,
    0.00-2.00 s otherwise)."""
    return (rng.randint(210, 400) if owner else rng.randint(0, 200)) / 100


def _target(message: Request | Response, fallback: Uri | str) -> Uri | str:
    """The remote target a message sets: its first Contact's URI, formatted (see Dialog)."""
    for contact in message.contacts:
        if not contact.is_wildcard:
            return str(contact.uri)
    return fallback


def _secure(request: Request, tls: bool | None) -> bool:
    sips = isinstance(request.uri, SipUri) and request.uri.secure
    return sips if tls is None else (tls and sips)


def _raw_address(message: Request | Response, name: str) -> str:
    """The text of the first ``name`` (From / To) header: parsed again on demand."""
    text = message.headers.get(name)
    if text is None:  # message.from_ / .to raise the usual ParseError
        return str(message.from_ if name == "from" else message.to)
    return text


def _raw_contact(message: Request | Response) -> NameAddress | str | None:
    """Our first Contact in ``message``: its header text when the line holds one address (parsed
    again on demand), else the parsed address."""
    text = message.headers.get("contact")
    if text is None:
        return None
    if "," not in text and not text.startswith("*"):
        return text
    contacts = message.contacts
    return contacts[0] if contacts else None


class Dialog:
    """One dialog, seen from this user agent. Build it with :meth:`from_uac` / :meth:`from_uas`.

    Memory (a UAS keeps one per established call): the addresses are kept as text and parsed
    again when read -- ``local_uri`` / ``remote_uri`` as the From / To header text of the
    dialog-creating request (the tag is the dialog id's), ``remote_target`` as the formatted URI
    and ``local_contact`` as the Contact text -- unless they were given as objects.
    """

    __slots__ = (
        "_local",
        "_local_contact",
        "_remote",
        "_target",
        "id",
        "incoming_invite_pending",
        "initial_seq",
        "is_uac",
        "local_seq",
        "reinvite_pending",
        "remote_seq",
        "rng",
        "route_set",
        "secure",
        "state",
    )

    id: DialogId
    state: DialogState
    #: True when this side sent the dialog-creating request (it owns the Call-ID, §14.1).
    is_uac: bool
    route_set: tuple[NameAddress, ...]
    local_seq: int | None
    remote_seq: int | None
    secure: bool
    rng: random.Random
    #: CSeq of the dialog-creating request (its responses shape an early dialog).
    initial_seq: int
    #: Our re-INVITE awaiting its final response (§14.1 glare).
    reinvite_pending: bool
    #: Their INVITE that we have not answered with a final response yet (§14.2).
    incoming_invite_pending: bool

    def __init__(  # noqa: PLR0917  (positional, as the attrs class it replaces)
        self,
        id: DialogId,
        state: DialogState,
        is_uac: bool,
        local_uri: NameAddress | str,
        remote_uri: NameAddress | str,
        remote_target: Uri | str,
        route_set: tuple[NameAddress, ...],
        local_seq: int | None,
        remote_seq: int | None,
        secure: bool = False,
        local_contact: NameAddress | str | None = None,
        rng: random.Random | None = None,
        initial_seq: int = 0,
        reinvite_pending: bool = False,
        incoming_invite_pending: bool = False,
    ) -> None:
        self.id = id
        self.state = state
        self.is_uac = is_uac
        # A str address is the header text (its tag is replaced by the dialog id's); a str
        # target is a URI's text; both are parsed again when read.
        self._local = local_uri
        self._remote = remote_uri
        self._target = remote_target
        self.route_set = route_set
        self.local_seq = local_seq
        self.remote_seq = remote_seq
        self.secure = secure
        self._local_contact = local_contact
        self.rng = rng if rng is not None else _SHARED_RNG
        self.initial_seq = initial_seq
        self.reinvite_pending = reinvite_pending
        self.incoming_invite_pending = incoming_invite_pending

    @property
    def local_uri(self) -> NameAddress:
        """Our From (UAC) / To (UAS), tag included."""
        value = self._local
        if isinstance(value, str):
            return parse_name_addr(value).with_tag(self.id.local_tag)
        return value

    @local_uri.setter
    def local_uri(self, value: NameAddress) -> None:
        self._local = value

    @property
    def remote_uri(self) -> NameAddress:
        """Their To (UAC) / From (UAS), tag included."""
        value = self._remote
        if isinstance(value, str):
            address = parse_name_addr(value)
            # An RFC 2543 peer's null tag (§12.1.1) is written as no tag at all.
            tag = self.id.remote_tag
            return address.with_tag(tag) if tag else address
        return value

    @remote_uri.setter
    def remote_uri(self, value: NameAddress) -> None:
        self._remote = value

    @property
    def remote_target(self) -> Uri:
        """Where requests in the dialog go (the Request-URI, §12.2.1.1)."""
        value = self._target
        return parse_uri(value) if isinstance(value, str) else value

    @remote_target.setter
    def remote_target(self, value: Uri) -> None:
        self._target = value

    @property
    def local_contact(self) -> NameAddress | None:
        """Our Contact, sent in target refresh requests."""
        value = self._local_contact
        return parse_name_addr(value) if isinstance(value, str) else value

    @local_contact.setter
    def local_contact(self, value: NameAddress | None) -> None:
        self._local_contact = value

    def __repr__(self) -> str:
        return (
            f"Dialog(id={self.id!r}, state={self.state!r}, is_uac={self.is_uac!r}, "
            f"local_uri={self.local_uri!r}, remote_uri={self.remote_uri!r}, "
            f"remote_target={self.remote_target!r}, route_set={self.route_set!r}, "
            f"local_seq={self.local_seq!r}, remote_seq={self.remote_seq!r}, "
            f"secure={self.secure!r}, local_contact={self.local_contact!r}, "
            f"initial_seq={self.initial_seq!r}, reinvite_pending={self.reinvite_pending!r}, "
            f"incoming_invite_pending={self.incoming_invite_pending!r})"
        )

    # ------------------------------------------------------------------ creation

    @classmethod
    def from_uac(
        cls,
        request: Request,
        response: Response,
        *,
        tls: bool | None = None,
        rng: random.Random | None = None,
    ) -> Dialog:
        """The dialog our ``request`` (INVITE, SUBSCRIBE) and a 101-299 ``response`` with a To
        tag create (§12.1.2). ``tls`` defaults to "the Request-URI is SIPS"."""
        if not 101 <= response.status_code <= 299 or response.to.tag is None:
            raise RemoteProtocolError("only a 101-299 response with a To tag creates a dialog")
        local_tag = request.from_.tag
        if local_tag is None:
            raise RemoteProtocolError("the request has no From tag")
        _ = request.to  # a missing or malformed To raises here, as before
        state = S.CONFIRMED if response.status_code >= 200 else S.EARLY
        return cls(
            id=DialogId(request.call_id, local_tag, response.to.tag),
            state=state,
            is_uac=True,
            local_uri=_raw_address(request, "from"),
            remote_uri=_raw_address(request, "to"),
            remote_target=_target(response, request.uri),
            route_set=tuple(reversed(response.record_routes)),
            local_seq=request.cseq.seq,
            remote_seq=None,
            secure=_secure(request, tls),
            local_contact=_raw_contact(request),
            rng=rng,
            initial_seq=request.cseq.seq,
        )

    @classmethod
    def from_uas(
        cls,
        request: Request,
        response: Response,
        *,
        tls: bool | None = None,
        rng: random.Random | None = None,
    ) -> Dialog:
        """The dialog an incoming ``request`` and our 101-299 ``response`` (with our To tag)
        create (§12.1.1)."""
        if not 101 <= response.status_code <= 299 or response.to.tag is None:
            raise RemoteProtocolError("only a 101-299 response with a To tag creates a dialog")
        # §12.1.1: "A UAS MUST be prepared to receive a request without a tag in the From
        # field, in which case the tag is considered to have a value of null. This is to
        # maintain backwards compatibility with RFC 2543, which did not mandate From tags."
        remote_tag = request.from_.tag or ""
        _ = request.to  # a missing or malformed To raises here, as before
        state = S.CONFIRMED if response.status_code >= 200 else S.EARLY
        return cls(
            id=DialogId(request.call_id, response.to.tag, remote_tag),
            state=state,
            is_uac=False,
            local_uri=_raw_address(request, "to"),
            remote_uri=_raw_address(request, "from"),
            remote_target=_target(request, request.uri),
            route_set=request.record_routes,
            local_seq=None,
            remote_seq=request.cseq.seq,
            secure=_secure(request, tls),
            local_contact=_raw_contact(response),
            rng=rng,
            initial_seq=request.cseq.seq,
            incoming_invite_pending=request.method == "INVITE" and response.status_code < 200,
        )

    # ------------------------------------------------------------------ state

    def _move(self, trigger: DialogTrigger) -> None:
        self.state = step("dialog", TRANSITIONS, self.state, trigger)

    def next_local_seq(self) -> int:
        """The CSeq number of our next new request (§12.2.1.1: "incremented by one"; an empty
        local sequence number starts at 1, §8.1.1.5)."""
        self.local_seq = 1 if self.local_seq is None else self.local_seq + 1
        return self.local_seq

    def glare_retry_delay(self, rng: random.Random | None = None) -> float:
        """§14.1: how long to wait before resending a re-INVITE that got a 491."""
        return glare_retry_delay(self.is_uac, rng if rng is not None else self.rng)

    # ------------------------------------------------------------------ responses we receive

    def receive_response(self, request: Request, response: Response) -> None:
        """Update the dialog with a response to ``request``, which we sent in this dialog (or
        the dialog-creating request, for an early dialog)."""
        status = response.status_code
        method = request.method
        if status < 200 and not (self.state is S.EARLY and method == "INVITE"):
            return
        if status in (408, 481):
            self._move(DT.GONE)
            self.reinvite_pending = False
            return
        creating = self.is_uac and method == "INVITE" and request.cseq.seq == self.initial_seq
        if creating and self.state is S.EARLY:
            if status >= 300:
                self._move(DT.FAILURE)
                return
            # §12.1.2 / §13.2.2.4: the early dialog follows each response; a 2xx fixes it.
            self._target = _target(response, self._target)
            self.route_set = tuple(reversed(response.record_routes))
            self._move(DT.PROVISIONAL if status < 200 else DT.SUCCESS)
            return
        if method == "INVITE" and status >= 200:
            self.reinvite_pending = False
        if method == "BYE":
            self._move(DT.BYE)
        elif 200 <= status < 300 and method in TARGET_REFRESH_METHODS:
            # §12.2.1.2: "replace the dialog's remote target URI with the URI from the Contact".
            self._target = _target(response, self._target)

    # ------------------------------------------------------------------ requests we receive

    def receive_request(self, request: Request) -> Response | None:
        """Check and apply an incoming in-dialog request (§12.2.2).

        Returns the error response to send (481, 500, 491), or None when the request is
        accepted (the caller then answers it). ACK and CANCEL are not sequence-checked.
        """
        if self.state is S.TERMINATED:
            return make_response(request, 481)
        method = request.method
        if method in ("ACK", "CANCEL"):
            return None
        seq = request.cseq.seq
        if self.remote_seq is not None and seq < self.remote_seq:
            return make_response(request, 500, "Out Of Order CSeq")
        if method == "INVITE":
            if self.reinvite_pending:
                return make_response(request, 491)
            if self.incoming_invite_pending and seq > (self.remote_seq or 0):
                wait = self.rng.randint(0, 10)
                return make_response(request, 500, headers=[("Retry-After", str(wait))])
        self.remote_seq = seq
        if method == "INVITE":
            self.incoming_invite_pending = True
        if method == "BYE":
            self._move(DT.BYE)
        elif method in TARGET_REFRESH_METHODS:
            self._target = _target(request, self._target)
            self._move(DT.TARGET_REFRESH)
        return None

    def response_sent(self, request: Request, response: Response) -> None:
        """Record our answer to an incoming request of this dialog (UAS side)."""
        status = response.status_code
        if request.method != "INVITE" or status < 200:
            return
        self.incoming_invite_pending = False
        if status in (408, 481):
            self._move(DT.GONE)
        elif self.state is S.EARLY and not self.is_uac:
            self._move(DT.SUCCESS if status < 300 else DT.FAILURE)

    def terminate(self) -> None:
        """End the dialog (e.g. after the 2xx was never ACKed and a BYE went out)."""
        self._move(DT.TERMINATE)


def _request_id(request: Request) -> DialogId | None:
    """The dialog id an *incoming* request names (To tag is ours, From tag theirs)."""
    local, remote = request.to.tag, request.from_.tag
    if local is None:
        return None
    # §12.2.2 with §12.1.1: an RFC 2543 peer's requests have no From tag (a null remote tag).
    return DialogId(request.call_id, local, remote or "")


class DialogSet:
    """Every dialog of a user agent, keyed by dialog id; also the forking matcher (§12.1.2:
    each To tag in answers to one INVITE is a separate dialog)."""

    def __init__(self, *, rng: random.Random | None = None) -> None:
        self._dialogs: dict[DialogId, Dialog] = {}
        #: The random source of the dialogs this set creates (default: one shared Random).
        self._rng = rng

    def __len__(self) -> int:
        return len(self._dialogs)

    def __iter__(self) -> Iterator[Dialog]:
        return iter(list(self._dialogs.values()))

    def get(self, dialog_id: DialogId) -> Dialog | None:
        return self._dialogs.get(dialog_id)

    def add(self, dialog: Dialog) -> Dialog:
        self._dialogs[dialog.id] = dialog
        return dialog

    def discard(self, dialog_id: DialogId) -> None:
        self._dialogs.pop(dialog_id, None)

    def for_request(self, request: Request) -> Dialog | None:
        """The dialog an incoming request belongs to, or None."""
        dialog_id = _request_id(request)
        return None if dialog_id is None else self._dialogs.get(dialog_id)

    def for_response(self, response: Response) -> Dialog | None:
        """The dialog a response to our request belongs to (From tag ours, To tag theirs)."""
        local, remote = response.from_.tag, response.to.tag
        if local is None or remote is None:
            return None
        return self._dialogs.get(DialogId(response.call_id, local, remote))

    def early_dialogs(self, request: Request) -> list[Dialog]:
        """The early dialogs our (initial) ``request`` has created so far."""
        return [
            d
            for d in self._dialogs.values()
            if d.is_uac
            and d.state is S.EARLY
            and d.id.call_id == request.call_id
            and d.id.local_tag == request.from_.tag
        ]

    def uac_response(
        self, request: Request, response: Response, *, tls: bool | None = None
    ) -> Dialog | None:
        """Apply a response to our dialog-creating ``request``: find or create the dialog of its
        To tag (forking), update it; a 300-699 ends every early dialog of the request. Returns
        the response's dialog (None for a 100, a 1xx without tag or a failure)."""
        status = response.status_code
        if status >= 300:
            for d in self.early_dialogs(request):
                d.receive_response(request, response)
            return None
        dialog = self.for_response(response)
        if dialog is None:
            if status == 100 or response.to.tag is None:
                return None
            return self.add(Dialog.from_uac(request, response, tls=tls, rng=self._rng))
        dialog.receive_response(request, response)
        return dialog

    def check_request(self, request: Request) -> Dialog | Response | None:
        """Route an incoming request: its dialog (already checked and updated, §12.2.2), an
        error response to send (481 for an unknown dialog, 500/491 from the dialog), or None
        for a request outside any dialog (no To tag)."""
        if request.to.tag is None:
            return None
        dialog = self.for_request(request)
        if dialog is None:
            if request.method == "ACK":
                return None  # an ACK for an unknown dialog is dropped, never answered
            return make_response(request, 481)
        rejection = dialog.receive_request(request)
        return dialog if rejection is None else rejection
