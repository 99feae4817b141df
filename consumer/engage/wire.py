"""Engage's wire format where its documentation is silent or marked beta, in one place.

Everything here is a *reading* of Engage Orders v3 that engage-api.md marks **(undocumented)**
or beta. Each reading is one small pure function so that, when Engage's real behaviour turns
out different, one function changes and nothing else:

- ``job_link``: where a write's answer names its job (``Location`` header, else a body field).
- ``job_state``: how a job poll says "still running", "done" or "failed".
- ``version_tag``: where an order's body carries its ``versionTag`` (top level).
- ``order_already_exists``: how a POST create says the order is already there (409, or text).
- ``action_body`` / ``action_rejection_reason``: the beta action call, request and refusals.
- ``embedded_action`` / ``with_embedded_action`` / ``embedded_action_result`` /
  ``embedded_action_refused``: the embedded order action of a write (Engage documents that
  it exists, not its shape): what it looks like, where it goes in the order body, how the job
  reports it, and how a write refused because of it says so.

No I/O and no httpx objects: the client (``consumer.engage.client``) hands in status codes, header
values and decoded bodies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal
from urllib.parse import quote

import orjson

if TYPE_CHECKING:
    from collections.abc import Mapping

ORDERS_PATH: Final = "/api/v3/orders"
JOBS_PATH: Final = "/api/v3/orders/jobs"

# Job status words seen in a 200 body. Engage documents only "302 when done"; a body that says
# it finished is trusted too, because a proxy that follows redirects would hide the 302.
_DONE_WORDS: Final = frozenset({"done", "succeeded", "success", "completed", "complete", "ok"})
_FAILED_WORDS: Final = frozenset({"failed", "failure", "error", "errored", "rejected", "aborted"})

JobStateName = Literal["pending", "done", "failed", "transient"]


def order_path(order_id: str) -> str:
    """Path of one order; the id is percent-encoded because producers choose it freely."""
    return f"{ORDERS_PATH}/{quote(order_id, safe='')}"


def action_path(order_id: str) -> str:
    """Path of the action endpoint of one order."""
    return f"{order_path(order_id)}/action"


def decode_body(content: bytes) -> Any:  # noqa: ANN401 - JSON is whatever Engage sent
    """Decode a JSON body, or return None when it is empty or not JSON (error pages, proxies)."""
    if not content:
        return None
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return None


def job_link(location: str | None, body: Any) -> str | None:  # noqa: ANN401
    """Find the job a write answer points to: a URL or path, or None when the answer names none.

    (undocumented) The docs say the answer "links" to ``/api/v3/orders/jobs/{jobId}`` without
    saying how; we read the ``Location`` header first, then the first of a few body fields.
    """
    if location:
        return location
    if not isinstance(body, dict):
        return None
    for key in ("location", "jobLink", "jobUrl", "link", "href", "self"):
        value = body.get(key)
        if isinstance(value, str) and value:
            return value
    for key in ("jobId", "id"):
        value = body.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
            return f"{JOBS_PATH}/{quote(str(value), safe='')}"
    return None


def job_id_from_link(link: str) -> str | None:
    """The job id as the last path segment of a job link, when the link looks like one."""
    path = link.split("?", 1)[0].rstrip("/")
    marker = "/jobs/"
    if marker not in path:
        return None
    return path.rsplit("/", 1)[-1] or None


@dataclass(frozen=True, kw_only=True, slots=True)
class JobState:
    """What one poll of a job said."""

    state: JobStateName
    reason: str | None = None


def job_state(status: int, body: Any) -> JobState:  # noqa: ANN401
    """Decide what a job poll answer means.

    Documented: 302 means done; an error status means failed, with a body that says why.
    (undocumented) 202, or 200 with a status word that is not final, means still running.
    429 and 5xx are Engage's own trouble answering, 401/403 a refused API key, not the job's:
    poll again (``transient``).
    """
    if status in (301, 302, 303, 307, 308):
        return JobState(state="done")
    word = _status_word(body)
    if word in _FAILED_WORDS:
        # A body that says the job failed is believed whatever the status, 500 included: a job
        # whose processing crashed is a failed job, not a poll to repeat.
        return JobState(state="failed", reason=reason_text(body) or word)
    if status in (401, 403, 429) or status >= 500:
        # 401/403: Engage refused the API key, not the job; the poll goes again once it works.
        return JobState(state="transient", reason=reason_text(body) or f"HTTP {status}")
    if status >= 400:
        return JobState(state="failed", reason=reason_text(body) or f"HTTP {status}")
    if status == 200 and word in _DONE_WORDS:
        return JobState(state="done")
    # 202, 200 with "Queued"/"Processing"/no status, any other 2xx: not finished yet.
    return JobState(state="pending")


def _status_word(body: Any) -> str | None:  # noqa: ANN401
    if isinstance(body, dict):
        word = body.get("status") or body.get("state")
        if isinstance(word, str):
            return word.strip().lower()
    return None


def version_tag(body: Any) -> str | None:  # noqa: ANN401
    """(undocumented) The order's current versionTag: a top-level ``versionTag`` string."""
    if isinstance(body, dict):
        tag = body.get("versionTag")
        if isinstance(tag, str) and tag:
            return tag
    return None


def order_already_exists(status: int, body: Any) -> bool:  # noqa: ANN401
    """(undocumented) Whether a POST create was refused because the orderId is taken.

    We assume 409; some Engage endpoints answer 400/422 with text saying it already exists.
    """
    if status == 409:
        return True
    if status in (400, 422):
        text = (reason_text(body) or "").lower()
        return "already exist" in text
    return False


def action_body(
    *, action: str, version_tag: str, language: str | None, data: dict[str, Any] | None
) -> dict[str, Any]:
    """The JSON body of ``POST /api/v3/orders/{orderId}/action`` (beta in Engage)."""
    body: dict[str, Any] = {"action": action, "versionTag": version_tag}
    if language is not None:
        body["language"] = language
    if data is not None:
        body["data"] = data
    return body


ActionRefusal = Literal["bad_request", "stale_tag_or_unknown_order", "no_contact", "refused"]


def action_rejection_reason(status: int) -> ActionRefusal:
    """Why Engage refused an action, from its documented answers.

    404 cannot tell a stale versionTag from an unknown order: both mean "the tag you hold is not
    the order's current one", which the order book resolves by re-reading the tag.
    """
    if status == 400:
        return "bad_request"
    if status == 404:
        return "stale_tag_or_unknown_order"
    if status == 422:
        return "no_contact"
    return "refused"


def reason_text(body: Any) -> str | None:  # noqa: ANN401
    """A human-readable reason from an error body, whatever shape Engage chose for it."""
    if isinstance(body, str):
        return body or None
    if isinstance(body, dict):
        for key in ("reason", "message", "error", "detail", "title", "errorMessage"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value
            if isinstance(value, dict):
                nested = reason_text(value)
                if nested:
                    return nested
    return None


#: (undocumented) The order-body field that carries an embedded action, unless a setting
#: (``ENGAGE_EMBEDDED_ACTION_FIELD``) names another.
EMBEDDED_ACTION_FIELD: Final = "orderAction"


def embedded_action(
    *, action: str, language: str | None, data: dict[str, Any] | None
) -> dict[str, Any]:
    """(undocumented) An action riding in a write: the action call's body without versionTag.

    Engage applies it to exactly the write it arrives with, so there is no tag to check.
    """
    body: dict[str, Any] = {"action": action}
    if language is not None:
        body["language"] = language
    if data is not None:
        body["data"] = data
    return body


def with_embedded_action(
    order: Mapping[str, Any], action: Mapping[str, Any], *, field: str
) -> dict[str, Any]:
    """(undocumented) The order body with ``action`` under ``field`` (a copy; ``order`` stays)."""
    return {**order, field: dict(action)}


EmbeddedState = Literal["succeeded", "failed", "not_run", "unreported"]


@dataclass(frozen=True, kw_only=True, slots=True)
class EmbeddedResult:
    """What a job's answer said of the action that rode in its write."""

    state: EmbeddedState
    error_code: str | None = None
    reason: str | None = None


def embedded_action_result(body: Any, *, field: str) -> EmbeddedResult:  # noqa: ANN401
    """(undocumented) How a finished job reports its embedded action.

    Our reading: the job's answer carries ``field`` as ``{"status": "Succeeded"}``,
    ``{"status": "Failed", "errorCode": "OrderHasNoContact", "message": ...}`` or
    ``{"status": "NotRun"}`` (the job failed, so the action did not run). No such object:
    ``unreported`` (a 302 without a body, for one), which the dispatcher reads as run, since
    Engage says the action "will be used" when the write is processed.
    """
    report = body.get(field) if isinstance(body, dict) else None
    if not isinstance(report, dict):
        return EmbeddedResult(state="unreported")
    word = _status_word(report) or ""
    code = report.get("errorCode")
    code = code if isinstance(code, str) and code else None
    if word in _DONE_WORDS:
        return EmbeddedResult(state="succeeded")
    if word in {"notrun", "not_run", "not run", "skipped", "cancelled", "canceled"}:
        return EmbeddedResult(state="not_run", reason=reason_text(report))
    if word in _FAILED_WORDS or code is not None:
        return EmbeddedResult(state="failed", error_code=code, reason=reason_text(report) or code)
    return EmbeddedResult(state="unreported", reason=word or None)


#: (undocumented) errorCode of a job's embedded-action report that means "no contact to send to"
NO_CONTACT_CODES: Final = frozenset({"OrderHasNoContact", "NoContact", "ContactNotFound"})


def embedded_action_refused(status: int, body: Any, *, field: str) -> bool:  # noqa: ANN401
    """(undocumented) Whether a write was refused (400/422) because of its embedded action.

    We assume an ``errorCode`` of ``InvalidOrderAction``, or words naming the field; the write
    is then sent again without the action, and the action alone is ``rejected``.
    """
    if status not in (400, 422):
        return False
    if isinstance(body, str):
        # The error's text (a body cut short is no longer JSON): look for the same words.
        text = body.lower()
        return "invalidorderaction" in text or f'"{field.lower()}' in text
    if not isinstance(body, dict):
        return False
    code = body.get("errorCode")
    if isinstance(code, str) and code.lower() in {"invalidorderaction", "invalidembeddedaction"}:
        return True
    return field.lower() in (reason_text(body) or "").lower()
