"""Alerts: one record per incident of an SLO's page, ticket or no-data alert, and the sinks they are sent to.

**Records.** An alert is keyed by ``(SLO id, alert)`` where ``alert`` is
``page``, ``ticket`` or ``no_data`` (a no-data alert has severity ``ticket``).
At most one alert per key is open (``firing``): the monitor calling
:meth:`AlertStore.fire` again while it is open only refreshes its evidence and
``updated_at``; :meth:`AlertStore.resolve` closes it with ``ended_at``. The
next fire opens a new record. Each record carries the SLO's names (never a
user id, an email or a request: nothing personal reaches an alert), the
evidence (every alert pair's windows with good/total counts and burn rates,
the budget left) and the SLO file's ``runbook``.

**Persistence.** The records and the *outbox* (notifications not yet
delivered, one per alert change and sink) are one JSON file under the
workspace's monitoring directory, written atomically. A notification is
queued in the same write that opens or resolves the alert, so a crash between
deciding and sending loses nothing: the next run sends what is queued. The
cost is at-least-once delivery (a crash after a send but before the write that
dequeues it sends it again); Alertmanager de-duplicates by labels, and a file
or webhook reader can by the alert ``id``. Resolved records beyond the newest
:data:`MAX_RESOLVED` are dropped.

**Sinks** (configured under ``alerts.sinks`` in the SLO file, or from CLI flags):

* ``log``: one line on the ``yarnit.alerts`` logger;
* ``file``: one JSON line per notification appended (and fsynced) to a
  ``.jsonl`` file under the monitoring directory;
* ``webhook``: ``POST`` of ``{"version": 1, "status": "firing"|"resolved", "alert": {...}}``;
* ``alertmanager``: ``POST {url}/api/v2/alerts`` with Alertmanager's list of
  ``{labels, annotations, startsAt, endsAt, generatorURL}``, with the labels
  of the generated Prometheus rules (:mod:`.rules`). Alertmanager resolves an
  alert nobody re-sends (``resolve_timeout``), so open alerts are re-sent on
  every run (:meth:`AlertmanagerSink.keepalive`), as Prometheus does.

HTTP sinks use httpx with a timeout per attempt and at most ``retries``
retries with exponential backoff on connection errors, timeouts, 408, 429 and
5xx (other 4xx are the payload's fault and are not retried). One delivery pass
stops starting new sends after ``deadline_s``; what is left, or failed, stays
queued for the next run, up to :data:`MAX_DELIVERY_RUNS` runs, then it is
dropped and counted. Failures are counted per sink and reported, never raised
into the monitor's loop.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from yarnit.core.atomic import atomic_write_text, sync_fd
from yarnit.core.clock import Clock
from yarnit.core.errors import YarnitError
from yarnit.core.ids import new_id
from yarnit.core.jsonfile import state_json

from .burn import SLOStatus
from .rules import alert_annotations, no_data_alert_name
from .slo import SLO, SinkSpec, format_duration

log = logging.getLogger("yarnit.alerts")

AlertKind = Literal["page", "ticket", "no_data"]
ALERT_KINDS: tuple[AlertKind, ...] = ("page", "ticket", "no_data")
STORE_VERSION = 1
MAX_RESOLVED = 500  # resolved records kept (open ones are always kept)
MAX_DELIVERY_RUNS = 5  # runs a notification is retried on before it is dropped (and counted)
ALERTS_FILENAME = "alerts.json"
ACK_FIELDS = ("acked_by", "acked_at", "ack_reason")


class SinkError(YarnitError):
    """A sink could not take a notification (after its retries)."""


@dataclass
class Alert:
    """One incident of one SLO alert: open while ``state`` is ``firing``."""

    id: str
    slo_id: str
    service: str
    slo: str
    sli: str
    model: str | None
    alert: str  # page | ticket | no_data
    alert_name: str  # as in the generated Prometheus rules
    severity: str  # page | ticket
    state: str  # firing | resolved
    started_at: str
    updated_at: str
    ended_at: str | None
    summary: str
    runbook: str
    evidence: dict[str, Any]
    # Acknowledged ("roll through", yarnit.continuous.actions): a human knows, so it is not re-sent (nor kept
    # alive in Alertmanager) until it resolves; the next firing opens a new, unacknowledged record.
    acked_by: str | None = None
    acked_at: str | None = None
    ack_reason: str | None = None

    @property
    def acked(self) -> bool:
        return self.acked_at is not None

    @property
    def key(self) -> tuple[str, str]:
        return self.slo_id, self.alert

    def to_dict(self) -> dict[str, Any]:
        """``dataclasses.asdict(self)`` (equal, and as deep a copy), without its per-leaf ``copy.deepcopy``:
        the incident intake asks every alert for it every monitor pass, and the month's evidence grew with it."""
        return {name: _copy_json(getattr(self, name)) for name in _ALERT_FIELDS}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Alert:
        # The ack fields came later: a store written before them reads as unacknowledged alerts.
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data or k not in ACK_FIELDS})


_ALERT_FIELDS = tuple(Alert.__dataclass_fields__)
_IMMUTABLE = (str, int, float, bool, type(None))


def _copy_json(value: Any) -> Any:
    """A deep copy of JSON-like data (dicts, lists, tuples of immutable leaves); other leaves are deep-copied."""
    if isinstance(value, _IMMUTABLE):
        return value
    if type(value) is dict:
        return {k: _copy_json(v) for k, v in value.items()}
    if type(value) is list:
        return [_copy_json(v) for v in value]
    if type(value) is tuple:
        return tuple(_copy_json(v) for v in value)
    return copy.deepcopy(value)


def evidence(status: SLOStatus) -> dict[str, Any]:
    """What an alert shows for itself: objective, budget left, every pair's windows and burn rates."""
    return {"at": status.at.isoformat(), "objective": float(status.slo.objective),
            "window": format_duration(status.slo.window_s), "state": status.state,
            "budget_remaining": status.budget_remaining, "period": status.period.to_dict(),
            "no_data_window": status.no_data_window.to_dict(),
            "pairs": [a.to_dict() for a in status.alerts]}


def _summary(slo: SLO, alert: str, status: SLOStatus) -> str:
    text = alert_annotations(slo, alert)["summary"]
    firing = [a for a in status.alerts if a.firing and a.pair.severity == alert]
    if firing:
        a = firing[0]
        text += (f" Burn rate {a.long.burn_rate:.1f}x over {format_duration(a.pair.long_s)} and "
                 f"{a.short.burn_rate:.1f}x over {format_duration(a.pair.short_s)} (threshold "
                 f"{float(a.pair.burn_rate):g}x).")
    return text


@dataclass
class Notification:
    """A queued send of one alert change to one sink."""

    alert_id: str
    event: str  # firing | resolved
    sink: str
    attempts: int = 0
    last_error: str | None = None


@dataclass
class SinkStats:
    sent: int = 0
    failed: int = 0  # attempts that failed (after the sink's own retries)
    dropped: int = 0  # notifications given up after MAX_DELIVERY_RUNS runs
    last_error: str | None = None


@dataclass
class AlertStore:
    """Every alert and the outbox, in one JSON file written atomically."""

    path: Path
    alerts: list[Alert] = field(default_factory=list)
    outbox: list[Notification] = field(default_factory=list)
    stats: dict[str, SinkStats] = field(default_factory=dict)
    recovered: bool = False  # the file was unreadable and was set aside
    _saved: str | None = None  # the text last read or written: an unchanged store is not rewritten

    @classmethod
    def open(cls, path: str | Path) -> AlertStore:
        store = cls(Path(path))
        try:
            text = store.path.read_text(encoding="utf-8")
            data = json.loads(text)
            if not isinstance(data, dict) or data.get("version") != STORE_VERSION:
                raise ValueError("not an alert store of this version")
            store.alerts = [Alert.from_dict(a) for a in data["alerts"]]
            store.outbox = [Notification(**n) for n in data["outbox"]]
            store.stats = {str(k): SinkStats(**v) for k, v in data["stats"].items()}
            store._saved = text
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError):
            # Never lose evidence silently: keep the unreadable file beside, start over, and say so.
            store.alerts, store.outbox, store.stats = [], [], {}
            store.recovered = True
            try:
                store.path.replace(store.path.with_name(store.path.name + ".corrupt"))
            except OSError:
                pass
        return store

    def save(self) -> bool:
        """Write the store atomically if it changed since it was read or written; True if it wrote."""
        resolved = [a for a in self.alerts if a.state == "resolved"]
        if len(resolved) > MAX_RESOLVED:
            dropped = {a.id for a in sorted(resolved, key=lambda a: a.ended_at or "")[:-MAX_RESOLVED]}
            self.alerts = [a for a in self.alerts if a.id not in dropped]
        # the dataclasses as they are: orjson writes their fields without asdict's deep copy of every evidence
        data = {"version": STORE_VERSION, "alerts": list(self.alerts), "outbox": list(self.outbox),
                "stats": dict(sorted(self.stats.items()))}
        text = state_json(data).decode("utf-8")
        if text == self._saved:
            return False
        atomic_write_text(self.path, text, mode=0o600)
        self._saved = text
        return True

    # -- the records --------------------------------------------------------------------------
    def open_alert(self, slo_id: str, alert: str) -> Alert | None:
        for a in self.alerts:
            if a.state == "firing" and a.key == (slo_id, alert):
                return a
        return None

    def active(self, slo_id: str) -> dict[str, bool]:
        """Which of page, ticket and no_data are open for ``slo_id`` (what the monitor last decided)."""
        return {kind: self.open_alert(slo_id, kind) is not None for kind in ALERT_KINDS}

    def fire(self, slo: SLO, alert: str, status: SLOStatus, *, clock: Clock,
             sinks: Iterable[str]) -> tuple[Alert, bool]:
        """Open the alert (queueing a ``firing`` notification per sink), or refresh the open one; (alert, opened)."""
        now = status.at.isoformat()
        current = self.open_alert(slo.id, alert)
        if current is not None:
            current.updated_at, current.evidence = now, evidence(status)
            current.summary = _summary(slo, alert, status)
            return current, False
        created = Alert(id=new_id("alert", clock), slo_id=slo.id, service=slo.service, slo=slo.name, sli=slo.sli,
                        model=slo.model, alert=alert,
                        alert_name=no_data_alert_name(slo) if alert == "no_data" else slo.alert_name,
                        severity="ticket" if alert == "no_data" else alert, state="firing", started_at=now,
                        updated_at=now, ended_at=None, summary=_summary(slo, alert, status), runbook=slo.runbook,
                        evidence=evidence(status))
        self.alerts.append(created)
        self.outbox.extend(Notification(created.id, "firing", sink) for sink in sinks)
        return created, True

    def resolve(self, slo: SLO, alert: str, status: SLOStatus, *, sinks: Iterable[str]) -> Alert | None:
        """Close the open alert (queueing a ``resolved`` notification per sink); None if none was open."""
        current = self.open_alert(slo.id, alert)
        if current is None:
            return None
        now = status.at.isoformat()
        current.state, current.ended_at, current.updated_at = "resolved", now, now
        current.evidence = evidence(status)
        self.outbox.extend(Notification(current.id, "resolved", sink) for sink in sinks)
        return current

    def list(self, state: str = "all", *, limit: int = 100) -> list[Alert]:
        """Alerts newest first (``state``: firing, resolved or all)."""
        chosen = [a for a in self.alerts if state == "all" or a.state == state]
        return sorted(chosen, key=lambda a: (a.started_at, a.id), reverse=True)[:limit]

    def get(self, alert_id: str) -> Alert | None:
        return next((a for a in self.alerts if a.id == alert_id), None)

    def ack(self, alert: Alert, *, actor: str, reason: str, at: str) -> bool:
        """Acknowledge an open ``alert``: its queued ``firing`` sends are dropped; True if it was not acked yet."""
        if alert.acked:
            return False
        alert.acked_by, alert.acked_at, alert.ack_reason = actor, at, reason
        self.outbox = [n for n in self.outbox if not (n.alert_id == alert.id and n.event == "firing")]
        return True

    def unack(self, alert: Alert) -> bool:
        """Take an acknowledgement back (the alert is kept alive in Alertmanager again); True if it was acked."""
        if not alert.acked:
            return False
        alert.acked_by = alert.acked_at = alert.ack_reason = None
        return True


# -- sinks -------------------------------------------------------------------------------------
class Sink(Protocol):
    """Takes one alert change; raises :class:`SinkError` when it could not (after its own retries)."""

    name: str

    def send(self, alert: Alert, event: str) -> None: ...


def notification(alert: Alert, event: str) -> dict[str, Any]:
    """The JSON a webhook or file sink receives."""
    return {"version": 1, "status": event, "alert": alert.to_dict()}


@dataclass
class LogSink:
    name: str = "log"

    def send(self, alert: Alert, event: str) -> None:
        level = logging.WARNING if event == "firing" else logging.INFO
        log.log(level, "alert %s %s: %s [%s, id %s]", alert.alert_name, event.upper(), alert.summary,
                alert.severity, alert.id)


@dataclass
class FileSink:
    path: Path
    name: str = "file"

    def send(self, alert: Alert, event: str) -> None:
        line = (json.dumps(notification(alert, event), sort_keys=True, separators=(",", ":")) + "\n").encode()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)  # one write of one line: readers never see half of it unless the disk fills
                sync_fd(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise SinkError(f"Cannot append to alert file {self.path.name}: {exc.strerror}.") from None


def read_alert_file(path: str | Path) -> list[dict[str, Any]]:
    """The notifications of a file sink (a torn last line is skipped)."""
    out = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


RETRY_STATUSES = frozenset({408, 429})


@dataclass
class HttpSink:
    """A POST with a timeout per attempt and bounded retries (shared by webhook and Alertmanager sinks)."""

    url: str
    name: str = "webhook"
    timeout_s: float = 2.0
    retries: int = 2
    backoff_s: float = 0.5
    sleep: Callable[[float], None] = time.sleep

    def _post(self, payload: Any, url: str | None = None) -> None:
        import httpx

        url = url or self.url
        error = "no attempt"
        for attempt in range(self.retries + 1):
            if attempt:
                self.sleep(min(self.backoff_s * 2 ** (attempt - 1), 10.0))
            try:
                with httpx.Client(timeout=self.timeout_s, follow_redirects=False, trust_env=False) as client:
                    response = client.post(url, json=payload)
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}"
                continue
            if response.is_success:
                return
            error = f"HTTP {response.status_code}"
            if response.status_code < 500 and response.status_code not in RETRY_STATUSES:
                break  # the receiver refuses this payload: retrying sends the same refusal
        raise SinkError(f"{self.name}: {error} from {_safe_url(url)} after {attempt + 1} attempt(s).")

    def send(self, alert: Alert, event: str) -> None:
        self._post(notification(alert, event))


def _safe_url(url: str) -> str:
    """The URL without credentials or query (a webhook URL may embed a secret)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


@dataclass
class AlertmanagerSink(HttpSink):
    """Alertmanager's v2 API: ``POST /api/v2/alerts`` with a list of alerts."""

    name: str = "alertmanager"
    generator_url: str = "yarnit://monitor/slos"

    @property
    def endpoint(self) -> str:
        return self.url.rstrip("/") + "/api/v2/alerts"

    def payload(self, alerts: Sequence[Alert]) -> list[dict[str, Any]]:
        out = []
        for a in alerts:
            labels = {"alertname": a.alert_name, **_labels(a)}
            annotations = {"summary": a.summary}
            if a.runbook:
                annotations["runbook_url" if a.runbook.startswith(("http://", "https://")) else "runbook"] = a.runbook
            item: dict[str, Any] = {"labels": labels, "annotations": annotations, "startsAt": a.started_at,
                                    "generatorURL": f"{self.generator_url}/{a.slo_id}"}
            if a.state == "resolved" and a.ended_at:
                item["endsAt"] = a.ended_at
            out.append(item)
        return out

    def send(self, alert: Alert, event: str) -> None:
        self._post(self.payload([alert]), self.endpoint)

    def keepalive(self, alerts: Sequence[Alert]) -> None:
        """Re-send the open alerts (Alertmanager resolves one nobody re-sends within its resolve_timeout)."""
        if alerts:
            self._post(self.payload(alerts), self.endpoint)


def _labels(a: Alert) -> dict[str, str]:
    labels = {"sloth_id": a.slo_id, "sloth_service": a.service, "sloth_slo": a.slo,
              "sloth_severity": a.severity}
    if a.alert == "no_data":
        labels["yarnit_alert"] = "no_data"
    if a.model:
        labels["model"] = a.model
    return labels


def build_sinks(specs: Sequence[SinkSpec], monitoring_dir: str | Path) -> list[Sink]:
    """The sinks ``specs`` describe (file sinks under ``monitoring_dir``)."""
    out: list[Sink] = []
    for spec in specs:
        if spec.type == "log":
            out.append(LogSink(name=spec.name))
        elif spec.type == "file":
            out.append(FileSink(Path(monitoring_dir) / (spec.path or "alerts.jsonl"), name=spec.name))
        elif spec.type == "webhook":
            out.append(HttpSink(spec.url or "", name=spec.name, timeout_s=spec.timeout_s, retries=spec.retries))
        elif spec.type == "alertmanager":
            out.append(AlertmanagerSink(spec.url or "", name=spec.name, timeout_s=spec.timeout_s,
                                        retries=spec.retries))
    names = [s.name for s in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        from yarnit.core.errors import ConfigError

        raise ConfigError(f"Alert sink name(s) {', '.join(dup)} used twice; give each sink a unique name.")
    return out


@dataclass
class DeliveryReport:
    sent: int = 0
    failed: int = 0
    dropped: int = 0
    pending: int = 0
    keepalive_failed: int = 0


def deliver(store: AlertStore, sinks: Sequence[Sink], *, deadline_s: float = 10.0,
            monotonic: Callable[[], float] = time.monotonic) -> DeliveryReport:
    """Send the outbox (bounded by ``deadline_s``), then re-send open alerts to Alertmanager sinks.

    Never raises for a sink's failure: it is counted in the store's stats and the report.
    """
    report = DeliveryReport()
    by_name = {s.name: s for s in sinks}
    started = monotonic()
    left: list[Notification] = []
    for note in store.outbox:
        sink = by_name.get(note.sink)
        stats = store.stats.setdefault(note.sink, SinkStats())
        alert = store.get(note.alert_id)
        if sink is None or alert is None:  # sink removed from the config, or the alert aged out
            stats.dropped += 1
            report.dropped += 1
            continue
        if monotonic() - started > deadline_s:
            left.append(note)
            continue
        try:
            sink.send(alert, note.event)
        except SinkError as exc:
            note.attempts += 1
            note.last_error = stats.last_error = str(exc)[:500]
            stats.failed += 1
            report.failed += 1
            if note.attempts >= MAX_DELIVERY_RUNS:
                stats.dropped += 1
                report.dropped += 1
                log.error("alert %s %s to sink %s dropped after %d runs: %s", alert.id, note.event, note.sink,
                          note.attempts, note.last_error)
            else:
                left.append(note)
            continue
        stats.sent += 1
        report.sent += 1
    store.outbox = left
    report.pending = len(left)
    open_alerts = [a for a in store.alerts if a.state == "firing" and not a.acked]  # an acked one is not re-sent
    for sink in sinks:
        if isinstance(sink, AlertmanagerSink) and open_alerts and monotonic() - started <= deadline_s:
            try:
                sink.keepalive(open_alerts)
            except SinkError as exc:
                stats = store.stats.setdefault(sink.name, SinkStats())
                stats.failed += 1
                stats.last_error = str(exc)[:500]
                report.keepalive_failed += 1
    return report


def alerts_path(monitoring_dir: str | Path) -> Path:
    return Path(monitoring_dir) / ALERTS_FILENAME


@contextmanager
def locked_store(monitoring_dir: str | Path) -> Iterator[AlertStore]:
    """The alert store, opened under the monitor's lock (``monitor.lock``) and saved on a clean exit.

    The monitor holds the same exclusive ``flock`` for a whole run, so a change made here (an acknowledgement)
    is never lost to a run that read the store before it and wrote after.
    """
    import fcntl

    directory = Path(monitoring_dir)
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / "monitor.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, and by the kernel if killed
        store = AlertStore.open(alerts_path(directory))
        yield store
        store.save()


__all__ = ["ALERT_KINDS", "Alert", "AlertStore", "AlertmanagerSink", "DeliveryReport", "FileSink", "HttpSink",
           "LogSink", "MAX_DELIVERY_RUNS", "MAX_RESOLVED", "Notification", "Sink", "SinkError", "SinkStats",
           "alerts_path", "build_sinks", "deliver", "evidence", "locked_store", "notification", "read_alert_file"]
