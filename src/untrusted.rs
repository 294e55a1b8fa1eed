//! Text from outside made safe to show: secrets redacted from what a server sent, and
//! characters that drive a terminal made visible. The LLM and the user's own files are
//! both outside: a model can write ESC sequences into a rationale, a CSV header can hold
//! them, and a server's error body can repeat the API key it was sent.
//!
//! `printable` is the one escaping for the terminal (`commands::print::emit` passes all
//! text output through it, and errors on stderr go through it too); `redact` runs on
//! everything the LLM transport hands on, before it is printed, stored or cached.
//! `json_string` and `json_string_pretty` write JSON files (the report's `.json`, history
//! lines) with the same characters escaped, so `cat` or a pager on them is as safe as the
//! terminal output.

use std::borrow::Cow;
use std::io;
use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;
use serde_json::ser::{CompactFormatter, Formatter, PrettyFormatter, Serializer};

/// A token after "key", "token", "secret" … is taken for a secret from this length on:
/// below every provider's key length (Azure's are 32 hex digits, GitHub's 40) and above
/// the words and numbers such text usually holds.
pub const MIN_TOKEN_CHARS: usize = 16;

/// What a redacted secret becomes.
pub const REDACTED: &str = "[redacted]";

/// A configured key shorter than this is not looked for verbatim: local servers take
/// placeholder keys such as "none" or "ollama", and redacting those words from every
/// answer would mangle the text while protecting nothing.
pub const MIN_KEY_CHARS: usize = 8;

/// Things that look like keys whatever the configured one is: OpenAI-style `sk-…` keys
/// (OpenAI, DeepSeek, Anthropic's `sk-ant-…`), bearer tokens, and a long token of
/// letters and digits mixed after a word such as "key", "token", "secret" or "password"
/// (`MIN_TOKEN_CHARS` decides how long).
static LOOKS_LIKE_A_KEY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"\bsk-[A-Za-z0-9_\-]{8,}",
        r"|(?i:\bbearer)\s+[A-Za-z0-9._~+/\-]{8,}=*",
        r#"|(?i:(?:api[_\- ]?key|key|token|secret|password|authorization))(?:["'\s:=]|\\")+"#,
        r"(?:[A-Za-z0-9._+/\-]*[0-9][A-Za-z0-9._+/\-]*[A-Za-z][A-Za-z0-9._+/\-]*",
        r"|[A-Za-z0-9._+/\-]*[A-Za-z][A-Za-z0-9._+/\-]*[0-9][A-Za-z0-9._+/\-]*)",
    ))
    .expect("constant pattern")
});

/// `text` with the configured `key` (when it is at least `MIN_KEY_CHARS` long) and
/// anything that looks like a key replaced by `REDACTED`.
pub fn redact<'a>(text: &'a str, key: Option<&str>) -> Cow<'a, str> {
    let mut out = Cow::Borrowed(text);
    if let Some(key) = key
        .map(str::trim)
        .filter(|k| k.chars().count() >= MIN_KEY_CHARS)
        && out.contains(key)
    {
        out = Cow::Owned(out.replace(key, REDACTED));
    }
    if !LOOKS_LIKE_A_KEY.is_match(&out) {
        return out;
    }
    let replaced = LOOKS_LIKE_A_KEY.replace_all(&out, |caps: &regex::Captures| {
        let found = &caps[0];
        if found.starts_with("sk-") {
            return REDACTED.to_string();
        }
        // "Bearer <token>", "key: <token>": the label stays, the token goes, when it is
        // long enough to be a secret.
        let token_start = found
            .rfind(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ':' | '=' | '\\'))
            .map_or(0, |i| i + 1);
        let is_bearer = found
            .get(..6)
            .is_some_and(|p| p.eq_ignore_ascii_case("bearer"));
        if is_bearer || found[token_start..].chars().count() >= MIN_TOKEN_CHARS {
            format!("{}{REDACTED}", &found[..token_start])
        } else {
            found.to_string()
        }
    });
    Cow::Owned(replaced.into_owned())
}

/// Characters that make a terminal do something instead of showing something: C0
/// controls other than newline and tab (ESC starts CSI and OSC sequences, BEL ends OSC,
/// CR rewrites the line), DEL, the C1 controls (U+009B is a one-character CSI), and
/// the Unicode bidi overrides and isolates that reorder what is shown (the "Trojan
/// Source" characters, CVE-2021-42574).
pub fn is_hostile(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{8}' | '\u{b}'..='\u{1f}' | '\u{7f}'..='\u{9f}'
        | '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}')
}

/// `text` for a terminal: each hostile character (`is_hostile`) written as a visible
/// escape (`\x1b`, `\u{202e}`), everything else as it is.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_hostile) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if !is_hostile(c) {
            out.push(c);
        } else if (c as u32) < 0x100 {
            out.push_str(&format!("\\x{:02x}", c as u32));
        } else {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        }
    }
    Cow::Owned(out)
}

/// JSON text for a terminal: serde_json escapes C0 controls but writes DEL, C1 and the
/// bidi characters raw; they can only occur inside strings, where `\uXXXX` is the same
/// value, so the document means the same and shows safely.
pub fn printable_json(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_hostile) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if is_hostile(c) {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A serde_json formatter that writes each hostile character (`is_hostile`) inside a
/// string as a `\uXXXX` escape. serde_json escapes the C0 controls itself and leaves DEL,
/// the C1 controls and the bidi characters raw; the escape is the same JSON value, so a
/// reader gets the text back unchanged. Everything else is `F`'s (compact or pretty).
struct Escaping<F>(F);

impl<F: Formatter> Formatter for Escaping<F> {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut rest = fragment;
        while let Some((at, c)) = rest.char_indices().find(|&(_, c)| is_hostile(c)) {
            writer.write_all(&rest.as_bytes()[..at])?;
            // Every hostile character is in the Basic Multilingual Plane: four digits.
            write!(writer, "\\u{:04x}", c as u32)?;
            rest = &rest[at + c.len_utf8()..];
        }
        writer.write_all(rest.as_bytes())
    }

    fn begin_array<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.begin_array(writer)
    }

    fn end_array<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.end_array(writer)
    }

    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.0.begin_array_value(writer, first)
    }

    fn end_array_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.end_array_value(writer)
    }

    fn begin_object<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.begin_object(writer)
    }

    fn end_object<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.end_object(writer)
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.0.begin_object_key(writer, first)
    }

    fn end_object_key<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.end_object_key(writer)
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.begin_object_value(writer)
    }

    fn end_object_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.end_object_value(writer)
    }
}

fn json_with<T: Serialize + ?Sized, F: Formatter>(
    value: &T,
    formatter: F,
) -> serde_json::Result<String> {
    let mut out = Vec::with_capacity(128);
    value.serialize(&mut Serializer::with_formatter(
        &mut out,
        Escaping(formatter),
    ))?;
    // serde_json writes only UTF-8, and the escapes are ASCII.
    Ok(String::from_utf8(out).expect("serde_json writes UTF-8"))
}

/// `serde_json::to_string` with hostile characters escaped in strings (`Escaping`): for
/// JSON that holds text from the LLM or the user's files and is written to a file.
pub fn json_string<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<String> {
    json_with(value, CompactFormatter)
}

/// `serde_json::to_string_pretty` with hostile characters escaped in strings.
pub fn json_string_pretty<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<String> {
    json_with(value, PrettyFormatter::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "sk-test-9f8e7d6c5b4a-secret";

    #[test]
    fn the_configured_key_and_key_shapes_are_redacted() {
        let body = format!(
            "{{\"error\": {{\"message\": \"Incorrect API key provided: {KEY}. You can find your API key at https://platform.openai.com/account/api-keys.\"}}}}"
        );
        let clean = redact(&body, Some(KEY));
        assert!(!clean.contains("9f8e7d6c5b4a"), "{clean}");
        assert!(
            clean.contains("Incorrect API key provided: [redacted]."),
            "{clean}"
        );
        assert!(
            clean.contains("find your API key at https://platform.openai.com/account/api-keys"),
            "{clean}"
        );
        // Without the key configured, the shape gives it away.
        assert!(!redact(&body, None).contains("9f8e7d6c5b4a"));
        // A key that is not sk-shaped is found verbatim.
        let azure = "0123456789abcdef0123456789abcdef";
        let text = format!("echo {azure}!");
        assert_eq!(redact(&text, Some(azure)), "echo [redacted]!");
        assert_eq!(
            redact("Authorization: Bearer abc.DEF-123_456", None),
            "Authorization: Bearer [redacted]"
        );
        assert_eq!(
            redact("the token=ghp_16CharsAnd42digits was wrong", None),
            "the token=[redacted] was wrong"
        );
        assert_eq!(
            redact(r#"{"api_key": "AKIAIOSFODNN7EXAMPLE"}"#, None),
            r#"{"api_key": "[redacted]"}"#
        );
        assert_eq!(redact("sk-ant-api03-abcdefgh", None), "[redacted]");
    }

    #[test]
    fn ordinary_text_is_left_alone() {
        for text in [
            "the learning rate is too high: the loss rose from 1.42 to 14.09",
            "key: learning_rate",
            "the token budget is 1024 tokens",
            "a key insight: dropout 0.5 helps",
            "bearer of bad news",
            "task-specific",
        ] {
            assert_eq!(redact(text, Some("none")), text);
        }
        // A placeholder key is too short to look for.
        assert_eq!(
            redact("none of these changes", Some("none")),
            "none of these changes"
        );
    }

    #[test]
    fn terminal_controls_become_visible() {
        assert_eq!(printable("plain\ttext\nnext"), "plain\ttext\nnext");
        assert_eq!(
            printable("\u{1b}]0;pwned\u{7}\u{1b}[2Jx"),
            "\\x1b]0;pwned\\x07\\x1b[2Jx"
        );
        assert_eq!(printable("a\rb\u{9b}31m"), "a\\x0db\\x9b31m");
        assert_eq!(printable("lr\u{202e}0.1"), "lr\\u{202e}0.1");
        assert_eq!(printable("学习率 → 0.1"), "学习率 → 0.1");
        let json = serde_json::to_string("x\u{1b}\u{9b}\u{2066}").unwrap();
        let shown = printable_json(&json);
        assert!(!shown.chars().any(is_hostile), "{shown}");
        assert_eq!(
            serde_json::from_str::<String>(&shown).unwrap(),
            "x\u{1b}\u{9b}\u{2066}"
        );
    }

    #[test]
    fn json_files_escape_what_serde_json_leaves_raw() {
        let text = "lr\u{202e}0.1 \u{1b}[2J\u{9b}31m\u{7f} 学习率 \"q\"";
        let value = serde_json::json!({ "rationale": text, "n": [1.5, 2] });
        for json in [
            json_string(&value).unwrap(),
            json_string_pretty(&value).unwrap(),
        ] {
            assert!(!json.chars().any(is_hostile), "{json}");
            assert!(json.contains(r"lr\u202e0.1"), "{json}");
            assert!(json.contains(r"\u009b31m\u007f 学习率"), "{json}");
            let back: serde_json::Value = serde_json::from_str(&json).unwrap();
            assert_eq!(back, value);
        }
        // The layout is serde_json's own.
        let plain = serde_json::json!({ "a": [1, {"b": "c"}] });
        assert_eq!(
            json_string(&plain).unwrap(),
            serde_json::to_string(&plain).unwrap()
        );
        assert_eq!(
            json_string_pretty(&plain).unwrap(),
            serde_json::to_string_pretty(&plain).unwrap()
        );
    }
}
