//! Outside text made safe for Markdown: escaped table cells, code spans, fenced diffs and
//! link destinations.

use similar::TextDiff;

/// Characters with a meaning in inline Markdown that outside text must not get: tables
/// (`|`), code spans, emphasis, links and images (`[`), HTML and autolinks (`<`), and
/// GitHub's math (`$`). `_` is left alone: GFM ignores it inside words, and escaping it
/// would litter every `learning_rate`.
pub(super) const INLINE_SPECIAL: &[char] = &['\\', '`', '*', '[', ']', '<', '>', '|', '$'];

/// A unified diff of the config in a fenced block, or `None` when nothing changed. The
/// fence is longer than any backtick run in the text, so a config cannot close it.
pub(crate) fn diff_block(old: &str, new: &str, old_name: &str, new_name: &str) -> Option<String> {
    if old == new {
        return None;
    }
    let diff = TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(old_name, new_name)
        .to_string();
    let fence = "`".repeat(longest_run(&diff, '`').max(2) + 1);
    let newline = if diff.ends_with('\n') { "" } else { "\n" };
    Some(format!("{fence}diff\n{diff}{newline}{fence}\n"))
}

pub(super) fn longest_run(text: &str, c: char) -> usize {
    let (mut best, mut current) = (0, 0);
    for ch in text.chars() {
        current = if ch == c { current + 1 } else { 0 };
        best = best.max(current);
    }
    best
}

/// Outside text made safe for one line of Markdown, table cells included: whitespace runs
/// (newlines too) become one space, control characters go, inline syntax is
/// backslash-escaped, and a leading block marker (`#`, `-`, `1.` …) is neutralised.
pub(crate) fn escape_cell(text: &str) -> String {
    neutralise_block_marker(escape_inline(&one_line(text)))
}

/// A sentence (a finding, a rationale, a note) made safe as `escape_cell` makes any text,
/// except that a pair of backticks, which retune's own sentences put around a config key
/// or a column name (and an LLM around a parameter), becomes a code span instead of two
/// literal backticks. What is between them goes through `code`, so it is inert whatever
/// it holds; an unpaired backtick stays a literal one.
pub(crate) fn prose(text: &str) -> String {
    let line = one_line(text);
    let parts: Vec<&str> = line.split('`').collect();
    let mut out = String::with_capacity(line.len() + 8);
    for (i, part) in parts.iter().enumerate() {
        let closed = i + 1 < parts.len();
        if i % 2 == 1 && closed && !part.trim().is_empty() {
            out.push_str(&code(part));
        } else if i % 2 == 1 {
            // An empty pair, or a backtick nothing closes: literal backticks.
            out.push_str(r"\`");
            out.push_str(&escape_inline(part));
            if closed {
                out.push_str(r"\`");
            }
        } else {
            out.push_str(&escape_inline(part));
        }
    }
    neutralise_block_marker(out)
}

fn escape_inline(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if INLINE_SPECIAL.contains(&c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn neutralise_block_marker(mut out: String) -> String {
    if out.starts_with(['#', '+', '-', '=', '~']) {
        out.insert(0, '\\');
    } else {
        // "1. text" or "1) text" would start an ordered list.
        let digits = out.chars().take_while(char::is_ascii_digit).count();
        let rest = &out[digits..];
        if (1..=9).contains(&digits)
            && rest.starts_with(['.', ')'])
            && rest[1..].chars().next().is_none_or(|c| c == ' ')
        {
            out.insert(digits, '\\');
        }
    }
    out
}

/// An identifier from outside (config key, path, id) as a code span, with a fence longer
/// than any backtick run inside. A `|` cannot be escaped inside a code span outside a
/// table, so such text is escaped as plain text instead.
pub(crate) fn code(text: &str) -> String {
    let one_line = one_line(text);
    if one_line.is_empty() || one_line.contains('|') {
        return escape_cell(&one_line);
    }
    let fence = "`".repeat(longest_run(&one_line, '`') + 1);
    let pad = if one_line.starts_with('`') || one_line.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{one_line}{pad}{fence}")
}

/// Whitespace runs (newlines included) as one space, none after CJK punctuation, which
/// carries its own spacing; control characters dropped, and the other characters a
/// terminal or viewer obeys (C1 controls, bidi overrides: `crate::untrusted::is_hostile`),
/// since a report is also read with `cat`.
pub(super) fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.split_whitespace() {
        let cjk_stop = out.ends_with(['。', '！', '？', '；', '：', '，', '、', '）', '」']);
        if !out.is_empty() && !cjk_stop {
            out.push(' ');
        }
        out.extend(
            word.chars()
                .filter(|c| !c.is_control() && !crate::untrusted::is_hostile(*c)),
        );
    }
    out
}

pub(super) fn path_code(path: &std::path::Path) -> String {
    code(&path.display().to_string())
}

/// A link destination: bare when it is plain, in angle brackets when it has spaces or
/// parentheses (CommonMark's form for those).
pub(super) fn link_destination(href: &str) -> String {
    if href.contains([' ', '(', ')', '<', '>']) {
        format!("<{}>", href.replace(['<', '>', '\n'], ""))
    } else {
        href.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_cell_keeps_tables_and_html_intact() {
        assert_eq!(escape_cell("a | b"), r"a \| b");
        assert_eq!(
            escape_cell("line one\nline two\r\n\n three"),
            "line one line two three"
        );
        assert_eq!(
            escape_cell("<img src=x onerror=alert(1)>"),
            r"\<img src=x onerror=alert(1)\>"
        );
        assert_eq!(
            escape_cell("![pixel](http://t.example/p.png)"),
            r"!\[pixel\](http://t.example/p.png)"
        );
        assert_eq!(escape_cell("use `lr` *now*"), r"use \`lr\` \*now\*");
        assert_eq!(escape_cell("# Heading"), r"\# Heading");
        assert_eq!(escape_cell("- item"), r"\- item");
        assert_eq!(escape_cell("1. first"), r"1\. first");
        assert_eq!(escape_cell("1.5 is fine"), "1.5 is fine");
        assert_eq!(escape_cell("costs $5"), r"costs \$5");
        assert_eq!(escape_cell("C:\\data"), r"C:\\data");
        assert_eq!(escape_cell("learning_rate 降低"), "learning_rate 降低");
        assert_eq!(escape_cell("tab\there\u{7}"), "tab here");
        assert_eq!(escape_cell("lr\u{202e}0.1\u{9b}2J\u{2066}"), "lr0.12J");
        assert_eq!(escape_cell("第一句。\n第二句"), "第一句。第二句");
    }

    #[test]
    fn prose_turns_backtick_pairs_into_code_spans_and_escapes_the_rest() {
        assert_eq!(
            prose("The class weights in `class_weights` span 12.5×"),
            "The class weights in `class_weights` span 12.5×"
        );
        assert_eq!(prose("`a` and *b* and `c`"), r"`a` and \*b\* and `c`");
        // What is between the backticks is outside text: inert however it is spelt.
        assert_eq!(prose("key `<img src=x>` here"), "key `<img src=x>` here");
        assert_eq!(prose("key `a|b` in a table"), r"key a\|b in a table");
        // Unpaired or empty: literal backticks, as escape_cell writes them.
        assert_eq!(prose("one ` only"), r"one \` only");
        assert_eq!(prose("empty `` pair"), r"empty \`\` pair");
        assert_eq!(prose("- `x` first"), r"\- `x` first");
        assert_eq!(prose("`x` first"), "`x` first");
        assert_eq!(prose("no code at all"), escape_cell("no code at all"));
    }

    #[test]
    fn code_spans_survive_backticks_and_pipes() {
        assert_eq!(code("optimizer.lr"), "`optimizer.lr`");
        assert_eq!(code("a`b"), "``a`b``");
        assert_eq!(code("`x"), "`` `x ``");
        assert_eq!(code("a|b"), r"a\|b");
        assert_eq!(code("two\nlines"), "`two lines`");
    }

    #[test]
    fn the_diff_block_shows_only_what_changed() {
        let old = "{\n  \"a\": 1,\n  \"b\": 2,\n  \"c\": 3,\n  \"d\": 4,\n  \"e\": 5,\n  \"lr\": 0.001\n}\n";
        let new = old.replace("0.001", "0.0003");
        let block = diff_block(old, &new, "run/config.json", "run/config.retuned.json").unwrap();
        assert!(block.starts_with("```diff\n--- run/config.json\n+++ run/config.retuned.json\n"));
        assert!(
            block.contains("\n-  \"lr\": 0.001\n+  \"lr\": 0.0003\n"),
            "{block}"
        );
        assert!(!block.contains("\"a\": 1"), "context is 3 lines: {block}");
        assert!(block.ends_with("}\n```\n"));
        assert!(diff_block(old, old, "a", "b").is_none());
        // A config string holding a fence cannot close the block early.
        let sneaky = "{\"note\": \"```\", \"lr\": 1}";
        let block = diff_block(sneaky, &sneaky.replace("1}", "2}"), "a", "b").unwrap();
        assert!(
            block.starts_with("````diff\n") && block.ends_with("\n````\n"),
            "{block}"
        );
    }
}
