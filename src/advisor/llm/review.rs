//! The model's answer read as a review of the rules advisor's proposal: its verdict, the
//! changes it makes of the rules' ones, and a record of what it did, change by change
//! (agreed, amended from → to, added, dropped with the reason). The record is what the
//! report and the JSON show; validation still decides every value of the changes.

use serde_json::Value;

use super::answer::{self, Parsed};
use super::schema::MAX_TEXT_CHARS;
use crate::num::truncate;
use crate::run::Run;
use crate::types::{ProposedChange, Review, ReviewItem, Reviewed, Verdict};

/// Two proposed values closer than this (relative) are the same value: a model that copies
/// the rules' 0.042 may write 0.0420000001, and that is agreement, not an amendment.
const SAME_VALUE_RELATIVE: f64 = 1e-9;

/// What an answer says about the rules' proposal besides its changes.
#[derive(Debug, Clone, PartialEq)]
pub struct Stance {
    pub verdict: Verdict,
    /// The rules' changes the model leaves out, with its reason (`amend`).
    pub dropped: Vec<(String, String)>,
}

/// The verdict and the dropped list of an answer that `answer::parse` read. An answer
/// without a verdict (a server in json_object mode, an older prompt) is a whole proposal
/// of its own: `replace`. A verdict that is none of the three is a reason to repair.
pub fn stance(text: &str) -> Result<Stance, Vec<String>> {
    let object = answer::find_object(text).unwrap_or_default();
    let verdict = match object.get("verdict") {
        None | Some(Value::Null) => Verdict::Replace,
        Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "agree" => Verdict::Agree,
            "amend" => Verdict::Amend,
            "replace" => Verdict::Replace,
            _ => return Err(vec![verdict_reason()]),
        },
        Some(_) => return Err(vec![verdict_reason()]),
    };
    let dropped = match object.get("dropped") {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|item| {
                let parameter = item.get("parameter")?.as_str()?.trim();
                let reason = item
                    .get("reason")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .trim();
                (!parameter.is_empty()).then(|| (parameter.to_string(), reason.to_string()))
            })
            .collect(),
        _ => Vec::new(),
    };
    Ok(Stance { verdict, dropped })
}

fn verdict_reason() -> String {
    "\"verdict\" must be \"agree\", \"amend\" or \"replace\"".to_string()
}

/// The changes the answer amounts to, and the record of what it did with each of the
/// rules' changes. With `agree` the answer's own change list is not read: agreeing costs
/// the model nothing it could get wrong. A change of the answer equal to the rules' one
/// is the rules' change, rationale included.
pub fn combine(
    run: &Run,
    rules: &[ProposedChange],
    parsed: &Parsed,
    stance: &Stance,
) -> (Vec<ProposedChange>, Review) {
    let old = |parameter: &str| {
        run.tunables
            .iter()
            .find(|t| t.path == parameter)
            .map(|t| t.raw.clone())
    };
    let item =
        |c: &ProposedChange, what: Reviewed, rules: Option<&Value>, model: Option<&Value>| {
            ReviewItem {
                parameter: c.parameter.clone(),
                what,
                old: old(&c.parameter),
                rules: rules.cloned(),
                model: model.cloned(),
                reason: None,
            }
        };
    let mut changes = Vec::new();
    let mut items = Vec::new();
    if stance.verdict == Verdict::Agree {
        for r in rules {
            changes.push(r.clone());
            items.push(item(
                r,
                Reviewed::Agreed,
                Some(&r.new_value),
                Some(&r.new_value),
            ));
        }
        return (
            changes,
            Review {
                verdict: stance.verdict,
                items,
            },
        );
    }
    for r in rules {
        let model = parsed.changes.iter().find(|m| m.parameter == r.parameter);
        match model {
            Some(m) if same_value(&m.new_value, &r.new_value) => {
                changes.push(r.clone());
                items.push(item(
                    r,
                    Reviewed::Agreed,
                    Some(&r.new_value),
                    Some(&m.new_value),
                ));
            }
            Some(m) => {
                changes.push(m.clone());
                items.push(item(
                    r,
                    Reviewed::Amended,
                    Some(&r.new_value),
                    Some(&m.new_value),
                ));
            }
            None => {
                let reason = stance
                    .dropped
                    .iter()
                    .find(|(p, _)| *p == r.parameter)
                    .map(|(_, why)| why.clone());
                if stance.verdict == Verdict::Amend && reason.is_none() {
                    changes.push(r.clone());
                    items.push(item(r, Reviewed::Agreed, Some(&r.new_value), None));
                } else {
                    let mut dropped = item(r, Reviewed::Dropped, Some(&r.new_value), None);
                    // Bounded like every text of the answer: json_object mode has no schema.
                    dropped.reason = reason
                        .filter(|why| !why.is_empty())
                        .map(|why| truncate(&why, MAX_TEXT_CHARS as usize));
                    items.push(dropped);
                }
            }
        }
    }
    for m in &parsed.changes {
        if !rules.iter().any(|r| r.parameter == m.parameter) {
            changes.push(m.clone());
            items.push(item(m, Reviewed::Added, None, Some(&m.new_value)));
        }
    }
    (
        changes,
        Review {
            verdict: stance.verdict,
            items,
        },
    )
}

/// The parameters whose value is the model's own (amended or added): a rejection of one
/// of those is the model's mistake, worth a repair; a rejection of a rules' change the
/// model kept is the rules' and validation's business alone.
pub fn models_own(review: &Review) -> Vec<&str> {
    review
        .items
        .iter()
        .filter(|i| matches!(i.what, Reviewed::Amended | Reviewed::Added))
        .map(|i| i.parameter.as_str())
        .collect()
}

fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn same_value(a: &Value, b: &Value) -> bool {
    match (number(a), number(b)) {
        (Some(x), Some(y)) => (x - y).abs() <= SAME_VALUE_RELATIVE * x.abs().max(y.abs()),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::testing::run;

    fn change(parameter: &str, value: f64, rationale: &str) -> ProposedChange {
        ProposedChange {
            parameter: parameter.into(),
            new_value: Value::from(value),
            rationale: rationale.into(),
            confidence: 0.7,
        }
    }

    fn parsed(changes: Vec<ProposedChange>) -> Parsed {
        Parsed {
            diagnosis: "d".into(),
            changes,
            extras: Vec::new(),
        }
    }

    fn whats(review: &Review) -> Vec<(&str, Reviewed)> {
        review
            .items
            .iter()
            .map(|i| (i.parameter.as_str(), i.what))
            .collect()
    }

    #[test]
    fn agree_takes_the_rules_changes_whatever_the_list_says() {
        let r = run(Some(r#"{"lr": 0.3, "dropout": 0.1}"#), &[("loss", &[2.0])]);
        let rules = vec![change("lr", 0.03, "rose 5 epochs")];
        let stance = Stance {
            verdict: Verdict::Agree,
            dropped: vec![],
        };
        let (changes, review) =
            combine(&r, &rules, &parsed(vec![change("lr", 0.0005, "")]), &stance);
        assert_eq!(changes, rules);
        assert_eq!(whats(&review), vec![("lr", Reviewed::Agreed)]);
        assert_eq!(review.items[0].old, Some(Value::from(0.3)));
        assert!(models_own(&review).is_empty());
    }

    #[test]
    fn amend_keeps_what_it_does_not_name_and_drops_what_it_says() {
        let r = run(
            Some(r#"{"lr": 0.3, "dropout": 0.1, "batch_size": 32, "weight_decay": 0.0001}"#),
            &[("loss", &[2.0])],
        );
        let rules = vec![
            change("lr", 0.03, "rules lr"),
            change("dropout", 0.2, "rules dropout"),
            change("weight_decay", 0.0005, "rules wd"),
        ];
        let stance = Stance {
            verdict: Verdict::Amend,
            dropped: vec![("weight_decay".into(), "the gap is 0.02".into())],
        };
        let model = parsed(vec![
            change("lr", 0.1, "only 3 epochs of rise"),
            change("batch_size", 64.0, "noisy"),
            // A copy of the rules' value is agreement, and keeps the rules' rationale.
            change("dropout", 0.2000000000001, ""),
        ]);
        let (changes, review) = combine(&r, &rules, &model, &stance);
        assert_eq!(
            whats(&review),
            vec![
                ("lr", Reviewed::Amended),
                ("dropout", Reviewed::Agreed),
                ("weight_decay", Reviewed::Dropped),
                ("batch_size", Reviewed::Added),
            ]
        );
        assert_eq!(review.items[2].reason.as_deref(), Some("the gap is 0.02"));
        let got: Vec<(&str, &str)> = changes
            .iter()
            .map(|c| (c.parameter.as_str(), c.rationale.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("lr", "only 3 epochs of rise"),
                ("dropout", "rules dropout"),
                ("batch_size", "noisy")
            ]
        );
        assert_eq!(models_own(&review), vec!["lr", "batch_size"]);
    }

    #[test]
    fn replace_drops_every_rules_change_it_does_not_make() {
        let r = run(Some(r#"{"lr": 0.3, "dropout": 0.1}"#), &[("loss", &[2.0])]);
        let rules = vec![change("lr", 0.03, "rules"), change("dropout", 0.2, "rules")];
        let stance = Stance {
            verdict: Verdict::Replace,
            dropped: vec![],
        };
        let (changes, review) = combine(&r, &rules, &parsed(vec![]), &stance);
        assert!(changes.is_empty());
        assert_eq!(
            whats(&review),
            vec![("lr", Reviewed::Dropped), ("dropout", Reviewed::Dropped)]
        );
        assert_eq!(review.items[0].reason, None);
    }

    #[test]
    fn the_verdict_is_read_leniently_and_nonsense_is_a_reason() {
        let s = stance(
            r#"{"verdict": " Amend ", "dropped": [{"parameter": "lr", "reason": "r"}, {"x": 1}]}"#,
        )
        .unwrap();
        assert_eq!(s.verdict, Verdict::Amend);
        assert_eq!(s.dropped, vec![("lr".to_string(), "r".to_string())]);
        // No verdict: an answer in the old shape is a whole proposal.
        assert_eq!(
            stance(r#"{"diagnosis": "d", "changes": []}"#)
                .unwrap()
                .verdict,
            Verdict::Replace
        );
        let reasons = stance(r#"{"verdict": "yes please"}"#).unwrap_err();
        assert!(reasons[0].contains("agree"), "{reasons:?}");
        assert!(stance(r#"{"verdict": 3}"#).is_err());
    }
}
