"""The world as traffic for the data plane: live requests out, and an HTTP ranker that closes the loop.

* :func:`serve_traffic` runs the world and yields, day by day, the rank
  requests its shoppers make: who asks, the query, and the candidates as
  JSON-ready dicts. A load test or a shadow deployment can replay them
  against ``POST /v1/models/{name}:predict``.
* :class:`HttpRanker` is a world ranker that asks a running yarnit server to
  score candidates. With it, ``World(config, ranker=HttpRanker(url))`` lets a
  deployed model decide what shoppers see, through the real HTTP path.
* :class:`RankerServiceRanker` asks a served *ranking* model (``yarnit-ranker``)
  for whole slates instead: each page's candidates go out with the shopper's
  context, the slate comes back with its propensities and the version that
  ranked it, and :meth:`SlateRanker.annotate` writes both onto each logged
  impression (CH10-R1), even when the version changes within a day.

This module talks to the data plane only over HTTP (httpx, and http.client for the click ranker's pages); it imports
nothing from the platform.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pandas as pd

from yarnit.core.errors import InvalidInput, Unavailable

from .config import WorldConfig
from .partition import DayPartition
from .rankers import RankBatch, popularity_ranker
from .served import PRODUCT_COLUMNS


def _json_ready(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows as JSON-able dicts: dates and times as text, missing values as None, numpy scalars as Python's.

    Column by column (``tolist`` gives Python scalars): the demo sends a page of candidates per request, and
    pandas' row-wise ``to_dict`` cost more than the request itself.
    """
    names, columns = list(frame.columns), []
    for name in names:
        series = frame[name]
        text = _utc_text(series)
        if text is not None:
            columns.append(text)
            continue
        if pd.api.types.is_datetime64_any_dtype(series) or series.dtype == object and len(series) and \
                isinstance(series.iloc[0], dt.date | dt.datetime):
            series = series.astype(str)
        values = series.tolist()
        missing = series.isna().to_numpy()
        if missing.any():
            values = [None if gone else v for v, gone in zip(values, missing, strict=True)]
        columns.append([v.item() if isinstance(v, np.generic) else v for v in values]
                       if series.dtype == object else values)
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)] if names else \
        [{} for _ in range(len(frame))]


def _utc_text(series: pd.Series) -> list[str] | None:
    """pandas' ``astype(str)`` of a microsecond UTC time column, formatted by numpy; None when pandas must do it.

    pandas formatted the world's ``event_time`` at about half of :func:`_json_ready`'s cost. Its text is
    ``YYYY-MM-DD HH:MM:SS.ffffff+00:00`` when some value has a microsecond part that is not whole milliseconds
    (it picks one precision for the column: none, ms or µs); only that case, without missing values, is
    done here, the same text character for character.
    """
    if str(series.dtype) != "datetime64[us, UTC]" or not len(series):
        return None
    values = np.asarray(series.dt.tz_localize(None), dtype="datetime64[us]")
    if np.isnat(values).any() or not (values.view(np.int64) % 1000).any():
        return None
    return [t.replace("T", " ", 1) + "+00:00" for t in np.datetime_as_string(values, unit="us").tolist()]


@dataclass(frozen=True)
class TrafficRequest:
    """One page a shopper asked for: a predict request for each of its candidates."""

    day: dt.date
    session_id: str
    user_id: str
    query: str
    instances: list[dict[str, Any]]


class _Recorder:
    """A ranker that orders like popularity and keeps every batch it was asked to rank."""

    def __init__(self) -> None:
        self.batches: list[RankBatch] = []
        self.model_version = "popularity"
        self.exploration_rate = 0.0

    def rank_batch(self, batch: RankBatch) -> np.ndarray:
        self.batches.append(batch)
        return np.asarray(popularity_ranker.rank_batch(batch))


def serve_traffic(config: WorldConfig, days: int) -> Iterator[TrafficRequest]:
    """Yield the rank requests of ``days`` simulated days (the world's shoppers, with the popularity order)."""
    from .world import World

    recorder = _Recorder()
    world = World(config, ranker=recorder)
    for partition in world.run(days):
        for batch in recorder.batches:
            frame = batch.candidates
            for i in range(batch.n_requests):
                rows = frame.iloc[i * batch.n_candidates:(i + 1) * batch.n_candidates]
                first = rows.iloc[0]
                yield TrafficRequest(day=partition.day, session_id=str(first.get("session_id", "")),
                                     user_id=str(first.get("user_id", "")), query=str(first.get("query", "") or ""),
                                     instances=_json_ready(rows.assign(position=1)))
        recorder.batches.clear()


class _KeepAlive:
    """One keep-alive HTTP/1.1 connection to the data plane, for a ranker's page requests.

    A simulated month sends one request per page shown; httpx's per-request cost was a tenth of the demo's
    main thread, and then ``http.client``'s (its header parsing goes through the email package: about a third
    of the shop's CPU per page). Over plain http the request is written and the answer read on the socket
    here (:class:`_PlainConnection`: a status line, headers, a body by ``Content-Length``, chunks, or up to
    the close); https goes through ``http.client``. A connection the server closed while idle (its keep-alive
    timeout) is opened again and the request sent once more: the server never read it. Any other transport
    error propagates.
    """

    def __init__(self, base_url: str, timeout_s: float) -> None:
        import http.client
        from urllib.parse import urlsplit

        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidInput(f"The data plane's URL must be http(s)://HOST[:PORT], got {base_url!r}.")
        host, port = parts.hostname, parts.port
        if parts.scheme == "https":
            self._open: Callable[[], Any] = lambda: http.client.HTTPSConnection(host, port, timeout=timeout_s)
        else:
            self._open = lambda: _PlainConnection(host, port or 80, timeout_s)
        self._prefix = parts.path.rstrip("/")
        self._conn: Any = None

    def post_json(self, path: str, payload: Any, headers: dict[str, str]) -> tuple[int, bytes]:
        import http.client

        body = orjson.dumps(payload)
        sent = {"content-type": "application/json", "accept": "application/json", **headers}
        try:
            return self._exchange(path, body, sent)
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            return self._exchange(path, body, sent)  # closed while idle: once more, on a new connection

    def _exchange(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        if self._conn is None:
            self._conn = self._open()
        conn = self._conn
        try:
            if type(conn) is _PlainConnection:
                status, data, will_close = conn.post(self._prefix + path, body, headers)
            else:
                conn.request("POST", self._prefix + path, body=body, headers=headers)
                response = conn.getresponse()
                status, data, will_close = response.status, response.read(), response.will_close
        except BaseException:
            self.close()
            raise
        if will_close:
            self.close()
        return status, data

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class _PlainConnection:
    """HTTP/1.1 POSTs on one plain TCP connection: the request written in one call, the answer parsed by hand.

    It reads what ``http.client`` reads (a body by ``Content-Length``, by chunks, or up to the close) and raises
    what it raises for a connection the server closed before answering (``RemoteDisconnected``); the header
    names it needs are matched case-insensitively and the rest are skipped, not parsed into a message.
    """

    def __init__(self, host: str, port: int, timeout_s: float) -> None:
        import socket

        self._sock = socket.create_connection((host, port), timeout_s)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._host = (host if ":" not in host else f"[{host}]") + ("" if port == 80 else f":{port}")
        self._buffer = b""

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes, bool]:
        """``(status, body, whether the server closes the connection)`` of one POST."""
        head = [f"POST {path} HTTP/1.1\r\nHost: {self._host}\r\nAccept-Encoding: identity\r\n"
                f"Content-Length: {len(body)}\r\n"]
        head.extend(f"{name}: {value}\r\n" for name, value in headers.items())
        head.append("\r\n")
        self._sock.sendall("".join(head).encode("latin-1") + body)
        status, version, fields = self._read_head()
        while 100 <= status < 200:  # an informational answer (100 Continue...): the real one follows, as http.client
            status, version, fields = self._read_head()
        connection = fields.get(b"connection", b"").lower()
        will_close = b"close" in connection or version == b"HTTP/1.0" and b"keep-alive" not in connection
        if b"chunked" in fields.get(b"transfer-encoding", b"").lower():
            return status, self._read_chunks(), will_close
        length = fields.get(b"content-length")
        if length is not None:
            return status, self._read_exactly(_framing_number(length, 10, "Content-Length")), will_close
        if status in (204, 304):
            return status, b"", will_close
        return status, self._read_to_close(), True

    def _fill(self) -> bool:
        data = self._sock.recv(65536)
        if not data:
            return False
        self._buffer += data
        return True

    def _read_head(self) -> tuple[int, bytes, dict[bytes, bytes]]:
        import http.client

        while (end := self._buffer.find(b"\r\n\r\n")) < 0:
            if not self._fill():
                if not self._buffer:
                    raise http.client.RemoteDisconnected("Remote end closed connection without response")
                raise http.client.IncompleteRead(self._buffer)
        lines = self._buffer[:end].split(b"\r\n")
        self._buffer = self._buffer[end + 4:]
        parts = lines[0].split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
            raise http.client.BadStatusLine(lines[0].decode("latin-1"))
        fields: dict[bytes, bytes] = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            fields[name.strip().lower()] = value.strip()
        return int(parts[1]), parts[0], fields

    def _read_exactly(self, n: int) -> bytes:
        import http.client

        while len(self._buffer) < n:
            if not self._fill():
                raise http.client.IncompleteRead(self._buffer, n - len(self._buffer))
        data, self._buffer = self._buffer[:n], self._buffer[n:]
        return data

    def _read_line(self) -> bytes:
        import http.client

        while (end := self._buffer.find(b"\r\n")) < 0:
            if not self._fill():
                raise http.client.IncompleteRead(self._buffer)
        line, self._buffer = self._buffer[:end], self._buffer[end + 2:]
        return line

    def _read_chunks(self) -> bytes:
        out = []
        while True:
            size = _framing_number(self._read_line().split(b";", 1)[0].strip(), 16, "chunk size")
            if size == 0:
                while self._read_line():  # trailers, up to the empty line
                    pass
                return b"".join(out)
            out.append(self._read_exactly(size))
            self._read_line()

    def _read_to_close(self) -> bytes:
        while self._fill():
            pass
        data, self._buffer = self._buffer, b""
        return data

    def close(self) -> None:
        self._sock.close()


def _framing_number(text: bytes, base: int, what: str) -> int:
    """A Content-Length (base 10) or chunk size (base 16): digits only, else ``http.client.HTTPException``
    (``int()`` took ``-5``, ``+5`` and ``5_0``, and a negative length read a wrong body)."""
    import http.client

    digits = b"0123456789abcdefABCDEF"[:10 if base == 10 else 22]
    if not text or len(text) > 18 or text.strip(digits):
        raise http.client.HTTPException(f"The server sent a malformed {what}: {text[:40]!r}.")
    return int(text, base)


class HttpRanker:
    """Scores candidates through ``POST {base_url}/v1/models/{model}:predict`` (the deployed model).

    Each request names itself (``X-Request-Id: <id_prefix>-<n>``, numbered
    from 1), so the server's prediction log keys its record by that id, and
    the world records on each impression the request and the instance index
    that scored it (:meth:`annotate_impressions`, columns ``request_id`` and
    ``request_index``). :func:`request_labels` then turns the world's clicks,
    purchases and fraud flags into labels keyed ``(request_id, index)``: a
    join key with no personal data in it. ``id_prefix`` defaults to a random
    one (two rankers against one server must not reuse ids); pass one for
    reproducible ids.
    """

    exploration_rate = 0.0

    def __init__(self, base_url: str, model: str = "ctr", *, chunk: int = 2000, timeout_s: float = 30.0,
                 id_prefix: str | None = None, before_request: Callable[[list[dict[str, Any]]], None] | None = None,
                 on_error: str = "raise") -> None:
        import secrets

        self.url = f"/v1/models/{model}:predict"
        self.client = _KeepAlive(base_url, timeout_s)
        self.chunk = chunk
        self.model = model
        self.model_version = f"{model}@http"  # until the first answer says which version served
        self.served_versions: set[int] = set()
        self.id_prefix = id_prefix if id_prefix is not None else f"w{secrets.token_hex(4)}"
        if not _ID_PREFIX.match(self.id_prefix):
            raise InvalidInput(f"id_prefix must be 1-40 characters of A-Z a-z 0-9 . _ -, got {self.id_prefix!r}.")
        if on_error not in ("raise", "popularity"):
            raise InvalidInput(f"on_error must be 'raise' or 'popularity', got {on_error!r}.")
        self.before_request = before_request
        self.on_error = on_error
        self.requests = 0
        #: who answered each request: "ctr:v3", "ctr:v3 (fallback)", "heuristic" or "HTTP 503"
        self.answered_by: dict[str, int] = {}
        self._scored: list[pd.DataFrame] = []
        #: The candidates of the last annotated day that were scored but never shown (request_id, request_index,
        #: day): pass them to :func:`request_labels` so no label is waited for.
        self.unshown = pd.DataFrame({"request_id": [], "request_index": [], "day": []})

    def rank_batch(self, batch: RankBatch) -> np.ndarray:
        frame = batch.candidates
        instances = _json_ready(frame.assign(position=1))
        scores: list[float] = []
        request_ids = np.empty(len(instances), dtype=object)
        request_index = np.empty(len(instances), dtype=np.int64)
        for start in range(0, len(instances), self.chunk):
            chunk = instances[start:start + self.chunk]
            if self.before_request is not None:
                self.before_request(chunk)  # e.g. a demo moving its simulated clock to the page's time
            self.requests += 1
            request_id = f"{self.id_prefix}-{self.requests:08d}"
            answered, labelled = self._answer(request_id, chunk, frame.iloc[start:start + len(chunk)])
            scores.extend(answered)
            request_ids[start:start + len(chunk)] = request_id if labelled else None
            request_index[start:start + len(chunk)] = np.arange(len(chunk))
        if len(scores) != len(instances):
            raise InvalidInput(f"The data plane returned {len(scores)} scores for {len(instances)} candidates.")
        if "session_id" in frame.columns and "product_id" in frame.columns:
            keep = request_ids != None  # elementwise: rows another model answered get no label
            self._scored.append(pd.DataFrame({
                "session_id": frame["session_id"].astype(str).to_numpy()[keep],
                "product_id": frame["product_id"].astype(str).to_numpy()[keep],
                "request_id": request_ids[keep], "request_index": request_index[keep]}))
        return np.asarray(scores)

    def _answer(self, request_id: str, chunk: list[dict[str, Any]], rows: pd.DataFrame) -> tuple[list[float], bool]:
        """One request's scores, and whether its rows get labels keyed by ``request_id`` (a subclass may send a
        page elsewhere, e.g. to a ranking model, whose log record is not one prediction per candidate)."""
        status, answer = self.client.post_json(self.url, {"instances": chunk}, {"x-request-id": request_id})
        if status != 200:
            self._count(f"HTTP {status}")
            if self.on_error == "raise":
                raise Unavailable(f"The data plane answered {status} at {self.url}: "
                                  f"{answer[:200].decode('utf-8', 'replace')}")
            # the shop shows this page in popularity order; the failure is counted, never hidden
            return rows["product_clicks_7d"].astype(float).tolist(), True
        body = orjson.loads(answer)
        version = int(body["model_version"])
        self.served_versions.add(version)
        # the impressions of this batch are logged with the version that scored them (0: the heuristic)
        self.model_version = f"{self.model}:v{version}" if version else f"{self.model}:heuristic"
        served_by = str(body.get("served_by", "model"))
        self._count(self.model_version if version == 0 or served_by == "model"
                    else f"{self.model_version} ({served_by})")
        return body["predictions"], True

    def _count(self, who: str) -> None:
        self.answered_by[who] = self.answered_by.get(who, 0) + 1

    def annotate_impressions(self, impressions: pd.DataFrame) -> pd.DataFrame:
        """``impressions`` with the ``request_id`` and ``request_index`` that scored each one (the world calls it
        once a day; impressions scored by no request of this ranker get None and -1)."""
        everything = pd.concat(self._scored, ignore_index=True) if self._scored else pd.DataFrame(
            {"session_id": [], "product_id": [], "request_id": [], "request_index": []})
        self._scored = []
        scored = everything.drop_duplicates(["session_id", "product_id"], keep="last")
        keys = impressions[["session_id", "product_id"]].astype(str)
        merged = keys.merge(scored, how="left", on=["session_id", "product_id"])
        out = impressions.copy()
        out["request_id"] = merged["request_id"].astype(object).where(merged["request_id"].notna(), None).to_numpy()
        out["request_index"] = merged["request_index"].fillna(-1).astype(np.int64).to_numpy()
        shown = set(zip(out["request_id"], out["request_index"], strict=True))
        hidden = [(r, int(i)) for r, i in zip(everything["request_id"], everything["request_index"], strict=True)
                  if (r, i) not in shown]
        day = impressions["day"].iloc[0] if len(impressions) and "day" in impressions.columns else None
        self.unshown = pd.DataFrame({"request_id": pd.Series([r for r, _ in hidden], dtype=object),
                                     "request_index": np.array([i for _, i in hidden], dtype=np.int64),
                                     "day": pd.Series([day] * len(hidden), dtype=object)})
        return out

    def close(self) -> None:
        self.client.close()


_ID_PREFIX = re.compile(r"^[A-Za-z0-9._-]{1,40}$")
LOG_CLOSE_AFTER_DAY = dt.timedelta(hours=6)  # the world's impression log closes at 06:00 the next day
REQUEST_LABEL_COLUMNS = ("request_id", "index", "kind", "value", "event_time", "arrival_time")


def request_labels(impressions: pd.DataFrame, labels: pd.DataFrame, *,
                   unshown: pd.DataFrame | None = None) -> pd.DataFrame:
    """The world's labels keyed by the request that scored each impression: ``REQUEST_LABEL_COLUMNS``.

    * ``click``: one per impression, 1 when the shopper clicked (at the
      click's time, arriving when the click event did), else 0 (known when the
      day's impression log closed, 06:00 the next day);
    * ``purchase`` and ``fraud``: 1 for each purchase and each late fraud flag
      (2-14 days after the purchase), at their own event and arrival times.

    * ``shown`` 0 for each candidate in ``unshown`` (``HttpRanker.unshown``:
      scored, never shown), when the day's log closed: no label will come.

    Impressions without a request id (scored by another ranker) give no label.
    No column identifies a shopper: the request id is the server's join key.
    """
    known = impressions[impressions["request_id"].notna()] if "request_id" in impressions.columns else \
        impressions.iloc[:0].assign(request_id=None, request_index=-1)
    keys = known[["impression_id", "request_id", "request_index", "day"]]
    positive = labels.merge(keys.drop(columns=["day"]), on="impression_id", how="inner")
    clicked = set(positive.loc[positive["kind"] == "click", "impression_id"])
    unclicked = keys[~keys["impression_id"].isin(clicked)]
    close = pd.to_datetime(pd.Series(unclicked["day"].astype(str).to_numpy()), utc=True) + dt.timedelta(days=1) \
        + LOG_CLOSE_AFTER_DAY
    negatives = pd.DataFrame({
        "request_id": unclicked["request_id"].to_numpy(), "index": unclicked["request_index"].to_numpy(),
        "kind": "click", "value": np.zeros(len(unclicked), dtype=np.int64),
        "event_time": close.array, "arrival_time": close.array})
    positives = pd.DataFrame({
        "request_id": positive["request_id"].to_numpy(), "index": positive["request_index"].to_numpy(),
        "kind": positive["kind"].astype(str).to_numpy(), "value": positive["value"].astype(np.int64).to_numpy(),
        "event_time": pd.to_datetime(positive["event_time"], utc=True).array,
        "arrival_time": pd.to_datetime(positive["arrival_time"], utc=True).array})
    parts = [positives, negatives]
    if unshown is not None and len(unshown):
        closed = pd.to_datetime(pd.Series(unshown["day"].astype(str).to_numpy()), utc=True) + dt.timedelta(days=1) \
            + LOG_CLOSE_AFTER_DAY
        parts.append(pd.DataFrame({
            "request_id": unshown["request_id"].to_numpy(), "index": unshown["request_index"].to_numpy(),
            "kind": "shown", "value": np.zeros(len(unshown), dtype=np.int64), "event_time": closed.array,
            "arrival_time": closed.array}))
    out = pd.concat(parts, ignore_index=True)
    if not len(out):  # typed as before, when the times went through object columns: empty ones parse to seconds
        out = out.astype({"event_time": object, "arrival_time": object})
    out["event_time"] = pd.to_datetime(out["event_time"], utc=True)
    out["arrival_time"] = pd.to_datetime(out["arrival_time"], utc=True)
    out["index"] = out["index"].astype(np.int64)
    return out.sort_values(["arrival_time", "request_id", "index", "kind"], kind="stable").reset_index(drop=True)


#: What a slate request carries about the shopper and the page; the candidates carry the product columns.
SLATE_REQUEST_FIELDS = ("user_id", "query", "country", "language", "device", "hour", "day_of_week",
                        "user_price_sensitivity")
SLATE_PRODUCT_FIELDS = tuple(c for c in PRODUCT_COLUMNS if c != "price_local")
#: (instances) -> (one slate per instance, the version that answered, e.g. "yarnit-ranker:v3")
SlateSource = Callable[[list[dict[str, Any]]], tuple[list[dict[str, Any]], str]]


class SlateRanker:
    """A world ranker that asks a ranking model for slates and remembers who ranked what.

    For each page it sends ``{user_id, query, country, …, k, candidates}`` and
    turns the slate into scores the world orders by (the slate first, in its
    order; the rest after it, out-of-stock products last). The world does not
    explore on top (``exploration_rate`` 0): the ranking model does, and the
    propensities it answers replace the world's in :meth:`annotate`, with the
    version that ranked each page.
    """

    exploration_rate = 0.0

    def __init__(self, source: SlateSource, *, slate_size: int = 10, chunk: int = 256, name: str = "ranker") -> None:
        self.source = source
        self.slate_size = slate_size
        self.chunk = chunk
        self.model_version = name
        self.served_versions: set[str] = set()
        self.explored = 0
        self.pages = 0
        self._served: list[pd.DataFrame] = []

    def rank_batch(self, batch: RankBatch) -> np.ndarray:
        frame = batch.candidates
        n, size = batch.n_requests, batch.n_candidates
        products = _json_ready(frame[list(SLATE_PRODUCT_FIELDS)])
        requests = _json_ready(frame[list(SLATE_REQUEST_FIELDS)].iloc[::size])
        sessions = frame["session_id"].astype(str).to_numpy()[::size]
        ids = frame["product_id"].astype(str).to_numpy().reshape(n, size)
        in_stock = frame["in_stock"].to_numpy(dtype=bool).reshape(n, size)
        scores = np.where(in_stock, 0.0, -1.0)
        rows: list[tuple[str, str, str, float, int]] = []
        for start in range(0, n, self.chunk):
            stop = min(start + self.chunk, n)
            instances = [{**requests[i], "k": self.slate_size, "candidates": products[i * size:(i + 1) * size]}
                         for i in range(start, stop)]
            slates, version = self.source(instances)
            if len(slates) != len(instances):
                raise InvalidInput(f"The ranker returned {len(slates)} slates for {len(instances)} pages.")
            self.served_versions.add(version)
            self.model_version = version
            for i, slate in zip(range(start, stop), slates, strict=True):
                position = {p: j for j, p in enumerate(ids[i])}
                items = slate["items"]
                for rank, (item, propensity) in enumerate(zip(items, slate["propensities"], strict=True)):
                    j = position.get(item)
                    if j is None:
                        raise InvalidInput(f"The ranker answered {item!r}, which is not a candidate of page "
                                           f"{sessions[i]}.")
                    scores[i, j] = 2.0 + len(items) - rank
                    rows.append((sessions[i], item, version, float(propensity), int(bool(slate["explored"]))))
                self.pages += 1
                self.explored += int(bool(slate["explored"]))
        self._served.append(pd.DataFrame(rows, columns=["session_id", "product_id", "served_version",
                                                        "served_propensity", "explored"]))
        return scores.ravel()

    def annotate(self, day: DayPartition) -> DayPartition:
        """``day`` with each impression's model version and propensity as the ranking model answered them.

        Impressions the slate did not cover (the world filling a short slate)
        keep the world's propensity; they still carry the version whose slate
        left them to the filler.
        """
        served = pd.concat(self._served, ignore_index=True) if self._served else pd.DataFrame(
            columns=["session_id", "product_id", "served_version", "served_propensity", "explored"])
        self._served = []
        served = served.drop_duplicates(["session_id", "product_id"], keep="last")
        by_session = served.drop_duplicates("session_id", keep="last").set_index("session_id")["served_version"]

        def versions(table: pd.DataFrame) -> pd.DataFrame:
            out = table.copy()
            version = out["session_id"].astype(object).map(by_session)
            out["model_version"] = version.where(version.notna(), out["model_version"].astype(object)).astype(str)
            return out

        impressions = versions(day.impressions)
        keys = impressions[["session_id", "product_id"]].astype(object)
        merged = keys.merge(served.astype({"session_id": object, "product_id": object}), how="left",
                            on=["session_id", "product_id"])
        propensity = merged["served_propensity"].to_numpy(dtype=float)
        impressions["propensity"] = np.where(np.isnan(propensity), impressions["propensity"].to_numpy(), propensity)
        return dataclasses.replace(day, impressions=impressions, clicks=versions(day.clicks),
                                   sessions=versions(day.sessions))


class RankerServiceRanker(SlateRanker):
    """Slates from ``POST {base_url}/v1/models/{model}:predict`` (a served ranking model, e.g. yarnit-ranker).

    ``chunk`` pages go in one request: small enough that a request stays well inside the data plane's
    deadline (a request past it is answered by the fallback, popular items).

    Example (a running server)::

        ranker = RankerServiceRanker("http://127.0.0.1:8000")
        for day in World(WorldConfig(seed=1), ranker=ranker).run(2):
            day = ranker.annotate(day)  # model_version and propensity of every impression
    """

    def __init__(self, base_url: str, model: str = "yarnit-ranker", *, slate_size: int = 10, chunk: int = 32,
                 timeout_s: float = 30.0) -> None:
        import httpx

        super().__init__(self._post, slate_size=slate_size, chunk=chunk, name=f"{model}@http")
        self.model = model
        self.url = f"/v1/models/{model}:predict"
        self.client = httpx.Client(base_url=base_url, timeout=timeout_s)
        self.served_by: dict[str, int] = {}

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Block until the model is loaded and validated (``GET /v2/models/{model}/ready``), so the first
        pages are not answered by the fallback while a cold server loads it."""
        import time

        deadline = time.monotonic() + timeout_s
        while True:
            response = self.client.get(f"/v2/models/{self.model}/ready")
            if response.status_code == 200 and response.json().get("ready"):
                return
            if time.monotonic() > deadline:
                raise Unavailable(f"{self.model} is not ready after {timeout_s:g} s: {response.text[:200]}")
            time.sleep(0.1)

    def _post(self, instances: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
        response = self.client.post(self.url, json={"instances": instances})
        if response.status_code != 200:
            raise Unavailable(f"The data plane answered {response.status_code} at {self.url}: {response.text[:200]}")
        body = response.json()
        version = int(body["model_version"])
        self.served_by[body["served_by"]] = self.served_by.get(body["served_by"], 0) + 1
        return body["predictions"], f"{self.model}:v{version}" if version else f"{self.model}:heuristic"

    def close(self) -> None:
        self.client.close()


__all__ = ["REQUEST_LABEL_COLUMNS", "SLATE_PRODUCT_FIELDS", "SLATE_REQUEST_FIELDS", "HttpRanker", "RankerServiceRanker",
           "SlateRanker",
           "TrafficRequest", "request_labels", "serve_traffic"]
