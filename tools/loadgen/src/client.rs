//! A minimal HTTP/1.1 keep-alive client on hyper's connection API: one TCP connection
//! per [`Conn`], one request at a time, reconnecting after an error. The generator owns
//! its connections (no pool deciding how many to open), so "N agents on C connections"
//! means exactly that.

use std::net::SocketAddr;

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use capstan_proto::{HEADER_AGENT_ID, HEADER_AGENT_KEY};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Where the core listens.
#[derive(Debug, Clone)]
pub struct Endpoint {
    addr: SocketAddr,
    host: String,
}

impl Endpoint {
    /// Parses `http://host:port` (a numeric or `localhost` host; loopback only in practice).
    pub fn parse(url: &str) -> Result<Endpoint> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| anyhow!("--url must start with http:// (got {url})"))?;
        let host = rest.trim_end_matches('/').to_string();
        if host.contains('/') {
            bail!("--url must be a base URL without a path (got {url})");
        }
        let lookup = host.replace("localhost", "127.0.0.1");
        let addr = lookup
            .parse::<SocketAddr>()
            .with_context(|| format!("--url {url}: expected http://IP:PORT"))?;
        Ok(Endpoint { addr, host })
    }
}

pub struct Conn {
    endpoint: Endpoint,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Conn {
    pub fn new(endpoint: Endpoint) -> Conn {
        Conn {
            endpoint,
            sender: None,
        }
    }

    /// Drops the connection (after a timeout its state is unknown).
    pub fn reset(&mut self) {
        self.sender = None;
    }

    async fn sender(&mut self) -> Result<&mut SendRequest<Full<Bytes>>> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            let stream = TcpStream::connect(self.endpoint.addr)
                .await
                .with_context(|| format!("connect {}", self.endpoint.addr))?;
            stream.set_nodelay(true)?;
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .context("HTTP handshake")?;
            tokio::spawn(async move {
                // Ends when the sender is dropped or the peer closes; errors surface on
                // the next request.
                let _ = conn.await;
            });
            self.sender = Some(sender);
        }
        let sender = self
            .sender
            .as_mut()
            .ok_or_else(|| anyhow!("no connection"))?;
        sender.ready().await.context("connection not ready")?;
        Ok(sender)
    }

    /// Sends one request; returns the status and the whole body.
    pub async fn send(&mut self, req: Request<Full<Bytes>>) -> Result<(u16, Bytes)> {
        let result = async {
            let resp = self.sender().await?.send_request(req).await?;
            let status = resp.status().as_u16();
            let body = resp.into_body().collect().await?.to_bytes();
            anyhow::Ok((status, body))
        }
        .await;
        if result.is_err() {
            self.sender = None;
        }
        result
    }

    fn request(&self, method: Method, path: &str) -> hyper::http::request::Builder {
        Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, &self.endpoint.host)
            .header(CONTENT_TYPE, "application/json")
    }

    /// One agent watch (`GET /api/agent/watch?{query}`), held by the core.
    pub async fn watch(&mut self, id: &str, key: &str, query: &str) -> Result<(u16, Bytes)> {
        let req = self
            .request(
                Method::GET,
                &format!("{}?{query}", capstan_proto::WATCH_PATH),
            )
            .header(HEADER_AGENT_ID, id)
            .header(HEADER_AGENT_KEY, key)
            .body(Full::new(Bytes::new()))?;
        self.send(req).await
    }

    pub async fn post_beat(&mut self, id: &str, key: &str, body: Bytes) -> Result<(u16, Bytes)> {
        let req = self
            .request(Method::POST, "/api/heartbeat")
            .header(HEADER_AGENT_ID, id)
            .header(HEADER_AGENT_KEY, key)
            .body(Full::new(body))?;
        self.send(req).await
    }
}

/// Logs in as an admin; returns the access token.
pub async fn login(conn: &mut Conn, username: &str, password: &str) -> Result<String> {
    let body = serde_json::to_vec(&serde_json::json!({
        "username": username,
        "password": password,
    }))?;
    let req = conn
        .request(Method::POST, "/api/auth/login")
        .body(Full::new(Bytes::from(body)))?;
    let (status, text) = conn.send(req).await.context("POST /api/auth/login")?;
    if status != 200 {
        bail!(
            "login failed: HTTP {status}: {}",
            String::from_utf8_lossy(&text)
        );
    }
    let v: serde_json::Value = serde_json::from_slice(&text)?;
    v["access_token"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("login reply without access_token"))
}

/// Creates a node; returns its ID and key.
pub async fn create_node(conn: &mut Conn, token: &str, name: &str) -> Result<(String, String)> {
    let body = serde_json::to_vec(&serde_json::json!({ "name": name }))?;
    let req = conn
        .request(Method::POST, "/api/agents")
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .body(Full::new(Bytes::from(body)))?;
    let (status, text) = conn.send(req).await.context("POST /api/agents")?;
    if status != 201 {
        bail!(
            "creating node {name}: HTTP {status}: {}",
            String::from_utf8_lossy(&text)
        );
    }
    let v: serde_json::Value = serde_json::from_slice(&text)?;
    match (v["id"].as_str(), v["key"].as_str()) {
        (Some(id), Some(key)) => Ok((id.to_string(), key.to_string())),
        _ => bail!("node creation reply without id/key: {v}"),
    }
}
