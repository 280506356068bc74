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

/// Multi-line text from agents (NGINX error output): bounded, no control characters
/// other than newlines and tabs.
pub fn display_text_multiline(field: &str, text: &str, max: usize) -> Result<(), ApiError> {
    if text.len() <= max
        && !text
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        Ok(())
    } else {
        Err(ApiError::invalid(
            field,
            format!("must be at most {max} characters of text"),
        ))
    }
}

/// A domain for `server_name`: RFC 1123 labels, lower-cased, an optional leading `*.`
/// wildcard, IDN converted to punycode. Returns the normalised form.
pub fn domain(field: &str, raw: &str) -> Result<String, ApiError> {
    let bad = |why: &str| ApiError::invalid(field, format!("{raw:?} is not a valid domain: {why}"));
    if raw.is_empty() || raw.len() > 253 {
        return Err(bad("must be 1-253 characters"));
    }
    if raw.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(bad("must not contain spaces or control characters"));
    }
    let (wildcard, rest) = match raw.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, raw),
    };
    let ascii = if rest.is_ascii() {
        rest.to_ascii_lowercase()
    } else {
        idna::domain_to_ascii(rest).map_err(|_| bad("not a valid internationalised name"))?
    };
    let labels: Vec<&str> = ascii.split('.').collect();
    if labels.len() < 2 && !wildcard {
        // Single-label names (`localhost`) are legal in server_name but almost always a
        // mistake in a public routing table.
        return Err(bad("needs at least two labels, like example.com"));
    }
    for label in &labels {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !ok {
            return Err(bad(
                "labels are 1-63 letters, digits or '-', not starting or ending with '-'",
            ));
        }
    }
    let full = if wildcard {
        format!("*.{ascii}")
    } else {
        ascii
    };
    if full.len() > 253 {
        return Err(bad("too long"));
    }
    Ok(full)
}

/// An HTTP header name: RFC 7230 token characters limited to letters, digits and '-'.
pub fn header_name(field: &str, name: &str) -> Result<(), ApiError> {
    if !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        Ok(())
    } else {
        Err(ApiError::invalid(
            field,
            "must be 1-64 letters, digits or '-'",
        ))
    }
}

/// A header value written into an NGINX double-quoted string: printable ASCII without
/// the characters NGINX or the config grammar would interpret (`"`, `\`, `$`, `;`, `{`,
/// `}`, `#`) and without line breaks.
pub fn header_value(field: &str, value: &str) -> Result<(), ApiError> {
    let ok = value.len() <= 512
        && value
            .bytes()
            .all(|b| (0x20..0x7f).contains(&b) && !b"\"\\$;{}#".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            field,
            "must be at most 512 printable ASCII characters, without \" \\ $ ; { } #",
        ))
    }
}

/// A location prefix: `/` followed by URL path characters only.
pub fn path_prefix(field: &str, path: &str) -> Result<(), ApiError> {
    let ok = path.starts_with('/')
        && path.len() <= 256
        && !path.contains("//")
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/-._~%".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            field,
            "must start with '/' and contain only letters, digits and / - . _ ~ %",
        ))
    }
}

/// A Docker container name (Docker's own grammar).
pub fn container_name(field: &str, name: &str) -> Result<(), ApiError> {
    let b = name.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 128
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            field,
            "must be a Docker container name: letters, digits, '_', '.', '-'",
        ))
    }
}

/// A Docker label selector `key=value`.
pub fn label_selector(field: &str, sel: &str) -> Result<(), ApiError> {
    let ok = sel.len() <= 256
        && match sel.split_once('=') {
            Some((k, v)) => {
                !k.is_empty()
                    && k.bytes()
                        .all(|c| c.is_ascii_alphanumeric() || b"._-/".contains(&c))
                    && v.bytes()
                        .all(|c| c.is_ascii_alphanumeric() || b"._-/:".contains(&c))
            }
            None => false,
        };
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            field,
            "must be key=value with letters, digits and . _ - / (value also :)",
        ))
    }
}

/// A target host: an IP literal or an RFC 1123 host name.
pub fn target_host(field: &str, host: &str) -> Result<(), ApiError> {
    if host.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    hostname(field, host)
}

/// An integer within an inclusive range.
pub fn in_range(field: &str, value: u32, min: u32, max: u32) -> Result<(), ApiError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(ApiError::invalid(
            field,
            format!("must be between {min} and {max}"),
        ))
    }
}

#[cfg(test)]
mod proxy_tests {
    use super::*;

    #[test]
    fn domains_normalise_and_reject_injection() {
        assert_eq!(
            domain("d", "Shop.Example.COM").expect("ok"),
            "shop.example.com"
        );
        assert_eq!(domain("d", "*.example.com").expect("ok"), "*.example.com");
        assert_eq!(
            domain("d", "bücher.example").expect("idn"),
            "xn--bcher-kva.example"
        );
        for bad in [
            "",
            "a",
            "*.",
            "a..b",
            "-a.com",
            "a-.com",
            "a.com;",
            "a.com{",
            "a.com}",
            "a.com\n",
            "a$b.com",
            "a'b.com",
            "a\"b.com",
            "a#b.com",
            "a\0b.com",
            "a b.com",
            "*.*.a.com",
            "a.*.com",
            "_dmarc.a.com",
        ] {
            assert!(domain("d", bad).is_err(), "{bad:?}");
        }
        assert!(domain("d", &format!("{}.com", "a".repeat(64))).is_err());
    }

    #[test]
    fn header_values_and_paths() {
        assert!(header_value("v", "max-age=31536000; includeSubDomains").is_err());
        assert!(header_value("v", "max-age=31536000, preload").is_ok());
        for bad in ["a\"b", "a\\b", "$host", "a{", "a}", "a#", "a\nb", "a\0"] {
            assert!(header_value("v", bad).is_err(), "{bad:?}");
        }
        assert!(header_name("n", "X-Frame-Options").is_ok());
        assert!(header_name("n", "X Frame").is_err());
        assert!(path_prefix("p", "/api/v1/").is_ok());
        for bad in ["api", "/a b", "/a;", "/a{", "//x", "/$uri", "/a\"", "/a#"] {
            assert!(path_prefix("p", bad).is_err(), "{bad:?}");
        }
        assert!(label_selector("l", "app=web").is_ok());
        assert!(label_selector("l", "app").is_err());
        assert!(label_selector("l", "app=we b").is_err());
        assert!(container_name("c", "web_1.x").is_ok());
        assert!(container_name("c", "web;rm").is_err());
    }
}
