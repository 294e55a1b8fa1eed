//! In-process cost of the two things that must not grow with a run's length: load +
//! diagnose of each line-oriented metrics format (Keras CSVLogger CSV, JSON Lines, Keras
//! console log, HF trainer_state.json) at 1k and 100k rows, and building the LLM prompt
//! against a history of 0 to 1000 adjustments. Process-level numbers, peak memory, 1M and
//! 10M rows and the Python baselines come from benches/scale.py; the files here have the
//! same shapes as the ones it writes.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use indexmap::IndexMap;
use retune::advisor::llm::prompt::Templates;
use retune::diagnose::diagnose;
use retune::history::{HistoryChange, HistoryEntry};
use retune::lang::Lang;
use retune::run::{LoadOptions, load_run};
use serde_json::json;

/// Steps per epoch, and HF's logging_steps (4 train rows and 1 eval row an epoch).
const STEPS_PER_EPOCH: u64 = 100;
const HF_LOGGING_STEPS: u64 = 25;

/// (loss, accuracy, val_loss, val_accuracy) of epoch `i` (0-based) as float32 values
/// widened to f64, the way frameworks log them: a run that learns, then plateaus with a
/// deterministic wobble.
fn epoch_values(i: u64) -> [f64; 4] {
    let loss = (2.3 * 0.9995f64.powf(i as f64)).max(0.05) + ((i * 7919) % 13) as f64 * 1e-4;
    let val = loss * 1.05 + ((i * 104_729) % 17) as f64 * 1e-4;
    let accuracy = |l: f64| (1.0 - l / 2.6).clamp(0.1, 0.99);
    [loss, accuracy(loss), val, accuracy(val * 0.97)].map(|v| f64::from(v as f32))
}

fn create(path: &Path) -> BufWriter<std::fs::File> {
    BufWriter::new(std::fs::File::create(path).expect("create a bench file"))
}

/// keras.callbacks.CSVLogger: sorted keys, CRLF, 0-based epochs.
fn write_keras_csv(path: &Path, rows: u64) {
    let mut f = create(path);
    let lr = f64::from(0.001f32);
    write!(
        f,
        "epoch,accuracy,learning_rate,loss,val_accuracy,val_loss\r\n"
    )
    .expect("write");
    for i in 0..rows {
        let [loss, acc, val, val_acc] = epoch_values(i);
        write!(f, "{i},{acc},{lr},{loss},{val_acc},{val}\r\n").expect("write");
    }
}

/// A custom loop's `json.dumps(row)`: a train and a val line per epoch.
fn write_jsonl(path: &Path, rows: u64) {
    let mut f = create(path);
    for line in 0..rows {
        let epoch = line / 2;
        let [loss, acc, val, val_acc] = epoch_values(epoch);
        let stamp = 1_751_550_000.0 + epoch as f64 * 48.3;
        let row = if line % 2 == 0 {
            json!({"epoch": epoch + 1, "phase": "train", "loss": loss, "accuracy": acc, "lr": 0.001, "timestamp": stamp})
        } else {
            json!({"epoch": epoch + 1, "phase": "val", "loss": val, "accuracy": val_acc, "timestamp": stamp + 6.2})
        };
        writeln!(f, "{row}").expect("write");
    }
}

/// Keras `fit(verbose=2)`: a header and one line per epoch (keras/src/utils/progbar.py).
fn write_keras_log(path: &Path, rows: u64) {
    let value = |v: f64| {
        if v > 1e-3 {
            format!("{v:.4}")
        } else {
            format!("{v:.4e}")
        }
    };
    let mut f = create(path);
    for i in 0..rows {
        let [loss, acc, val, val_acc] = epoch_values(i);
        writeln!(
            f,
            "Epoch {}/{rows}\n{STEPS_PER_EPOCH}/{STEPS_PER_EPOCH} - 1s - 12ms/step - accuracy: {} - loss: {} - val_accuracy: {} - val_loss: {}",
            i + 1,
            value(acc),
            value(loss),
            value(val_acc),
            value(val)
        )
        .expect("write");
    }
}

/// transformers' trainer_state.json (indent 2, sorted keys): `rows` log_history entries.
fn write_hf_state(path: &Path, rows: u64) {
    let per_epoch = STEPS_PER_EPOCH / HF_LOGGING_STEPS + 1;
    let epochs = rows.div_ceil(per_epoch).max(1);
    let max_steps = epochs * STEPS_PER_EPOCH;
    let entries = (0..rows).map(|n| {
        let (epoch, k) = (n / per_epoch, n % per_epoch);
        let [loss, _, val, val_acc] = epoch_values(epoch);
        if k + 1 < per_epoch {
            let step = epoch * STEPS_PER_EPOCH + (k + 1) * HF_LOGGING_STEPS;
            json!({"epoch": step as f64 / STEPS_PER_EPOCH as f64, "grad_norm": f64::from(3.5f32 + k as f32 * 0.25),
                   "learning_rate": 2e-5 * (1.0 - step as f64 / max_steps as f64), "loss": loss, "step": step})
        } else {
            json!({"epoch": (epoch + 1) as f64, "eval_accuracy": val_acc, "eval_loss": val, "eval_runtime": 3.1197,
                   "eval_samples_per_second": 76.923, "eval_steps_per_second": 2.462, "step": (epoch + 1) * STEPS_PER_EPOCH})
        }
    });
    let state = json!({
        "epoch": epochs as f64, "global_step": max_steps, "log_history": entries.collect::<Vec<_>>(),
        "logging_steps": HF_LOGGING_STEPS, "max_steps": max_steps, "num_train_epochs": epochs,
        "train_batch_size": 8,
    });
    serde_json::to_writer_pretty(create(path), &state).expect("write");
}

/// Writes a metrics file of so many rows.
type Generator = fn(&Path, u64);

fn load_and_diagnose(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let formats: [(&str, &str, Generator); 4] = [
        ("keras csv", "history.csv", write_keras_csv),
        ("json lines", "metrics.jsonl", write_jsonl),
        ("keras log", "training.log", write_keras_log),
        ("hf trainer_state", "trainer_state.json", write_hf_state),
    ];
    for (name, file, write) in formats {
        let mut group = c.benchmark_group(format!("load+diagnose {name}"));
        group.sample_size(10);
        for rows in [1_000u64, 100_000] {
            let sub = dir.path().join(format!("{rows}"));
            std::fs::create_dir_all(&sub).expect("mkdir");
            let path = sub.join(file);
            write(&path, rows);
            group.throughput(Throughput::Elements(rows));
            group.bench_with_input(BenchmarkId::from_parameter(rows), &path, |b, path| {
                let options = LoadOptions {
                    metrics: path.clone(),
                    ..LoadOptions::default()
                };
                b.iter(|| {
                    let run = load_run(&options).expect("loads");
                    assert!(run.metrics.rows > 0);
                    diagnose(&run, Lang::En)
                })
            });
        }
        group.finish();
    }
}

/// `n` history lines as `suggest --in-place` writes them: every fifth call changed the
/// learning rate (and so keeps the config text it replaced), the others changed nothing.
fn write_history(path: &Path, config: &Path, n: u32) {
    let config_text = std::fs::read_to_string(config).expect("read config");
    let mut f = create(path);
    for i in 0..n {
        let changed = i % 5 == 4;
        let entry = HistoryEntry {
            time: format!("2026-11-23T00:{:02}:{:02}Z", (i / 60) % 60, i % 60),
            adjustment_id: format!("adj-20261123T00{:04}Z-{i:06x}", i % 10_000),
            epoch: Some(i + 1),
            provider: "rules".into(),
            config: config.display().to_string(),
            config_out: Some(config.display().to_string()),
            changes: if changed {
                vec![HistoryChange {
                    parameter: "learning_rate".into(),
                    canonical: "learning_rate".into(),
                    old: json!(0.001),
                    new: json!(0.0005),
                }]
            } else {
                Vec::new()
            },
            actions: Vec::new(),
            findings: if changed {
                vec!["plateau".into()]
            } else {
                Vec::new()
            },
            metrics: IndexMap::from([
                ("loss".to_string(), json!(0.5 + f64::from(i % 7) * 0.01)),
                ("val_loss".to_string(), json!(0.6 + f64::from(i % 5) * 0.01)),
            ]),
            config_before: changed.then(|| config_text.clone()),
            reverts: Vec::new(),
            state: None,
            applied: None,
            not_applied: Vec::new(),
            written: true,
        };
        writeln!(
            f,
            "{}",
            serde_json::to_string(&entry).expect("serialise an entry")
        )
        .expect("write");
    }
}

fn prompt_against_history(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let config: PathBuf = dir.path().join("config.json");
    std::fs::write(
        &config,
        r#"{"model": "mlp", "optimizer": "adam", "learning_rate": 0.001, "batch_size": 32, "epochs": 2000, "dropout": 0.1, "weight_decay": 0.0001, "num_classes": 10, "seed": 7}"#,
    )
    .expect("write config");
    let metrics = dir.path().join("history.csv");
    write_keras_csv(&metrics, 1_000);
    let templates = Templates::load(None).expect("built-in templates");
    let mut group = c.benchmark_group("load+diagnose+prompt against history length");
    group.sample_size(20);
    for n in [0u32, 10, 100, 1000] {
        let history = dir.path().join(format!("history_{n}.jsonl"));
        write_history(&history, &config, n);
        let options = LoadOptions {
            config: Some(config.clone()),
            metrics: metrics.clone(),
            history: Some(history),
            ..LoadOptions::default()
        };
        group.bench_with_input(BenchmarkId::from_parameter(n), &options, |b, options| {
            b.iter(|| {
                let run = load_run(options).expect("loads");
                let diagnosis = diagnose(&run, Lang::En);
                templates.messages(&run, &diagnosis).expect("renders")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, load_and_diagnose, prompt_against_history);
criterion_main!(benches);
