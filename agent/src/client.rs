//! Typed HTTP client to the core: timeouts, identity headers, one retry on a connection
//! the server closed while idle (NGINX reloads do that to keep-alive connections).

use std::sync::Arc;
use std::time::Duration;

use capstan_proto::{
    ErrorBody, HEADER_AGENT_ID, HEADER_AGENT_KEY, HeartbeatRequest, HeartbeatResponse,
    RegisterRequest, RegisterResponse,
};
use reqwest::StatusCode;
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
}

pub struct CoreClient {
    http: reqwest::Client,
    base: String,
}

impl CoreClient {
    pub fn new(config: &AgentConfig) -> Result<CoreClient, ClientError> {
        let tls = tls_config(config)?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_millis(config.request_timeout_ms))
            .pool_idle_timeout(Duration::from_secs(30))
            .user_agent(concat!("capstan-agent/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Setup(e.to_string()))?;
        Ok(CoreClient {
            http,
            base: config.core_url.trim_end_matches('/').to_string(),
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
        let send = || {
            let mut req = self.http.post(&url).json(body);
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
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// rustls with the Mozilla roots compiled in (minimal images have no CA bundle, and
/// reqwest's platform verifier panics without one), plus an optional extra CA file.
fn tls_config(config: &AgentConfig) -> Result<rustls::ClientConfig, ClientError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = &config.ca_file {
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
