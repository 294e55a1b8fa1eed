//! What a trainer leaves behind (issue 14, section 5), through the binary: report names
//! that sort in the order they were written, a report's "Earlier adjustments" that lists
//! adjustments, and the slips a new user met on the way (the history's "(now)", literal
//! backticks in reports, help texts that promise what a command cannot do, a README whose
//! first command was said to do what it does not).

mod common;

use common::{Scratch, assert_code, json, stdout};

/// The report (Markdown) files of `dir`, by name, in the order `ls` shows them.
fn reports_by_name(s: &Scratch, dir: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(s.path(dir))
        .expect("report dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".md"))
        .collect();
    names.sort();
    names
}

#[test]
fn reports_made_within_one_second_sort_by_epoch() {
    // A fast trainer finishes several epochs a second; the fixed clock puts every call
    // in the same second. Epochs 1–12 of a real Keras run, one call each, as a callback
    // makes them (every call writes its report here).
    let s = Scratch::new();
    s.copy_example("keras/healthy/config.json", "config.json");
    let csv = std::fs::read_to_string(common::example("keras/healthy/history.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    for epochs in 1..=12 {
        s.write("metrics.csv", lines[..=epochs].join("\n") + "\n");
        let out = s.retune(&[
            "suggest",
            "-c",
            "config.json",
            "-m",
            "metrics.csv",
            "--provider",
            "rules",
            "--report-on",
            "always",
            "--format",
            "json",
        ]);
        assert_code(&out, 0);
        let id = json(&out)["adjustment_id"].as_str().unwrap().to_string();
        assert!(id.contains(&format!("-e{epochs:04}-")), "{id}");
    }
    let names = reports_by_name(&s, "reports");
    assert_eq!(names.len(), 12, "{names:?}");
    let epochs: Vec<u64> = names
        .iter()
        .map(|n| {
            let twin = s.read(&format!("reports/{}", n.replace(".md", ".json")));
            serde_json::from_str::<serde_json::Value>(&twin).unwrap()["epoch"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(epochs, (1..=12).collect::<Vec<u64>>(), "{names:?}");
    // The history lists them in that order too.
    let history = stdout(&s.retune(&["history", "reports/history.jsonl"]));
    let listed: Vec<&str> = history
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            words.next()?.parse::<u32>().ok()?;
            words.next()
        })
        .collect();
    assert_eq!(listed.len(), 12, "{history}");
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(listed, sorted, "{history}");
}

#[test]
fn an_id_written_before_the_epoch_was_in_ids_still_reverts() {
    // Histories written by earlier versions keep their ids (`adj-<second>-<hash>`):
    // `history` lists them and `revert --to` finds them.
    let s = Scratch::new();
    s.copy_example("keras/diverging/history.csv", "history.csv");
    s.copy_example("keras/diverging/config.json", "config.json");
    let original = s.read("config.json");
    let out = s.retune(&[
        "suggest",
        "-c",
        "config.json",
        "-m",
        "history.csv",
        "--in-place",
        "--format",
        "json",
        "--provider",
        "rules",
    ]);
    assert_code(&out, 0);
    let new_id = json(&out)["adjustment_id"].as_str().unwrap().to_string();
    let old_id = "adj-20260921T141320Z-84b08b";
    let history = s.read("reports/history.jsonl").replace(&new_id, old_id);
    s.write("reports/history.jsonl", history);
    let listed = stdout(&s.retune(&["history", "reports/history.jsonl"]));
    assert!(listed.contains(old_id), "{listed}");
    let out = s.retune(&[
        "revert",
        "--history",
        "reports/history.jsonl",
        "--to",
        old_id,
        "--format",
        "json",
    ]);
    assert_code(&out, 0);
    assert_eq!(json(&out)["reverted"], serde_json::json!([old_id]));
    assert_eq!(s.read("config.json"), original);
}

/// The "Earlier adjustments" section of a report.
fn earlier_section(report: &str) -> &str {
    let start = report
        .find("## Earlier adjustments of this run")
        .expect("section");
    let rest = &report[start..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3);
    &rest[..end]
}

#[test]
fn earlier_adjustments_lists_adjustments_not_every_quiet_epoch() {
    // A trainer calling after every epoch: a blow-up at epoch 3 is cut and restored, then
    // five healthy epochs change nothing. The last report lists the one adjustment and
    // counts the quiet calls in one line.
    let s = Scratch::new();
    s.write(
        "config.json",
        r#"{"optimizer": "adam", "learning_rate": 0.3, "batch_size": 32, "epochs": 30, "num_classes": 10}"#,
    );
    let mut csv = String::from(
        "epoch,accuracy,loss,val_accuracy,val_loss\r\n0,0.2,2.0,0.2,2.1\r\n1,0.3,1.5,0.3,1.6\r\n2,0.4,1.2,0.4,1.3\r\n3,0.1,nan,0.1,nan\r\n",
    );
    let rows = [
        "4,0.42,1.15,0.41,1.25",
        "5,0.46,1.05,0.45,1.15",
        "6,0.5,0.95,0.49,1.05",
        "7,0.54,0.86,0.52,0.97",
        "8,0.58,0.78,0.55,0.9",
        "9,0.61,0.71,0.58,0.84",
    ];
    let mut decisions = Vec::new();
    for row in [None].into_iter().chain(rows.iter().map(Some)) {
        if let Some(row) = row {
            csv.push_str(row);
            csv.push_str("\r\n");
        }
        s.write("history.csv", &csv);
        let out = s.retune(&[
            "suggest",
            "-c",
            "config.json",
            "-m",
            "history.csv",
            "--in-place",
            "--format",
            "json",
            "--provider",
            "rules",
            "--report-on",
            "always",
        ]);
        assert_code(&out, 0);
        decisions.push(json(&out));
    }
    let quiet = |d: &serde_json::Value| {
        d["changes"].as_array().unwrap().is_empty() && d["actions"].as_array().unwrap().is_empty()
    };
    assert!(!quiet(&decisions[0]), "{:#}", decisions[0]);
    assert!(
        decisions[1..decisions.len() - 1].iter().all(quiet),
        "{decisions:#?}"
    );
    let last = decisions.last().unwrap();
    let report = s.read(last["report"].as_str().unwrap());
    let section = earlier_section(&report);
    let bullets: Vec<&str> = section.lines().filter(|l| l.starts_with("- ")).collect();
    assert_eq!(bullets.len(), 1, "{section}");
    assert!(
        bullets[0].contains("learning_rate 0.3 → 0.001"),
        "{section}"
    );
    assert!(!section.contains("no change"), "{section}");
    assert!(
        section.contains("Not listed: 5 calls that changed nothing (epochs 5–9)."),
        "{section}"
    );

    // In a run where nothing was ever changed, the section says so in one line.
    let (s, _) = common::suggest("keras/healthy", "history.csv", &["--provider", "rules"]);
    let out = s.retune(&[
        "suggest",
        "-c",
        "run/config.json",
        "-m",
        "run/history.csv",
        "--format",
        "json",
        "--provider",
        "rules",
    ]);
    assert_code(&out, 0);
    let report = s.read(json(&out)["report"].as_str().unwrap());
    assert!(
        earlier_section(&report).contains("None yet: 1 call that changed nothing (epoch 15)."),
        "{report}"
    );
}

#[test]
fn history_says_now_once() {
    let s = Scratch::new();
    s.copy_example("keras/diverging/history.csv", "history.csv");
    s.copy_example("keras/diverging/config.json", "config.json");
    let out = s.retune(&[
        "suggest",
        "-c",
        "config.json",
        "-m",
        "history.csv",
        "--in-place",
        "--provider",
        "rules",
    ]);
    assert_code(&out, 0);
    let text = stdout(&s.retune(&[
        "history",
        "reports/history.jsonl",
        "--metrics",
        "history.csv",
    ]));
    assert!(text.contains("(now, epoch 12)"), "{text}");
    assert!(!text.contains("(now))"), "{text}");
}

#[test]
fn reports_show_code_as_code_not_as_escaped_backticks() {
    // seed003's chance-level finding names the config key it counted classes from.
    let (s, d) = common::suggest("seed003", "metrics.json", &["--provider", "rules"]);
    let report = s.read(d["report"].as_str().unwrap());
    assert!(report.contains("config `class_weights`"), "{report}");
    assert!(!report.contains(r"\`"), "{report}");
}

#[test]
fn help_lists_only_the_exit_codes_a_command_can_return() {
    let s = Scratch::new();
    for command in [
        "history", "revert", "applied", "diagnose", "prompt", "schema",
    ] {
        let help = stdout(&s.retune(&[command, "--help"]))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        assert!(help.contains("Exit codes: 0 done"), "{command}: {help}");
        assert!(
            !help.contains("3 LLM") && !help.contains(" 3 "),
            "{command}: {help}"
        );
    }
    for command in ["suggest", "review"] {
        // Help is wrapped at the terminal's width: compare words.
        let help = stdout(&s.retune(&[command, "--help"]))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        assert!(help.contains("3 LLM unavailable"), "{command}: {help}");
    }
}

#[cfg(target_os = "linux")]
#[test]
fn history_exits_4_when_stdout_cannot_be_written() {
    // The 4 its help lists is real: a full disk behind stdout.
    let s = Scratch::new();
    s.copy_example("keras/diverging/history.csv", "history.csv");
    s.copy_example("keras/diverging/config.json", "config.json");
    assert_code(
        &s.retune(&["suggest", "-c", "config.json", "-m", "history.csv"]),
        0,
    );
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    let status = std::process::Command::new(assert_cmd::cargo::cargo_bin("retune"))
        .current_dir(s.dir.path())
        .args(["history", "reports/history.jsonl"])
        .stdout(full)
        .status()
        .expect("runs");
    assert_eq!(status.code(), Some(4));
}

/// The `retune.<name>` tags a text names.
fn tag_names(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("retune.") {
        let tail = &rest[i + "retune.".len()..];
        let name: String = tail
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '_')
            .collect();
        if !name.is_empty() && name != "toml" {
            names.insert(name);
        }
        rest = tail;
    }
    names
}

#[test]
fn review_help_names_the_tags_write_back_sets_as_the_readme_does() {
    let help = stdout(&Scratch::new().retune(&["review", "--help"]));
    let start = help.find("--write-back").expect("the flag");
    let from_help = tag_names(&help[start..start + help[start..].find("\n\n").unwrap()]);
    let readme = std::fs::read_to_string(common::repo().join("README.md")).unwrap();
    let start = readme
        .find("Nothing goes to the server without `--write-back`")
        .expect("the README's write-back paragraph");
    let from_readme = tag_names(&readme[start..start + readme[start..].find("\n\n").unwrap()]);
    let expected: std::collections::BTreeSet<String> = [
        "adjustment_id",
        "error",
        "findings",
        "proposed",
        "provider",
        "status",
    ]
    .map(String::from)
    .into();
    assert_eq!(from_help, expected, "{help}");
    assert_eq!(from_readme, expected);
}

#[test]
fn the_readmes_first_commands_do_what_it_says() {
    // The commands of the README's first code block, run as written (the binary in place
    // of `cargo run --release --`) on a copy of configs/examples.
    let readme = std::fs::read_to_string(common::repo().join("README.md")).unwrap();
    let block = readme
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a first sh block");
    let commands: Vec<Vec<&str>> = block
        .lines()
        .filter_map(|l| l.strip_prefix("cargo run --release -- "))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(commands.len(), 2, "{block}");
    let opening = &readme[..readme.find("retune tunes a deep-learning").unwrap()];
    assert!(opening.contains("compiles"), "{opening}");

    let s = Scratch::new();
    s.copy_example_dir("seed003", "configs/examples/seed003");
    s.copy_example_dir("keras/diverging", "configs/examples/keras/diverging");
    let run = |args: &[&str]| {
        let mut args = args.to_vec();
        args.extend(["--format", "json"]);
        let out = s.retune(&args);
        assert_code(&out, 0);
        json(&out)
    };
    // The first: a run at chance level at an ordinary rate. No change, no chart of one
    // epoch; the config copy is the config as it was.
    let first = run(&commands[0]);
    assert_eq!(first["changes"], serde_json::json!([]), "{first:#}");
    assert!(!s.files().iter().any(|f| f.ends_with(".svg")));
    assert_eq!(
        s.read("configs/examples/seed003/config.retuned.json"),
        s.read("configs/examples/seed003/config.json")
    );
    // The second changes something, and charts the run.
    let second = run(&commands[1]);
    assert_eq!(second["provider"], "rules");
    assert_eq!(
        common::ids(&second, "changes", "parameter"),
        ["optimizer.lr"]
    );
    assert_eq!(second["actions"], serde_json::json!(["restore_checkpoint"]));
    assert!(
        s.files().iter().any(|f| f.ends_with(".svg")),
        "{:?}",
        s.files()
    );
    assert_ne!(
        s.read("configs/examples/keras/diverging/config.retuned.json"),
        s.read("configs/examples/keras/diverging/config.json")
    );
}
