"""Log metrics, params, outputs, tags and artifacts to Trellis from a run.

A single file with no dependencies beyond the Python standard library.
Inside a run launched by Trellis it needs no configuration: it reads
TRELLIS_HOST, TRELLIS_OWNER, TRELLIS_PROJECT and TRELLIS_RUN_UUID, which the
executor sets. Outside one, pass them to `Run(...)`.

    import trellis_sdk as trellis

    trellis.log_params(lr=0.01, optimizer="adam")
    for step in range(100):
        trellis.log_metrics({"loss": loss, "acc": acc}, step=step)
    trellis.log_outputs(best_acc=0.97)
    trellis.log_artifact("model.pt", "checkpoints/model.pt")

Metrics are buffered and sent in batches of up to 1000 points (the API's
limit), when the buffer fills, on `flush()`, and when the process exits.
Errors from the server raise `TrellisError` with its message.
"""

import atexit
import json
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

__all__ = [
    "Run",
    "TrellisError",
    "current",
    "flush",
    "log_artifact",
    "log_artifacts",
    "log_metric",
    "log_metrics",
    "log_outputs",
    "log_params",
    "log_tags",
]

BATCH = 1000


class TrellisError(Exception):
    """The server refused a request; the message is the server's."""


class Run:
    """A Trellis run to log to."""

    def __init__(self, host=None, owner=None, project=None, uuid=None, timeout=30.0):
        self.host = (host or os.environ.get("TRELLIS_HOST") or "http://127.0.0.1:8000").rstrip("/")
        self.owner = owner or os.environ.get("TRELLIS_OWNER") or "default"
        self.project = project or os.environ.get("TRELLIS_PROJECT")
        self.uuid = uuid or os.environ.get("TRELLIS_RUN_UUID")
        if not self.project or not self.uuid:
            raise TrellisError(
                "no run to log to: set TRELLIS_PROJECT and TRELLIS_RUN_UUID "
                "(Trellis sets them in runs it launches) or pass project= and uuid="
            )
        self.timeout = timeout
        self._buffer = []
        self._lock = threading.Lock()
        atexit.register(self.flush)

    def _url(self, suffix):
        owner = urllib.parse.quote(self.owner, safe="")
        project = urllib.parse.quote(self.project, safe="")
        return f"{self.host}/api/v1/{owner}/{project}/runs/{self.uuid}/{suffix}"

    def _send(self, method, suffix, body=None, data=None, content_type="application/json"):
        if body is not None:
            data = json.dumps(body, allow_nan=False).encode()
        request = urllib.request.Request(self._url(suffix), data=data, method=method)
        request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
                return json.loads(raw) if raw else None
        except urllib.error.HTTPError as error:
            raw = error.read()
            try:
                message = json.loads(raw)["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = raw.decode(errors="replace") or str(error)
            raise TrellisError(f"{method} {suffix}: {error.code}: {message}") from None

    def log_metric(self, key, value, step=None, timestamp=None):
        """Buffers one point; sent with the next batch."""
        self.log_metrics({key: value}, step=step, timestamp=timestamp)

    def log_metrics(self, metrics, step=None, timestamp=None):
        """Buffers one point per key of `metrics` at `step` (default 0)."""
        now = int((timestamp if timestamp is not None else time.time()) * 1000)
        points = []
        for key, value in metrics.items():
            value = float(value)
            if value != value or value in (float("inf"), float("-inf")):
                raise TrellisError(f"metric `{key}` is not a finite number: {value}")
            point = {"key": key, "value": value, "timestamp": now}
            if step is not None:
                point["step"] = int(step)
            points.append(point)
        with self._lock:
            self._buffer.extend(points)
            full = len(self._buffer) >= BATCH
        if full:
            self.flush()

    def flush(self):
        """Sends every buffered point, in batches of at most 1000."""
        with self._lock:
            pending, self._buffer = self._buffer, []
        for start in range(0, len(pending), BATCH):
            self._send("POST", "metrics", {"metrics": pending[start:start + BATCH]})

    def log_params(self, **params):
        """Logs params; logging one again with another value is an error."""
        self._send("POST", "params", {"params": params})

    def log_outputs(self, **outputs):
        """Merges values into the run's outputs."""
        self._send("POST", "outputs", {"outputs": outputs})

    def log_tags(self, *tags):
        """Adds tags to the run."""
        self._send("POST", "tags", {"tags": list(tags)})

    def log_artifact(self, local_path, artifact_path=None):
        """Uploads a file, streamed from disk, to `artifact_path` (default:
        its file name at the root of the run's artifacts)."""
        target = artifact_path or os.path.basename(local_path)
        quoted = urllib.parse.quote(target.strip("/"))
        size = os.path.getsize(local_path)
        with open(local_path, "rb") as body:
            request = urllib.request.Request(
                self._url(f"artifacts/files/{quoted}"), data=body, method="PUT"
            )
            request.add_header("Content-Type", "application/octet-stream")
            request.add_header("Content-Length", str(size))
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return json.loads(response.read())
            except urllib.error.HTTPError as error:
                raise TrellisError(f"PUT artifact {target}: {error.code}: {error.read().decode(errors='replace')}") from None

    def log_artifacts(self, local_dir, artifact_path=None):
        """Uploads every file under `local_dir`, keeping the tree."""
        for root, _, files in os.walk(local_dir):
            for name in files:
                path = os.path.join(root, name)
                relative = os.path.relpath(path, local_dir).replace(os.sep, "/")
                target = f"{artifact_path.strip('/')}/{relative}" if artifact_path else relative
                self.log_artifact(path, target)


_current = None


def current():
    """The run this process logs to by default (from the environment)."""
    global _current
    if _current is None:
        _current = Run()
    return _current


def log_metric(key, value, step=None, timestamp=None):
    current().log_metric(key, value, step=step, timestamp=timestamp)


def log_metrics(metrics, step=None, timestamp=None):
    current().log_metrics(metrics, step=step, timestamp=timestamp)


def flush():
    current().flush()


def log_params(**params):
    current().log_params(**params)


def log_outputs(**outputs):
    current().log_outputs(**outputs)


def log_tags(*tags):
    current().log_tags(*tags)


def log_artifact(local_path, artifact_path=None):
    return current().log_artifact(local_path, artifact_path)


def log_artifacts(local_dir, artifact_path=None):
    current().log_artifacts(local_dir, artifact_path)
