//! Rules for the text people type: display names, room names and chat.
//!
//! Every rule trims first and counts characters (not bytes). Names are what others trust to
//! tell people apart, so they refuse what could make two different names look the same:
//! control characters, invisible characters and bidirectional overrides. Chat refuses
//! control characters, which would otherwise travel escaped to six bytes each in every
//! `welcome`.

/// Longest accepted display name, in characters, after trimming.
pub const MAX_NAME_CHARS: usize = 32;
/// Longest accepted chat message, in characters, after trimming.
pub const MAX_CHAT_CHARS: usize = 500;
/// Longest accepted room name, in characters, after trimming.
pub const MAX_ROOM_NAME_CHARS: usize = 80;
/// Longest accepted queue item title, in characters, after trimming.
pub const MAX_TITLE_CHARS: usize = 200;

/// Characters that are not seen but change what is seen: bidirectional embeddings,
/// overrides, isolates and marks, zero-width spaces and joiners that are not needed to
/// spell a word, fillers that render as blank, tags, and line separators. A name holding one
/// could look exactly like another member's.
///
/// The zero-width joiner and non-joiner (U+200D, U+200C) and the variation selectors stay
/// allowed: emoji sequences and several scripts need them to be spelled at all.
pub fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'             // soft hyphen
        | '\u{034F}'           // combining grapheme joiner
        | '\u{061C}'           // Arabic letter mark
        | '\u{115F}' | '\u{1160}' | '\u{3164}' | '\u{FFA0}' // Hangul fillers
        | '\u{17B4}' | '\u{17B5}' // Khmer inherent vowels
        | '\u{180E}'           // Mongolian vowel separator
        | '\u{200B}'           // zero-width space
        | '\u{200E}' | '\u{200F}' // left-to-right and right-to-left marks
        | '\u{2028}' | '\u{2029}' // line and paragraph separators
        | '\u{202A}'..='\u{202E}' // bidirectional embeddings and overrides
        | '\u{2060}'..='\u{2064}' // word joiner, invisible operators
        | '\u{2066}'..='\u{206F}' // bidirectional isolates, deprecated format characters
        | '\u{FEFF}'           // byte order mark, zero-width no-break space
        | '\u{FFF9}'..='\u{FFFB}' // interlinear annotation
        | '\u{E0000}'..='\u{E007F}' // tags
    )
}

/// Whether `c` shows something by itself: not a space, a joiner, a variation selector or a
/// combining mark (which only decorate the character before them).
fn is_visible(c: char) -> bool {
    !(c.is_whitespace()
        || matches!(
            c,
            '\u{200C}' | '\u{200D}' | '\u{FE00}'..='\u{FE0F}' | '\u{0300}'..='\u{036F}'
        )
        || c.is_control()
        || is_invisible(c))
}

/// Trims a display name and checks it: 1–32 characters, at least one of them visible, no
/// control or invisible characters.
pub fn clean_name(raw: &str) -> Result<String, String> {
    clean_label(raw, 1, MAX_NAME_CHARS, "name")
}

/// Trims a room name and checks it like a display name, except that it may be empty
/// (0–80 characters).
pub fn clean_room_name(raw: &str) -> Result<String, String> {
    clean_label(raw, 0, MAX_ROOM_NAME_CHARS, "room name")
}

fn clean_label(raw: &str, min: usize, max: usize, what: &str) -> Result<String, String> {
    let label = raw.trim();
    let chars = label.chars().count();
    if chars < min || chars > max {
        return Err(format!(
            "{what} must be {min} to {max} characters after trimming"
        ));
    }
    if label.chars().any(char::is_control) {
        return Err(format!("{what} must not contain control characters"));
    }
    if label.chars().any(is_invisible) {
        return Err(format!(
            "{what} must not contain invisible or text-direction characters"
        ));
    }
    if chars > 0 && !label.chars().any(is_visible) {
        return Err(format!("{what} must contain a visible character"));
    }
    Ok(label.to_owned())
}

/// Trims a queue item's title and checks it like a room name (at most 200 characters);
/// `None` when nothing is left.
pub fn clean_title(raw: &str) -> Result<Option<String>, String> {
    let title = clean_label(raw, 0, MAX_TITLE_CHARS, "title")?;
    Ok((!title.is_empty()).then_some(title))
}

/// Trims chat text and checks it: 1–500 characters, no control characters.
pub fn clean_chat(raw: &str) -> Result<String, String> {
    let text = raw.trim();
    let chars = text.chars().count();
    if chars == 0 || chars > MAX_CHAT_CHARS {
        return Err(format!(
            "chat text must be 1 to {MAX_CHAT_CHARS} characters after trimming"
        ));
    }
    if text.chars().any(char::is_control) {
        return Err("chat text must not contain control characters (one line only)".into());
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(clean_name("  Ann ").unwrap(), "Ann");
        assert!(clean_name("   ").is_err());
        assert!(clean_name(&"x".repeat(33)).is_err());
        assert!(clean_name(&"é".repeat(32)).is_ok());
        assert!(clean_name("a\u{7}b").is_err());
    }

    #[test]
    fn names_refuse_what_could_impersonate_someone() {
        for bad in [
            "Ann\u{202E}",         // right-to-left override
            "\u{2067}Ann\u{2069}", // isolate
            "An\u{200B}n",         // zero-width space
            "Ann\u{FEFF}",         // byte order mark
            "A\u{200F}nn",         // right-to-left mark
            "Ann\u{E0041}",        // tag character
            "\u{3164}",            // Hangul filler: looks empty
            "\u{200D}",            // only a joiner
            "Ann\u{2028}Bob",      // line separator
        ] {
            assert!(clean_name(bad).is_err(), "{bad:?} was accepted");
        }
        // Scripts and emoji that need joiners and selectors still work.
        for good in ["👩‍👩‍👧", "❤️ fan", "می‌خواهم", "Zoë", "李雷", "e\u{301}lodie"]
        {
            assert_eq!(clean_name(good).as_deref(), Ok(good), "{good:?}");
        }
    }

    #[test]
    fn room_names_may_be_empty_but_not_invisible() {
        assert_eq!(clean_room_name("   ").unwrap(), "");
        assert_eq!(clean_room_name(" Movie night ").unwrap(), "Movie night");
        assert!(clean_room_name(&"x".repeat(81)).is_err());
        assert!(clean_room_name("Movie\u{202E}night").is_err());
        assert!(clean_room_name("a\tb").is_err());
    }

    #[test]
    fn titles_are_optional_and_clean() {
        assert_eq!(clean_title("  ").unwrap(), None);
        assert_eq!(clean_title(" Ep. 2 ").unwrap().as_deref(), Some("Ep. 2"));
        assert!(clean_title(&"x".repeat(201)).is_err());
        assert!(clean_title("a\u{202E}b").is_err());
    }

    #[test]
    fn chat_is_trimmed_bounded_and_one_line() {
        assert_eq!(clean_chat(" hi ").unwrap(), "hi");
        assert!(clean_chat("").is_err());
        assert!(clean_chat(&"x".repeat(501)).is_err());
        assert!(clean_chat(&"x".repeat(500)).is_ok());
        assert!(clean_chat("a\u{0}b").is_err());
        assert!(clean_chat("line\nbreak").is_err());
        assert!(clean_chat("bell\u{7}").is_err());
        assert!(clean_chat("שלום, עולם").is_ok());
    }
}
