//! Shortening text for messages that must stay on one line.

/// At most `max` bytes of `s` (cut on a character boundary, with `...`).
pub fn cap(s: &str, max: usize) -> String {
    if s.len() <= max {
        s.to_string()
    } else {
        format!("{}...", &s[..s.floor_char_boundary(max)])
    }
}

/// An error and its causes (`{:#}`) on one line, at most 400 bytes.
pub fn one_line(e: &impl std::fmt::Display) -> String {
    let s = format!("{e:#}");
    cap(&s.split_whitespace().collect::<Vec<_>>().join(" "), 400)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_on_a_character_boundary() {
        assert_eq!(cap("short", 10), "short");
        assert_eq!(cap("abcdef", 3), "abc...");
        assert_eq!(cap("ééé", 3), "é...");
        assert_eq!(one_line(&"a\n  b\tc"), "a b c");
    }
}
