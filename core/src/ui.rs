//! The embedded SPA. `build.rs` picks the folder (the built `web-static/dist`, or a
//! "UI not built" page); rust-embed compiles it into the binary so one file is enough.
//! Hashed assets are cached for a year; `index.html` is revalidated on every load so a
//! new release is picked up at once. Paths without an extension fall back to
//! `index.html` (client-side routes); a missing asset is a 404; `/api/*` never falls back.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, Resource};

#[cfg(feature = "ui")]
#[derive(rust_embed::Embed)]
#[folder = "$CAPSTAN_UI_DIR"]
struct Assets;

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const REVALIDATE: &str = "no-cache";

pub async fn serve_asset(uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    if path == "api" || path.starts_with("api/") {
        return ApiError::NotFound(Resource::Route).into_response();
    }
    let path = if path.is_empty() { "index.html" } else { path };
    if let Some(resp) = asset(path) {
        return resp;
    }
    let last = path.rsplit('/').next().unwrap_or("");
    if last.contains('.') {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    }
    asset("index.html").unwrap_or_else(|| (StatusCode::NOT_FOUND, "not found").into_response())
}

#[cfg(feature = "ui")]
fn asset(path: &str) -> Option<Response> {
    let file = Assets::get(path)?;
    let mime = file.metadata.mimetype();
    let cache = if path.starts_with("assets/") {
        IMMUTABLE
    } else {
        REVALIDATE
    };
    let mut resp = Response::new(Body::from(file.data.into_owned()));
    let headers = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(mime) {
        headers.insert(header::CONTENT_TYPE, v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Some(resp)
}

#[cfg(not(feature = "ui"))]
fn asset(path: &str) -> Option<Response> {
    (path == "index.html").then(|| {
        (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            "<!doctype html><title>Capstan</title><p>This capstan-core was built without the <code>ui</code> feature.</p>",
        )
            .into_response()
    })
}

/// Every embedded file path (for tests and diagnostics).
#[cfg(feature = "ui")]
pub fn embedded_paths() -> Vec<String> {
    Assets::iter().map(|p| p.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn get(path: &str) -> (StatusCode, Option<String>, String, Vec<u8>) {
        let resp = serve_asset(path.parse().expect("uri")).await;
        let status = resp.status();
        let ct = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let cache = resp
            .headers()
            .get(header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = resp
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .to_vec();
        (status, ct, cache, body)
    }

    #[tokio::test]
    async fn every_embedded_asset_answers_with_its_type() {
        let paths = embedded_paths();
        assert!(paths.iter().any(|p| p == "index.html"));
        for p in paths {
            let (status, ct, cache, _) = get(&format!("/{p}")).await;
            assert_eq!(status, StatusCode::OK, "{p}");
            let ct = ct.expect("content type");
            if p.ends_with(".html") {
                assert!(ct.starts_with("text/html"), "{p}: {ct}");
            } else if p.ends_with(".js") {
                assert!(ct.contains("javascript"), "{p}: {ct}");
            } else if p.ends_with(".css") {
                assert!(ct.starts_with("text/css"), "{p}: {ct}");
            }
            if p.starts_with("assets/") {
                assert_eq!(cache, IMMUTABLE, "{p}");
            }
        }
    }

    #[tokio::test]
    async fn spa_fallback_and_missing_assets() {
        let (status, ct, cache, body) = get("/nodes/some-id").await;
        assert_eq!(status, StatusCode::OK);
        assert!(ct.expect("ct").starts_with("text/html"));
        assert_eq!(cache, REVALIDATE);
        let (_, _, _, index) = get("/").await;
        assert_eq!(body, index, "client routes get index.html");
        let (status, _, _, _) = get("/assets/missing-123.js").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, ct, _, _) = get("/api/nope").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(ct.expect("ct").starts_with("application/json"));
    }
}
