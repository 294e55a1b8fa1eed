//! Oscillation: the training accuracy or the validation loss swings up
//! and down by a clear amount, often, and makes no progress across the window (its robust
//! trend over the window improves it by less than a typical swing; a trend the wrong way
//! counts as no progress). Swings are counted on a zigzag of the curve (a turn counts once the curve
//! has moved back by the amplitude threshold), as AUTOTRAINER counts pairs of local
//! maxima and minima. The progress condition is what separates an oscillating run from
//! a noisy but descending one. Validation accuracy is left out: on a validation set of a
//! few hundred examples a handful of flipped predictions moves it by 0.03 on a healthy run.

use super::robust::{median, theil_sen_slope};
use super::trend::lr_decayed;
use super::{series, series_label};

use crate::lang::Lang;
use crate::lang::say;
use crate::metrics::{Canonical, Point, Series};
use crate::num::num;
use crate::run::Run;
use crate::types::evidence;
use crate::types::{Diagnosis, Finding, FindingId, Severity};

/// Smallest accuracy swing that counts (AUTOTRAINER's ζ = 0.03).
pub const OSC_ACCURACY_AMPLITUDE: f64 = 0.03;
/// Smallest loss swing that counts, relative to the loss (the same 3%, DETECTORS.md).
pub const OSC_LOSS_REL_AMPLITUDE: f64 = 0.03;
/// Swings per epoch that make an oscillation: AUTOTRAINER flags max/min pairs ≥ 0.2 × the
/// epochs (its η). A swing here is such a pair: a turn up and a turn down.
pub const OSC_MIN_SWINGS_PER_EPOCH: f64 = 0.2;
/// Fewest epochs judged: two full swings need at least six points.
pub const OSC_MIN_EPOCHS: usize = 6;
/// A loss's swing smaller than this share of the way it came down (its first value to its
/// best) is noise around a converged level, not steps too large: a Keras run whose
/// training loss fell 1.645 → 0.068 and then wiggled by 0.0035 (5% of 0.07, 0.2% of the
/// descent) with the rate cut 1000× (tests/real/keras_csv_blood_group_tiny_val_noisy_healthy).
/// The oscillating examples swing by a fifth or more of their descent (derived).
pub const OSC_MIN_DESCENT_SHARE: f64 = 0.05;
/// …unless the swing is this share of the validation loss's own level (the window's median)
/// while the learning rate is still at full size: a validation loss that came down 25× and
/// then swings
/// between 746 and 3350 around 1500 for 360 epochs (a Lightning MSE regression at a
/// constant lr 4.8e-3) swings by half of itself, which no converged level does; the
/// converged wiggles above are 5% of their level. A rate cut `LR_DECAYED_FACTOR`× or more
/// takes the step size out of the explanation: the validation loss of 48 images on a
/// converged model swings by half of itself at lr 1e-6 (tests/real/
/// keras_csv_blood_group_tiny_val_noisy_healthy), and that is the sample, not the
/// updates (derived). Only the validation loss: it is measured on the same examples at
/// the end of each epoch, so its swings are the weights'; a training loss's epoch mean is
/// taken while the weights move, over batches met in a new order, and a converged one
/// swings by its own size from that alone (a Lightning LSTM regression of 3 steps an epoch
/// flat near 0.002 for its last 350 epochs swings 0.0006–0.0038: held-out set 3,
/// lightning_stock_lstm_train_only_healthy).
pub const OSC_MIN_LEVEL_SHARE: f64 = 0.2;
/// Epochs judged: the recent window, so a run that oscillates now is not excused by the
/// progress it made long ago (derived; the spike window is also 10).
pub const OSC_WINDOW: usize = 10;

/// What the zigzag of a window found.
struct Zigzag {
    /// Interior turning points (local extremes confirmed by a move back of at least the
    /// threshold), in epoch order.
    turns: Vec<Point>,
    /// Median size of the legs between the window's start, the turns and its last
    /// extreme.
    amplitude: f64,
}

/// The series judged, in order; the first that oscillates is reported. AUTOTRAINER reads
/// the training accuracy; the validation loss is added because a real Keras MLP with
/// Adam at lr 0.05 (an earlier version of configs/examples/keras/oscillating) zigzagged
/// there by ~8% a swing while its training curves climbed steadily. The training loss is
/// not judged: its epoch mean is taken while the weights move, over batches met in a new
/// order, and on runs of a few steps an epoch it zigzags by a large share of its level and
/// of its descent on healthy runs (three real train-only Lightning runs: an LSTM regression
/// of 3 steps an epoch, 0.0006–0.0038 around 0.002; a 200-epoch run falling 0.77 → 0.09
/// that swings 0.076–0.137 in its last 10 epochs; a 20-epoch run swinging 0.035–0.045),
/// while no real run in tests/real oscillates on its training loss alone.
const JUDGED: [Canonical; 2] = [Canonical::Accuracy, Canonical::ValLoss];

pub fn check(run: &Run, lang: Lang, out: &mut Diagnosis) {
    // A run that never left its start (not learning, or at chance) has no descent to
    // swing around: its wiggles are noise about the starting level, said already.
    if out.has(FindingId::NotLearning) || out.has(FindingId::ChanceLevel) {
        return;
    }
    for canonical in JUDGED {
        // A validation split at chance while training learns swings with nothing learned
        // behind it: `val_at_chance` says what it is.
        if canonical == Canonical::ValLoss && out.has(FindingId::ValAtChance) {
            continue;
        }
        let Some(s) = series(run, canonical) else {
            continue;
        };
        let is_loss = canonical != Canonical::Accuracy;
        let level_judged = canonical == Canonical::ValLoss && lr_decayed(run) != Some(true);
        if let Some(finding) = judge(s, is_loss, level_judged, lang) {
            out.findings.push(finding);
            return;
        }
    }
}

/// `is_loss`: lower is better and swings are measured relative to the value.
/// `level_judged`: a swing by a share of the level counts (`OSC_MIN_LEVEL_SHARE`).
fn judge(series: &Series, is_loss: bool, level_judged: bool, lang: Lang) -> Option<Finding> {
    let relative = is_loss;
    let window = series.tail(OSC_WINDOW);
    if window.len() < OSC_MIN_EPOCHS || window.iter().any(|p| !p.value.is_finite()) {
        return None;
    }
    let threshold = |at: f64| {
        if relative {
            OSC_LOSS_REL_AMPLITUDE * at.abs()
        } else {
            OSC_ACCURACY_AMPLITUDE
        }
    };
    let zigzag = zigzag(&window, threshold);
    let swings = zigzag.turns.len() / 2;
    let n = window.len();
    let (first, last) = (window[0], window[n - 1]);
    let net_change = last.value - first.value;
    // Progress is the window's robust trend (Theil–Sen over its epochs), not its two
    // ends: one noisy last epoch must not undo the way a curve came down (held-out set 4,
    // keras_csv_multimodal_deepfake_multi_output_noisy: 0.291 → 0.19–0.22 → 0.285 at the
    // last epoch, a trend of −0.06 over the window against swings of 0.046).
    let trend = theil_sen_slope(&window).map_or(net_change, |slope| {
        slope * f64::from(last.epoch.saturating_sub(first.epoch))
    });
    let improvement = if is_loss { -trend } else { trend };
    let descent = match (series.first(), series.min()) {
        (Some(f), Some(m)) if is_loss && f.value.is_finite() => f.value - m.value,
        _ => 0.0,
    };
    let level = {
        let mut v: Vec<f64> = window.iter().map(|p| p.value).collect();
        median(&mut v).unwrap_or(f64::NAN)
    };
    let oscillating = swings >= 1
        && swings as f64 >= OSC_MIN_SWINGS_PER_EPOCH * n as f64
        && improvement < zigzag.amplitude
        && (descent <= 0.0
            || zigzag.amplitude >= OSC_MIN_DESCENT_SHARE * descent
            || (level_judged && zigzag.amplitude >= OSC_MIN_LEVEL_SHARE * level.abs()));
    if !oscillating {
        return None;
    }
    let what = series_label(series, lang);
    let (fe, le) = (first.epoch, last.epoch);
    let amp = num(zigzag.amplitude);
    let net = num(net_change);
    let (fv, lv) = (num(first.value), num(last.value));
    // Some progress smaller than one swing is not "no progress": say which it is.
    let progress = if improvement > 0.0 {
        say!(
            lang,
            "its net progress is smaller than one swing ({fv} → {lv}, net {net})",
            "净进展小于一次摆动（{fv} → {lv}，净变化 {net}）"
        )
    } else {
        say!(
            lang,
            "it made no net progress ({fv} → {lv}, net {net})",
            "没有净进展（{fv} → {lv}，净变化 {net}）"
        )
    };
    Some(Finding {
        id: FindingId::Oscillation,
        severity: Severity::Warning,
        summary: say!(
            lang,
            "Over epochs {fe}–{le} the {what} swung up and down {swings} times with a typical swing of {amp}, and {progress}: the updates are too large or too noisy to settle.",
            "第 {fe}–{le} 轮{what}上下摆动 {swings} 次，典型幅度 {amp}，且{progress}：更新步长过大或噪声过大，无法收敛。"
        ),
        evidence: evidence![
            "series" => series.name.as_str(),
            "window_epochs" => n,
            "first_epoch" => fe,
            "last_epoch" => le,
            "swings" => swings,
            "turns" => zigzag.turns.iter().map(|p| p.epoch).collect::<Vec<u32>>(),
            "amplitude" => zigzag.amplitude,
            "amplitude_threshold" => if relative { OSC_LOSS_REL_AMPLITUDE } else { OSC_ACCURACY_AMPLITUDE },
            "relative" => relative,
            "net_change" => net_change,
            "net_improvement" => improvement,
        ],
    })
}

/// Zigzag turning points: a local extreme counts once the curve has moved back from it
/// by at least `threshold(extreme)`, so small wiggles inside a leg are ignored.
fn zigzag(points: &[Point], threshold: impl Fn(f64) -> f64) -> Zigzag {
    let mut turns: Vec<Point> = Vec::new();
    let mut pivots: Vec<Point> = Vec::new();
    let mut rising: Option<bool> = None;
    let (mut low, mut high) = (points[0], points[0]);
    let mut extreme = points[0];
    for &p in &points[1..] {
        match rising {
            None => {
                if p.value < low.value {
                    low = p;
                }
                if p.value > high.value {
                    high = p;
                }
                if p.value - low.value >= threshold(low.value) && low.epoch < p.epoch {
                    pivots.push(low);
                    rising = Some(true);
                    extreme = p;
                } else if high.value - p.value >= threshold(high.value) && high.epoch < p.epoch {
                    pivots.push(high);
                    rising = Some(false);
                    extreme = p;
                }
            }
            Some(up) => {
                let further = if up {
                    p.value >= extreme.value
                } else {
                    p.value <= extreme.value
                };
                if further {
                    extreme = p;
                } else if (extreme.value - p.value).abs() >= threshold(extreme.value) {
                    turns.push(extreme);
                    pivots.push(extreme);
                    rising = Some(!up);
                    extreme = p;
                }
            }
        }
    }
    if rising.is_some() {
        pivots.push(extreme);
    }
    let mut legs: Vec<f64> = pivots
        .windows(2)
        .map(|w| (w[1].value - w[0].value).abs())
        .collect();
    legs.sort_by(f64::total_cmp);
    let amplitude = match legs.len() {
        0 => 0.0,
        n if n % 2 == 1 => legs[n / 2],
        n => (legs[n / 2 - 1] + legs[n / 2]) / 2.0,
    };
    Zigzag { turns, amplitude }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::fixture::Fixture;

    /// The detector on a run that logged only `acc`.
    fn on_accuracy(acc: &[f64]) -> Diagnosis {
        Fixture::new().series("accuracy", acc).check(check)
    }

    #[test]
    fn accuracy_bouncing_with_no_progress_oscillates() {
        let acc = [0.62, 0.71, 0.58, 0.7, 0.6, 0.73, 0.57, 0.69, 0.61, 0.66];
        let d = on_accuracy(&acc);
        let f = d.get(FindingId::Oscillation).expect("oscillation");
        let e = &f.evidence;
        assert_eq!(e["series"], "accuracy");
        assert_eq!(e["window_epochs"], 10);
        assert_eq!(e["swings"], 4);
        assert_eq!(e["net_change"], 0.04);
        assert!(e["amplitude"].as_f64().unwrap() > 0.1);
        assert!(f.summary.contains("4 times"), "{}", f.summary);
    }

    #[test]
    fn a_noisy_but_descending_loss_does_not_oscillate() {
        let loss = [1.0, 0.9, 0.95, 0.8, 0.85, 0.7, 0.75, 0.6, 0.65, 0.5];
        let d = Fixture::new().series("val_loss", &loss).check(check);
        assert!(d.findings.is_empty(), "{:?}", d.findings);
        let acc = [0.5, 0.58, 0.55, 0.63, 0.6, 0.68, 0.65, 0.73, 0.7, 0.78];
        let d = on_accuracy(&acc);
        assert!(d.findings.is_empty(), "{:?}", d.findings);
    }

    #[test]
    fn a_loss_swinging_by_a_fifth_around_a_level_oscillates() {
        let loss = [1.2, 0.9, 1.25, 0.95, 1.3, 0.9, 1.2, 1.0, 1.22];
        let d = Fixture::new().series("val_loss", &loss).check(check);
        let e = &d.get(FindingId::Oscillation).expect("oscillation").evidence;
        assert_eq!(e["relative"], true);
        assert_eq!(e["window_epochs"], 9);
    }

    #[test]
    fn a_validation_loss_zigzagging_upward_oscillates() {
        // A real Keras MLP with Adam at lr 0.05, epochs 6-15 (an earlier version of
        // configs/examples/keras/oscillating).
        let train = [
            1.263, 1.275, 1.235, 1.226, 1.202, 1.163, 1.134, 1.196, 1.092, 1.077,
        ];
        let val = [
            1.752, 1.983, 1.825, 1.918, 1.977, 1.878, 2.063, 2.075, 1.961, 2.146,
        ];
        let d = Fixture::new()
            .series("loss", &train)
            .series("val_loss", &val)
            .check(check);
        let e = &d.get(FindingId::Oscillation).expect("oscillation").evidence;
        assert_eq!(e["series"], "val_loss");
        assert_eq!(e["swings"], 3);
        assert_eq!(e["net_change"], 0.394);
        // A smoothly rising validation loss is overfitting's, not this.
        let rising = [1.82, 1.85, 1.87, 1.91, 1.92, 1.95, 2.01, 2.08, 2.12, 2.19];
        let d = Fixture::new()
            .series("loss", &train)
            .series("val_loss", &rising)
            .check(check);
        assert!(d.findings.is_empty());
    }

    #[test]
    fn wiggles_of_a_converged_loss_are_noise_not_oscillation() {
        // The shape of tests/real/keras_csv_blood_group_tiny_val_noisy_healthy's training
        // loss, as a validation loss: down 1.645 → 0.069, then wiggles by 0.0035 (5% of the
        // value, 0.2% of the descent).
        let mut loss = vec![1.645, 1.119, 1.014, 0.639, 0.415, 0.347, 0.315, 0.306];
        loss.extend([
            0.0694, 0.0707, 0.0696, 0.0727, 0.0731, 0.0673, 0.0713, 0.0702, 0.0684, 0.0692, 0.0707,
        ]);
        let d = Fixture::new().series("val_loss", &loss).check(check);
        assert!(d.findings.is_empty(), "{:?}", d.findings);
        // The same swings after a short descent are as large as the way it came: judged.
        let mut short = vec![0.08];
        short.extend(&loss[8..]);
        let d = Fixture::new().series("val_loss", &short).check(check);
        assert!(d.has(FindingId::Oscillation), "{short:?}");
    }

    #[test]
    fn one_noisy_last_epoch_does_not_undo_a_windows_progress() {
        // tests/real/keras_csv_multimodal_deepfake_multi_output_noisy (healthy): the ends of
        // its last 10 epochs are level (0.291, 0.285), its trend falls by more than a swing.
        let val = [
            0.458, 0.416, 0.297, 0.283, 0.305, 0.291, 0.271, 0.309, 0.262, 0.306, 0.297, 0.238,
            0.193, 0.216, 0.285,
        ];
        let d = Fixture::new().series("val_loss", &val).check(check);
        assert!(d.findings.is_empty(), "{:?}", d.findings);
    }

    #[test]
    fn a_training_loss_zigzag_is_not_judged() {
        // tests/real/lightning_train_only_200ep_noisy_falling_healthy: 0.769 at epoch 1, its
        // last 10 epochs; the same numbers as a validation loss do oscillate.
        let mut loss = vec![0.7693, 0.6179, 0.504, 0.4, 0.3, 0.2, 0.15];
        loss.extend([
            0.0976, 0.0792, 0.1257, 0.1367, 0.0761, 0.1052, 0.1355, 0.0885, 0.1176, 0.0902,
        ]);
        let d = Fixture::new().series("loss", &loss).check(check);
        assert!(d.findings.is_empty(), "{:?}", d.findings);
        let d = Fixture::new().series("val_loss", &loss).check(check);
        assert!(d.has(FindingId::Oscillation));
    }

    #[test]
    fn a_loss_that_came_far_and_swings_by_half_of_itself_oscillates() {
        // A Lightning MSE regression at a constant lr 4.8e-3 (held-out corpus): 30378 at
        // epoch 0, then swinging 746–3350 around ~1500 with no trend.
        let mut val = vec![30378.0, 22402.0, 12960.0, 5399.0, 3405.0, 2849.0, 2088.0];
        val.extend([
            3349.0, 829.0, 1002.0, 1213.0, 1667.0, 1418.0, 2254.0, 1988.0, 1749.0, 799.0, 1739.0,
        ]);
        let d = Fixture::new().series("val_loss", &val).check(check);
        let f = d
            .get(FindingId::Oscillation)
            .expect("swings of half its level");
        assert_eq!(f.evidence["series"], "val_loss");
        // The same swings after the rate was cut 1000×: the sample, not the step size.
        let lr: Vec<f64> = (0..val.len())
            .map(|i| if i < 5 { 1e-3 } else { 1e-6 })
            .collect();
        let d = Fixture::new()
            .series("val_loss", &val)
            .series("lr", &lr)
            .check(check);
        assert!(!d.has(FindingId::Oscillation), "{:?}", d.findings);
        // The same swings on a training loss: an epoch mean taken while the weights move.
        let d = Fixture::new().series("loss", &val).check(check);
        assert!(!d.has(FindingId::Oscillation), "{:?}", d.findings);
    }

    #[test]
    fn small_wiggles_and_one_bump_are_not_oscillation() {
        // A converged run: accuracy wiggles by less than 0.03.
        let acc = [0.91, 0.92, 0.915, 0.925, 0.918, 0.922, 0.919, 0.924];
        assert!(on_accuracy(&acc).findings.is_empty());
        // Up and back once is a bump, not a swing pattern.
        let acc = [0.6, 0.61, 0.7, 0.75, 0.7, 0.62, 0.61, 0.6];
        assert!(on_accuracy(&acc).findings.is_empty());
    }

    #[test]
    fn a_run_that_never_left_its_start_is_not_oscillating() {
        // tests/real/tb_dlgn_binary_chance_pinned: the training loss swings by ±4% about
        // ln 2 from epoch 1; it never learned, so there is nothing to oscillate around.
        let loss = [
            0.6888, 0.7061, 0.7164, 0.6879, 0.6683, 0.6886, 0.7053, 0.715, 0.6883, 0.669,
        ];
        let mut d = Diagnosis::default();
        d.findings.push(Finding {
            id: FindingId::NotLearning,
            severity: Severity::Warning,
            summary: String::new(),
            evidence: Default::default(),
        });
        check(
            &Fixture::new().series("loss", &loss).run(),
            Lang::En,
            &mut d,
        );
        assert!(!d.has(FindingId::Oscillation));
    }

    #[test]
    fn too_few_epochs_judge_nothing() {
        let acc = [0.6, 0.7, 0.6, 0.7, 0.6];
        assert!(on_accuracy(&acc).findings.is_empty());
    }

    #[test]
    fn a_healthy_run_does_not_oscillate() {
        let loss = [2.1, 1.3, 0.95, 0.78, 0.66, 0.58, 0.52, 0.47, 0.43, 0.40];
        let acc = [0.3, 0.55, 0.67, 0.73, 0.77, 0.8, 0.82, 0.84, 0.85, 0.86];
        let d = Fixture::new()
            .series("loss", &loss)
            .series("accuracy", &acc)
            .check(check);
        assert!(d.findings.is_empty());
    }
}
