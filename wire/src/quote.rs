//! Bounded quoting of what a peer sent: a refusal or log line names at most a short,
//! escaped prefix, so a peer cannot grow our logs or our answers with its bytes.

/// Characters of a peer's text quoted in a refusal or log line.
pub const QUOTE_CHARS_MAX: usize = 64;
/// Characters kept of an error text that may embed what a peer sent (e.g. a decoder's
/// "invalid type: string ..." message).
pub const ERROR_TEXT_CHARS_MAX: usize = 200;

/// `text` as an escaped, double-quoted string of at most `QUOTE_CHARS_MAX` characters
/// (before escaping), with its full length in bytes when it was cut.
pub fn quote(text: &str) -> String {
    let mut chars = text.chars();
    let prefix: String = chars.by_ref().take(QUOTE_CHARS_MAX).collect();
    if chars.next().is_none() {
        format!("{prefix:?}")
    } else {
        format!("{prefix:?}... ({} bytes)", text.len())
    }
}

/// `text` cut to at most `max_chars` characters, marked when cut.
pub fn truncate(text: String, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        None => text,
        Some((end, _)) => format!("{}... ({} bytes)", &text[..end], text.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_quoted_whole() {
        assert_eq!(quote("c1"), "\"c1\"");
        assert_eq!(quote("a\"b\n"), "\"a\\\"b\\n\"");
    }

    #[test]
    fn long_text_is_cut_to_a_bounded_escaped_prefix() {
        let text = "\"".repeat(15 * 1024 * 1024);
        let quoted = quote(&text);
        // Every quote escapes to two characters: the prefix, its quotes and the length.
        assert!(
            quoted.len() <= 2 * QUOTE_CHARS_MAX + 32,
            "{} bytes",
            quoted.len()
        );
        assert!(
            quoted.ends_with(&format!("({} bytes)", text.len())),
            "{quoted}"
        );
    }

    #[test]
    fn truncate_keeps_short_text_and_cuts_long_text_on_a_char_boundary() {
        assert_eq!(truncate("abc".into(), 3), "abc");
        assert_eq!(truncate("ééé".into(), 2), "éé... (6 bytes)");
    }
}
