//! Typed HTTP client to the core: timeouts, identity headers, one retry on a connection
//! the server closed while idle (NGINX reloads do that to keep-alive connections), and
//! gzip for large bodies (a beat draining the metrics backlog after an outage carries up
//! to 60 samples; JSON of numbers compresses about tenfold). Small bodies go as they are:
//! compressing a 5 KiB beat every second would cost more CPU than it saves.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use capstan_proto::{
    ErrorBody, HEADER_AGENT_ID, HEADER_AGENT_KEY, HeartbeatRequest, HeartbeatResponse,
    RegisterRequest, RegisterResponse, WATCH_PATH, WatchResponse,
};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::AgentConfig;
use crate::credentials::Credentials;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Network failure, timeout or 5xx: retry with backoff.
    #[error("core unreachable: {0}")]
    Unreachable(String),
    /// 401: wrong ID/key or join token. Retrying soon will not help.
    #[error("core refused our credentials ({code}): {message}")]
    Unauthorized { code: String, message: String },
    /// Any other 4xx: the core considers the request invalid.
    #[error("core rejected the request ({status}): {message}")]
    Rejected { status: u16, message: String },
    #[error("cannot set up the HTTP client: {0}")]
    Setup(String),
    #[error("cannot encode the request: {0}")]
    Encode(String),
}

/// Bodies larger than this are sent gzip-compressed (`Content-Encoding: gzip`).
pub const GZIP_ABOVE: usize = 16 * 1024;

pub struct CoreClient {
    http: reqwest::Client,
    /// The watch's own client: its own connection (a held long-poll never queues a beat
    /// behind it) and no overall timeout (each watch sets its own).
    watch_http: reqwest::Client,
    base: String,
    /// Requests sent compressed since start (logged at debug with each one).
    gzipped: AtomicU64,
}

/// A request body ready to send.
#[derive(Debug)]
pub struct Encoded {
    pub bytes: Vec<u8>,
    pub gzip: bool,
}

/// JSON-encodes `body`, gzip-compressed when larger than [`GZIP_ABOVE`].
pub fn encode<B: Serialize>(body: &B) -> Result<Encoded, ClientError> {
    let json = serde_json::to_vec(body).map_err(|e| ClientError::Encode(e.to_string()))?;
    if json.len() <= GZIP_ABOVE {
        return Ok(Encoded {
            bytes: json,
            gzip: false,
        });
    }
    // The fastest level already gets most of the gain on repetitive JSON.
    let mut gz = flate2::write::GzEncoder::new(
        Vec::with_capacity(json.len() / 4),
        flate2::Compression::fast(),
    );
    gz.write_all(&json)
        .map_err(|e| ClientError::Encode(e.to_string()))?;
    let bytes = gz
        .finish()
        .map_err(|e| ClientError::Encode(e.to_string()))?;
    Ok(Encoded { bytes, gzip: true })
}

impl CoreClient {
    pub fn new(config: &AgentConfig) -> Result<CoreClient, ClientError> {
        let tls = tls_config(config.ca_file.as_deref())?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls.clone())
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_millis(config.request_timeout_ms))
            .pool_idle_timeout(Duration::from_secs(30))
            .user_agent(concat!("capstan-agent/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Setup(e.to_string()))?;
        let watch_http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(Duration::from_secs(3))
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(1)
            .user_agent(concat!("capstan-agent/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Setup(e.to_string()))?;
        Ok(CoreClient {
            http,
            watch_http,
            base: config.core_url.trim_end_matches('/').to_string(),
            gzipped: AtomicU64::new(0),
        })
    }

    pub async fn heartbeat(
        &self,
        creds: &Credentials,
        beat: &HeartbeatRequest,
    ) -> Result<HeartbeatResponse, ClientError> {
        self.post("/api/heartbeat", Some(creds), beat).await
    }

    pub async fn upload_logs(
        &self,
        creds: &Credentials,
        upload: &capstan_proto::LogUpload,
    ) -> Result<(), ClientError> {
        self.post(capstan_proto::LOGS_PATH, Some(creds), upload)
            .await
    }

    /// The long-poll: held by the core up to `hold`; given up locally a few seconds later.
    pub async fn watch(
        &self,
        creds: &Credentials,
        since: Option<(u64, &str)>,
        hold: Duration,
    ) -> Result<WatchResponse, ClientError> {
        let mut url = format!("{}{WATCH_PATH}?timeout={}", self.base, hold.as_secs());
        if let Some((counter, boot)) = since {
            url.push_str(&format!("&since={counter}"));
            // The core's boot ID is hex; anything else is not put in a URL.
            if boot.bytes().all(|b| b.is_ascii_alphanumeric()) {
                url.push_str(&format!("&boot={boot}"));
            }
        }
        let response = self
            .watch_http
            .get(url)
            .header(HEADER_AGENT_ID, &creds.id)
            .header(HEADER_AGENT_KEY, &creds.key)
            .timeout(hold + Duration::from_secs(5))
            .send()
            .await
            .map_err(|e| ClientError::Unreachable(describe(&e)))?;
        let status = response.status();
        if status.is_success() {
            return response
                .json::<WatchResponse>()
                .await
                .map_err(|e| ClientError::Unreachable(format!("bad reply: {e}")));
        }
        let text = response.text().await.unwrap_or_default();
        Err(ClientError::Rejected {
            status: status.as_u16(),
            message: text.chars().take(200).collect(),
        })
    }

    pub async fn register(&self, req: &RegisterRequest) -> Result<RegisterResponse, ClientError> {
        self.post("/api/agents/register", None, req).await
    }

    async fn post<B: Serialize, R: DeserializeOwned>(
        &self,
        path: &str,
        creds: Option<&Credentials>,
        body: &B,
    ) -> Result<R, ClientError> {
        let url = format!("{}{path}", self.base);
        let body = encode(body)?;
        if body.gzip {
            let n = self.gzipped.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::debug!(
                path,
                bytes = body.bytes.len(),
                gzipped_total = n,
                "request body gzip-compressed"
            );
        }
        let send = || {
            let mut req = self
                .http
                .post(&url)
                .header(CONTENT_TYPE, "application/json")
                .body(body.bytes.clone());
            if body.gzip {
                req = req.header(CONTENT_ENCODING, "gzip");
            }
            if let Some(c) = creds {
                req = req
                    .header(HEADER_AGENT_ID, &c.id)
                    .header(HEADER_AGENT_KEY, &c.key);
            }
            req.send()
        };
        let response = match send().await {
            Ok(r) => r,
            // A pooled connection closed under us is not an outage: retry once at once.
            Err(e) if !e.is_timeout() && !e.is_connect() => send()
                .await
                .map_err(|e| ClientError::Unreachable(describe(&e)))?,
            Err(e) => return Err(ClientError::Unreachable(describe(&e))),
        };
        let status = response.status();
        if status == StatusCode::NO_CONTENT {
            return serde_json::from_str("null")
                .map_err(|e| ClientError::Unreachable(format!("bad reply: {e}")));
        }
        if status.is_success() {
            return response
                .json::<R>()
                .await
                .map_err(|e| ClientError::Unreachable(format!("bad reply: {e}")));
        }
        let text = response.text().await.unwrap_or_default();
        let parsed: Option<ErrorBody> = serde_json::from_str(&text).ok();
        let (code, message) = match parsed {
            Some(b) => (b.error.code, b.error.message),
            None => (String::new(), text.chars().take(200).collect()),
        };
        if status == StatusCode::UNAUTHORIZED {
            Err(ClientError::Unauthorized { code, message })
        } else if status.is_client_error() && status != StatusCode::TOO_MANY_REQUESTS {
            Err(ClientError::Rejected {
                status: status.as_u16(),
                message,
            })
        } else {
            Err(ClientError::Unreachable(format!(
                "HTTP {status}: {message}"
            )))
        }
    }
}

/// The whole error chain: reqwest's top-level message alone ("error sending request")
/// hides the cause the operator needs (connection refused, DNS, TLS).
fn describe(e: &reqwest::Error) -> String {
    with_causes(e.to_string(), e)
}

/// Appends an error's chain of causes to `out`, each after ": ".
pub fn with_causes(mut out: String, e: &dyn std::error::Error) -> String {
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// rustls with the Mozilla roots compiled in (minimal images have no CA bundle, and
/// reqwest's platform verifier panics without one), plus an optional extra CA file.
pub fn tls_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, ClientError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| ClientError::Setup(format!("ca_file {}: {e}", path.display())))?;
        for cert in certs {
            let cert =
                cert.map_err(|e| ClientError::Setup(format!("ca_file {}: {e}", path.display())))?;
            roots
                .add(cert)
                .map_err(|e| ClientError::Setup(format!("ca_file {}: {e}", path.display())))?;
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Setup(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tls)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn small_bodies_go_plain_and_large_ones_gzip_round_trip() {
        let small = serde_json::json!({ "values": vec![1.5; 100] });
        let e = encode(&small).expect("encode");
        assert!(!e.gzip);
        assert_eq!(e.bytes, serde_json::to_vec(&small).expect("json"));

        let large = serde_json::json!({ "values": vec![1.5; 10_000] });
        let json = serde_json::to_vec(&large).expect("json");
        assert!(json.len() > GZIP_ABOVE);
        let e = encode(&large).expect("encode");
        assert!(e.gzip);
        assert!(e.bytes.len() < json.len() / 4, "{} bytes", e.bytes.len());
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(e.bytes.as_slice())
            .read_to_end(&mut back)
            .expect("gunzip");
        assert_eq!(back, json);
    }

    #[test]
    fn the_threshold_is_inclusive_of_its_size() {
        // A JSON string of exactly GZIP_ABOVE bytes (quotes included) stays plain.
        let at = "x".repeat(GZIP_ABOVE - 2);
        assert!(!encode(&at).expect("encode").gzip);
        let over = "x".repeat(GZIP_ABOVE - 1);
        assert!(encode(&over).expect("encode").gzip);
    }
}
