//! Which logged names mean the same thing. Keras says `acc` or `accuracy`, Lightning
//! `train_loss_epoch`, the HF Trainer `eval_loss`, TensorBoard users `val/loss` or
//! `Loss/val`, Keras' TensorBoard callback `epoch_loss` in a `validation/` folder; the
//! detectors want one `val_loss`. The original name is kept beside the canonical one so
//! the report can speak the user's language.

use serde::Serialize;

/// The series detectors reason about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Canonical {
    Loss,
    ValLoss,
    Accuracy,
    ValAccuracy,
    Lr,
    GradNorm,
}

impl Canonical {
    pub const ALL: [Canonical; 6] = [
        Canonical::Loss,
        Canonical::ValLoss,
        Canonical::Accuracy,
        Canonical::ValAccuracy,
        Canonical::Lr,
        Canonical::GradNorm,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Canonical::Loss => "loss",
            Canonical::ValLoss => "val_loss",
            Canonical::Accuracy => "accuracy",
            Canonical::ValAccuracy => "val_accuracy",
            Canonical::Lr => "lr",
            Canonical::GradNorm => "grad_norm",
        }
    }
}

const ACCURACY_NAMES: &[&str] = &[
    "accuracy",
    "acc",
    "categorical_accuracy",
    "sparse_categorical_accuracy",
    "binary_accuracy",
    "top1",
    "acc1",
];
// `epoch_` is Keras' TensorBoard callback: `epoch_loss` in `train/` (`train/epoch_loss`)
// and `validation/` (`validation/epoch_loss`).
const TRAIN_PREFIXES: &[&str] = &["", "train_", "training_", "train_epoch_", "epoch_"];
const VAL_PREFIXES: &[&str] = &[
    "val_",
    "eval_",
    "validation_",
    "valid_",
    "val_epoch_",
    "validation_epoch_",
];
/// The split written after the metric, as PyTorch users name TensorBoard tags
/// (`Loss/train`, `Accuracy/val`) and as `add_scalars("Loss", {"val": …})` names its
/// folders (`Loss_val`), with the prefix that says the same.
const SPLIT_SUFFIXES: &[(&str, &str)] = &[
    ("_train", "train_"),
    ("_training", "train_"),
    ("_val", "val_"),
    ("_valid", "val_"),
    ("_validation", "val_"),
    ("_eval", "val_"),
];

/// The canonical series a logged name stands for, with a rank: when a file has several
/// names for one series (Lightning's `train_loss_step` and `train_loss_epoch`), the lowest
/// rank wins.
pub fn canonicalize(original: &str) -> Option<(Canonical, u8)> {
    let mut name = original
        .trim()
        .to_ascii_lowercase()
        .replace(['/', '-', ' ', '.'], "_");
    // Lightning logs `x_epoch` (the epoch mean, what we want) and `x_step` (one batch).
    let mut rank = 0;
    if let Some(stripped) = name.strip_suffix("_epoch") {
        name = stripped.to_string();
    } else if let Some(stripped) = name.strip_suffix("_step") {
        name = stripped.to_string();
        rank = 2;
    }
    if let Some((rest, prefix)) = SPLIT_SUFFIXES
        .iter()
        .find_map(|(suffix, prefix)| Some((name.strip_suffix(suffix)?, prefix)))
        .filter(|(rest, _)| !rest.is_empty())
    {
        name = format!("{prefix}{rest}");
    }
    let canonical = if let Some(rest) = strip_any(&name, TRAIN_PREFIXES, is_optimizer_series) {
        if is_learning_rate(rest) {
            Canonical::Lr
        } else {
            Canonical::GradNorm
        }
    } else if let Some(rest) = strip_any(&name, VAL_PREFIXES, is_model_series) {
        if rest == "loss" {
            Canonical::ValLoss
        } else if TOTAL_LOSS_NAMES.contains(&rest) {
            // `val_mean_running_loss`, `eval_total_loss`: the held-out side of a whole
            // objective, which a reader splitting rows by phase names this way.
            rank += TOTAL_LOSS_RANK;
            Canonical::ValLoss
        } else if ACCURACY_NAMES.contains(&rest) {
            Canonical::ValAccuracy
        } else {
            return None;
        }
    } else if let Some(canonical) = epoch_average(&name) {
        rank += AVERAGE_RANK;
        canonical
    } else if name.strip_prefix("eval_").is_some_and(is_eval_set_loss) {
        // The HF Trainer's `eval_dataset={"g0": …, "g1": …}` logs `eval_g0_loss`,
        // `eval_g1_loss` … and no `eval_loss`: each is the validation loss of one set. They
        // rank below every plain spelling, and among themselves the file's first wins.
        rank += EVAL_SET_RANK;
        Canonical::ValLoss
    } else if let Some(rest) = strip_any(&name, TRAIN_PREFIXES, is_model_series) {
        if TOTAL_LOSS_NAMES.contains(&rest) {
            // `total_loss` / `mean_loss` sum or average the parts a multi-term objective
            // logs beside them (`rec_loss`, `kl_loss`): they are the training loss.
            rank += TOTAL_LOSS_RANK;
            Canonical::Loss
        } else if rest == "loss" {
            Canonical::Loss
        } else if ACCURACY_NAMES.contains(&rest) {
            Canonical::Accuracy
        } else {
            return None;
        }
    } else {
        return None;
    };
    // An exact canonical spelling beats an alias (`accuracy` over `acc`).
    if name != canonical.as_str() {
        rank += 1;
    }
    Some((canonical, rank))
}

/// A learning rate: LearningRateMonitor logs `lr-Adam`, `lr-SGD/pg1`; the HF Trainer's
/// TensorBoard tag is `train/learning_rate`, Keras' `epoch_learning_rate`.
fn is_learning_rate(name: &str) -> bool {
    name == "lr" || name == "learning_rate" || name.starts_with("lr_")
}

fn is_optimizer_series(name: &str) -> bool {
    is_learning_rate(name) || name == "grad_norm" || name == "gradient_norm"
}

fn is_model_series(name: &str) -> bool {
    name == "loss" || TOTAL_LOSS_NAMES.contains(&name) || ACCURACY_NAMES.contains(&name)
}

/// Names of a training loss that is the whole objective, beside its parts, or its mean
/// over the epoch's batches (`running_loss` is what PyTorch's tutorials accumulate).
const TOTAL_LOSS_NAMES: &[&str] = &[
    "total_loss",
    "mean_loss",
    "running_loss",
    "mean_running_loss",
    "avg_loss",
    "average_loss",
];
/// What a split's unnamed loss is called: its epoch mean (`validation_epoch_average`,
/// `training_epoch_average`, `val_epoch_mean`: Lightning modules that stack their step
/// losses in `on_validation_epoch_end` log the mean under such a name, and the mean of
/// the step outputs is the loss), or the total of a multi-head objective beside its heads
/// (`train_total`, `val_total` beside `train_age`, `val_gender`).
const AVERAGE_NAMES: &[&str] = &[
    "average",
    "avg",
    "mean",
    "epoch_average",
    "epoch_avg",
    "epoch_mean",
    "total",
];
/// Rank added to an unnamed epoch mean: any name that says `loss` wins over it.
const AVERAGE_RANK: u8 = 3;

/// The loss an unnamed epoch mean stands for (see `AVERAGE_NAMES`): the validation loss
/// after a validation prefix, the training loss after a training one. A bare `mean` or
/// `average` (or Keras' `epoch_average`), with no split named, is nothing.
fn epoch_average(name: &str) -> Option<Canonical> {
    let after = |prefixes: &[&str]| {
        prefixes.iter().any(|p| {
            name.strip_prefix(p)
                .is_some_and(|rest| AVERAGE_NAMES.contains(&rest))
        })
    };
    if after(VAL_PREFIXES) {
        Some(Canonical::ValLoss)
    } else if after(&["train_", "training_", "train_epoch_"]) {
        Some(Canonical::Loss)
    } else {
        None
    }
}
/// Rank added to `total_loss` / `mean_loss`: a plain `loss` in the same file wins.
const TOTAL_LOSS_RANK: u8 = 2;
/// Rank added to `eval_<set>_loss`: a plain `eval_loss` or `val_loss` wins.
const EVAL_SET_RANK: u8 = 2;

/// `<set>_loss` after `eval_`: one named evaluation set's loss (`g0_loss`), not a part of
/// an objective the trainer only evaluates (`eval_loss` itself is handled before).
fn is_eval_set_loss(rest: &str) -> bool {
    rest.strip_suffix("_loss")
        .is_some_and(|set| !set.is_empty() && !set.contains("loss") && set != "epoch")
}

/// The name with separators unified, lowercased, without Lightning's `_epoch`/`_step`
/// suffix and with a split written after the metric moved before it (`Loss/val` →
/// `val_loss`), as `canonicalize` reads names.
fn normalized(original: &str) -> String {
    let mut name = original
        .trim()
        .to_ascii_lowercase()
        .replace(['/', '-', ' ', '.'], "_");
    for suffix in ["_epoch", "_step"] {
        if let Some(stripped) = name.strip_suffix(suffix) {
            name = stripped.to_string();
            break;
        }
    }
    if let Some((rest, prefix)) = SPLIT_SUFFIXES
        .iter()
        .chain(&[("_test", "test_")])
        .find_map(|(suffix, prefix)| Some((name.strip_suffix(suffix)?, prefix)))
        .filter(|(rest, _)| !rest.is_empty())
    {
        name = format!("{prefix}{rest}");
    }
    name
}

/// A loss, whatever else its name says: `loss`, `*_loss` (`mean_loss`, `rec_loss`,
/// `eval_g0_loss`), `train/loss`, `loss_epoch`, `Loss/val`. Not `loss_scale` (fp16's
/// scaler) nor `loss_weight`: the name must end in the word `loss`.
pub fn is_loss_like(original: &str) -> bool {
    let name = normalized(original);
    name == "loss" || name.ends_with("_loss")
}

/// Prefixes of a held-out split: validation, evaluation, or test.
const HELD_OUT_PREFIXES: &[&str] = &["val_", "eval_", "valid_", "validation_", "test_"];

/// A series measured on held-out data (`val_*`, `eval_*`, `valid_*`, `validation_*`,
/// `test_*`, and the same split written after the metric), as opposed to training.
pub fn is_held_out(original: &str) -> bool {
    let name = normalized(original);
    HELD_OUT_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Metric names that are fractions in [0, 1] (or percentages, when a whole series is
/// above 1): accuracy, F1, precision, recall, AUC, IoU, Dice. Matched as whole words of
/// the name, so `eval_f1` and `val_binary_accuracy` are fractions and `eval_wer` is not.
const FRACTION_WORDS: &[&str] = &[
    "acc",
    "accuracy",
    "f1",
    "precision",
    "recall",
    "auc",
    "auroc",
    "iou",
    "dice",
    "specificity",
    "sensitivity",
];

/// A metric whose name says it is a fraction (see `FRACTION_WORDS`); not a loss.
pub fn is_fraction(original: &str) -> bool {
    let name = normalized(original);
    !is_loss_like(original) && name.split('_').any(|w| FRACTION_WORDS.contains(&w))
}

/// An accuracy by name (`acc`, `accuracy`, `test_acc`, `eval_g0_accuracy`).
pub fn is_accuracy_like(original: &str) -> bool {
    let name = normalized(original);
    !is_loss_like(original) && name.split('_').any(|w| w == "acc" || w == "accuracy")
}

/// Words in a loss's name that say it may honestly be negative: likelihoods and ELBOs,
/// reinforcement-learning objectives (SB3's `entropy_loss` and `policy_gradient_loss`
/// are negative by construction), Wasserstein critics, KL estimates.
const MAY_BE_NEGATIVE_WORDS: &[&str] = &[
    "elbo",
    "likelihood",
    "loglik",
    "ll",
    "nll",
    "logprob",
    "reward",
    "return",
    "advantage",
    "policy",
    "pg",
    "actor",
    "entropy",
    "critic",
    "wasserstein",
    "kl",
    "gen",
    "g",
    "d",
    "disc",
    "generator",
    "discriminator",
];

/// A loss whose name does not allow a negative value (see `MAY_BE_NEGATIVE_WORDS`).
pub fn is_nonnegative_loss(original: &str) -> bool {
    let name = normalized(original);
    is_loss_like(original) && !name.split('_').any(|w| MAY_BE_NEGATIVE_WORDS.contains(&w))
}

/// The rest of `name` after one of `prefixes`, when that rest is a series `fits` accepts.
fn strip_any<'a>(name: &'a str, prefixes: &[&str], fits: fn(&str) -> bool) -> Option<&'a str> {
    // Longest prefix first, so `val_epoch_loss` is not read as `val_` + `epoch_loss`.
    let mut sorted: Vec<&&str> = prefixes.iter().collect();
    sorted.sort_by_key(|p| std::cmp::Reverse(p.len()));
    sorted.into_iter().find_map(|p| {
        let rest = name.strip_prefix(*p)?;
        fits(rest).then_some(rest)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use Canonical::*;

    #[test]
    fn maps_the_names_frameworks_write() {
        let cases = [
            ("loss", Loss),
            ("train_loss", Loss),
            ("train/loss", Loss),
            ("train_loss_epoch", Loss),
            ("val_loss", ValLoss),
            ("eval_loss", ValLoss),
            ("val/loss", ValLoss),
            ("accuracy", Accuracy),
            ("acc", Accuracy),
            ("train_acc", Accuracy),
            ("sparse_categorical_accuracy", Accuracy),
            ("val_accuracy", ValAccuracy),
            ("val_acc", ValAccuracy),
            ("eval_accuracy", ValAccuracy),
            ("val_binary_accuracy", ValAccuracy),
            ("lr", Lr),
            ("learning_rate", Lr),
            ("lr-Adam", Lr),
            ("grad_norm", GradNorm),
            ("train_grad_norm", GradNorm),
            // PyTorch users' TensorBoard tags and add_scalars folders
            ("Loss/train", Loss),
            ("Loss/val", ValLoss),
            ("loss/validation", ValLoss),
            ("Accuracy/train", Accuracy),
            ("Accuracy/val", ValAccuracy),
            ("acc/eval", ValAccuracy),
            ("Loss_train", Loss),
            ("Loss_val", ValLoss),
            // Keras' TensorBoard callback, alone and under its split folders
            ("epoch_loss", Loss),
            ("train/epoch_loss", Loss),
            ("validation/epoch_loss", ValLoss),
            ("train/epoch_accuracy", Accuracy),
            ("validation/epoch_accuracy", ValAccuracy),
            ("epoch_learning_rate", Lr),
            ("train/epoch_learning_rate", Lr),
            // the HF Trainer's TensorBoard tags
            ("train/learning_rate", Lr),
            ("train/grad_norm", GradNorm),
            ("eval/loss", ValLoss),
            // whole objectives beside their parts, and HF's named evaluation sets
            ("mean_loss", Loss),
            ("total_loss", Loss),
            ("train_total_loss", Loss),
            ("loss_epoch", Loss),
            ("eval_g0_loss", ValLoss),
            ("eval_squad_loss", ValLoss),
            // epoch means of a phase, as a PyTorch loop or a Lightning module names them
            ("running_loss", Loss),
            ("mean_running_loss", Loss),
            ("val_mean_running_loss", ValLoss),
            ("eval_avg_loss", ValLoss),
            ("validation_epoch_average", ValLoss),
            ("val_epoch_average", ValLoss),
            ("valid_loss_epoch", ValLoss),
            ("training_epoch_average", Loss),
            ("train_epoch_mean", Loss),
            // a multi-head objective's total beside its heads
            ("train_total", Loss),
            ("val_total", ValLoss),
        ];
        for (name, want) in cases {
            assert_eq!(canonicalize(name).map(|c| c.0), Some(want), "{name}");
        }
        for name in [
            "epoch",
            "step",
            "val_f1",
            "eval_runtime",
            "loss_scale",
            "min_lr",
            "val_lr",
            "Loss/test",
            "epoch_steps_per_second",
            "validation/evaluation_loss_vs_iterations",
            "batch_loss",
            "_train",
            "rec_loss",
            "Conductor_Copper_loss",
            "eval_loss_scale",
            // Ray Tune's counters and clocks in every result row: `training_iteration`
            // numbers the rows (the JSON Lines reader counts them the same way), and
            // none of them is a model metric.
            "training_iteration",
            "iterations_since_restore",
            "time_this_iter_s",
            "time_total_s",
            "time_since_restore",
            // a mean with no split named, or the mean of a named metric
            "mean",
            "average",
            "epoch_average",
            "validation_epoch_average iou",
            "val_epoch_average_rmse",
            "total",
            "val_total_acc",
        ] {
            assert_eq!(canonicalize(name), None, "{name}");
        }
    }

    #[test]
    fn the_epoch_mean_outranks_the_step_value() {
        let epoch = canonicalize("train_loss_epoch").unwrap().1;
        let step = canonicalize("train_loss_step").unwrap().1;
        assert!(epoch < step);
        assert!(canonicalize("accuracy").unwrap().1 < canonicalize("acc").unwrap().1);
        // a plain loss beats a whole-objective alias, a plain eval loss an eval set's
        assert!(canonicalize("loss").unwrap().1 < canonicalize("mean_loss").unwrap().1);
        assert!(canonicalize("eval_loss").unwrap().1 < canonicalize("eval_g0_loss").unwrap().1);
    }

    #[test]
    fn loss_like_held_out_and_fraction_names() {
        for name in [
            "loss",
            "mean_loss",
            "total_loss",
            "train/loss",
            "loss_epoch",
            "train_loss_epoch",
            "eval/loss",
            "eval_g0_loss",
            "Conductor_Copper_loss",
            "Loss/val",
        ] {
            assert!(is_loss_like(name), "{name}");
        }
        for name in [
            "loss_scale",
            "lossy",
            "accuracy",
            "grad_norm",
            "loss_weight",
        ] {
            assert!(!is_loss_like(name), "{name}");
        }
        for name in [
            "val_loss",
            "eval_g0_loss",
            "eval/loss",
            "test_acc",
            "Loss/val",
            "valid_f1",
        ] {
            assert!(is_held_out(name), "{name}");
        }
        for name in [
            "loss",
            "train_loss_epoch",
            "mean_loss",
            "train/acc",
            "evaluation",
        ] {
            assert!(!is_held_out(name), "{name}");
        }
        for name in [
            "eval_f1",
            "val_binary_accuracy",
            "acc",
            "eval_precision",
            "test_acc",
        ] {
            assert!(is_fraction(name), "{name}");
        }
        for name in [
            "eval_wer",
            "eval_cer",
            "loss",
            "eval_runtime",
            "val_acc_loss",
        ] {
            assert!(!is_fraction(name), "{name}");
        }
        assert!(is_nonnegative_loss("loss") && is_nonnegative_loss("val_mse_loss"));
        for name in [
            "elbo_loss",
            "train/entropy_loss",
            "policy_gradient_loss",
            "g_loss",
        ] {
            assert!(!is_nonnegative_loss(name), "{name}");
        }
    }
}
