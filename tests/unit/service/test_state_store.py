"""The state topic's record format: what a new owner reads back is what the old one knew."""

from __future__ import annotations

import orjson
import pytest

from consumer.orders import Knowledge, State
from consumer.service.state_store import decode, encode

CONFIRMED = Knowledge(state=State.CONFIRMED, tag="T7", revision=7, floor=7, exists=True)
FAILED = Knowledge(
    state=State.FAILED, tag=None, revision=None, floor=3, exists=None, failed_revision=5
)
ABSENT = Knowledge(state=State.ABSENT, tag=None, revision=9, floor=9, exists=False, deleted=True)


@pytest.mark.parametrize("knowledge", [CONFIRMED, FAILED, ABSENT])
def test_a_record_reads_back_as_what_was_known(knowledge: Knowledge) -> None:
    """Every state an idle order can be in survives the trip, with who wrote it and when."""
    assert decode(encode(knowledge, generation=4, sequence=17)) == (knowledge, (4, 17))


@pytest.mark.parametrize(
    "value",
    [
        b"not json",
        b"[]",
        orjson.dumps({"v": 2, "state": "confirmed"}),
        orjson.dumps({"v": 1, "state": "writing", "generation": 1, "sequence": 1}),
        orjson.dumps({"v": 1, "state": "confirmed", "tag": 5, "generation": 1, "sequence": 1}),
        orjson.dumps(
            {"v": 1, "state": "confirmed", "revision": True, "generation": 1, "sequence": 1}
        ),
        orjson.dumps({"v": 1, "state": "nonsense", "generation": 1, "sequence": 1}),
        orjson.dumps({"v": 1, "state": "confirmed", "tag": "T"}),
    ],
)
def test_a_record_this_version_cannot_read_is_skipped(value: bytes) -> None:
    """Damaged, foreign or future records are skipped (None), never half-read."""
    assert decode(value) is None


def test_newer_generations_and_sequences_compare_greater() -> None:
    """The restore keeps the newest: a later generation wins over any sequence of an older one."""
    _, older = decode(encode(CONFIRMED, generation=3, sequence=999)) or (None, (0, 0))
    _, newer = decode(encode(CONFIRMED, generation=4, sequence=1)) or (None, (0, 0))
    assert newer > older
