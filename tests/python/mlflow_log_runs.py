"""Logs three training runs to an MLflow tracking server with MLflow's Python client, as
`mlflow.keras.autolog` records a Keras `model.fit`: params, then per epoch the metrics
`loss`, `val_loss`, `accuracy`, `val_accuracy` at step = the epoch index from 0. Used by
tests/mlflow.rs (run with RETUNE_TEST_MLFLOW=<python with mlflow>).

    python mlflow_log_runs.py log URI EXPERIMENT [ARTIFACT_LOCATION]
                                                      -> {"healthy": run_id, ...}

URI is a server's URL or a file store's `file:/path/mlruns` (MLflow 3 writes a file store
only with MLFLOW_ALLOW_FILE_STORE=true). After the three runs, a fourth (`deleted`, a
diverging loss) is logged and deleted, as `mlflow.delete_run` leaves it: a reader of the
active runs must not see it.
    python mlflow_log_runs.py read-back URI RUN_ID    -> {"tags": {...}, "artifacts": {...}}
    python mlflow_log_runs.py make-bucket ENDPOINT BUCKET     -> {"bucket": BUCKET}
    python mlflow_log_runs.py add-user URI USER PASSWORD      -> {"user": USER}

ARTIFACT_LOCATION creates the experiment with its own artifact root (`s3://…`), as a team
whose server does not proxy artifacts does. Credentials come from the environment as MLflow's
client reads them (MLFLOW_TRACKING_USERNAME/_PASSWORD; MLFLOW_S3_ENDPOINT_URL and AWS_* for
S3); add-user runs as the admin those name, on a server started with --app-name basic-auth.

The runs, 10 classes (chance loss ln 10 = 2.30):
- healthy: Adam at 1e-3; both losses fall, validation a little above training.
- diverged: SGD at lr 0.5; the loss climbs from epoch 3 and blows up. MLflow takes NaN
  (its SQL store keeps it and the REST API answers "NaN") and takes infinity, but stores
  it as the largest double, 1.7976931348623157e308; both are logged here, as a Keras run
  under TerminateOnNaN would log them, and the run ends FAILED.
- overfitting: Adam at 1e-3 with no dropout; the training loss keeps falling while the
  validation loss turns up after epoch 5 and rises for six epochs.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import mlflow
from mlflow import MlflowClient

KEYS = ("loss", "val_loss", "accuracy", "val_accuracy")
NAN = float("nan")
INF = float("inf")

RUNS = {
    "healthy": {
        "params": {
            "learning_rate": 0.001,
            "batch_size": 64,
            "epochs": 10,
            "optimizer": "adam",
            "num_classes": 10,
        },
        "status": "FINISHED",
        "loss": [2.05, 1.52, 1.20, 0.98, 0.83, 0.72, 0.64, 0.58, 0.53, 0.49],
        "val_loss": [2.10, 1.60, 1.29, 1.08, 0.94, 0.84, 0.77, 0.72, 0.68, 0.65],
        "accuracy": [0.28, 0.47, 0.58, 0.66, 0.71, 0.75, 0.78, 0.80, 0.82, 0.83],
        "val_accuracy": [0.26, 0.44, 0.55, 0.62, 0.67, 0.71, 0.73, 0.75, 0.76, 0.77],
    },
    "diverged": {
        "params": {
            "learning_rate": 0.5,
            "batch_size": 64,
            "epochs": 10,
            "optimizer": "sgd",
            "momentum": 0.9,
            "num_classes": 10,
        },
        "status": "FAILED",
        "loss": [2.21, 1.95, 2.64, 9.8, 412.0, INF, NAN],
        "val_loss": [2.18, 2.02, 3.10, 14.2, 980.0, NAN, NAN],
        "accuracy": [0.19, 0.27, 0.18, 0.10, 0.10, 0.10, 0.10],
        "val_accuracy": [0.21, 0.25, 0.14, 0.10, 0.10, 0.10, 0.10],
    },
    "overfitting": {
        "params": {
            "learning_rate": 0.001,
            "batch_size": 32,
            "epochs": 12,
            "optimizer": "adam",
            "dropout": 0.0,
            "num_classes": 10,
        },
        "status": "FINISHED",
        "loss": [1.90, 1.20, 0.85, 0.62, 0.45, 0.33, 0.24, 0.18, 0.13, 0.10, 0.08, 0.06],
        "val_loss": [1.95, 1.35, 1.05, 0.92, 0.86, 0.85, 0.88, 0.95, 1.04, 1.15, 1.27, 1.41],
        "accuracy": [0.35, 0.60, 0.72, 0.80, 0.86, 0.90, 0.93, 0.95, 0.96, 0.97, 0.98, 0.99],
        "val_accuracy": [0.33, 0.55, 0.65, 0.70, 0.72, 0.73, 0.73, 0.72, 0.72, 0.71, 0.71, 0.70],
    },
}


def log(uri: str, experiment: str, artifact_location: str | None = None) -> None:
    mlflow.set_tracking_uri(uri)
    if artifact_location is not None:
        MlflowClient().create_experiment(experiment, artifact_location=artifact_location)
    mlflow.set_experiment(experiment)
    ids = {}
    for name, run in RUNS.items():
        active = mlflow.start_run(run_name=name)
        mlflow.log_params(run["params"])
        for epoch, values in enumerate(zip(*(run[k] for k in KEYS))):
            mlflow.log_metrics(dict(zip(KEYS, values)), step=epoch)
        mlflow.end_run(status=run["status"])
        ids[name] = active.info.run_id
    with mlflow.start_run(run_name="deleted") as gone:
        mlflow.log_param("learning_rate", 5.0)
        for epoch, loss in enumerate([2.3, 40.0, NAN]):
            mlflow.log_metric("loss", loss, step=epoch)
    MlflowClient().delete_run(gone.info.run_id)
    print(json.dumps(ids))


def read_back(uri: str, run_id: str) -> None:
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(run_id)
    tags = {k: v for k, v in run.data.tags.items() if k.startswith("retune.")}
    artifacts = {}
    with tempfile.TemporaryDirectory() as scratch:
        for info in client.list_artifacts(run_id, "retune"):
            local = client.download_artifacts(run_id, info.path, scratch)
            artifacts[info.path] = Path(local).read_text(encoding="utf-8")
    print(json.dumps({"tags": tags, "artifacts": artifacts}))


def make_bucket(endpoint: str, bucket: str) -> None:
    import boto3

    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
    print(json.dumps({"bucket": bucket}))


def add_user(uri: str, user: str, password: str) -> None:
    from mlflow.server.auth.client import AuthServiceClient

    AuthServiceClient(uri).create_user(user, password)
    print(json.dumps({"user": user}))


def main(argv: list[str]) -> int:
    if len(argv) in (4, 5) and argv[1] == "log":
        log(argv[2], argv[3], argv[4] if len(argv) == 5 else None)
    elif len(argv) == 4 and argv[1] == "make-bucket":
        make_bucket(argv[2], argv[3])
    elif len(argv) == 5 and argv[1] == "add-user":
        add_user(argv[2], argv[3], argv[4])
    elif len(argv) == 4 and argv[1] == "read-back":
        read_back(argv[2], argv[3])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
