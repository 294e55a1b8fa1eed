"""A stand-in OpenAI-compatible server on loopback, for the benches that time retune
around an LLM call (benches/startup.py, benches/scale.py, benches/review.py).

It answers `POST /<route>/v1/chat/completions` with a chat.completion (llama.cpp's
server shape, as tests/fixtures/llm/ recorded it) whose content is the answer for
<route>, after `latency` seconds (at once by default), and counts the calls per route
and when each arrived. Routes:

  seed000, seed003  a valid answer for that seed example (configs/examples/seed000,
                    seed003): one learning-rate change the validator accepts, with a
                    rationale that cites the run's numbers, as a good model would write;
  any other         (e.g. `/v1/chat/completions`, route "") a valid answer proposing no
                    change, so each run of a review costs exactly one call.

    from standin import StandIn
    with StandIn(latency=0.2) as server:
        url = server.url("seed000")     # http://127.0.0.1:PORT/seed000/v1
        ...
        server.calls["seed000"]         # requests answered on that route
        server.arrivals                 # perf_counter() of every request, in order
"""

import collections
import http.server
import json
import threading
import time

# One answer per seed example, valid for its config and run.
ANSWERS = {
    "seed000": {
        "diagnosis": "Loss 0.6933 ≈ ln 2 and accuracy 0.4973 ≈ 1/2 at epochs 1–2: "
        "the LSTM predicts chance.",
        "changes": [
            {
                "parameter": "learning_rate",
                "new_value": 0.0005,
                "rationale": "loss 0.6933 has not left ln 2 = 0.6931 in 2 epochs; "
                "halve 0.001 in case the LSTM saturated",
                "confidence": 0.4,
            }
        ],
        "expected_effect": "loss below 0.69 within 2 epochs if the labels are right",
        "risk": "if the labels are misaligned nothing changes",
        "alternatives": ["check that labels line up with inputs"],
    },
    "seed003": {
        "diagnosis": "Loss 1.693 ≈ ln 5 and accuracy 0.1688 ≈ 1/5 at epoch 2: "
        "the 5-class model predicts chance.",
        "changes": [
            {
                "parameter": "learning_rate",
                "new_value": 0.0005,
                "rationale": "loss 1.693 sits 5% above ln 5 = 1.609 at epoch 2 "
                "with Adam at 0.001; halve it",
                "confidence": 0.4,
            }
        ],
        "expected_effect": "accuracy above 0.2 within 2 epochs if the data pipeline is sound",
        "risk": "if the class weights or labels are wrong nothing changes",
        "alternatives": ["check the class balance and label mapping"],
    },
}

# For any other route: agree, change nothing.
NO_CHANGE = {"diagnosis": "Stand-in: no change proposed.", "changes": []}


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    # A review at --concurrency 16 connects 16 times at once; the default backlog of 5
    # would make some of them wait for a SYN retry.
    request_queue_size = 128


class StandIn:
    """The server, serving from a thread of its own from construction until `shutdown`."""

    def __init__(self, latency=0.0, answers=ANSWERS, default=NO_CHANGE):
        self.latency = latency
        self.calls = collections.Counter()
        self.arrivals = []
        lock = threading.Lock()
        stand_in = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                parts = self.path.strip("/").split("/")
                length = self.headers.get("Content-Length")
                if parts[-3:] != ["v1", "chat", "completions"] or len(parts) > 4 or length is None:
                    self.send_error(404 if length is not None else 411)
                    return
                route = parts[0] if len(parts) == 4 else ""
                body = self.rfile.read(int(length))
                # A seed's request is checked and its model echoed; the others (a review's
                # many runs) are not parsed, so that the server's own work, serialised by
                # Python's GIL, stays small beside the calls it times.
                request = json.loads(body) if route in answers else {"messages": [body]}
                if not request.get("messages"):
                    self.send_error(400, "no messages")
                    return
                with lock:
                    stand_in.calls[route] += 1
                    stand_in.arrivals.append(time.perf_counter())
                if stand_in.latency:
                    time.sleep(stand_in.latency)
                body = json.dumps(
                    {
                        "id": "chatcmpl-standin",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": request.get("model", "stand-in"),
                        "choices": [
                            {
                                "index": 0,
                                "finish_reason": "stop",
                                "message": {
                                    "role": "assistant",
                                    "content": json.dumps(answers.get(route, default)),
                                },
                            }
                        ],
                        "usage": {
                            "prompt_tokens": 1000,
                            "completion_tokens": 100,
                            "total_tokens": 1100,
                        },
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_):
                pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, route=""):
        """The base URL retune is given (`--base-url`) for `route`."""
        return f"http://127.0.0.1:{self.port}/{route + '/' if route else ''}v1"

    def reset(self):
        self.calls.clear()
        self.arrivals.clear()

    def shutdown(self):
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.shutdown()
