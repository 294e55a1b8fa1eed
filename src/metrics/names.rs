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
        } else if ACCURACY_NAMES.contains(&rest) {
            Canonical::ValAccuracy
        } else {
            return None;
        }
    } else if let Some(rest) = strip_any(&name, TRAIN_PREFIXES, is_model_series) {
        if rest == "loss" {
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
    name == "loss" || ACCURACY_NAMES.contains(&name)
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
    }
}
