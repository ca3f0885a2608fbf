"""Ops functions: thin triggers over ``flowsuite.ops.service``."""

from __future__ import annotations

import json

from firebase_functions import https_fn, scheduler_fn, tasks_fn
from firebase_functions.options import RateLimits, RetryConfig

from flowsuite.core import bus, clients, options
from flowsuite.core.callables import CallContext, callable_function
from flowsuite.ops import health, models, service, triggers
from flowsuite.ops.triggers import *  # noqa: F403 - its document triggers, served alone (registry.own_module)

__all__ = [
    "opsRedeliver",
    "ops_sweep",
    "ops_run_sweep",
    "ops_send_probe",
    *triggers.__all__,
    "ops_list_dead_letters",
    "ops_replay_dead_letters",
    "ops_get_metrics",
    "ops_diagnose",
    "ops_health",
    "ops_ping",
]

ADMIN = ("admin",)


@options.trigger(
    tasks_fn.on_task_dispatched,
    # Retries here only cover a task that arrived early (the emulator ignores
    # schedule_time) or a crashed instance; the bus counts delivery attempts itself.
    retry_config=RetryConfig(max_attempts=60, min_backoff_seconds=1, max_backoff_seconds=300, max_doublings=4),
    rate_limits=RateLimits(max_concurrent_dispatches=10),
)
def opsRedeliver(req: tasks_fn.CallableRequest) -> None:
    """Runs one scheduled retry of a failed delivery (enqueued by the bus)."""
    data = req.data or {}
    bus.redeliver(str(data.get("subscriber", "")), str(data.get("event_path", "")), via="retry")


@options.trigger(scheduler_fn.on_schedule, schedule="every 5 minutes")
def ops_sweep(event: scheduler_fn.ScheduledEvent) -> None:
    """Retries due deliveries, takes over stalled ones, delivers lost events."""
    service.run_sweep(clients.firestore())


@callable_function(request=models.RunSweep, response=models.SweepAnswer, roles=ADMIN)
def ops_run_sweep(ctx: CallContext, req: models.RunSweep) -> models.SweepAnswer:
    """Runs the bus sweep now (admin)."""
    return models.SweepAnswer(**service.run_sweep(clients.firestore()))


@callable_function(request=models.SendProbe, response=models.ProbeAnswer, roles=ADMIN, idempotent=True)
def ops_send_probe(ctx: CallContext, req: models.SendProbe) -> models.ProbeAnswer:
    """Sends a synthetic event through the bus (admin)."""
    probe_id, event_id = service.send_probe(clients.firestore(), note=req.note, correlation_id=ctx.correlation_id)
    return models.ProbeAnswer(probe_id=probe_id, event_id=event_id, correlation_id=ctx.correlation_id)


@callable_function(request=models.ListDeadLetters, response=models.DeadLetterList, roles=ADMIN, read_only=True)
def ops_list_dead_letters(ctx: CallContext, req: models.ListDeadLetters) -> models.DeadLetterList:
    """Lists dead letters, newest first (admin)."""
    rows = service.list_dead_letters(clients.firestore(), limit=req.limit, subscriber=req.subscriber)
    return models.DeadLetterList(
        dead_letters=[models.DeadLetter(**{k: row[k] for k in models.DeadLetter.model_fields if row.get(k) is not None})
                      for row in rows]  # a field an older letter lacks takes its default
    )


@callable_function(request=models.ReplayDeadLetters, response=models.ReplayAnswer, roles=ADMIN)
def ops_replay_dead_letters(ctx: CallContext, req: models.ReplayDeadLetters) -> models.ReplayAnswer:
    """Replays dead letters by id, or all of them (admin)."""
    results = service.replay(clients.firestore(), ids=req.ids, replay_all=req.all)
    return models.ReplayAnswer(replayed=[models.ReplayOutcome(id=i, outcome=o) for i, o in results])


@callable_function(request=models.GetMetrics, response=models.MetricsAnswer, roles=ADMIN, read_only=True)
def ops_get_metrics(ctx: CallContext, req: models.GetMetrics) -> models.MetricsAnswer:
    """Events per minute by type, delivery latency per subscriber, failures and dead letters over
    the last hour or day, for the console's charts (admin; at most 11,000 reads, see ops/metrics.py)."""
    from flowsuite.ops import metrics  # noqa: PLC0415 - only this callable needs it (cold start)

    return models.MetricsAnswer(**metrics.read(clients.firestore(), window=req.window))


@callable_function(request=models.Diagnose, response=models.DiagnoseAnswer, roles=ADMIN, read_only=True)
def ops_diagnose(ctx: CallContext, req: models.Diagnose) -> models.DiagnoseAnswer:
    """Raises the error asked for, to check the error map end to end (emulator only, admin)."""
    service.diagnose(req.code)
    return models.DiagnoseAnswer(ok=True)


@options.trigger(https_fn.on_request)
def ops_health(req: https_fn.Request) -> https_fn.Response:
    """Health and metrics. The caller is checked before anything is read: an admin ID token gets
    the whole report; anyone else only up or down, from one read cached per instance."""
    from flowsuite.core import log, metering  # noqa: PLC0415
    from flowsuite.core.callables import correlation_id_from  # noqa: PLC0415

    with log.bind(domain="ops", function="ops_health", correlation_id=correlation_id_from(req.headers)), \
            metering.metered() as meter:
        admin = service.is_admin_request(req.headers.get("Authorization", ""))
        db = clients.firestore()
        report = health.snapshot(db) if admin else health.liveness(db)
        code = 200 if report["status"] == "up" else 503
        log.info("health answered", admin=admin, status=report["status"], **meter.fields())
        if req.args.get("format") == "prometheus":
            return https_fn.Response(health.prometheus(report), status=code, mimetype="text/plain; version=0.0.4")
        return https_fn.Response(json.dumps(report, default=str), status=code, mimetype="application/json")


@callable_function(request=models.Ping, response=models.Pong, auth=False, read_only=True)
def ops_ping(ctx: CallContext, req: models.Ping) -> models.Pong:
    """Answers at once: a liveness check for apps, and the floor for callable benchmarks."""
    return models.Pong(ok=True, correlation_id=ctx.correlation_id)
