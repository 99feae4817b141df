"""The contract files in schemas/: valid JSON Schema 2020-12; their examples mean what they say."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, get_args

import jsonschema
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumer import schemas
from consumer.errors import InvalidEventError
from consumer.events import EVENT_TYPES, INVALID_REASONS, decode_record
from consumer.outcomes import Status

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "schemas" / "examples"
INVALID = EXAMPLES / "invalid"
EXPECTED: dict[str, dict[str, str]] = tomllib.loads((INVALID / "expected.toml").read_text())


def _examples(name: str) -> list[Path]:
    return sorted((EXAMPLES / name).glob("*.json"))


def _load(path: Path) -> Any:
    return orjson.loads(path.read_bytes())


def _reference(name: schemas.SchemaName) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schemas.load_schema(name))


VALID_EXAMPLES = [
    pytest.param(name, path, id=f"{name}/{path.name}")
    for name in schemas.SCHEMA_NAMES
    for path in _examples(name)
]


def test_schema_directory_is_the_checkout_schemas_folder() -> None:
    """In a source checkout the schemas are found in <repo>/schemas."""
    assert schemas.schema_dir() == REPO / "schemas"
    assert {p.name for p in schemas.schema_dir().glob("*.schema.json")} == {
        f"{name}.schema.json" for name in schemas.SCHEMA_NAMES
    }


@pytest.mark.parametrize("name", schemas.SCHEMA_NAMES)
def test_every_schema_is_a_valid_2020_12_schema(name: schemas.SchemaName) -> None:
    """Each schema file passes the JSON Schema 2020-12 metaschema and names its own $id."""
    document = schemas.load_schema(name)
    jsonschema.Draft202012Validator.check_schema(document)
    assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert document["$id"] == f"urn:engage-consumer:schema:{name}"


@pytest.mark.parametrize("name", schemas.SCHEMA_NAMES)
def test_each_schema_is_compiled_once(name: schemas.SchemaName) -> None:
    """Asking for a validator twice returns the same compiled function."""
    assert schemas.compiled(name) is schemas.compiled(name)


@pytest.mark.parametrize(("name", "path"), VALID_EXAMPLES)
def test_valid_example_passes_both_validators(name: schemas.SchemaName, path: Path) -> None:
    """Every example validates with the consumer's compiled schema and the reference library."""
    document = _load(path)
    assert schemas.problem_of(name, document) is None
    assert [e.message for e in _reference(name).iter_errors(document)] == []


@pytest.mark.parametrize("path", _examples("order-event"), ids=lambda p: p.name)
def test_valid_input_example_decodes(path: Path) -> None:
    """Every input example decodes as a record keyed by its subject."""
    document = _load(path)
    event = decode_record(
        key=document["subject"].encode(),
        value=path.read_bytes(),
        topic="orders",
        partition=0,
        offset=7,
    )
    assert (event.id, event.type, event.order_id) == (
        document["id"],
        document["type"],
        document["subject"],
    )


def test_examples_cover_every_input_type_and_outcome_status() -> None:
    """There is a valid example per input type and an outcome example per status."""
    types = {_load(p)["type"] for p in _examples("order-event")}
    statuses = {_load(p)["data"]["status"] for p in _examples("order-outcome")}
    assert types == set(EVENT_TYPES)
    assert statuses == set(get_args(Status))
    assert _examples("dead-letter")


def test_every_invalid_example_has_an_expected_error() -> None:
    """The invalid folder and its expected.toml list the same files."""
    assert {p.name for p in INVALID.glob("*.json")} == set(EXPECTED)


@pytest.mark.parametrize("file", sorted(EXPECTED))
def test_invalid_example_fails_with_its_expected_error(file: str) -> None:
    """Each invalid example is refused with exactly the reason and detail expected.toml states."""
    expected = EXPECTED[file]
    raw = (INVALID / file).read_bytes()
    schema = expected.get("schema", "order-event")
    if schema != "order-event":
        assert schemas.problem_of(schema, orjson.loads(raw)) == expected["detail"]  # type: ignore[arg-type]
        return
    key = expected.get("key")
    with pytest.raises(InvalidEventError) as caught:
        decode_record(
            key=key.encode() if key else None, value=raw, topic="orders", partition=0, offset=0
        )
    assert caught.value.reason == expected["reason"]
    if "detail_prefix" in expected:
        assert caught.value.detail.startswith(expected["detail_prefix"])
    else:
        assert caught.value.detail == expected["detail"]


@pytest.mark.parametrize(
    "file",
    sorted(f for f, e in EXPECTED.items() if e.get("reason", "schema") == "schema"),
)
def test_reference_validator_also_refuses_schema_level_invalid_examples(file: str) -> None:
    """The reference library agrees that schema-level invalid examples break their schema."""
    name = EXPECTED[file].get("schema", "order-event")
    errors = list(_reference(name).iter_errors(_load(INVALID / file)))  # type: ignore[arg-type]
    if file == "time-not-rfc3339.json":
        # jsonschema checks date-time only with an optional extra; fastjsonschema always does.
        assert errors == []
    elif file == "revision-with-exponent.json":
        # A rule the schema states in words and the decoder checks: JSON Schema cannot tell
        # 1e18 from 1000000000000000000.
        assert errors == []
    else:
        assert errors != []


def test_contract_enums_match_the_code() -> None:
    """The schemas list the same event types, statuses and dead-letter reasons as the code."""
    event = schemas.load_schema("order-event")
    outcome = schemas.load_schema("order-outcome")
    dead_letter = schemas.load_schema("dead-letter")
    assert tuple(event["properties"]["type"]["enum"]) == EVENT_TYPES
    assert tuple(outcome["$defs"]["outcome"]["properties"]["status"]["enum"]) == get_args(Status)
    assert tuple(dead_letter["properties"]["x-dlq-reason"]["enum"]) == INVALID_REASONS


@pytest.mark.parametrize(
    ("time", "problem"),
    [
        ("2025-03-01T10:15:00Z", None),
        ("2025-03-01T10:15:00.250+01:00", None),
        ("2025-03-01T10:15:00", "time: must be an RFC 3339 date-time with an offset, e.g. …"),
        ("2025-02-30T10:15:00Z", "time: must be an RFC 3339 date-time with an offset, e.g. …"),
        ("yesterday", "time: must be an RFC 3339 date-time with an offset, e.g. …"),
    ],
)
def test_event_time_format_is_checked(time: str, problem: str | None) -> None:
    """`time` must be an RFC 3339 date-time with an offset and a real calendar day."""
    document = _load(EXAMPLES / "order-event" / "completed.json")
    document["time"] = time
    found = schemas.problem_of("order-event", document)
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert found.startswith(problem.removesuffix("…"))


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda d: d.update(source=""), "source: must not be empty"),
        (lambda d: d.update(subject=None), "subject: must be a string"),
        (lambda d: d.update(datacontenttype="text/xml"), "datacontenttype: must match"),
        (lambda d: d.update(sampled=True), None),
        (lambda d: d.update(region=["eu"]), "region: must be a string or an integer"),
        (lambda d: d.update(data=[]), "data: must be an object"),
        (lambda d: d.pop("data"), "data: is required"),
        (lambda d: d.update(data={"language": "sv_SE"}), "data.language: must match"),
        (lambda d: d.update(data={"actionData": 1}), "data.actionData: must be an object"),
    ],
)
def test_schema_problems_are_worded_with_their_path(change: Any, problem: str | None) -> None:
    """Violations read "<JSON path>: <what is wrong>"; extension attributes are accepted."""
    document = _load(EXAMPLES / "order-event" / "completed.json")
    change(document)
    found = schemas.problem_of("order-event", document)
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert found.startswith(problem)


def test_order_body_passes_unknown_members_through() -> None:
    """An Engage order body may carry any member the contract does not name."""
    document = _load(EXAMPLES / "order-event" / "upserted-minimal.json")
    document["data"]["order"]["someFutureField"] = {"nested": [1, 2]}
    assert schemas.problem_of("order-event", document) is None


def test_missing_members_are_all_named() -> None:
    """A violation of `required` names the first missing member and lists the others."""
    problem = schemas.problem_of("order-event", {"specversion": "1.0", "data": {}})
    assert problem == "id: is required (also missing: source, type, subject, time)"


def _input_documents() -> list[dict[str, Any]]:
    documents = [_load(p) for p in _examples("order-event")]
    for file, expected in EXPECTED.items():
        if expected.get("schema", "order-event") == "order-event":
            try:
                document = _load(INVALID / file)
            except orjson.JSONDecodeError:
                continue
            if isinstance(document, dict):
                documents.append(document)
    return documents


def _full_and_fast(document: dict[str, Any]) -> tuple[str | None, str | None]:
    return schemas.problem_of("order-event", document), schemas.event_problem(document)


@pytest.mark.parametrize("document", _input_documents(), ids=lambda d: str(d.get("id")))
def test_type_specialised_validation_agrees_with_the_full_schema(document: dict[str, Any]) -> None:
    """Validating with the branch for the event's type gives the full schema's verdict and words."""
    full, fast = _full_and_fast(document)
    assert fast == full


_SCALARS = st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=4)


@settings(max_examples=200, deadline=None)
@given(
    event_type=st.sampled_from([*EVENT_TYPES, "order.other", 3]),
    data=st.dictionaries(
        st.sampled_from(["order", "revision", "action", "language", "data", "minRevision", "x"]),
        _SCALARS | st.fixed_dictionaries({"orderId": _SCALARS}),
        max_size=4,
    ),
)
def test_type_specialised_validation_agrees_on_arbitrary_data(
    event_type: object, data: dict[str, Any]
) -> None:
    """For any type and any data, the specialised and the full validator say the same thing."""
    document = _load(EXAMPLES / "order-event" / "completed.json")
    document["type"] = event_type
    document["data"] = data
    full, fast = _full_and_fast(document)
    assert fast == full


def test_only_branches_that_test_the_type_alone_are_chosen_up_front() -> None:
    """An `if` that looks at more than `type` is kept in the specialised schema as written."""
    assert schemas._looks_only_at_type({"required": ["type"], "properties": {"type": {}}})
    assert not schemas._looks_only_at_type({"properties": {"data": {}}})
    assert not schemas._looks_only_at_type({"required": ["type"], "minProperties": 2})
