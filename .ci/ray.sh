#!/usr/bin/env bash
# Ray Tune for real: retune.ray's tuner and scheduler on a local Ray cluster (2 CPUs on
# loopback), tests/python/test_ray.py, then tests/ray.rs (the committed experiment folder
# in tests/fixtures/ray/, read by the binary without Ray).
#
# ray[tune] 2.60.0 in its own venv, cached under ~/.cache/retune/ray-venv: measured on
# this 2-core machine, 225 s to install the first time (642 MB), 14 s to check after. The
# tests run two sweeps of five numpy trials: 345 s, cluster start included (measured while
# other builds shared the cores).
#
# Needs the release binary (.ci/run builds it before this step). Runs from the source
# tree: the package from python/, the binary through RETUNE_BINARY.
set -euo pipefail
cd "$(dirname "$0")/.."

cache="${HOME}/.cache/retune"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$cache/target}"
ray_venv="$cache/ray-venv"
ray_version="2.60.0"

t0=$(date +%s)
if ! "$ray_venv/bin/python" -c "import ray, numpy, pytest, sys; sys.exit(ray.__version__ != '$ray_version')" 2>/dev/null; then
    rm -rf "$ray_venv"
    python3 -m venv "$ray_venv"
    "$ray_venv/bin/pip" install --quiet --disable-pip-version-check "ray[tune]==$ray_version" numpy pytest
fi
printf '   (Ray venv: %ds)\n' "$(($(date +%s) - t0))"

binary="$CARGO_TARGET_DIR/release/retune"
# Always built: a binary cached by an earlier CI run is another commit's (cargo makes
# this a no-op when it is current).
cargo build --release --locked

t1=$(date +%s)
# No usage reports to anyscale, no dashboard; the cluster is this process's own.
RAY_USAGE_STATS_ENABLED=0 RETUNE_BINARY="$binary" RETUNE_REQUIRE=ray \
    PYTHONPATH="$(pwd)/python${PYTHONPATH:+:$PYTHONPATH}" \
    "$ray_venv/bin/python" -m pytest -p no:cacheprovider -q -rs \
    -W "ignore::DeprecationWarning" tests/python/test_ray.py
printf '   (Ray tests: %ds)\n' "$(($(date +%s) - t1))"

cargo test --locked --test ray
printf '   (Ray step: %ds)\n' "$(($(date +%s) - t0))"
