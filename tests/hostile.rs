//! A hostile server and hostile files, through the real binary: an OpenAI-compatible
//! stand-in that echoes the API key, sends oversized fields, terminal control sequences,
//! bodies that are not JSON, huge bodies and bodies a byte at a time; and metrics whose
//! values break a chart's axis. Every test asserts on stdout, stderr and every file the
//! run wrote, and runs the binary under a deadline, so a hang fails instead of blocking.
//!
//! The stand-in is a plain TCP server (not wiremock) because the hostile answers are not
//! well-formed HTTP exchanges: a body trickled a byte a second, a chunked body that never
//! ends.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Scratch, assert_code, json, stderr, stdout};
use serde_json::json;

const KEY: &str = "sk-hostile-3a9c1e7b5d2f-secret";
/// A key with no recognisable shape (Azure's are 32 hex digits): only the configured
/// value can find it.
const PLAIN_KEY: &str = "5d0c9a1f7e3b28c46a9f0e1d2c3b4a59";
/// Longest any run here may take: far beyond what each needs (a few seconds in a debug
/// build), short enough that a hang fails the suite instead of stalling it.
const DEADLINE: Duration = Duration::from_secs(120);
/// The terminal controls a model or a file may hold: OSC retitling the terminal (ended
/// by BEL), CSI clearing the screen, a C1 CSI, a carriage return, and a bidi override.
const CONTROLS: &str = "\u{1b}]0;pwned\u{7}\u{1b}[2J\u{9b}31m\r\u{202e}";

/// How the stand-in answers the `n`th request (0-based), given the request body.
type Respond = dyn Fn(usize, &str, &mut TcpStream) + Send + Sync;

struct Stand {
    base_url: String,
    requests: Arc<AtomicUsize>,
}

/// A stand-in server on a free local port, answering each connection on its own thread.
fn stand_in(respond: impl Fn(usize, &str, &mut TcpStream) + Send + Sync + 'static) -> Stand {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base_url = format!("http://{}/v1", listener.local_addr().unwrap());
    let requests = Arc::new(AtomicUsize::new(0));
    let respond: Arc<Respond> = Arc::new(respond);
    let count = requests.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (respond, count) = (respond.clone(), count.clone());
            std::thread::spawn(move || {
                let mut stream = stream;
                let Some(body) = read_request(&stream) else {
                    return;
                };
                let n = count.fetch_add(1, Ordering::SeqCst);
                respond(n, &body, &mut stream);
            });
        }
    });
    Stand { base_url, requests }
}

/// The body of one HTTP/1.1 request (headers read up to the blank line, then
/// Content-Length bytes).
fn read_request(stream: &TcpStream) -> Option<String> {
    let mut reader = BufReader::new(stream);
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(String::from_utf8_lossy(&body).into_owned())
}

/// Writes a whole response; a client that has gone is not the server's problem.
fn reply(stream: &mut TcpStream, status: u16, content_type: &str, body: &[u8]) {
    let head = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
}

fn completion(content: &str) -> Vec<u8> {
    json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "hostile-1",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
        "usage": {"prompt_tokens": 800, "completion_tokens": 90}
    })
    .to_string()
    .into_bytes()
}

/// An answer that lowers the diverging run's learning rate, with `diagnosis` and
/// `rationale` as given.
fn lower_lr(diagnosis: &str, rationale: &str) -> String {
    json!({
        "diagnosis": diagnosis,
        // A value of its own (the rules cut to 0.042), so its text is what is kept.
        "verdict": "replace",
        "changes": [{"parameter": "optimizer.lr", "new_value": 0.06, "rationale": rationale, "confidence": 0.8}],
        "risk": rationale,
    })
    .to_string()
}

fn ok(stream: &mut TcpStream, content: &str) {
    reply(stream, 200, "application/json", &completion(content));
}

/// The real diverging Keras run in a scratch dir.
fn diverging() -> Scratch {
    let s = Scratch::new();
    s.copy_example("keras/diverging/config.json", "config.json");
    s.copy_example("keras/diverging/history.csv", "history.csv");
    s
}

/// `retune suggest` on the scratch run against `stand`, with `key` and `extra`, under
/// `DEADLINE` (a run still going then is killed, and has no exit code).
fn suggest(s: &Scratch, stand: &Stand, key: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "suggest",
        "-c",
        "config.json",
        "-m",
        "history.csv",
        "--base-url",
        &stand.base_url,
    ];
    args.extend_from_slice(extra);
    within_deadline(s.command().env("OPENAI_API_KEY", key).args(&args))
}

fn within_deadline(command: &mut assert_cmd::Command) -> Output {
    let started = Instant::now();
    let out = command.timeout(DEADLINE).output().expect("retune runs");
    assert!(
        out.status.code().is_some(),
        "killed after {:?}: retune did not finish within {DEADLINE:?}\nstdout:\n{}\nstderr:\n{}",
        started.elapsed(),
        stdout(&out),
        stderr(&out)
    );
    out
}

/// The inputs `diverging` copies in.
const INPUTS: [&str; 2] = ["config.json", "history.csv"];

/// Every file retune wrote under the scratch dir (the inputs left out) with its text
/// (lossy), for assertions on all of them.
fn written(s: &Scratch) -> Vec<(String, String)> {
    s.files()
        .into_iter()
        .filter(|f| !INPUTS.contains(&f.as_str()))
        .map(|f| {
            let text = String::from_utf8_lossy(&std::fs::read(s.path(&f)).unwrap()).into_owned();
            (f, text)
        })
        .collect()
}

/// Asserts that no raw terminal control is in `text` (newline and tab are layout).
#[track_caller]
fn no_controls(what: &str, text: &str) {
    let bad: Vec<char> = text
        .chars()
        .filter(|c| {
            (c.is_control() && !matches!(c, '\n' | '\t'))
                || matches!(c, '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        })
        .collect();
    assert!(
        bad.is_empty(),
        "{what} holds terminal controls {bad:?}:\n{text}"
    );
}

#[test]
fn an_echoed_key_is_redacted_from_every_output_file_and_cache() {
    // The usual 401 body names the key it refused; an answer's rationale, risk and
    // diagnosis repeat the key and a bearer header.
    for key in [KEY, PLAIN_KEY] {
        let echo = format!(
            "{{\"error\": {{\"message\": \"Incorrect API key provided: {key}. You can find your API key at https://platform.openai.com/account/api-keys.\", \"type\": \"invalid_request_error\", \"code\": \"invalid_api_key\"}}}}"
        );
        let refused =
            stand_in(move |_, _, stream| reply(stream, 401, "application/json", echo.as_bytes()));
        let chatty = stand_in(move |_, _, stream| {
            ok(
                stream,
                &lower_lr(
                    &format!("The loss diverged; I was called with {key}."),
                    &format!(
                        "loss rose from 1.42 to 14.09 (request had Authorization: Bearer {key})"
                    ),
                ),
            )
        });
        let s = diverging();
        let mut outputs = Vec::new();
        for extra in [
            &["--format", "json"][..],
            &["--format", "text"],
            &["--no-fallback"],
        ] {
            let out = suggest(&s, &refused, key, extra);
            assert_code(&out, if extra == ["--no-fallback"] { 3 } else { 0 });
            outputs.push((format!("401 {extra:?}"), out));
        }
        let refusal = stderr(&outputs[2].1);
        assert!(
            refusal.contains("HTTP 401")
                && refusal.contains("Incorrect API key provided: [redacted]."),
            "the refusal is shown, without the key: {refusal}"
        );
        let fallback = json(&outputs[0].1);
        assert_eq!(fallback["provider"], "openai→rules");
        assert!(
            fallback["llm"]["fallback"]
                .as_str()
                .unwrap()
                .contains("[redacted]"),
            "{fallback:#}"
        );
        // Each in a fresh run: after a first change, the parameter is cooling down.
        let mut runs = vec![s];
        for extra in [&["--format", "json"][..], &["--format", "text"]] {
            let fresh = diverging();
            let out = suggest(&fresh, &chatty, key, extra);
            assert_code(&out, 0);
            outputs.push((format!("200 {extra:?}"), out));
            runs.push(fresh);
        }
        let decision = json(&outputs[3].1);
        assert_eq!(decision["provider"], "openai", "{decision:#}");
        let rationale = decision["changes"][0]["rationale"].as_str().unwrap();
        assert!(
            rationale.ends_with("(request had Authorization: Bearer [redacted])"),
            "{rationale}"
        );
        assert!(
            decision["diagnosis"]
                .as_str()
                .unwrap()
                .contains("called with [redacted]."),
            "{decision:#}"
        );
        assert!(stdout(&outputs[4].1).contains("Bearer [redacted]"));

        let secret = &key[key.len() - 20..];
        for (what, out) in &outputs {
            for (stream, text) in [("stdout", stdout(out)), ("stderr", stderr(out))] {
                assert!(!text.contains(secret), "{what} {stream}: {text}");
            }
        }
        let files: Vec<(String, String)> = runs.iter().flat_map(written).collect();
        let kinds = [
            "config.retuned.json",
            ".md",
            ".json",
            "history",
            ".cache/llm/",
        ];
        for kind in kinds {
            assert!(
                files.iter().any(|(f, _)| f.contains(kind)),
                "{kind} written: {:?}",
                files.iter().map(|(f, _)| f).collect::<Vec<_>>()
            );
        }
        for (file, text) in &files {
            assert!(!text.contains(secret), "the key is in {file}:\n{text}");
        }
        // The Markdown report escapes the brackets.
        let redacted_in = |kind: &str| {
            files.iter().any(|(f, text)| {
                f.contains(kind)
                    && (text.contains("Bearer [redacted]") || text.contains(r"Bearer \[redacted\]"))
            })
        };
        assert!(
            redacted_in(".md") && redacted_in(".cache/llm/"),
            "the text around it was kept"
        );
    }
}

#[test]
fn oversize_fields_are_cut_to_the_schemas_lengths() {
    // 2 MB of diagnosis and 1 MB of rationale: within the body limit, far past the
    // schema's 400 and 200 characters.
    let diagnosis = format!("The loss diverged. {}", "blah ".repeat(400_000));
    let rationale = format!("Lower it. {}", "again ".repeat(170_000));
    let content = lower_lr(&diagnosis, &rationale);
    let stand = stand_in(move |_, _, stream| ok(stream, &content));
    let s = diverging();
    let out = suggest(&s, &stand, KEY, &["--format", "json"]);
    assert_code(&out, 0);
    let d = json(&out);
    assert_eq!(d["provider"], "openai");
    let diagnosis = d["diagnosis"].as_str().unwrap();
    assert!(
        diagnosis.starts_with("The loss diverged. blah"),
        "{diagnosis}"
    );
    assert_eq!(diagnosis.chars().count(), 400);
    assert_eq!(
        d["changes"][0]["rationale"]
            .as_str()
            .unwrap()
            .chars()
            .count(),
        200
    );
    assert!(
        stdout(&out).len() < 64 * 1024,
        "{} bytes on stdout",
        stdout(&out).len()
    );
    assert!(stderr(&out).len() < 4 * 1024, "{}", stderr(&out));
    for (file, text) in written(&s) {
        // The cache keeps the answer as it came, for a rerun to read the same.
        let limit = if file.starts_with(".cache/") {
            (4 << 20) + 4096
        } else {
            256 << 10
        };
        assert!(text.len() < limit, "{file} is {} bytes", text.len());
    }
    let text = suggest(&s, &stand, KEY, &["--format", "text"]);
    assert_code(&text, 0);
    assert!(stdout(&text).len() < 16 * 1024, "{}", stdout(&text).len());
}

#[test]
fn a_body_over_the_limit_is_not_read_and_the_rules_decide() {
    // 5 MiB with a Content-Length, and a chunked body that never ends.
    let declared = stand_in(|_, _, stream| {
        ok(stream, &lower_lr(&"x".repeat(5 << 20), "r"));
    });
    let endless = stand_in(|_, _, stream| {
        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
        if stream.write_all(head.as_bytes()).is_err() {
            return;
        }
        let chunk = format!("{:x}\r\n{}\r\n", 64 << 10, "{".repeat(64 << 10));
        // At most 1 GiB: the client hangs up long before.
        for _ in 0..(1 << 14) {
            if stream.write_all(chunk.as_bytes()).is_err() {
                return;
            }
        }
    });
    for stand in [&declared, &endless] {
        let s = diverging();
        let out = suggest(&s, stand, KEY, &["--format", "json", "--retries", "3"]);
        assert_code(&out, 0);
        let d = json(&out);
        assert_eq!(d["provider"], "openai→rules", "{d:#}");
        let why = d["llm"]["fallback"].as_str().unwrap();
        assert!(why.contains("larger than 4 MiB"), "{why}");
        // Retrying would get the same answer.
        assert_eq!(stand.requests.load(Ordering::SeqCst), 1);
        assert!(stdout(&out).len() < 64 * 1024);
        for (file, text) in written(&s) {
            assert!(text.len() < 256 * 1024, "{file} is {} bytes", text.len());
        }
        assert!(
            !s.files().iter().any(|f| f.starts_with(".cache/")),
            "nothing cached: {:?}",
            s.files()
        );
        let refused = suggest(&s, stand, KEY, &["--no-fallback", "--retries", "0"]);
        assert_code(&refused, 3);
        assert!(
            stderr(&refused).contains("larger than 4 MiB"),
            "{}",
            stderr(&refused)
        );
        assert!(stderr(&refused).len() < 2048);
    }
}

#[test]
fn a_trickled_body_hits_the_request_timeout() {
    // Headers at once, then the body a byte a second: each read succeeds, the whole never
    // comes. Also a server that sends nothing after accepting.
    let trickle = stand_in(|_, _, stream| {
        let body = completion(&lower_lr("d", "r"));
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        if stream.write_all(head.as_bytes()).is_err() {
            return;
        }
        for byte in body {
            if stream
                .write_all(&[byte])
                .and_then(|()| stream.flush())
                .is_err()
            {
                return;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    let head_trickle = stand_in(|_, _, stream| {
        for byte in b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            .iter()
            .cycle()
        {
            if stream
                .write_all(&[*byte])
                .and_then(|()| stream.flush())
                .is_err()
            {
                return;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    for stand in [&trickle, &head_trickle] {
        let s = diverging();
        let started = Instant::now();
        let out = suggest(
            &s,
            stand,
            KEY,
            &["--format", "json", "--timeout", "2", "--retries", "1"],
        );
        let took = started.elapsed();
        assert_code(&out, 0);
        let d = json(&out);
        assert_eq!(d["provider"], "openai→rules");
        let why = d["llm"]["fallback"].as_str().unwrap();
        assert!(why.contains("timeout"), "{why}");
        assert_eq!(d["llm"]["http_attempts"], 2, "the timeout is retried once");
        // Two attempts of 2 s and a backoff of at most 0.4 s, not the 500-odd seconds
        // the trickle would take; the rest is the debug binary's own start.
        assert!(took < Duration::from_secs(30), "{took:?}");
        assert!(
            s.files().iter().any(|f| f.ends_with(".md")),
            "the rules' report"
        );
    }
}

#[test]
fn answers_that_are_not_json_fall_back_and_print_nothing_raw() {
    let html = format!("<html><body>502 Bad Gateway{CONTROLS}</body></html>");
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("html", html.into_bytes()),
        ("binary", (0u8..=255).cycle().take(4096).collect()),
        ("truncated", completion(&lower_lr("d", "r"))[..40].to_vec()),
        ("empty", Vec::new()),
    ];
    for (what, body) in bodies {
        let stand = stand_in(move |_, _, stream| reply(stream, 200, "text/html", &body));
        let s = diverging();
        let out = suggest(&s, &stand, KEY, &["--format", "text"]);
        assert_code(&out, 0);
        assert!(
            stdout(&out).contains("the LLM gave no usable answer"),
            "{what}: {}",
            stdout(&out)
        );
        no_controls(&format!("{what} stdout"), &stdout(&out));
        no_controls(&format!("{what} stderr"), &stderr(&out));
        let refused = suggest(&s, &stand, KEY, &["--no-fallback", "--retries", "0"]);
        assert_code(&refused, 3);
        no_controls(&format!("{what} stderr"), &stderr(&refused));
        assert!(
            stderr(&refused).len() < 2048,
            "{what}: {}",
            stderr(&refused)
        );
        for (file, text) in written(&s) {
            if !file.ends_with(".svg") {
                no_controls(&file, &text);
            }
        }
    }
}

#[test]
fn control_characters_from_the_model_and_from_files_never_reach_the_terminal() {
    let diagnosis = format!("The loss diverged.{CONTROLS} Lower the rate.");
    let rationale = format!("loss rose from 1.42 to 14.09{CONTROLS}");
    let content = lower_lr(&diagnosis, &rationale);
    let stand = stand_in(move |_, _, stream| ok(stream, &content));
    let s = diverging();
    // The user's config holds a C1 control and a bidi override in a string (raw, as JSON
    // allows): the history keeps its text for `revert`.
    let note = "run \u{85}\u{202e}lr";
    let original = s.read("config.json");
    let config = original.replacen('{', &format!("{{\"note\": \"{note}\", "), 1);
    s.write("config.json", &config);
    // In place, so the history records the change as applied and `history` lists it.
    let text = suggest(&s, &stand, KEY, &["--format", "text", "--in-place"]);
    assert_code(&text, 0);
    let shown = stdout(&text);
    no_controls("suggest stdout", &shown);
    no_controls("suggest stderr", &stderr(&text));
    assert!(
        shown.contains(r"loss rose from 1.42 to 14.09\x1b]0;pwned\x07\x1b[2J\x9b31m\x0d\u{202e}"),
        "the controls are shown, escaped: {shown}"
    );
    // JSON keeps the text as the model wrote it, in escapes a terminal does not obey.
    let fresh = diverging();
    let out = suggest(&fresh, &stand, KEY, &["--format", "json", "--dry-run"]);
    assert_code(&out, 0);
    no_controls("suggest --format json", &stdout(&out));
    let d = json(&out);
    assert_eq!(d["changes"][0]["rationale"], rationale.as_str());
    // Every file written: the Markdown report and the chart escape for their format; the
    // report's .json, the history lines and the answer cache are JSON with the controls
    // as \u escapes, and read back as the model wrote them.
    let files = written(&s);
    for kind in [".md", ".svg", ".json", "history.jsonl", ".cache/llm/"] {
        assert!(
            files
                .iter()
                .any(|(f, _)| f.ends_with(kind) || f.contains(kind)),
            "{kind} written: {:?}",
            files.iter().map(|(f, _)| f).collect::<Vec<_>>()
        );
    }
    for (file, text) in &files {
        no_controls(file, text);
    }
    let report: serde_json::Value = files
        .iter()
        .find(|(f, _)| f.ends_with(".json") && !f.contains(".cache/") && !f.contains("config"))
        .map(|(_, text)| serde_json::from_str(text).unwrap())
        .expect("the report's .json");
    assert_eq!(
        report["changes"][0]["rationale"],
        rationale.as_str(),
        "{report:#}"
    );
    let (_, history) = files
        .iter()
        .find(|(f, _)| f.ends_with("history.jsonl"))
        .unwrap();
    let line: serde_json::Value = serde_json::from_str(history.lines().next().unwrap()).unwrap();
    assert_eq!(line["config_before"], config.as_str(), "{history}");
    let log = s
        .files()
        .into_iter()
        .find(|f| f.ends_with("history.jsonl"))
        .expect("a history");
    let history = within_deadline(s.command().args(["history", &log]));
    assert_code(&history, 0);
    no_controls("history", &stdout(&history));
    assert!(
        stdout(&history).contains("optimizer.lr"),
        "{}",
        stdout(&history)
    );

    // Names from the user's own files: a column and a file name.
    // (A carriage return would end the CSV line.)
    let header = format!("epoch,loss,val_loss,acc{}", CONTROLS.replace('\r', ""));
    let rows: String = (0..6)
        .map(|e| {
            format!(
                "{e},{},{},0.5\n",
                1.0 - 0.1 * f64::from(e),
                1.1 - 0.1 * f64::from(e)
            )
        })
        .collect();
    s.write("odd/history.csv", format!("{header}\n{rows}"));
    for format in ["text", "json"] {
        let out = within_deadline(
            s.command()
                .args(["diagnose", "-m", "odd/history.csv", "--format", format])
                // Detection refuses a header with C0 controls; a forced format reads it.
                .args(["--metrics-format", "keras-csv"]),
        );
        assert_code(&out, 0);
        no_controls("diagnose stdout", &stdout(&out));
        no_controls("diagnose stderr", &stderr(&out));
        assert!(
            stdout(&out).contains(r"acc\x1b]0;pwned")
                || stdout(&out).contains(r"acc\u001b]0;pwned"),
            "{}",
            stdout(&out)
        );
    }
    let missing = format!("gone{CONTROLS}.csv");
    let out = within_deadline(s.command().args(["diagnose", "-m", &missing]));
    assert_code(&out, 2);
    no_controls("error on stderr", &stderr(&out));
    assert!(
        stderr(&out).contains(r"gone\x1b]0;pwned"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_corrupt_answer_cache_entry_is_ignored_with_a_warning() {
    let answer = lower_lr("The loss diverged.", "loss rose from 1.42 to 14.09");
    let stand = stand_in(move |_, _, stream| ok(stream, &answer));
    let s = diverging();
    let run = |what: &str| {
        let out = suggest(&s, &stand, KEY, &["--format", "json", "--dry-run"]);
        assert_code(&out, 0);
        assert_eq!(json(&out)["provider"], "openai", "{what}: {}", stderr(&out));
        out
    };
    let first = run("first");
    assert!(!stderr(&first).contains("warning"), "{}", stderr(&first));
    let entries: Vec<String> = s
        .files()
        .into_iter()
        .filter(|f| f.starts_with(".cache/llm/") && f.ends_with(".json"))
        .collect();
    assert!(
        !entries.is_empty(),
        "the answer was cached: {:?}",
        s.files()
    );
    let asked = stand.requests.load(Ordering::SeqCst);
    run("cached");
    assert_eq!(
        stand.requests.load(Ordering::SeqCst),
        asked,
        "a hit asks nothing"
    );

    // Each way an entry can be unusable: not JSON, JSON but not a reply, larger than any
    // reply (4 MiB, the transport's body limit, a sparse file here), a named pipe (which
    // would block a plain open forever), a folder.
    let oversize = |path: &std::path::Path| {
        std::fs::File::create(path)
            .unwrap()
            .set_len((4 << 20) + 1)
            .unwrap();
    };
    let fifo = |path: &std::path::Path| {
        let made = std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .unwrap();
        assert!(made.success());
    };
    // What the entry is, how to make it so, what the warning says.
    type Spoil<'a> = (&'a str, &'a dyn Fn(&std::path::Path), &'a str);
    let cases: [Spoil; 5] = [
        (
            "not JSON",
            &|p| std::fs::write(p, "{\"content\": tru").unwrap(),
            "is not an LLM answer cache entry retune wrote",
        ),
        (
            "not a reply",
            &|p| std::fs::write(p, "[1, 2]").unwrap(),
            "is not an LLM answer cache entry retune wrote",
        ),
        (
            "oversize",
            &oversize,
            "is 4.0 MiB; an LLM answer cache entry is read whole, and retune reads at most 4 MiB",
        ),
        (
            "a FIFO",
            &fifo,
            "is a named pipe (FIFO), not a regular file",
        ),
        (
            "a folder",
            &|p| std::fs::create_dir(p).unwrap(),
            "is a directory, expected an LLM answer cache entry",
        ),
    ];
    for (what, spoil, message) in cases {
        for entry in &entries {
            let path = s.path(entry);
            if path.is_dir() {
                std::fs::remove_dir(&path).unwrap();
            } else {
                std::fs::remove_file(&path).unwrap();
            }
            spoil(&path);
        }
        let asked = stand.requests.load(Ordering::SeqCst);
        let out = run(what);
        let err = stderr(&out);
        assert!(
            err.contains("warning: ")
                && err.contains(message)
                && err.contains("the cached answer is ignored and the model asked again"),
            "{what}: {err}"
        );
        assert!(
            err.contains(entries[0].trim_start_matches(".cache/")),
            "{what} names the entry: {err}"
        );
        no_controls(what, &err);
        assert!(
            stand.requests.load(Ordering::SeqCst) > asked,
            "{what}: the model was asked again"
        );
    }
    // A spoilt regular file is replaced by the new answer, and hits again.
    for entry in &entries {
        std::fs::remove_dir(s.path(entry)).unwrap();
        std::fs::write(s.path(entry), "garbage").unwrap();
    }
    run("replacing");
    let asked = stand.requests.load(Ordering::SeqCst);
    let again = run("replaced");
    assert!(!stderr(&again).contains("warning"), "{}", stderr(&again));
    assert_eq!(stand.requests.load(Ordering::SeqCst), asked);
}

#[test]
fn a_loss_near_the_largest_float_is_charted_without_hanging() {
    // The issue's reproduction (a loss of 1e308 between ordinary ones), the edge that
    // hung without overflowing (9e307 over 0.5: the axis ratio passes f64::MAX), the
    // largest float, a negative blow-up on a linear axis, and a tiny loss beside a huge
    // one.
    let runs: [&[f64]; 5] = [
        &[1.0, 1e308, 0.8],
        &[1.0, 0.75, 9e307, 0.8],
        &[2.0, 1.5, f64::MAX, f64::MAX],
        &[0.5, -1e308, 1e308, 0.4],
        &[1e-300, 1e-200, 1e100, 1e140],
    ];
    for losses in runs {
        let s = Scratch::new();
        s.write("c.json", r#"{"learning_rate": 0.001}"#);
        let rows: String = losses
            .iter()
            .enumerate()
            .map(|(e, v)| format!("{e},{v:e}\n"))
            .collect();
        s.write("h.csv", format!("epoch,loss\n{rows}"));
        let out = within_deadline(s.command().args([
            "suggest",
            "-c",
            "c.json",
            "-m",
            "h.csv",
            "--provider",
            "rules",
            "--format",
            "json",
        ]));
        assert_code(&out, 0);
        let d = json(&out);
        let chart = s
            .files()
            .into_iter()
            .find(|f| f.ends_with(".svg"))
            .unwrap_or_else(|| panic!("{losses:?}: a chart: {:?}", s.files()));
        let svg = s.read(&chart);
        assert!(
            svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
            "{losses:?}"
        );
        assert!(
            !svg.contains("NaN\"") && !svg.contains("inf\""),
            "{losses:?}: no coordinate is non-finite"
        );
        let report = s.read(d["report"].as_str().unwrap());
        assert!(
            report.contains(chart.rsplit('/').next().unwrap()),
            "the report shows the chart"
        );
        if losses.iter().any(|v| v.abs() > 1e150) {
            // The blow-up is a marker at its epoch, labelled with its value.
            assert!(
                svg.lines()
                    .any(|l| l.ends_with("e307") || l.ends_with("e308")),
                "{losses:?}: no marker in\n{svg}"
            );
        }
    }
}
