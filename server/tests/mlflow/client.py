"""Drives the official mlflow client against a Trellis server.

Run by server/tests/api/mlflow.rs with MLFLOW_TRACKING_URI pointing at a
live `trellis server`; exits non-zero with a traceback on the first
behaviour that differs from MLflow's. Prints one JSON line with the ids it
made, for the Rust side to check through the native API.
"""

import json
import math
import os
import sys
import tempfile
import time

import mlflow
import requests
from mlflow.entities import Metric, Param, RunTag, ViewType
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

suffix = sys.argv[1]
uri = os.environ["MLFLOW_TRACKING_URI"]
client = MlflowClient()


def expect_error(code, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except MlflowException as e:
        assert e.error_code == code, f"expected {code}, got {e.error_code}: {e}"
        return e
    raise AssertionError(f"expected {code} from {fn.__name__}")


# Experiments.
name = f"Trellis MLflow test {suffix}"
exp_id = client.create_experiment(name, tags={"team": "vision"})
exp = client.get_experiment(exp_id)
assert exp.name == name, exp
assert exp.tags == {"team": "vision"}, exp.tags
assert exp.lifecycle_stage == "active"
assert client.get_experiment_by_name(name).experiment_id == exp_id
assert client.get_experiment_by_name(f"missing {suffix}") is None
expect_error("RESOURCE_ALREADY_EXISTS", client.create_experiment, name)
client.set_experiment_tag(exp_id, "stage", "dev")
assert client.get_experiment(exp_id).tags["stage"] == "dev"
found = client.search_experiments(filter_string=f"name = '{name}'")
assert [e.experiment_id for e in found] == [exp_id], found
other_id = client.create_experiment(f"to-delete-{suffix}")
client.rename_experiment(other_id, f"renamed-{suffix}")
assert client.get_experiment(other_id).name == f"renamed-{suffix}"
client.delete_experiment(other_id)
assert client.get_experiment(other_id).lifecycle_stage == "deleted"
deleted = client.search_experiments(view_type=ViewType.DELETED_ONLY)
assert other_id in [e.experiment_id for e in deleted]
client.restore_experiment(other_id)
assert client.get_experiment(other_id).lifecycle_stage == "active"
imported = client.create_run(other_id, start_time=1_600_000_000_000, run_name="imported")
assert client.get_run(imported.info.run_id).info.start_time == 1_600_000_000_000
assert client.get_experiment("0").name == "Default"

# The fluent API: params, metrics, tags, nested runs, artifacts.
mlflow.set_experiment(name)
work = tempfile.mkdtemp()
notes = os.path.join(work, "notes.txt")
with open(notes, "w") as f:
    f.write("hello trellis")
with mlflow.start_run(run_name="parent") as parent:
    mlflow.log_param("model", "cnn")
    mlflow.log_params({"lr": 0.01, "layers": 3})
    for step in range(10):
        mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
    mlflow.log_metrics({"acc": 0.9, "f1": 0.8})
    mlflow.set_tag("owner", "ana")
    mlflow.set_tags({"removable": "yes"})
    with mlflow.start_run(run_name="child", nested=True) as child:
        mlflow.log_metric("acc", 0.5)
    mlflow.log_artifact(notes)
    mlflow.log_artifact(notes, artifact_path="sub/dir")
    mlflow.log_dict({"a": 1}, "config.json")
parent_id = parent.info.run_id
child_id = child.info.run_id

run = client.get_run(parent_id)
assert run.info.status == "FINISHED", run.info
assert run.info.run_name == "parent"
assert run.info.end_time and run.info.end_time >= run.info.start_time
assert run.data.params == {"model": "cnn", "lr": "0.01", "layers": "3"}, run.data.params
assert run.data.metrics == {"loss": 0.1, "acc": 0.9, "f1": 0.8}, run.data.metrics
assert run.data.tags["owner"] == "ana"
assert run.data.tags["mlflow.runName"] == "parent"
history = client.get_metric_history(parent_id, "loss")
assert [m.step for m in history] == list(range(10)), history
assert [m.value for m in history] == [1.0 / (s + 1) for s in range(10)]
assert client.get_run(child_id).data.tags["mlflow.parentRunId"] == parent_id

# A param logged again: the same value is fine, another is refused.
client.log_param(parent_id, "model", "cnn")
expect_error("INVALID_PARAMETER_VALUE", client.log_param, parent_id, "model", "rnn")
assert client.get_run(parent_id).data.params["model"] == "cnn"
client.delete_tag(parent_id, "removable")
assert "removable" not in client.get_run(parent_id).data.tags
expect_error("RESOURCE_DOES_NOT_EXIST", client.delete_tag, parent_id, "removable")

# Batches, NaN, a failed run.
batch = client.create_run(exp_id, run_name="batch")
batch_id = batch.info.run_id
now = int(time.time() * 1000)
client.log_batch(
    batch_id,
    metrics=[Metric("m", float(i), now + i, i) for i in range(1000)],
    params=[Param("p", "1")],
    tags=[RunTag("t", "x")],
)
client.log_metric(batch_id, "nan", float("nan"))
got = client.get_run(batch_id)
assert got.data.metrics["m"] == 999.0 and got.data.params == {"p": "1"}
assert math.isnan(got.data.metrics["nan"])
assert len(client.get_metric_history(batch_id, "m")) == 1000
client.set_terminated(batch_id, "FAILED")
assert client.get_run(batch_id).info.status == "FAILED"

# Server-side limits and errors, over raw REST as MLflow documents them.
def post(path, body):
    return requests.post(f"{uri}/api/2.0/mlflow/{path}", json=body, timeout=30)

too_many = post("runs/log-batch", {"run_id": batch_id, "metrics": [
    {"key": "x", "value": 1.0, "timestamp": now, "step": i} for i in range(1001)]})
assert too_many.status_code == 400 and too_many.json()["error_code"] == "INVALID_PARAMETER_VALUE", too_many.text
half = post("runs/log-batch", {"run_id": batch_id,
    "metrics": [{"key": "half", "value": 1.0, "timestamp": now, "step": 0}],
    "params": [{"key": "p", "value": "2"}]})
assert half.status_code == 400, half.text
assert "half" not in client.get_run(batch_id).data.metrics, "a refused batch wrote its metrics"
long_key = post("runs/log-metric", {"run_id": batch_id, "key": "k" * 251, "value": 1, "timestamp": now})
assert long_key.status_code == 400 and long_key.json()["error_code"] == "INVALID_PARAMETER_VALUE"
bad_json = requests.post(f"{uri}/api/2.0/mlflow/runs/log-metric", data="{not json", timeout=30,
                         headers={"Content-Type": "application/json"})
assert bad_json.status_code == 400 and bad_json.json()["error_code"] == "INVALID_PARAMETER_VALUE"
expect_error("RESOURCE_DOES_NOT_EXIST", client.get_run, "0" * 32)
expect_error("RESOURCE_DOES_NOT_EXIST", client.log_metric, "f" * 32, "x", 1.0)

# Search: filters, ordering, pages, the pandas frame.
def ids(runs):
    return [r.info.run_id for r in runs]

assert ids(client.search_runs([exp_id], "params.model = 'cnn'")) == [parent_id]
assert ids(client.search_runs([exp_id], f"tags.mlflow.parentRunId = '{parent_id}'")) == [child_id]
assert ids(client.search_runs([exp_id], "attributes.status = 'FAILED'")) == [batch_id]
assert ids(client.search_runs([exp_id], "metrics.acc > 0.6")) == [parent_id]
assert ids(client.search_runs([exp_id], "params.model LIKE 'c%'")) == [parent_id]
assert ids(client.search_runs([exp_id], "params.model != 'cnn'")) == []
assert ids(client.search_runs([exp_id], "", order_by=["metrics.acc DESC"]))[:2] == [parent_id, child_id]
first = client.search_runs([exp_id], "", order_by=["attributes.start_time ASC"], max_results=2)
assert len(first) == 2 and first.token
rest = client.search_runs([exp_id], "", order_by=["attributes.start_time ASC"], max_results=2, page_token=first.token)
assert len(rest) == 1 and not rest.token
assert set(ids(first) + ids(rest)) == {parent_id, child_id, batch_id}
expect_error("INVALID_PARAMETER_VALUE", client.search_runs, [exp_id], "metrics.acc > 'x'")
frame = mlflow.search_runs(experiment_ids=[exp_id], filter_string="metrics.acc > 0.6",
                           order_by=["metrics.acc DESC"])
assert list(frame["run_id"]) == [parent_id] and list(frame["metrics.acc"]) == [0.9]

# Artifacts: list, download, the proxied endpoints.
top = {f.path: f for f in client.list_artifacts(parent_id)}
assert set(top) == {"notes.txt", "sub", "config.json"}, top
assert top["sub"].is_dir and top["notes.txt"].file_size == len("hello trellis")
assert [f.path for f in client.list_artifacts(parent_id, "sub/dir")] == ["sub/dir/notes.txt"]
local = client.download_artifacts(parent_id, "notes.txt", tempfile.mkdtemp())
assert open(local).read() == "hello trellis"
tree = mlflow.artifacts.download_artifacts(run_id=parent_id, artifact_path="sub")
assert open(os.path.join(tree, "dir", "notes.txt")).read() == "hello trellis"
assert mlflow.artifacts.load_dict(f"runs:/{parent_id}/config.json") == {"a": 1}
escape = requests.get(f"{uri}/api/2.0/mlflow-artifacts/artifacts/{exp_id}/{parent_id}/artifacts/%2E%2E/%2E%2E/etc/passwd", timeout=30)
assert escape.status_code == 400, escape.text

# Delete and restore.
client.delete_run(batch_id)
assert client.get_run(batch_id).info.lifecycle_stage == "deleted"
assert batch_id not in ids(client.search_runs([exp_id]))
assert ids(client.search_runs([exp_id], run_view_type=ViewType.DELETED_ONLY)) == [batch_id]
client.restore_run(batch_id)
assert batch_id in ids(client.search_runs([exp_id]))

print(json.dumps({"experiment_id": exp_id, "parent": parent_id, "child": child_id, "batch": batch_id}))
