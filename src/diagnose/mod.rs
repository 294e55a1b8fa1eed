//! Diagnose: deterministic detectors over the metrics and the config. Each emits
//! `Finding`s carrying the numbers they rest on; no LLM is involved, the numbers are
//! facts. One file per detector family; thresholds are named constants beside the
//! detector that uses them, with where they come from (../shared/DETECTORS.md).

mod chance;
mod config_checks;
mod divergence;
pub mod effects;
mod oscillation;
mod overfitting;
mod robust;
mod signals;
mod trend;

use crate::lang::Lang;
use crate::lang::say;
use crate::metrics::{Canonical, Point, Series};
use crate::run::Run;
use crate::types::{Diagnosis, Finding, FindingId, Skipped};

/// Epochs a trend detector waits for before judging: UMLAUT ignores epochs < 3, and
/// fewer points cannot tell a trend from the first epoch's noise.
pub const MIN_EPOCHS: usize = 3;

/// Runs every detector on the run.
pub fn diagnose(run: &Run, lang: Lang) -> Diagnosis {
    let mut out = Diagnosis::default();
    divergence::check(run, lang, &mut out);
    chance::check(run, lang, &mut out);
    trend::check(run, lang, &mut out);
    overfitting::check(run, lang, &mut out);
    oscillation::check(run, lang, &mut out);
    signals::check(run, lang, &mut out);
    config_checks::check(run, lang, &mut out);
    set_aside_explained_by_divergence(&mut out, lang);
    out.effects = effects::effects(run, lang);
    out.findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    out
}

/// Trend findings a divergence explains: a blown-up loss is flat, slow or swinging
/// because it diverged, and acting on them (a higher learning rate for a slow run) would
/// make things worse. They move to `skipped`, saying why.
/// Findings read from how training went, as opposed to the config checks, which compare a
/// config with itself.
pub const TRAINING_FINDINGS: [FindingId; 6] = [
    FindingId::Divergence,
    FindingId::ChanceLevel,
    FindingId::Plateau,
    FindingId::SlowConvergence,
    FindingId::Overfitting,
    FindingId::Oscillation,
];

/// Findings that say the run is stuck where it started (at chance, not learning, one
/// class predicted): the rules may cut an extreme rate for them, and validation lets
/// them restart or restore.
pub const STUCK_FINDINGS: [FindingId; 3] = [
    FindingId::ChanceLevel,
    FindingId::NotLearning,
    FindingId::AccuracyPinned,
];

const EXPLAINED_BY_DIVERGENCE: [FindingId; 3] = [
    FindingId::Plateau,
    FindingId::SlowConvergence,
    FindingId::Oscillation,
];

fn set_aside_explained_by_divergence(out: &mut Diagnosis, lang: Lang) {
    if !out.has(FindingId::Divergence) {
        return;
    }
    let (explained, kept): (Vec<Finding>, Vec<Finding>) = std::mem::take(&mut out.findings)
        .into_iter()
        .partition(|f| EXPLAINED_BY_DIVERGENCE.contains(&f.id));
    out.findings = kept;
    for f in explained {
        out.skipped.push(Skipped {
            check: f.id.as_str(),
            reason: say!(
                lang,
                "set aside: the run diverged, which explains it ({})",
                "已搁置：训练已发散，这一现象由发散导致（{}）",
                f.summary
            ),
        });
    }
}

/// Where the latest run starts in points from a file where several runs were appended
/// (the epoch counter starts again): 0 when there is one run. Every detector judges
/// within one run; across the seam it would compare two different runs.
pub(crate) fn latest_run_start(points: &[Point]) -> usize {
    points
        .windows(2)
        .rposition(|w| w[1].epoch <= w[0].epoch)
        .map_or(0, |i| i + 1)
}

/// The points of the latest run (see `latest_run_start`).
pub(crate) fn latest_run(points: &[Point]) -> &[Point] {
    &points[latest_run_start(points)..]
}

/// The series a detector reads, by canonical name.
pub(crate) fn series(run: &Run, canonical: Canonical) -> Option<&Series> {
    run.metrics.get(canonical)
}

/// How a sentence names a series: "training loss" for `loss`, the file's own name for a
/// metric retune has no word for.
pub(crate) fn series_label(series: &Series, lang: Lang) -> String {
    let (en, zh) = match series.name.as_str() {
        "loss" => ("training loss", "训练损失"),
        "val_loss" => ("validation loss", "验证损失"),
        "accuracy" => ("training accuracy", "训练准确率"),
        "val_accuracy" => ("validation accuracy", "验证准确率"),
        "grad_norm" => ("gradient norm", "梯度范数"),
        "lr" => ("learning rate", "学习率"),
        _ => return format!("`{}`", series.original),
    };
    match lang {
        Lang::En => en.to_string(),
        Lang::Zh => zh.to_string(),
    }
}

/// Builds runs for the detectors' unit tests in a line or two each.
#[cfg(test)]
pub(crate) mod fixture {
    use super::Diagnosis;
    use crate::lang::Lang;
    use crate::metrics::MetricsBuilder;
    use crate::run::{Run, testing};

    pub type Check = fn(&Run, Lang, &mut Diagnosis);

    #[derive(Default)]
    pub struct Fixture {
        metrics: MetricsBuilder,
        config: Option<String>,
        classes: Option<u32>,
        steps_per_epoch: Option<u64>,
    }

    impl Fixture {
        pub fn new() -> Self {
            Self::default()
        }

        /// `values` at epochs 1, 2, 3 …
        pub fn series(mut self, name: &str, values: &[f64]) -> Self {
            testing::push_series(&mut self.metrics, name, values);
            self
        }

        /// One value at a given epoch (a snapshot, or a series that starts late).
        pub fn at(mut self, name: &str, epoch: u32, value: f64) -> Self {
            self.metrics.push(name, epoch, value);
            self
        }

        pub fn config(mut self, json: &str) -> Self {
            self.config = Some(json.to_string());
            self
        }

        pub fn classes(mut self, classes: u32) -> Self {
            self.classes = Some(classes);
            self
        }

        /// Steps per epoch as a Keras log reports them (`3038/3038`).
        pub fn steps_per_epoch(mut self, steps: u64) -> Self {
            self.steps_per_epoch = Some(steps);
            self
        }

        pub fn run(mut self) -> Run {
            self.metrics.steps_per_epoch = self.steps_per_epoch;
            if !self.metrics.has_values() {
                self.metrics.push("loss", 1, 1.0);
            }
            testing::assemble(self.config.as_deref(), self.metrics, self.classes)
        }

        /// Runs one detector, in English and in Chinese, and returns the English result.
        /// Both languages must give the same findings with non-empty summaries.
        pub fn check(self, check: Check) -> Diagnosis {
            let run = self.run();
            let mut en = Diagnosis::default();
            check(&run, Lang::En, &mut en);
            let mut zh = Diagnosis::default();
            check(&run, Lang::Zh, &mut zh);
            let ids = |d: &Diagnosis| d.findings.iter().map(|f| f.id).collect::<Vec<_>>();
            assert_eq!(ids(&en), ids(&zh));
            for (e, z) in en.findings.iter().zip(&zh.findings) {
                assert!(!e.summary.is_empty() && !z.summary.is_empty());
                assert_ne!(e.summary, z.summary, "the Chinese summary is a translation");
                assert_eq!(e.evidence, z.evidence);
            }
            en
        }

        /// All detectors, as `diagnose` runs them.
        pub fn diagnose(self) -> Diagnosis {
            super::diagnose(&self.run(), Lang::En)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_divergence_sets_the_trend_findings_it_explains_aside() {
        // A softmax saturated by a blown-up first epoch: flat, so "slow" too, but acting
        // on that (raise the learning rate) would be wrong.
        let d = fixture::Fixture::new()
            .series("loss", &[13.62, 13.80, 13.79, 13.78, 13.77, 13.76])
            .series("accuracy", &[0.14, 0.144, 0.144, 0.144, 0.144, 0.144])
            .classes(10)
            .diagnose();
        let ids: Vec<&str> = d.findings.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(ids, ["divergence"]);
        let aside = d.skipped.iter().find(|s| s.check == "slow_convergence");
        assert!(aside.unwrap().reason.contains("diverged"));
    }
}

/// The detectors on real runs: the Keras scenarios of configs/examples/keras (see its
/// README for how each was made and its numbers) and the project's seeds. Each scenario
/// is read in all three forms Keras wrote it (CSVLogger, history JSON, console log), and
/// all three must give the same findings.
#[cfg(test)]
mod real_runs {
    use std::path::PathBuf;

    use serde_json::Value;

    use super::*;
    use crate::run::{LoadOptions, load_run};

    fn example(dir: &str, metrics: &str) -> Diagnosis {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("configs/examples");
        let run = load_run(&LoadOptions {
            config: Some(root.join(dir).join("config.json")),
            metrics: root.join(dir).join(metrics),
            ..LoadOptions::default()
        })
        .unwrap_or_else(|e| panic!("{dir}/{metrics}: {e}"));
        diagnose(&run, Lang::En)
    }

    /// Evidence read from different files of one run agrees: epochs, reasons and names
    /// exactly; numbers up to the console log's 4 decimals.
    fn agree(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
                let (x, y) = (
                    x.as_f64().unwrap_or(f64::NAN),
                    y.as_f64().unwrap_or(f64::NAN),
                );
                (x - y).abs() <= 1e-3 + 1e-2 * x.abs().max(y.abs())
            }
            (Value::Array(x), Value::Array(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(x, y)| agree(x, y))
            }
            (Value::Object(x), Value::Object(y)) => {
                x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| agree(v, w)))
            }
            _ => a == b,
        }
    }

    /// A finding's evidence without what may honestly differ between files: where a fact
    /// came from, and the plateau's best epoch, because the console's 4 decimals are as
    /// coarse as the 0.01% that counts as an improvement (0.9399 → 0.9398).
    fn comparable(f: &Finding) -> Value {
        let mut e = f.evidence.clone();
        e.retain(|k, _| !k.ends_with("_source"));
        if f.id == FindingId::Plateau {
            e.remove("best_epoch");
            e.remove("epochs_since_best");
            // Counted from that best epoch: ten epochs since it or nine.
            e.remove("training_still_falling");
        }
        // Equal values at 4 decimals are ties for Mann–Kendall, and different at full
        // precision: the statistic moves while every judgement on it agrees.
        e.remove("mann_kendall_z");
        Value::Object(e)
    }

    /// The scenario's findings, after checking the three files agree on them.
    fn keras(scenario: &str) -> Diagnosis {
        let dir = format!("keras/{scenario}");
        let csv = example(&dir, "history.csv");
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("configs/examples");
        let forms = [
            "history.json",
            "training.log",
            "training_v2.log",
            "training_redirected.log",
        ];
        // The console log is written for every scenario; the other two only for some.
        for other in forms
            .into_iter()
            .filter(|f| *f == "training.log" || root.join(&dir).join(f).exists())
        {
            let d = example(&dir, other);
            assert_eq!(
                ids(&d),
                ids(&csv),
                "{scenario}: {other} disagrees with history.csv"
            );
            for (a, b) in d.findings.iter().zip(&csv.findings) {
                let (a, b) = (comparable(a), comparable(b));
                assert!(agree(&a, &b), "{scenario}: {other}: {a} vs {b}");
            }
        }
        csv
    }

    fn ids(d: &Diagnosis) -> Vec<&'static str> {
        d.findings.iter().map(|f| f.id.as_str()).collect()
    }

    const TRENDS: [FindingId; 6] = TRAINING_FINDINGS;

    #[test]
    fn healthy_has_no_finding_at_all() {
        let d = keras("healthy");
        assert!(d.findings.is_empty(), "{:#?}", d.findings);
        assert_eq!(d.classes.unwrap().value, 10);
    }

    #[test]
    fn diverging_is_caught_at_its_spike_with_the_climb_before_it_not_sane() {
        let d = keras("diverging");
        assert_eq!(ids(&d), ["divergence", "learning_rate_extreme"]);
        let e = &d.get(FindingId::Divergence).unwrap().evidence;
        assert_eq!(e["series"], "loss");
        assert_eq!(e["reason"], "spike");
        assert_eq!(e["epoch"], 10);
        assert_eq!(e["climb_start_epoch"], 3);
        assert_eq!(e["last_sane_epoch"], 2);
        assert_eq!(e["best_epoch"], 2);
        assert_eq!(e["first_nonfinite_epoch"], 11);
    }

    #[test]
    fn diverging_from_start_leaves_no_sane_epoch() {
        let d = keras("diverging_from_start");
        let e = &d.get(FindingId::Divergence).unwrap().evidence;
        assert_eq!(e["reason"], "backstop");
        assert_eq!(e["epoch"], 1);
        assert_eq!(e["last_sane_epoch"], Value::Null);
        assert!(!TRENDS[2..].iter().any(|id| d.has(*id)));
    }

    #[test]
    fn a_saturated_softmax_is_a_divergence_from_the_first_epoch() {
        let d = keras("saturated_softmax");
        assert_eq!(
            ids(&d),
            ["divergence", "not_learning", "learning_rate_extreme"]
        );
        let e = &d.get(FindingId::Divergence).unwrap().evidence;
        assert_eq!(e["reason"], "above_chance");
        assert_eq!(e["epoch"], 1);
        assert_eq!(e["last_sane_epoch"], Value::Null);
    }

    #[test]
    fn lr_too_low_sits_at_chance_and_barely_moves() {
        let d = keras("lr_too_low");
        assert_eq!(
            ids(&d),
            ["chance_level", "slow_convergence", "learning_rate_extreme"]
        );
        assert_eq!(
            d.get(FindingId::LearningRateExtreme).unwrap().evidence["direction"],
            "low"
        );
    }

    #[test]
    fn overfitting_is_overfitting_and_not_a_plateau() {
        let d = keras("overfitting");
        assert!(d.has(FindingId::Overfitting));
        assert!(
            !d.has(FindingId::Plateau)
                && !d.has(FindingId::Oscillation)
                && !d.has(FindingId::Divergence)
        );
        let e = &d.get(FindingId::Overfitting).unwrap().evidence;
        assert_eq!(e["val_best_epoch"], 10);
        assert_eq!(e["rising_epochs"], 12);
    }

    #[test]
    fn chance_level_reads_the_classes_from_the_config() {
        let d = keras("chance_level");
        // At ln 2 (0.03%): not converging at all, so not slow; and it never left chance.
        assert_eq!(ids(&d), ["chance_level", "not_learning"]);
        let e = &d.get(FindingId::ChanceLevel).unwrap().evidence;
        assert_eq!(e["classes_source"], "config `num_classes`");
        assert_eq!(e["epochs_at_chance"], 5);
    }

    #[test]
    fn a_console_log_cut_off_in_epoch_3_is_judged_on_its_two_epochs() {
        // As seed 000: two complete epochs, the third still running when copied.
        let d = example("keras/chance_level", "training_partial.log");
        assert_eq!(ids(&d), ["chance_level"]);
        let e = &d.get(FindingId::ChanceLevel).unwrap().evidence;
        assert_eq!(e["epochs_at_chance"], 2);
        assert_eq!(e["last_epoch"], 2);
    }

    #[test]
    fn plateau_is_a_plateau_only() {
        let d = keras("plateau");
        assert_eq!(ids(&d), ["plateau"]);
        let e = &d.get(FindingId::Plateau).unwrap().evidence;
        assert_eq!(e["series"], "val_loss");
        assert_eq!(e["best_epoch"], 8);
    }

    #[test]
    fn oscillating_oscillates_without_diverging() {
        let d = keras("oscillating");
        assert_eq!(ids(&d), ["oscillation", "learning_rate_extreme"]);
    }

    #[test]
    fn seed_000_console_log_is_at_chance() {
        let d = example("seed000", "training.log");
        assert_eq!(ids(&d), ["chance_level"]);
        let e = &d.get(FindingId::ChanceLevel).unwrap().evidence;
        assert_eq!(e["classes"], 2);
        assert_eq!(e["epochs_at_chance"], 2);
        assert_eq!(e["loss"], 0.6933);
    }

    #[test]
    fn seed_003_snapshot_is_at_chance_and_its_config_is_read_honestly() {
        let d = example("seed003", "metrics.json");
        assert_eq!(ids(&d), ["chance_level", "conflicting_settings"]);
        let e = &d.get(FindingId::ChanceLevel).unwrap().evidence;
        assert_eq!(e["classes"], 5);
        assert_eq!(e["epochs_at_chance"], 1);
        let skipped: Vec<&str> = d.skipped.iter().map(|s| s.check).collect();
        assert!(skipped.contains(&"ema_horizon_too_long"));
        assert!(skipped.contains(&"effective_batch_too_large"));
    }
}
