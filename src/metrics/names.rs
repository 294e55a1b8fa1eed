//! Which logged names mean the same thing. Keras says `acc` or `accuracy`, Lightning
//! `train_loss_epoch`, the HF Trainer `eval_loss`, TensorBoard users `val/loss`; the
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
const TRAIN_PREFIXES: &[&str] = &["", "train_", "training_", "train_epoch_"];
const VAL_PREFIXES: &[&str] = &["val_", "eval_", "validation_", "valid_", "val_epoch_"];

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
    let canonical = if name == "lr" || name == "learning_rate" || name.starts_with("lr_") {
        // LearningRateMonitor logs `lr-Adam`, `lr-SGD/pg1`.
        Canonical::Lr
    } else if matches!(
        name.as_str(),
        "grad_norm" | "gradient_norm" | "train_grad_norm"
    ) {
        Canonical::GradNorm
    } else if let Some(rest) = strip_any(&name, VAL_PREFIXES) {
        if rest == "loss" {
            Canonical::ValLoss
        } else if ACCURACY_NAMES.contains(&rest) {
            Canonical::ValAccuracy
        } else {
            return None;
        }
    } else if let Some(rest) = strip_any(&name, TRAIN_PREFIXES) {
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

fn strip_any<'a>(name: &'a str, prefixes: &[&str]) -> Option<&'a str> {
    // Longest prefix first, so `val_epoch_loss` is not read as `val_` + `epoch_loss`.
    let mut sorted: Vec<&&str> = prefixes.iter().collect();
    sorted.sort_by_key(|p| std::cmp::Reverse(p.len()));
    sorted.into_iter().find_map(|p| {
        let rest = name.strip_prefix(*p)?;
        (rest == "loss" || ACCURACY_NAMES.contains(&rest)).then_some(rest)
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
