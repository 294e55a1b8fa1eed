//! Numbers as people and files read them: the text of a number in a sentence, a number as
//! JSON (non-finite values as the strings Python writes), a value in the config's own type,
//! and one way to cut long text. Every stage formats numbers through here, so a value reads
//! the same in a finding, a rationale, the report and the history.

use serde_json::Value;

/// Rounds to 6 significant digits: evidence is for reading, and float noise such as
/// 0.30000000000000004 helps nobody.
pub fn round_sig(value: f64) -> f64 {
    if !value.is_finite() || value == 0.0 {
        return value;
    }
    let digits = 6 - 1 - value.abs().log10().floor() as i32;
    let scale = 10f64.powi(digits);
    let rounded = (value * scale).round() / scale;
    // Going through the decimal text keeps the shortest representation.
    format!("{rounded:.prec$}", prec = digits.max(0) as usize)
        .parse()
        .unwrap_or(rounded)
}

/// A number for a sentence: 4 significant digits, no float noise, `nan`/`inf` spelled out.
pub fn num(value: f64) -> String {
    if value.is_nan() {
        return "NaN".into();
    }
    if value.is_infinite() {
        return if value > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    let abs = value.abs();
    if abs != 0.0 && !(1e-4..1e6).contains(&abs) {
        return format!("{value:.3e}")
            .replace(".000e", "e")
            .replace("00e", "e")
            .replace("0e", "e");
    }
    let digits = if abs == 0.0 {
        0
    } else {
        (3 - abs.log10().floor() as i32).max(0) as usize
    };
    let text = format!("{value:.digits$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// `learning_rate 0.5 → 0.05`, as every summary writes a change.
pub fn change_text(parameter: &str, old: &Value, new: &Value) -> String {
    format!("{parameter} {} → {}", value_text(old), value_text(new))
}

/// A config value in a sentence: integers as they are, floats through `num`, strings
/// quoted.
pub fn value_text(value: &Value) -> String {
    match value {
        Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
        Value::Number(n) => n.as_f64().map(num).unwrap_or_else(|| n.to_string()),
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

/// A float as JSON; NaN and the infinities as the strings Python's `json` writes, so a
/// history line keeps them.
pub fn number_to_json(value: f64) -> Value {
    if value.is_nan() {
        Value::from("NaN")
    } else if value.is_infinite() {
        Value::from(if value > 0.0 { "Infinity" } else { "-Infinity" })
    } else {
        Value::from(value)
    }
}

/// The inverse of `number_to_json`, also taking the spellings other writers use.
pub fn number_from_json(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.as_str() {
            "NaN" | "nan" => Some(f64::NAN),
            "Infinity" | "inf" => Some(f64::INFINITY),
            "-Infinity" | "-inf" => Some(f64::NEG_INFINITY),
            _ => None,
        },
        _ => None,
    }
}

/// What a JSON value is, for a message ("expected a number, found a string").
pub fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A number as JSON, integer if `like` is an integer, else the shortest float that
/// round-trips (serde_json prints 0.0002, never 0.00019999999999999998). Arithmetic
/// such as 0.003 × 10 leaves noise in the last bits (0.030000000000000002); rounding to
/// 12 significant digits first removes it, far below any meaningful hyperparameter step.
pub fn number_like(value: f64, like: &Value) -> Value {
    if like.is_i64() || like.is_u64() {
        Value::from(value.round() as i64)
    } else {
        serde_json::Number::from_f64(without_noise(value))
            .map(Value::Number)
            .unwrap_or(Value::Null)
    }
}

fn without_noise(value: f64) -> f64 {
    format!("{value:.11e}").parse().unwrap_or(value)
}

/// `text` cut to at most `max` characters, the last of them `…` when anything was cut.
/// The one truncation every message uses, so limits mean the same everywhere.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_cleanly() {
        assert_eq!(num(0.00019999999999999998), "0.0002");
        assert_eq!(num(0.6935), "0.6935");
        assert_eq!(num(1.692669), "1.693");
        assert_eq!(num(3038.0), "3038");
        assert_eq!(num(f64::NAN), "NaN");
        assert_eq!(num(1e-6), "1e-6");
        assert_eq!(num(0.5), "0.5");
        assert_eq!(round_sig(0.30000000000000004), 0.3);
        assert_eq!(round_sig(1.6926691234), 1.69267);
    }

    #[test]
    fn truncate_counts_the_ellipsis() {
        assert_eq!(truncate("abcdef", 6), "abcdef");
        assert_eq!(truncate("abcdefg", 6), "abcde…");
        assert_eq!(truncate("学习率很高", 3), "学习…");
        assert_eq!(truncate("abc", 0), "…");
    }

    #[test]
    fn non_finite_numbers_round_trip_through_json() {
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.25] {
            let back = number_from_json(&number_to_json(v)).unwrap();
            assert!(back == v || (back.is_nan() && v.is_nan()));
        }
    }
}
