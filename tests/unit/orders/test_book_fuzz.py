"""Fuzzing the order book with nonsensical call sequences: no crash, no op settled twice.

tests/unit/test_orders_properties.py plays a well-behaved runner against a model of Engage and
checks tags and ordering. This module plays a runner that misbehaves: results for tokens the book
never saw or never sent, for ops already settled, reported twice or on the wrong order; GET
answers nobody asked for; drops and resubmissions at any moment; revisions that are negative or
beyond 64 bits; deadlines in the past, infinite, or NaN; empty and odd order ids. The book must
never raise, must ignore what it does not expect, and must keep its promises:

- every op settles at most once, with the result the runner reported when it was sent;
- a Send goes out once per op, never beside another call of the same order that excludes it,
  and an action only with a tag that the runner reported for that order;
- the book's snapshot agrees with what is in flight, and its size stays within ``max_tracked``
  plus its busy orders;
- once every call is answered and time has passed every deadline, every op that was not taken
  back by ``drop`` has settled exactly once (when no gated action has an infinite or NaN
  deadline, which the pipeline never makes).

What counts as valid input from the runner (see consumer/service/pipeline.py): revisions come
from the decoder (ints >= 0, but the book must not care), deadlines are ``math.inf`` or
``clock() + d`` with a finite d, and gated actions always have a finite one. A NaN deadline is
outside that contract: the book may refuse it with ValueError or handle it, but must not crash
otherwise.

``FUZZ_ORDERS_SCALE`` multiplies the number of examples (e.g. 0.1 for a quick local run).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, TypeVar, get_args

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumer.orders import (
    Action,
    Effect,
    FetchTag,
    OrderBook,
    ResultStatus,
    SendAction,
    SendWrite,
    Settle,
    SettleStatus,
    Write,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

SCALE = float(os.environ.get("FUZZ_ORDERS_SCALE", "1"))
STEPS = 250
EXAMPLES = max(1, round(500 * SCALE))
ORDER_IDS = ("o1", "o2", "", "\x00\u202e", "o1 ", "x" * 300)
REVISIONS = (None, None, 0, 1, 2, 3, 5, -1, -(2**70), 2**63, 2**100)
RESULT_STATUSES: tuple[ResultStatus, ...] = get_args(ResultStatus)
#: Results as the runner reports them: mostly accepted, every status possible.
RESULTS: tuple[ResultStatus, ...] = ("accepted", "accepted", *RESULT_STATUSES)
SETTLE_STATUSES: frozenset[str] = frozenset(get_args(SettleStatus))
TAGS = ("t1", "t2", "", "\x00", "t" * 1000)
FETCH_ERROR = "tag_unavailable: fuzz"
#: The reasons the book gives on its own (without a result from the runner).
BOOK_REASONS = frozenset(
    {
        "deadline",
        "stale",
        "coalesced",
        "write_failed",
        "order_not_found",
        "order_deleted",
        "revision_not_reached",
        FETCH_ERROR,
    }
)
T = TypeVar("T")
DeadlineKind = Literal["future", "past", "inf", "-inf", "nan"]


@dataclass
class Live:
    """One op the runner submitted and has not taken back: what became of it so far."""

    order_id: str
    op: Write[object] | Action[object]
    sent: bool = False
    sent_tag: str | None = None
    reported: tuple[ResultStatus, str | None, str | None] | None = None
    settled: bool = False
    dropped: bool = False


@dataclass
class Runner:
    """A runner that calls the book in any order and checks every answer."""

    book: OrderBook[object]
    max_tracked: int
    now: float = 0.0
    ops: dict[object, Live] = field(default_factory=dict)
    writing: dict[str, object] = field(default_factory=dict)
    #: the action riding in each write in flight (embedded delivery)
    riding: dict[str, object] = field(default_factory=dict)
    acting: dict[str, dict[object, str]] = field(default_factory=dict)
    fetching: set[str] = field(default_factory=set)
    #: tags the runner reported per order (the only ones an action may carry)
    tags: dict[str, set[str]] = field(default_factory=dict)
    next_token: int = 0
    calls: int = 0
    unsettleable: bool = False

    # -- calls ------------------------------------------------------------------------------------

    def submit(self, order_id: str, op: Write[object] | Action[object]) -> None:
        self.calls += 1
        token = op.token
        assert isinstance(token, int)
        live = self.ops.setdefault(token, Live(order_id=order_id, op=op))
        live.dropped = False
        try:
            effects = self.book.submit(order_id, op)
        except ValueError:
            # Refusing a NaN deadline is allowed; refusing anything else is not.
            assert math.isnan(op.deadline), f"ValueError for {op}"
            del self.ops[token]
            return
        if math.isnan(op.deadline) or (
            isinstance(op, Action) and op.min_revision is not None and op.deadline == math.inf
        ):
            self.unsettleable = True
        self.apply(effects, order_id)

    def new_op(
        self, kind: str, revision: int | None, deadline: DeadlineKind, ttl: float
    ) -> Write[object] | Action[object]:
        token = self.next_token
        self.next_token += 1
        at = {
            "future": self.now + ttl,
            "past": self.now - ttl,
            "inf": math.inf,
            "-inf": -math.inf,
            "nan": math.nan,
        }[deadline]
        if kind == "action":
            return Action(token=token, min_revision=revision, deadline=at)
        return Write(
            token=token,
            kind="delete" if kind == "delete" else "upsert",
            revision=revision,
            deadline=at,
        )

    def write_done(
        self,
        order_id: str,
        token: object,
        status: ResultStatus,
        tag: str | None,
        rider_status: ResultStatus | None = None,
    ) -> None:
        self.calls += 1
        reason = None if status == "accepted" else f"write {status}"
        rider_reason = None if rider_status in (None, "accepted") else f"rider {rider_status}"
        expected = order_id in self.writing and self.writing[order_id] == token
        effects = self.book.write_done(
            order_id,
            token,
            tag=tag,
            status=status,
            reason=reason,
            rider_status=rider_status,
            rider_reason=rider_reason,
        )
        if not expected:
            assert effects == [], f"write_done for {token!r} (not in flight) had effects {effects}"
            return
        assert isinstance(token, int)
        del self.writing[order_id]
        self.ops[token].reported = (status, reason, tag)
        rider = self.riding.pop(order_id, None)
        if rider is not None:
            if rider_status is None:
                # Unreported: the write's failure is the rider's; otherwise its fate is unknown.
                if status in ("rejected", "failed"):
                    rider_status, rider_reason = "failed", "write_failed"
                else:
                    rider_status, rider_reason = "unknown", reason or "unreported"
            self.ops[rider].reported = (rider_status, rider_reason, tag)
        if status == "accepted" and tag is not None:
            self.tags.setdefault(order_id, set()).add(tag)
        assert effects, "the write in flight was not settled"
        assert isinstance(effects[0], Settle), effects[0]
        assert effects[0].token == token
        self.apply(effects, order_id)

    def reconsider(self, order_id: str, token: object) -> None:
        """The write in flight is about to start: the book may choose again."""
        self.calls += 1
        in_flight = self.writing.get(order_id)
        effects = self.book.reconsider(order_id, token)
        if in_flight is None or token != in_flight:
            assert effects == [], f"reconsider of {token!r} (not in flight) had effects {effects}"
            return
        sends = [e for e in effects if isinstance(e, SendWrite)]
        assert len(sends) <= 1, f"two writes to send at once: {effects}"
        given_back = any(isinstance(e, Settle) and e.token == token for e in effects)
        assert sends or not given_back, f"the write given back, none to send: {effects}"
        if sends:
            # Chosen again: the write (and its rider) were never sent after all.
            assert isinstance(token, int)
            self.ops[token].sent = False
            del self.writing[order_id]
            rider = self.riding.pop(order_id, None)
            if rider is not None:
                self.ops[rider].sent = False
        self.apply(effects, order_id)

    def action_done(
        self, order_id: str, token: object, status: ResultStatus, *, stale_tag: bool
    ) -> None:
        self.calls += 1
        reason = None if status == "accepted" else f"action {status}"
        in_flight = self.acting.get(order_id, {})
        expected = token in in_flight
        effects = self.book.action_done(
            order_id, token, status=status, reason=reason, stale_tag=stale_tag
        )
        if not expected:
            assert effects == [], f"action_done for {token!r} (not in flight) had effects {effects}"
            return
        assert isinstance(token, int)
        tag = in_flight.pop(token)
        self.ops[token].reported = (status, reason, tag)
        assert effects, "the action in flight was not settled"
        assert isinstance(effects[0], Settle), effects[0]
        assert effects[0].token == token
        self.apply(effects, order_id)

    def tag_learned(self, order_id: str, tag: str | None, error: str | None) -> None:
        self.calls += 1
        expected = order_id in self.fetching
        effects = self.book.tag_learned(order_id, tag, error=error)
        if not expected:
            assert effects == [], f"tag_learned for {order_id!r} (no GET) had effects {effects}"
            return
        self.fetching.discard(order_id)
        if tag is not None and error is None:
            self.tags.setdefault(order_id, set()).add(tag)
        self.apply(effects, order_id)

    def tick(self) -> None:
        self.calls += 1
        self.apply(self.book.tick(), None)

    def drop(self, order_id: str) -> list[Write[object] | Action[object]]:
        self.calls += 1
        ops = self.book.drop(order_id)
        seen: set[object] = set()
        for op in ops:
            token = op.token
            assert isinstance(token, int)
            assert token not in seen, f"drop returned {token} twice"
            seen.add(token)
            live = self.ops.get(token)
            assert live is not None, f"drop returned an op never submitted: {op}"
            assert live.order_id == order_id
            assert live.op == op
            assert not live.sent, f"drop returned an op in flight or done: {op}"
            assert not live.settled, f"drop returned a settled op: {op}"
            live.dropped = True
        return ops

    # -- checks -----------------------------------------------------------------------------------

    def apply(self, effects: list[Effect[object]], order_id: str | None) -> None:
        for effect in effects:
            if order_id is not None:
                assert effect.order_id == order_id, f"{effect} from a call on {order_id!r}"
            if isinstance(effect, Settle):
                self.on_settle(effect)
            elif isinstance(effect, SendWrite):
                self.on_send(effect.order_id, effect.op)
                assert effect.exists in {True, False, None}
                assert isinstance(effect.op, Write)
                self.writing[effect.order_id] = effect.op.token
                if effect.embedded is not None:
                    self.on_ride(effect.order_id, effect.op, effect.embedded)
            elif isinstance(effect, SendAction):
                self.on_send(effect.order_id, effect.op)
                assert isinstance(effect.op, Action)
                assert effect.tag in self.tags.get(effect.order_id, set()), (
                    f"action sent with {effect.tag!r}, a tag never reported for the order"
                )
                self.acting.setdefault(effect.order_id, {})[effect.op.token] = effect.tag
                self.ops[effect.op.token].sent_tag = effect.tag
            else:
                assert isinstance(effect, FetchTag)
                assert effect.order_id not in self.fetching, "a second GET in flight"
                assert effect.order_id not in self.writing, "a GET beside a write"
                self.fetching.add(effect.order_id)
        self.check_book()

    def on_send(self, order_id: str, op: Write[object] | Action[object]) -> None:
        live = self.ops.get(op.token)
        assert live is not None, f"sent an op never submitted: {op}"
        assert live.op == op
        assert live.order_id == order_id
        assert not live.dropped, f"sent an op that drop took back: {op}"
        assert not live.sent, f"sent twice: {op}"
        assert not live.settled, f"sent after its Settle: {op}"
        assert order_id not in self.writing, "a send beside a write in flight"
        assert order_id not in self.fetching, "a send beside a GET in flight"
        if isinstance(op, Write):
            assert not self.acting.get(order_id), "a write beside actions in flight"
        live.sent = True

    def on_ride(self, order_id: str, write: Write[object], rider: Action[object]) -> None:
        assert write.kind == "upsert", f"an action rode in a {write.kind}"
        live = self.ops.get(rider.token)
        assert live is not None, f"a rider never submitted: {rider}"
        assert live.op == rider
        assert live.order_id == order_id
        assert not live.dropped, f"a rider drop took back: {live}"
        assert not live.sent, f"a rider sent before: {live}"
        assert not live.settled, f"a rider settled before: {live}"
        live.sent = True
        self.riding[order_id] = rider.token

    def on_settle(self, effect: Settle[object]) -> None:
        token = effect.token
        live = self.ops.get(token)
        assert live is not None, f"settled an op never submitted: {effect}"
        assert live.order_id == effect.order_id
        assert not live.settled, f"settled twice: {effect}"
        assert not live.dropped, f"settled an op that drop took back: {effect}"
        assert effect.status in SETTLE_STATUSES
        live.settled = True
        if live.sent:
            assert live.reported is not None, f"a sent op settled before its result: {effect}"
            assert (effect.status, effect.reason, effect.tag) == live.reported, effect
        else:
            assert effect.status in {"failed", "skipped", "rejected"}, effect
            assert effect.reason in BOOK_REASONS, effect

    def check_book(self) -> None:
        book = self.book
        busy, tracked = book.busy(), book.tracked()
        assert busy <= tracked
        assert tracked <= self.max_tracked or tracked == busy
        age = book.oldest_gated_age()
        assert age >= 0.0
        assert not math.isnan(age)

    def check_snapshot(self, order_id: str) -> None:
        self.calls += 1
        snap = self.book.snapshot(order_id)
        assert snap.order_id == order_id
        assert snap.tracked == (order_id in self.book)
        assert snap.writing == self.writing.get(order_id)
        assert set(snap.acting) == set(self.acting.get(order_id, {}))
        assert (snap.state == "fetching") == (order_id in self.fetching)
        waiting = [*snap.queued, *snap.parked]
        assert len(waiting) == len(set(waiting)), f"an op queued twice: {snap}"
        for token in waiting:
            live = self.ops[token]
            assert (live.order_id, live.sent, live.settled, live.dropped) == (
                order_id,
                False,
                False,
                False,
            )

    # -- the end ----------------------------------------------------------------------------------

    def finish(self) -> None:
        """Answer every call sensibly and let time pass every deadline; then all ops settled."""
        stuck = False
        for _ in range(10_000):
            if self.writing:
                order_id, token = next(iter(self.writing.items()))
                self.write_done(order_id, token, "accepted", f"end-{token}")
            elif any(self.acting.values()):
                order_id = next(o for o, acts in self.acting.items() if acts)
                token = next(iter(self.acting[order_id]))
                self.action_done(order_id, token, "accepted", stale_tag=False)
            elif self.fetching:
                self.tag_learned(next(iter(self.fetching)), "end", None)
            elif self.book.busy() and not stuck:
                self.now += 1e9
                before = sum(live.settled for live in self.ops.values())
                self.tick()
                # Nothing to answer and a tick that settled nothing: only NaN or infinite waits
                # are left (allowed only outside the runner's contract), or nothing moves.
                stuck = not self.writing and not self.fetching and not any(self.acting.values())
                stuck = stuck and before == sum(live.settled for live in self.ops.values())
            else:
                break
        if self.unsettleable:
            return
        assert self.book.busy() == 0, "the book is still busy with every call answered"
        left = [live for live in self.ops.values() if not live.settled and not live.dropped]
        assert left == [], f"ops never settled: {left[:5]}"


class Word:
    """One step's random word, spent a digit at a time (small words shrink to simple steps)."""

    def __init__(self, value: int) -> None:
        self.value = value

    def below(self, n: int) -> int:
        self.value, digit = divmod(self.value, n)
        return digit

    def pick(self, options: Sequence[T]) -> T:
        return options[self.below(len(options))]


DEADLINE_KINDS: tuple[DeadlineKind, ...] = (
    *("inf",) * 6,
    *("future",) * 5,
    "past",
    "-inf",
    "nan",
)
OP_KINDS = ("upsert", "delete", "action", "action")
TTLS = (0.0, 0.5, 3.0, 60.0, 600.0, 3600.0)
ANSWERS = (*TAGS, None, "error")
#: A program: 8 bytes per step.
WORD_BYTES = 8
MASK = 2**64 - 1


def _mix(index: int) -> int:
    """splitmix64 of the step index: a fixed pseudo-random word per step."""
    z = (index + 1) * 0x9E3779B97F4A7C15 & MASK
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9 & MASK
    z = (z ^ (z >> 27)) * 0x94D049BB133111EB & MASK
    return z ^ (z >> 31)


def programs(steps: int, *, exact: bool) -> st.SearchStrategy[list[int]]:
    """Programs of ``steps`` words (at most ``steps`` unless ``exact``).

    Hypothesis favours zero bytes, which would make every step "submit an upsert to the first
    order"; each word is XORed with a fixed per-step word so that simple data still plays a
    varied program (shrinking still shortens the program and replays stay exact).
    """
    size = steps * WORD_BYTES
    raw = st.binary(min_size=size if exact else 0, max_size=size)
    return raw.map(
        lambda b: [
            int.from_bytes(b[i : i + WORD_BYTES], "little") ^ _mix(i // WORD_BYTES)
            for i in range(0, len(b) - WORD_BYTES + 1, WORD_BYTES)
        ]
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class Setup:
    """The book's settings and the orders one program plays on."""

    max_tracked: int
    revision_wait: float
    orders: tuple[str, ...]
    within_contract: bool
    """Deadlines as the pipeline makes them: never NaN, finite for gated actions."""
    embed: bool = False
    """Embedded delivery: actions ride in the writes they depend on."""


SETUPS = st.builds(
    Setup,
    max_tracked=st.integers(0, 4),
    revision_wait=st.sampled_from((0.0, 2.0, 30.0, math.inf)),
    orders=st.lists(st.sampled_from(ORDER_IDS), min_size=1, max_size=4, unique=True).map(tuple),
    within_contract=st.booleans(),
    embed=st.booleans(),
)


def play(setup: Setup, program: list[int]) -> Runner:
    """Run one call per word of ``program`` (sensible or not) on a fresh book, then finish."""
    runner = Runner(
        book=OrderBook(
            max_tracked=setup.max_tracked,
            clock=lambda: runner.now,
            revision_wait=setup.revision_wait,
            embed_actions=setup.embed,
        ),
        max_tracked=setup.max_tracked,
    )
    for value in program:
        word = Word(value)
        choice = word.below(20)
        order_id = word.pick(setup.orders)
        if choice <= 4:
            kind, revision = word.pick(OP_KINDS), word.pick(REVISIONS)
            deadline = word.pick(DEADLINE_KINDS)
            gated = kind == "action" and revision is not None
            if setup.within_contract and (deadline == "nan" or (deadline == "inf" and gated)):
                deadline = "future"
            op = runner.new_op(kind, revision, deadline, word.pick(TTLS))
            runner.submit(order_id, op)
        elif choice <= 8:
            token = pick_token(word, runner, order_id, runner.writing.get(order_id))
            rider = word.pick((None, *RESULTS))
            runner.write_done(order_id, token, word.pick(RESULTS), word.pick((*TAGS, None)), rider)
        elif choice <= 11:
            acting = list(runner.acting.get(order_id, {}))
            sensible = word.pick(acting) if acting else None
            token = pick_token(word, runner, order_id, sensible)
            status = word.pick(RESULTS)
            runner.action_done(order_id, token, status, stale_tag=word.below(2) == 1)
        elif choice <= 13:
            answer = word.pick(ANSWERS)
            error = FETCH_ERROR if answer == "error" else None
            runner.tag_learned(order_id, None if error else answer, error)
        elif choice <= 15:
            runner.now += word.pick((0.0, 0.1, 1.0, 5.0, 100.0))
            runner.tick()
        elif choice == 16:
            ops = runner.drop(order_id)
            # The runner resubmits what it keeps (all, some, or none), in stream order.
            for op in ops[: word.below(len(ops) + 1)]:
                runner.submit(order_id, op)
        elif choice == 17:
            # Time passes without a tick: the next call meets deadlines the book has not seen.
            runner.now += word.pick((0.5, 10.0, 10.0, 1e6))
            runner.calls += 1
            runner.check_book()
        elif choice == 18:
            token = pick_token(word, runner, order_id, runner.writing.get(order_id))
            runner.reconsider(order_id, token)
        else:
            runner.check_snapshot(order_id)
    runner.finish()
    for order_id in setup.orders:
        runner.check_snapshot(order_id)
    return runner


def pick_token(word: Word, runner: Runner, order_id: str, sensible: object) -> object:
    """The token a result names: the right one, another op's, or one the book never saw."""
    how = word.below(5)
    if how <= 2 and sensible is not None:
        return sensible
    if how == 3 and runner.next_token:
        return word.below(runner.next_token)
    return word.pick((object(), -1, "token", order_id, None))


@pytest.mark.slow
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(setup=SETUPS, program=programs(STEPS, exact=True))
def test_nonsensical_call_sequences_never_crash_and_settle_each_op_once(
    setup: Setup, program: list[int]
) -> None:
    """250 random calls (sensible or not) on up to 4 orders keep every invariant of the book."""
    runner = play(setup, program)
    assert runner.calls >= STEPS
    assert setup.within_contract <= (not runner.unsettleable)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(setup=SETUPS, program=programs(40, exact=False))
def test_short_nonsensical_call_sequences_keep_the_invariants(
    setup: Setup, program: list[int]
) -> None:
    """A quick version of the slow fuzz for every run: up to 40 calls, 60 examples."""
    play(setup, program)


def test_results_for_ops_it_does_not_know_are_ignored() -> None:
    """Results for unknown tokens, unsent ops and GETs nobody asked for change nothing."""
    now = 0.0
    book: OrderBook[str] = OrderBook(max_tracked=10, clock=lambda: now, revision_wait=1.0)
    queued = Write(token="w2", kind="upsert", deadline=math.inf)
    first = book.submit("o1", Write(token="w1", kind="upsert", deadline=math.inf))
    assert book.submit("o1", queued) == []
    before = book.snapshot("o1")
    assert (
        book.write_done("o1", "nope", tag="t", status="accepted", reason=None),
        book.write_done("o1", "w2", tag="t", status="accepted", reason=None),
        book.write_done("o2", "w1", tag="t", status="accepted", reason=None),
        book.action_done("o1", "w1", status="accepted", reason=None),
        book.tag_learned("o1", "t"),
        book.tag_learned("o3", None, error="boom"),
    ) == ([], [], [], [], [], [])
    assert book.snapshot("o1") == before
    assert [type(e).__name__ for e in first] == ["SendWrite"]


def test_a_result_reported_twice_settles_once() -> None:
    """The second report of the same write result is ignored: one Settle per op."""
    now = 0.0
    book: OrderBook[str] = OrderBook(max_tracked=10, clock=lambda: now, revision_wait=1.0)
    book.submit("o1", Write(token="w1", kind="upsert", deadline=math.inf))
    once = book.write_done("o1", "w1", tag="t1", status="accepted", reason=None)
    twice = book.write_done("o1", "w1", tag="t2", status="accepted", reason=None)
    assert (once, twice) == (
        [Settle(order_id="o1", token="w1", status="accepted", reason=None, tag="t1")],
        [],
    )
    assert book.snapshot("o1").tag == "t1"


def test_a_nan_deadline_is_refused_or_still_ends() -> None:
    """A gated action with a NaN deadline is refused with ValueError, or settles in the end."""
    clock = [0.0]
    book: OrderBook[str] = OrderBook(max_tracked=10, clock=lambda: clock[0], revision_wait=1.0)
    try:
        effects = book.submit("o1", Action(token="a", min_revision=5, deadline=math.nan))
    except ValueError:
        return
    assert effects == [FetchTag(order_id="o1")]
    effects = book.tag_learned("o1", "t1")
    clock[0] = 1e9
    effects += book.tick()
    ended = [e.token for e in effects if isinstance(e, Settle)]
    ended += [e.op.token for e in effects if isinstance(e, SendAction)]
    assert ended == ["a"]


def test_a_nan_revision_wait_is_refused() -> None:
    """A NaN revision_wait is refused like a negative one."""
    with pytest.raises(ValueError, match="revision_wait"):
        OrderBook(max_tracked=10, clock=lambda: 0.0, revision_wait=math.nan)


def test_negative_settings_are_refused() -> None:
    """Negative max_tracked and revision_wait are refused with a ValueError naming them."""
    with pytest.raises(ValueError, match="max_tracked"):
        OrderBook(max_tracked=-1, clock=lambda: 0.0, revision_wait=1.0)
    with pytest.raises(ValueError, match="revision_wait"):
        OrderBook(max_tracked=1, clock=lambda: 0.0, revision_wait=-0.5)
