//! Grammars for every value that may reach a config file, a path or a shell: names,
//! domains, header names and values, paths, hosts, ranges. Anything is checked against a
//! strict whitelist here, never escaped later.
//!
//! One copy for both binaries: the core checks what users and agents send with these
//! functions, and the agent checks every value of a desired-state section with the same
//! ones before rendering (defence in depth: a core, or someone holding its address, that
//! sends a value the core itself would have refused gets the whole document refused).
//! Errors are a small [`Invalid`] naming the field; the core maps it to its HTTP error.

use std::fmt;

use crate::{Endpoint, HeaderSpec, NginxDesired, ServiceSpec};

/// A value that breaks its field's grammar or range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The field at fault, as a path (`services[0].domains[1]`).
    pub field: String,
    pub message: String,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for Invalid {}

pub type Result<T = ()> = std::result::Result<T, Invalid>;

fn invalid(field: &str, message: impl Into<String>) -> Invalid {
    Invalid {
        field: field.to_string(),
        message: message.into(),
    }
}

/// Inclusive ranges shared by the core (service input) and the agent (desired state).
pub mod ranges {
    pub const TIMEOUT_SECS: (u32, u32) = (1, 3600);
    pub const BODY_SIZE_MB: (u32, u32) = (0, 10240);
    pub const MAX_FAILS: (u32, u32) = (0, 100);
    pub const FAIL_TIMEOUT_SECS: (u32, u32) = (1, 3600);
    pub const WEIGHT: (u32, u32) = (1, 100);
    pub const PORT: (u32, u32) = (1, 65535);
}

/// Node and service names: 1–63 of `[A-Za-z0-9._-]`, starting with a letter or digit.
/// Safe in NGINX upstream names and shell words without quoting.
pub fn node_name(field: &str, name: &str) -> Result {
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
        Err(invalid(
            field,
            "must be 1-63 characters of letters, digits, '.', '_' or '-', starting with a letter or digit",
        ))
    }
}

/// IDs the core generates (UUIDs, `capstan-ui`): 1–64 of lower-case letters, digits and
/// '-', starting with a letter or digit. The agent names files after them, so no '.',
/// '/' or anything else a path could use.
pub fn resource_id(field: &str, id: &str) -> Result {
    let b = id.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            field,
            "must be 1-64 lower-case letters, digits or '-', starting with a letter or digit",
        ))
    }
}

/// Host names reported by agents: RFC 1123 labels (underscores tolerated, as real hosts
/// have them), at most 253 characters.
pub fn hostname(field: &str, name: &str) -> Result {
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
        Err(invalid(
            field,
            "must be an RFC 1123 host name (labels of letters, digits and '-', at most 253 characters)",
        ))
    }
}

/// Free text shown in the UI (versions, OS names): printable, bounded.
pub fn display_text(field: &str, text: &str, max: usize) -> Result {
    if text.len() <= max && !text.chars().any(char::is_control) {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("must be at most {max} printable characters"),
        ))
    }
}

/// Multi-line text from agents (NGINX error output): bounded, no control characters
/// other than newlines and tabs.
pub fn display_text_multiline(field: &str, text: &str, max: usize) -> Result {
    if text.len() <= max
        && !text
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("must be at most {max} characters of text"),
        ))
    }
}

/// A domain for `server_name`: RFC 1123 labels, lower-cased, an optional leading `*.`
/// wildcard, IDN converted to punycode. Returns the normalised form.
pub fn domain(field: &str, raw: &str) -> Result<String> {
    let shown: String = raw.chars().take(80).collect();
    let bad = |why: &str| invalid(field, format!("{shown:?} is not a valid domain: {why}"));
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

/// A domain already in normal form (what the core stores and sends): valid, and equal to
/// its normalisation.
pub fn normalised_domain(field: &str, d: &str) -> Result {
    if domain(field, d)? == d {
        Ok(())
    } else {
        Err(invalid(field, "must be lower-case ASCII (punycode)"))
    }
}

/// An HTTP header name: RFC 7230 token characters limited to letters, digits and '-'.
pub fn header_name(field: &str, name: &str) -> Result {
    if !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        Ok(())
    } else {
        Err(invalid(field, "must be 1-64 letters, digits or '-'"))
    }
}

/// A header value written into an NGINX double-quoted string: printable ASCII without
/// the characters NGINX or the config grammar would interpret (`"`, `\`, `$`, `;`, `{`,
/// `}`, `#`) and without line breaks.
pub fn header_value(field: &str, value: &str) -> Result {
    let ok = value.len() <= 512
        && value
            .bytes()
            .all(|b| (0x20..0x7f).contains(&b) && !b"\"\\$;{}#".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            field,
            "must be at most 512 printable ASCII characters, without \" \\ $ ; { } #",
        ))
    }
}

/// A location prefix: `/` followed by URL path characters only.
pub fn path_prefix(field: &str, path: &str) -> Result {
    let ok = path.starts_with('/')
        && path.len() <= 256
        && !path.contains("//")
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/-._~%".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            field,
            "must start with '/' and contain only letters, digits and / - . _ ~ %",
        ))
    }
}

/// A Docker container name (Docker's own grammar).
pub fn container_name(field: &str, name: &str) -> Result {
    let b = name.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 128
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            field,
            "must be a Docker container name: letters, digits, '_', '.', '-'",
        ))
    }
}

/// A Docker label selector `key=value`.
pub fn label_selector(field: &str, sel: &str) -> Result {
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
        Err(invalid(
            field,
            "must be key=value with letters, digits and . _ - / (value also :)",
        ))
    }
}

/// A target host: an IP literal or an RFC 1123 host name.
pub fn target_host(field: &str, host: &str) -> Result {
    if host.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    hostname(field, host)
}

/// `host:port` or `[v6]:port`, as an NGINX `server` line takes it.
pub fn host_port(field: &str, value: &str) -> Result {
    let bad = || invalid(field, "must be host:port (IPv6 in brackets)");
    let (host, port) = value.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    if port == 0 {
        return Err(bad());
    }
    match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6
            .parse::<std::net::Ipv6Addr>()
            .map(|_| ())
            .map_err(|_| bad()),
        None if host.contains(':') => Err(bad()),
        None => target_host(field, host),
    }
}

/// An integer within an inclusive range.
pub fn in_range(field: &str, value: u32, (min, max): (u32, u32)) -> Result {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(invalid(field, format!("must be between {min} and {max}")))
    }
}

/// A log source: a container name, or `nginx:access` / `nginx:error`.
pub fn log_source(field: &str, source: &str) -> Result {
    if source == crate::NGINX_ACCESS_LOG || source == crate::NGINX_ERROR_LOG {
        return Ok(());
    }
    container_name(field, source)
}

/// Every value of the NGINX section of a desired state, as the core would have checked
/// it. The agent refuses the whole document on the first invalid value.
pub fn nginx_desired(d: &NginxDesired) -> Result {
    for (i, svc) in d.services.iter().enumerate() {
        service_spec(&format!("services[{i}]"), svc)?;
    }
    let mut ids: Vec<&str> = d.services.iter().map(|s| s.id.as_str()).collect();
    ids.sort_unstable();
    if ids.windows(2).any(|w| w[0] == w[1]) {
        return Err(invalid("services", "service IDs must be unique"));
    }
    for (i, p) in d.trusted_proxies.iter().enumerate() {
        target_host(&format!("trusted_proxies[{i}]"), p)?;
    }
    for (i, r) in d.tls_routes.iter().enumerate() {
        for (j, dom) in r.domains.iter().enumerate() {
            normalised_domain(&format!("tls_routes[{i}].domains[{j}]"), dom)?;
        }
        for (j, b) in r.backends.iter().enumerate() {
            host_port(&format!("tls_routes[{i}].backends[{j}]"), b)?;
        }
    }
    Ok(())
}

fn service_spec(f: &str, s: &ServiceSpec) -> Result {
    resource_id(&format!("{f}.id"), &s.id)?;
    node_name(&format!("{f}.name"), &s.name)?;
    if s.domains.is_empty() {
        return Err(invalid(&format!("{f}.domains"), "at least one domain"));
    }
    for (i, d) in s.domains.iter().enumerate() {
        normalised_domain(&format!("{f}.domains[{i}]"), d)?;
    }
    for (i, r) in s.routes.iter().enumerate() {
        let rf = format!("{f}.routes[{i}]");
        path_prefix(&format!("{rf}.path"), &r.path)?;
        for (j, t) in r.targets.iter().enumerate() {
            let tf = format!("{rf}.targets[{j}]");
            in_range(&format!("{tf}.weight"), t.weight, ranges::WEIGHT)?;
            match &t.endpoint {
                Endpoint::Container {
                    container,
                    label,
                    port,
                } => {
                    in_range(&format!("{tf}.port"), u32::from(*port), ranges::PORT)?;
                    match (container, label) {
                        (Some(c), None) => container_name(&format!("{tf}.container"), c)?,
                        (None, Some(l)) => label_selector(&format!("{tf}.label"), l)?,
                        _ => {
                            return Err(invalid(
                                &format!("{tf}.container"),
                                "exactly one of container or label",
                            ));
                        }
                    }
                }
                Endpoint::Address { host, port } => {
                    in_range(&format!("{tf}.port"), u32::from(*port), ranges::PORT)?;
                    target_host(&format!("{tf}.host"), host)?;
                }
            }
        }
    }
    in_range(
        &format!("{f}.connect_timeout_secs"),
        s.connect_timeout_secs,
        ranges::TIMEOUT_SECS,
    )?;
    in_range(
        &format!("{f}.read_timeout_secs"),
        s.read_timeout_secs,
        ranges::TIMEOUT_SECS,
    )?;
    in_range(
        &format!("{f}.send_timeout_secs"),
        s.send_timeout_secs,
        ranges::TIMEOUT_SECS,
    )?;
    in_range(
        &format!("{f}.client_max_body_size_mb"),
        s.client_max_body_size_mb,
        ranges::BODY_SIZE_MB,
    )?;
    in_range(&format!("{f}.max_fails"), s.max_fails, ranges::MAX_FAILS)?;
    in_range(
        &format!("{f}.fail_timeout_secs"),
        s.fail_timeout_secs,
        ranges::FAIL_TIMEOUT_SECS,
    )?;
    headers(&format!("{f}.request_headers"), &s.request_headers)?;
    headers(&format!("{f}.response_headers"), &s.response_headers)?;
    Ok(())
}

/// Header names and values of one list.
pub fn headers(field: &str, list: &[HeaderSpec]) -> Result {
    for (i, h) in list.iter().enumerate() {
        header_name(&format!("{field}[{i}].name"), &h.name)?;
        header_value(&format!("{field}[{i}].value"), &h.value)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Balance, RouteSpec, TargetSpec, TlsRoute};

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
            "a/b",
            "é",
            &"x".repeat(64),
        ] {
            assert!(node_name("name", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ids_cannot_form_paths() {
        assert!(resource_id("id", "0b6f0c1e-4a55-4c1e-9b8e-2f6a7d9e1c20").is_ok());
        assert!(resource_id("id", "capstan-ui").is_ok());
        for bad in [
            "",
            "..",
            "a/b",
            "../x",
            "a.b",
            "A",
            "-a",
            "a\0",
            &"a".repeat(65),
        ] {
            assert!(resource_id("id", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn hostnames() {
        assert!(hostname("hostname", "web-1.example.com").is_ok());
        assert!(hostname("hostname", "a..b").is_err());
        assert!(hostname("hostname", "a;b").is_err());
        assert!(hostname("hostname", "").is_err());
    }

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
            "inj.test; location /leak/ { alias /etc/; autoindex on; } server_tokens off",
        ] {
            assert!(domain("d", bad).is_err(), "{bad:?}");
        }
        assert!(domain("d", &format!("{}.com", "a".repeat(64))).is_err());
        assert!(normalised_domain("d", "Shop.example.com").is_err());
        assert!(normalised_domain("d", "shop.example.com").is_ok());
    }

    #[test]
    fn header_values_paths_and_host_ports() {
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
        assert!(log_source("s", "nginx:access").is_ok());
        assert!(log_source("s", "web_1").is_ok());
        assert!(log_source("s", "../../images/json").is_err());
        for ok in ["10.0.0.1:443", "[::1]:8443", "node-1.example.com:443"] {
            assert!(host_port("b", ok).is_ok(), "{ok}");
        }
        for bad in [
            "10.0.0.1",
            "::1:443",
            "a;b:443",
            "10.0.0.1:0",
            "x:99999",
            "[x]:1",
        ] {
            assert!(host_port("b", bad).is_err(), "{bad}");
        }
    }

    fn desired() -> NginxDesired {
        NginxDesired {
            services: vec![ServiceSpec {
                id: "0b6f0c1e-4a55-4c1e-9b8e-2f6a7d9e1c20".into(),
                name: "shop".into(),
                domains: vec!["shop.example.com".into()],
                balance: Balance::RoundRobin,
                routes: vec![RouteSpec {
                    path: "/".into(),
                    targets: vec![TargetSpec {
                        endpoint: Endpoint::Address {
                            host: "10.0.0.5".into(),
                            port: 80,
                        },
                        weight: 1,
                        backup: false,
                    }],
                }],
                connect_timeout_secs: 5,
                read_timeout_secs: 60,
                send_timeout_secs: 60,
                client_max_body_size_mb: 10,
                request_headers: vec![],
                response_headers: vec![],
                websocket: true,
                max_fails: 3,
                fail_timeout_secs: 10,
            }],
            trusted_proxies: vec!["10.0.0.9".into()],
            tls_routes: vec![TlsRoute {
                domains: vec!["shop.example.com".into()],
                backends: vec!["10.0.0.2:443".into()],
            }],
        }
    }

    #[test]
    fn a_desired_state_with_any_bad_value_is_refused_naming_the_field() {
        assert_eq!(nginx_desired(&desired()), Ok(()));
        type Breaker = Box<dyn Fn(&mut NginxDesired)>;
        let cases: Vec<(&str, Breaker)> = vec![
            (
                "services[0].name",
                Box::new(|d| {
                    d.services[0].name = "../../../../tmp/x/demo.service.d/override".into()
                }),
            ),
            (
                "services[0].id",
                Box::new(|d| d.services[0].id = "../x".into()),
            ),
            (
                "services[0].domains[0]",
                Box::new(|d| {
                    d.services[0].domains[0] =
                        "inj.test; location /leak/ { alias /etc/; autoindex on; } server_tokens off"
                            .into()
                }),
            ),
            (
                "services[0].routes[0].path",
                Box::new(|d| d.services[0].routes[0].path = "/a { }".into()),
            ),
            (
                "services[0].routes[0].targets[0].host",
                Box::new(|d| {
                    d.services[0].routes[0].targets[0].endpoint = Endpoint::Address {
                        host: "1.2.3.4; x".into(),
                        port: 80,
                    }
                }),
            ),
            (
                "services[0].request_headers[0].value",
                Box::new(|d| {
                    d.services[0].request_headers = vec![HeaderSpec {
                        name: "X-A".into(),
                        value: "a\"; return 200 \"x".into(),
                    }]
                }),
            ),
            (
                "services[0].read_timeout_secs",
                Box::new(|d| d.services[0].read_timeout_secs = 0),
            ),
            (
                "trusted_proxies[0]",
                Box::new(|d| d.trusted_proxies[0] = "10.0.0.1; allow all".into()),
            ),
            (
                "tls_routes[0].backends[0]",
                Box::new(|d| d.tls_routes[0].backends[0] = "10.0.0.2:443; x".into()),
            ),
        ];
        for (field, break_it) in cases {
            let mut d = desired();
            break_it(&mut d);
            let err = nginx_desired(&d).expect_err(field);
            assert_eq!(err.field, field, "{err}");
        }
    }
}
