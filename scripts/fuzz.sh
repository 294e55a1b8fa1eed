#!/usr/bin/env bash
# Runs each fuzz target (fuzz/fuzz_targets/) for a bounded time, one after the other, then
# folds what it found into the committed, minimised corpus (fuzz/corpus/<target>/).
#
#   scripts/fuzz.sh [seconds-per-target] [target ...]     # default: 60 s, every target
#   scripts/fuzz.sh build                                 # only the instrumented build
#
# Needs nightly and cargo-fuzz (`rustup toolchain install nightly`, `cargo install
# cargo-fuzz`). One libFuzzer process at a time (the machines this runs on are shared);
# run it under `nice` for a long session. Each run starts from three places: the committed
# corpus, the seeds made from the repository's example and real-log files (rebuilt here,
# not committed), and the working corpus of earlier runs on this machine
# (fuzz/corpus-work/, ignored by git). A crash, a timeout or an out-of-memory stops the
# script with libFuzzer's exit code; the input is in fuzz/artifacts/<target>/.
#
# Environment: FUZZ_TARGET_DIR=<dir> is where the instrumented build goes (default
# ~/.cache/retune/fuzz-target, where .ci/run looks for it); FUZZ_CMIN=0 skips the
# minimisation at the end (the CI smoke pass); FUZZ_LOG=<dir> keeps each target's libFuzzer
# output there (the executions and coverage quoted in the README come from its last lines).
set -euo pipefail
cd "$(dirname "$0")/.."

target_dir="${FUZZ_TARGET_DIR:-$HOME/.cache/retune/fuzz-target}"
# The build flags, the same for build, run and cmin: cargo-fuzz rebuilds everything when
# they differ (a `build -O` followed by a plain `run` does: -O turns the debug assertions
# off, the default keeps them on). Kept: cargo-fuzz's release build with debug assertions
# and overflow checks, which turn a wrapped length into a finding. Dropped, for a build that
# fits a session on 2 shared cores: AddressSanitizer (`-s none`: the code under test is safe
# Rust, and a panic, a hang and unbounded memory, what the targets look for, are found
# without it; ASan would only add checks on the unsafe code of dependencies) and
# cargo-fuzz's single codegen unit (16, a slightly slower binary for a build that can use
# both cores). fuzz/Cargo.toml builds the dependencies at opt-level 1.
build_flags=(--sanitizer none --codegen-units 16 --target-dir "$target_dir")

if [ "${1:-}" = build ]; then
    started=$(date +%s)
    (cd fuzz && cargo +nightly fuzz build "${build_flags[@]}")
    printf 'instrumented build of every target in %s: %ds\n' "$target_dir" "$(($(date +%s) - started))"
    exit 0
fi

seconds="${1:-60}"
shift || true
all=(metrics config history llm_answer settings)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")

# Per input: a reader that needs more than this is a hang (the slowest real file in
# tests/real reads in well under a second in a debug build); a run that holds more than
# this much memory is the unbounded read the limits exist to prevent.
timeout_s=10
rss_mb=1024
# Inputs longer than this are cut: the readers' logic is in the first kilobytes, and short
# inputs run faster. Seeds are cut to it too.
max_len=16384

python3 - "$max_len" <<'PY'
"""Seeds from the repository's files: metrics under a leading byte that picks the reader
(the order of FORCED and NAMES in fuzz/fuzz_targets/metrics.rs), configs, history lines,
LLM answers."""
import json, pathlib, sys

max_len = int(sys.argv[1])
root = pathlib.Path(".")
out = root / "fuzz" / "seeds"
FORCED = ["snapshot", "keras-history", "keras-csv", "keras-log", "lightning-csv",
          "hf-trainer-state", "json-lines", "tensorboard", "printed"]
NAMES = ["metrics.csv", "history.json", "training.log", "metrics.jsonl",
         "trainer_state.json", "m.txt", "events.out.tfevents.1790000000.host.1.0", "metrics"]

def put(target, name, data):
    d = out / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data[:max_len])

def forced_format(path, data):
    name = path.name.lower()
    if "tfevents" in name:
        return "tensorboard"
    if name == "trainer_state.json":
        return "hf-trainer-state"
    if name.endswith(".jsonl"):
        return "json-lines"
    if name.endswith(".csv"):
        head = data.split(b"\n", 1)[0].lower()
        return "lightning-csv" if b"step" in head.split(b",") else "keras-csv"
    if name.endswith(".json"):
        text = data.lstrip()
        return "keras-history" if text.startswith(b"[") or b'": [' in data[:4096] else "snapshot"
    if b"Epoch" in data[:4096] and b"/" not in data[:4096].split(b"Epoch", 1)[1][:8]:
        return "printed"
    return "keras-log"

def detect_name(path):
    name = path.name.lower()
    for i, n in enumerate(NAMES):
        if name == n or (n.startswith("events.") and "tfevents" in name):
            return i
    ext = {".csv": 0, ".json": 1, ".log": 2, ".jsonl": 3, ".txt": 5}.get(path.suffix.lower(), 7)
    return ext

sources = [p for p in (root / "tests" / "real").rglob("*") if p.is_file()]
sources += [p for p in (root / "configs" / "examples").rglob("*") if p.is_file()]
sources += [p for p in (root / "tests" / "fixtures").glob("*") if p.is_file()]
for p in sorted(sources):
    if p.name in ("SOURCE.txt", "README.md", "labels.toml") or p.suffix == ".toml":
        continue
    data = p.read_bytes()
    slug = "_".join(p.parts[-3:]).replace(".", "_")
    if p.name == "config.json" or p.name.startswith("config"):
        put("config", slug, data)
        continue
    put("metrics", slug + "_forced", bytes([FORCED.index(forced_format(p, data))]) + data)
    put("metrics", slug + "_detect", bytes([len(FORCED) + detect_name(p)]) + data)
for p in sorted((root / "reports").rglob("history*.jsonl")):
    put("history", "_".join(p.parts[-2:]), p.read_bytes())
for p in sorted((root / "tests" / "fixtures" / "llm").glob("*response*.json")):
    try:
        content = json.loads(p.read_text())["choices"][0]["message"]["content"]
    except (KeyError, IndexError, ValueError):
        continue
    put("llm_answer", p.stem, content.encode())
# Answers as models give them: bare, fenced, wrapped in prose, with strings for numbers.
answer = {"diagnosis": "the loss diverged at epoch 3", "changes": [
    {"parameter": "learning_rate", "value": 0.0001, "rationale": "loss 1e308 at epoch 3"}],
    "expected_effect": "stable loss", "risk": "slower"}
put("llm_answer", "bare", json.dumps(answer).encode())
put("llm_answer", "fenced", ("```json\n" + json.dumps(answer, indent=2) + "\n```").encode())
put("llm_answer", "prose", ("Here is my answer: " + json.dumps(answer) + " Hope it helps.").encode())
answer["changes"][0]["value"] = "1e-4"
put("llm_answer", "string_value", json.dumps(answer).encode())
put("llm_answer", "no_change", b'{"diagnosis": "healthy", "changes": []}')
for p in sorted((root / "configs").rglob("*.toml")):
    put("settings", p.stem, p.read_bytes())
put("settings", "llm", b'[llm]\nbase_url = "http://127.0.0.1:8080/v1"\nmodel = "gemma"\n')
PY

for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t" "fuzz/corpus-work/$t" "fuzz/seeds/$t"
    printf '== fuzz %s for %ss\n' "$t" "$seconds"
    # libFuzzer's output goes to the log file, or stays on stderr. Not `2>/dev/stderr`: when
    # stderr is a file (CI's log), opening /dev/stderr truncates it.
    if [ -n "${FUZZ_LOG:-}" ]; then
        mkdir -p "$FUZZ_LOG"
        exec 3>"$FUZZ_LOG/$t.log"
    else
        exec 3>&2
    fi
    (cd fuzz && cargo +nightly fuzz run "${build_flags[@]}" "$t" "corpus-work/$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$seconds" -timeout="$timeout_s" -rss_limit_mb="$rss_mb" \
        -max_len="$max_len" -print_final_stats=1) 2>&3
    exec 3>&-
    if [ "${FUZZ_CMIN:-1}" != 0 ]; then
        # The committed corpus: what it had, plus what this run found, minimised.
        cp -n "fuzz/corpus-work/$t"/* "fuzz/corpus/$t"/ 2>/dev/null || true
        (cd fuzz && cargo +nightly fuzz cmin "${build_flags[@]}" "$t" "corpus/$t" -- -rss_limit_mb="$rss_mb" \
            -timeout="$timeout_s" -max_len="$max_len") >/dev/null 2>&1
        printf '   corpus/%s: %s inputs\n' "$t" "$(ls "fuzz/corpus/$t" | wc -l)"
    fi
done
