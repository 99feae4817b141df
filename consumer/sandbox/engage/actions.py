"""The simulator's action rules, shared by the action endpoint and embedded order actions.

Owns what a valid action request is (``action_fields``, ``embedded_action``), when an order
can be acted on (``has_contact``), and how a write's job answer reports the action embedded in
it (``embedded_report``). Pure: it imports only the standard library, never the model or the
server; the model (engage_state) decides *when* an action runs, this module only *what* it is.

Embedded order actions, where Engage's public documentation is silent (engage-api.md: "send an
embedded order action in the payload"), as the simulator reads them:

* POST /api/v3/orders and PUT /api/v3/orders/{orderId} may carry, under the field named by
  ``SimulatorSettings.embedded_action_field`` (default ``orderAction``), the object the action
  endpoint takes, without ``versionTag``: it applies to exactly the write it came with.
* The field is stripped before the order is stored or digested, so a write with an embedded
  action stores the same document (and digest) as the same write without one.
* It is checked by the action endpoint's rules (``action`` a non-empty string, ``language`` a
  string when present, ``data`` free JSON), plus: it must be an object (``null`` too is refused)
  and must not carry ``versionTag``. Any merchant string is a valid action name, as on the
  endpoint, so "an unknown action type" is a missing, empty or non-string ``action``. A refusal
  is 400 ``InvalidOrderAction`` for the whole write: nothing stored, no job.
* When the write's job succeeds the action runs on that write's new tag, as a separate action
  would (journaled with the same fields plus ``embedded: true`` and the write's ``jobId``); the
  job's answer then carries ``{<field>: {"status": "Succeeded"}}``, or ``{"status": "Failed",
  "errorCode": "OrderHasNoContact"}`` when the order has no contact (the job itself succeeded).
  When the job fails, the action does not run: ``{<field>: {"status": "NotRun"}}``. A pending
  job's answer, and the answer of a write without an embedded action, have no such field.
* ``refuse_actions_while_writing`` does not apply: an embedded action is tied to its own write,
  whatever writes of the order are queued behind it. It costs no request of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

EmbeddedStatus = Literal["Succeeded", "Failed", "NotRun"]

#: The errorCode of a write refused for its embedded action (undocumented by Engage: ours).
INVALID_ORDER_ACTION: Final = "InvalidOrderAction"
#: The errorCode when the order has no contact: the action endpoint's 422 and the job report.
NO_CONTACT: Final = "OrderHasNoContact"


@dataclass(frozen=True, kw_only=True, slots=True)
class Refusal:
    """Why an action request is refused: the ``errorCode`` and a message for the 400 body."""

    code: str
    message: str


def action_fields(request: dict[str, Any], *, tagged: bool) -> dict[str, Any] | Refusal:
    """The action's fields in journal order, or why they are refused.

    ``tagged``: the action endpoint's request, which must carry ``versionTag``; an embedded
    action has none (the caller refuses one that does) and gets its write's tag when it runs.
    """
    action, language = request.get("action"), request.get("language")
    if not isinstance(action, str) or not action:
        return Refusal(code="InvalidAction", message="action is required and must be a string")
    fields: dict[str, Any] = {"action": action}
    if tagged:
        tag = request.get("versionTag")
        if not isinstance(tag, str) or not tag:
            return Refusal(
                code="InvalidVersionTag", message="versionTag is required and must be a string"
            )
        fields["versionTag"] = tag
    if language is not None and not isinstance(language, str):
        return Refusal(code="InvalidLanguage", message="language must be a string")
    fields["language"] = language
    fields["data"] = request.get("data")
    return fields


def embedded_action(value: object, *, field: str) -> dict[str, Any] | Refusal:
    """An embedded action's fields (``action``, ``language``, ``data``), or why it is refused.

    Every refusal has the code ``InvalidOrderAction``; the message names the rule it broke.
    """
    if not isinstance(value, dict):
        return Refusal(code=INVALID_ORDER_ACTION, message=f"{field} must be a JSON object")
    if "versionTag" in value:
        return Refusal(
            code=INVALID_ORDER_ACTION,
            message=f"{field} applies to its own write and must not carry a versionTag",
        )
    fields = action_fields(value, tagged=False)
    if isinstance(fields, Refusal):
        return Refusal(code=INVALID_ORDER_ACTION, message=f"{field}: {fields.message}")
    return fields


def has_contact(order: dict[str, Any]) -> bool:
    """Whether an action can act on the order: it has a ``contact`` with a ``matchKey``."""
    contact = order.get("contact")
    return isinstance(contact, dict) and bool(contact.get("matchKey"))


def embedded_report(status: EmbeddedStatus) -> dict[str, str]:
    """What a job's answer says of its embedded action (under the configured field name)."""
    if status == "Failed":
        return {"status": "Failed", "errorCode": NO_CONTACT}
    return {"status": status}
