//! SQS's character rule for message bodies, applied to JSON.
//!
//! SQS takes only the characters XML 1.0 allows: `#x9 | #xA | #xD | #x20–#xD7FF | #xE000–#xFFFD |
//! #x10000–#x10FFFF`, and refuses a message with any other (`InvalidMessageContents`). JSON text
//! never holds a raw control character (they are escaped, or invalid) nor a surrogate (not in a
//! Rust string), so of those only U+FFFE and U+FFFF can occur, raw, inside a JSON string: a user's
//! text, a profile name, a callback value. Written as the escapes `\ufffe` and `\uffff`, the JSON
//! stands for the same value and SQS accepts it.

use std::borrow::Cow;

/// `json` with every raw U+FFFE and U+FFFF written as a JSON escape; borrowed (no copy) when there
/// is none, which is nearly always. `json` must be JSON text: outside strings JSON is ASCII, so
/// these characters can only be inside a string, where the escape is the same character.
#[must_use]
pub fn sqs_safe(json: &str) -> Cow<'_, str> {
    let bytes = json.as_bytes();
    // U+FFFE and U+FFFF are EF BF BE and EF BF BF in UTF-8.
    let mut hits = memchr::memmem::find_iter(bytes, b"\xEF\xBF")
        .filter(|&at| matches!(bytes.get(at + 2), Some(0xBE | 0xBF)))
        .peekable();
    if hits.peek().is_none() {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 8);
    let mut copied = 0;
    for at in hits {
        out.push_str(&json[copied..at]);
        out.push_str(if bytes[at + 2] == 0xBE { "\\ufffe" } else { "\\uffff" });
        copied = at + 3;
    }
    out.push_str(&json[copied..]);
    Cow::Owned(out)
}

/// Whether SQS accepts `c` in a message body.
#[must_use]
pub fn sqs_allows(c: char) -> bool {
    matches!(c, '\u{9}' | '\u{A}' | '\u{D}' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    #[test]
    fn text_without_them_is_borrowed_unchanged() {
        let text = json!({"text": "héllo 👋 \u{FFFD} \u{FFEF} \u{E000}", "n": 1}).to_string();
        assert!(matches!(sqs_safe(&text), Cow::Borrowed(t) if t == text));
    }

    #[test]
    fn both_characters_become_escapes_of_the_same_value() {
        let value = json!({"text": "a\u{FFFF}b\u{FFFE}\u{FFFF}", "name": "\u{FFFE}"});
        let text = value.to_string();
        assert!(!text.chars().all(sqs_allows), "serde_json writes them raw");
        let safe = sqs_safe(&text);
        assert_eq!(safe, r#"{"name":"\ufffe","text":"a\uffffb\ufffe\uffff"}"#);
        assert!(safe.chars().all(sqs_allows));
        assert_eq!(serde_json::from_str::<Value>(&safe).unwrap(), value);
    }

    proptest! {
        /// Any JSON value: what SQS is given, it accepts, and it reads back as the same value.
        #[test]
        fn any_string_survives(s in "\\PC*|[\u{FFF0}-\u{FFFF}a\"\\\\]{0,12}", key in "[\u{FFFE}\u{FFFF}x]{0,3}") {
            let value = json!({key: [s.clone(), {"nested": s}]});
            let text = value.to_string();
            let safe = sqs_safe(&text);
            prop_assert!(safe.chars().all(sqs_allows));
            prop_assert_eq!(serde_json::from_str::<Value>(&safe).unwrap(), value);
        }
    }
}
