"""Benchmark stage ``tickets-webhook``: Zendesk webhook deliveries accepted per second, signature on.

A real ``serve-http`` process (its own, with ``FEEDBACK_ZENDESK_WEBHOOK_SECRET`` set) on the bench's
broker, with the processor and the warehouse sink running. Closed loop: ``CONNECTIONS`` clients
post as fast as the answers come for ``ctx.http_seconds``; every delivery is a distinct signed
``zen:event-type:ticket.comment_added`` event, and ``202`` means the broker acknowledged the record
(``acks=all``). The baseline, measured in the same run on the same service, is ``POST /v1/events``
with the equivalent records (no signature check, no mapping). The stage then waits until every
accepted delivery is a row in the warehouse.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import json
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime

from pipeline import broker
from tests.bench.core import BenchContext, Result, latency_results, stage
from tests.bench.rig import wait_count, wait_until
from tests.bench.spine import resource_results, rig

NAME = "tickets-webhook"
TARGET = 1000.0  # deliveries/s accepted end to end with signature checking on (issue 4)
CONNECTIONS = 64
SECRET = b"bench-zendesk-secret"
TEXTS = ["The replacement arrived broken again, this is really disappointing.",
         "Thanks, the refund came through quickly. Great support!",
         "I still cannot log in to the app after the update.",
         "Delivery was two days late and nobody told me why."]

Request = tuple[str, bytes, dict[str, str]]


def webhook_request(run: str, k: int) -> Request:
    """A distinct Zendesk comment_added delivery, signed as Zendesk does (timestamp + body)."""
    tid = f"{run}{k:08d}"
    body = json.dumps({
        "account_id": 22129848, "id": f"bench-{tid}", "subject": f"zen:ticket:{tid}",
        "time": "2025-06-01T10:00:00Z", "type": "zen:event-type:ticket.comment_added",
        "zendesk_event_version": "2022-11-06",
        "detail": {"id": tid, "subject": "Order problem", "status": "OPEN", "priority": "NORMAL", "type": "INCIDENT",
                   "requester_id": "8447388090494", "group_id": "360001234567", "tags": ["bench", "order"],
                   "created_at": "2025-06-01T09:00:00Z", "updated_at": "2025-06-01T10:00:00Z",
                   "description": "My order never arrived.", "via": {"channel": "email"}},
        "event": {"comment": {"id": int(tid) * 10 + 1, "body": TEXTS[k % len(TEXTS)], "is_public": True,
                              "author": {"id": 8447388090494, "is_staff": False, "name": "Customer"}}},
    }).encode()
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    sig = base64.b64encode(hmac.new(SECRET, stamp.encode() + body, hashlib.sha256).digest()).decode()
    return "/webhooks/zendesk", body, {"Content-Type": "application/json", "X-Zendesk-Webhook-Signature": sig,
                                       "X-Zendesk-Webhook-Signature-Timestamp": stamp}


def events_request(run: str, k: int) -> Request:
    """The record the webhook above maps to, posted to /v1/events (the baseline)."""
    tid = f"{run}{k:08d}"
    body = json.dumps({
        "source": "ticket", "channel": "zendesk", "source_ref": f"zendesk:ticket:{tid}:comment:{int(tid) * 10 + 1}",
        "thread_ref": f"zendesk:ticket:{tid}", "subject": "Order problem", "text": TEXTS[k % len(TEXTS)],
        "tags": ["bench", "order"], "event_time": "2025-06-01T10:00:00Z",
        "attributes": {"ticket_system": "zendesk", "ticket_id": tid, "ticket_event": "comment",
                       "ticket_status": "open", "ticket_priority": "normal", "ticket_group": "360001234567",
                       "ticket_type": "incident", "ticket_tags": "bench,order", "ticket_solved": False,
                       "ticket_created_at": "2025-06-01T09:00:00+00:00",
                       "ticket_updated_at": "2025-06-01T10:00:00+00:00", "comment_id": str(int(tid) * 10 + 1)},
    }).encode()
    return "/v1/events", body, {"Content-Type": "application/json"}


async def closed_loop(url: str, make: Callable[[int], Request], seconds: float,
                      connections: int = CONNECTIONS) -> tuple[list[float], list[int], float]:
    """``connections`` senders post back to back for ``seconds``: (latencies of 202s, statuses, wall)."""
    import aiohttp

    counter = itertools.count()
    latencies: list[float] = []
    statuses: list[int] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(url, connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        async def sender() -> None:
            while loop.time() < deadline:
                path, body, headers = make(next(counter))
                sent = loop.time()
                try:
                    async with session.post(path, data=body, headers=headers) as resp:
                        await resp.read()
                        status = resp.status
                except (aiohttp.ClientError, TimeoutError):
                    status = 0
                statuses.append(status)
                if status == 202:
                    latencies.append(loop.time() - sent)

        started = loop.time()
        await asyncio.gather(*(sender() for _ in range(connections)))
        wall = loop.time() - started
    return latencies, statuses, wall


def handler_costs(n: int = 3000) -> tuple[float, float]:
    """CPU seconds per delivery of the route's own work, in this process, without HTTP or broker:
    (Zendesk: verify signature + parse + map + encode, /v1/events: parse + validate + encode)."""
    from starlette.datastructures import Headers

    from connectors.http.app import validate_event
    from connectors.tickets import auth, zendesk
    from connectors.tickets.model import RecordFactory
    from pipeline.publisher import encode

    hooks = [webhook_request("7" + str(k % 10), k) for k in range(n)]
    events = [events_request("6" + str(k % 10), k) for k in range(n)]
    started = time.process_time()
    for _path, body, headers in hooks:
        auth.check_zendesk(Headers(headers), body, [SECRET], 300)
        for record in zendesk.map_webhook(json.loads(body), RecordFactory(b"bench")).records:
            encode(record)
    hook = (time.process_time() - started) / n
    started = time.process_time()
    for k, (_path, body, _headers) in enumerate(events):
        encode(validate_event(k, json.loads(body), 64 * 1024))
    return hook, (time.process_time() - started) / n


@stage(NAME)
def webhook_stage(ctx: BenchContext) -> list[Result]:
    """Zendesk webhook deliveries/s accepted (signature on) against /v1/events in the same run."""
    hook_cpu, event_cpu = handler_costs()
    r = rig(ctx)
    r.ensure_pipeline()
    port = r.free_port()
    url = f"http://127.0.0.1:{port}"
    env = r.env("", FEEDBACK_HTTP_PORT=str(port), FEEDBACK_ZENDESK_WEBHOOK_SECRET=SECRET.decode())
    r.spawn("tickets-http", ["-m", "pipeline", "serve-http"], env)
    wait_until(lambda: broker.port_open("127.0.0.1", port), 60, "the webhook HTTP service", r.check)
    run = str(random.randint(100_000, 999_999))
    seconds = ctx.http_seconds
    warm = asyncio.run(closed_loop(url, lambda k: webhook_request("9" + run[1:], k), 1.0, 4))
    if 202 not in warm[1]:
        raise RuntimeError(f"the webhook route refused the warm-up deliveries: {sorted(set(warm[1]))}")
    ctx.log(f"[bench] {NAME}: baseline /v1/events, {CONNECTIONS} connections, {seconds:g} s")
    base_lat, base_status, base_wall = asyncio.run(
        closed_loop(url, lambda k: events_request("8" + run[1:], k), seconds))
    ctx.log(f"[bench] {NAME}: Zendesk webhook, signature on, {CONNECTIONS} connections, {seconds:g} s")
    r.sampler.begin()
    hook_lat, hook_status, hook_wall = asyncio.run(closed_loop(url, lambda k: webhook_request(run, k), seconds))
    window = r.sampler.end()
    accepted, base_accepted = hook_status.count(202), base_status.count(202)
    started = time.monotonic()
    done = wait_count(lambda: r.count(f"zendesk:ticket:{run}"), accepted, 60, "webhook rows", r.check)
    drained = time.monotonic() - started
    r.stop("tickets-http")
    other = len(hook_status) - accepted
    desc = f"closed loop, {CONNECTIONS} connections, {seconds:g} s"
    return [
        Result(NAME, "Zendesk webhook deliveries accepted (202 after broker ack), signature on",
               accepted / hook_wall, "req/s", baseline=base_accepted / base_wall,
               baseline_name="POST /v1/events, same records, same service", target=TARGET,
               notes=f"{desc}; {accepted:,} accepted, {other:,} not (statuses {sorted(set(hook_status))})"),
        *latency_results(NAME, "webhook request (202 after broker ack)", hook_lat, desc),
        *latency_results(NAME, "baseline /v1/events request", base_lat, desc),
        Result(NAME, "route's own CPU per delivery (verify + parse + map + encode)", hook_cpu * 1e6, "µs",
               baseline=event_cpu * 1e6, baseline_name="/v1/events parse + validate + encode",
               higher_is_better=False, notes="in-process, no HTTP server, no broker"),
        Result(NAME, "accepted deliveries found in the warehouse", done, "rows",
               notes=f"of {accepted:,}; the last arrived {drained:.1f} s after the load stopped"),
        *resource_results(NAME, window, ("tickets-http",)),
    ]
