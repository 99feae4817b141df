"""``engage-consumer inspect ORDER_ID``: what a running consumer knows of one order.

Asks a consumer's health port (``GET /orders/{orderId}``) and prints its answer: the order's
state in the book, its confirmed tag and revision, the events waiting behind it (which stage,
since when), the partition its key lands on and whether the asked member owns it. In
Kubernetes, port-forward one pod first::

    kubectl port-forward pod/<pod> 8080
    engage-consumer inspect ORD-1001

A replica that does not own the order's partition says so: ask another one. Exit status: 0 when
the consumer answered, 1 when none answered at the URL, 2 for bad arguments.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import quote

if TYPE_CHECKING:
    import argparse


def _default_url() -> str:
    port = os.environ.get("HTTP_PORT", "8080").strip() or "8080"
    return f"http://127.0.0.1:{port}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the command's arguments."""
    parser.add_argument("order_id", metavar="ORDER_ID", help="the order to look up")
    parser.add_argument(
        "--url",
        default=None,
        help="the consumer's health port (default http://127.0.0.1:$HTTP_PORT, else :8080)",
    )
    parser.add_argument(
        "--json", action="store_true", dest="as_json", help="print the consumer's JSON as is"
    )
    parser.add_argument(
        "--timeout", type=float, default=5.0, metavar="SECONDS", help="how long to wait (5)"
    )


def run_from_args(args: argparse.Namespace) -> int:
    """Ask the consumer and print what it knows; returns the exit status."""
    import httpx  # noqa: PLC0415 - heavy import, used at run time
    import orjson  # noqa: PLC0415

    url = (args.url or _default_url()).rstrip("/")
    if not url.startswith(("http://", "https://")):
        sys.stderr.write(f"--url {url!r} must be an http(s) URL\n")
        return 2
    try:
        answer = httpx.get(f"{url}/orders/{quote(args.order_id, safe='')}", timeout=args.timeout)
    except httpx.HTTPError as exc:
        sys.stderr.write(
            f"no consumer answered at {url} ({type(exc).__name__}); is one running there? "
            "In Kubernetes: kubectl port-forward pod/<pod> 8080\n"
        )
        return 1
    if answer.status_code != 200:
        sys.stderr.write(f"{url} answered {answer.status_code}: {answer.text[:500]}\n")
        return 1
    body = answer.json()
    if args.as_json:
        sys.stdout.write(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print_order(body, sys.stdout)
    return 0


def print_order(body: dict[str, Any], out: TextIO) -> None:
    """The consumer's answer, for a person."""
    member = body.get("member", {})
    where = f"{member.get('host', '?')} (group {member.get('groupId', '?')})"
    out.write(f"order {body['orderId']} as {where} knows it\n")
    if member.get("engageKeyRefused"):
        out.write("  ! Engage refuses this member's API key: every event waits\n")
    owners = [
        f"{p['topic']}[{p['partition']}]{'' if p['ownedHere'] else ' (not this member)'}"
        for p in body.get("partitions", [])
    ]
    out.write(f"  partitions  {', '.join(owners) or '-'}\n")
    if not body["tracked"]:
        hint = "" if body.get("ownedHere") else "; another member owns it: ask that one"
        out.write(f"  not tracked: this member holds nothing about it{hint}\n")
        return
    out.write(f"  state       {body['state']}\n")
    out.write(f"  versionTag  {body['versionTag'] or '-'}\n")
    revision = body["revision"]
    out.write(f"  revision    {'-' if revision is None else revision}\n")
    exists = body["existsInEngage"]
    out.write(f"  in Engage   {'unknown' if exists is None else ('yes' if exists else 'no')}\n")
    waiting = body.get("waiting", [])
    if not waiting:
        out.write("  waiting     nothing\n")
        return
    out.write(f"  busy since  {body['busySince']}\n")
    out.write("  waiting:\n")
    for op in waiting:
        what = op["action"] or op["role"]
        out.write(
            f"    {op['stage']:<8} {what:<18} {op['eventType']:<20} "
            f"{op['topic']}[{op['partition']}]@{op['offset']}  {op['waitingSeconds']:.1f} s"
            f"  (event {op['eventId']})\n"
        )
