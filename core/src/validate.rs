//! Grammars for values users and agents send. Anything that may one day reach a config
//! file or a shell is checked here against a strict whitelist, never escaped later.

use crate::error::ApiError;

/// Node names: 1–63 of `[A-Za-z0-9._-]`, starting with a letter or digit. Safe in file
/// names, NGINX upstream names and shell words without quoting.
pub fn node_name(field: &str, name: &str) -> Result<(), ApiError> {
    let bytes = name.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            field,
            "must be 1-63 characters of letters, digits, '.', '_' or '-', starting with a letter or digit",
        ))
    }
}

/// Host names reported by agents: RFC 1123 labels (underscores tolerated, as real hosts
/// have them), at most 253 characters.
pub fn hostname(field: &str, name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            field,
            "must be an RFC 1123 host name (labels of letters, digits and '-', at most 253 characters)",
        ))
    }
}

/// Free text shown in the UI (versions, OS names): printable, bounded.
pub fn display_text(field: &str, text: &str, max: usize) -> Result<(), ApiError> {
    if text.len() <= max && !text.chars().any(char::is_control) {
        Ok(())
    } else {
        Err(ApiError::invalid(
            field,
            format!("must be at most {max} printable characters"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names() {
        for ok in ["a", "web-1", "db_2.eu", &"x".repeat(63)] {
            assert!(node_name("name", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-a",
            ".a",
            "a b",
            "a;b",
            "a{",
            "a}",
            "a\nb",
            "a$b",
            "a'b",
            "a\"b",
            "a#b",
            "a\0b",
            "é",
            &"x".repeat(64),
        ] {
            assert!(node_name("name", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn hostnames() {
        assert!(hostname("hostname", "web-1.example.com").is_ok());
        assert!(hostname("hostname", "a..b").is_err());
        assert!(hostname("hostname", "a;b").is_err());
        assert!(hostname("hostname", "").is_err());
    }
}
