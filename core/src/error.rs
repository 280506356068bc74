//! `ApiError`: every way a request can fail, and the one table mapping each to an HTTP
//! status and a stable snake_case code. All handlers and extractors return it, so every
//! error body has the same shape: `{"error":{"code","message","field"}}`.
//!
//! Domain modules return their own errors (`validate::Invalid`, `StoreError`,
//! `ServiceWriteError`); they become `ApiError` here, in one place, through `From`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use capstan_proto::{ErrorBody, ErrorDetail};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed or incomplete request body (bad JSON, missing field, wrong type).
    #[error("{message}")]
    BadRequest {
        field: Option<String>,
        message: String,
    },
    /// Well-formed but the value breaks a field's grammar or range.
    #[error("{message}")]
    Invalid { field: String, message: String },
    #[error("{message}")]
    Unauthorized {
        code: &'static str,
        message: &'static str,
    },
    #[error("{0} not found")]
    NotFound(Resource),
    /// A name (node or service) another record already has.
    #[error("{message}")]
    NameTaken { field: String, message: String },
    /// A domain another service already serves.
    #[error("{message}")]
    DomainTaken { field: String, message: String },
    /// A task type users may not queue (anything but the harmless run-once commands).
    #[error("task type {given:?} cannot be queued; expected one of: noop, ping")]
    UnsupportedTaskType { given: String },
    /// A beat in a protocol version this core does not speak.
    #[error(
        "the agent speaks protocol {agent}, this core speaks {core}; run the same Capstan version on both"
    )]
    UnsupportedProtocol { agent: u32, core: u32 },
    #[error("too many attempts, retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("expected Content-Type: application/json")]
    UnsupportedMediaType,
    #[error("method not allowed")]
    MethodNotAllowed,
    /// A fault on our side. The detail is logged, never sent.
    #[error("internal error")]
    Internal(String),
    /// The store cannot write now (disk full, I/O error); it is being reopened and the
    /// request may be retried. The detail is logged, never sent.
    #[error("the store cannot write at the moment (disk full or I/O error); retry later")]
    StoreUnavailable(String),
}

/// What a 404 was about; each has its own code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Node,
    Service,
    JoinToken,
    LogSource,
    Container,
    /// No API route at this path.
    Route,
}

impl Resource {
    fn code(self) -> &'static str {
        match self {
            Resource::Node => "node_not_found",
            Resource::Service => "service_not_found",
            Resource::JoinToken => "join_token_not_found",
            Resource::LogSource => "log_source_not_found",
            Resource::Container => "container_not_found",
            Resource::Route => "not_found",
        }
    }
}

impl std::fmt::Display for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Resource::Node => "node",
            Resource::Service => "service",
            Resource::JoinToken => "join token",
            Resource::LogSource => "log source",
            Resource::Container => "container",
            Resource::Route => "route",
        })
    }
}

impl ApiError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        ApiError::Invalid {
            field: field.to_string(),
            message: message.into(),
        }
    }

    pub fn internal(detail: impl std::fmt::Display) -> Self {
        ApiError::Internal(detail.to_string())
    }

    /// The one table: variant → (status, code).
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest { .. } => (StatusCode::BAD_REQUEST, "invalid_request"),
            ApiError::Invalid { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
            ApiError::Unauthorized { code, .. } => (StatusCode::UNAUTHORIZED, code),
            ApiError::NotFound(what) => (StatusCode::NOT_FOUND, what.code()),
            ApiError::NameTaken { .. } => (StatusCode::CONFLICT, "name_taken"),
            ApiError::DomainTaken { .. } => (StatusCode::CONFLICT, "domain_taken"),
            ApiError::UnsupportedTaskType { .. } => {
                (StatusCode::BAD_REQUEST, "unsupported_task_type")
            }
            ApiError::UnsupportedProtocol { .. } => {
                (StatusCode::BAD_REQUEST, "unsupported_protocol")
            }
            ApiError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            ApiError::StoreUnavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
        }
    }

    fn field(&self) -> Option<String> {
        match self {
            ApiError::BadRequest { field, .. } => field.clone(),
            ApiError::Invalid { field, .. }
            | ApiError::NameTaken { field, .. }
            | ApiError::DomainTaken { field, .. } => Some(field.clone()),
            ApiError::UnsupportedTaskType { .. } => Some("type".into()),
            ApiError::UnsupportedProtocol { .. } => Some("protocol".into()),
            _ => None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let message = match &self {
            ApiError::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                "internal error".to_string()
            }
            ApiError::StoreUnavailable(detail) => {
                tracing::warn!(error = %detail, "store unavailable");
                self.to_string()
            }
            ApiError::Unauthorized { message, .. } => (*message).to_string(),
            other => {
                tracing::debug!(code, error = %other, "request rejected");
                other.to_string()
            }
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: code.to_string(),
                message,
                field: self.field(),
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let ApiError::RateLimited { retry_after_secs } = self
            && let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        if e.is_unavailable() {
            ApiError::StoreUnavailable(e.to_string())
        } else {
            ApiError::Internal(e.to_string())
        }
    }
}

impl From<crate::validate::Invalid> for ApiError {
    fn from(e: crate::validate::Invalid) -> Self {
        ApiError::Invalid {
            field: e.field,
            message: e.message,
        }
    }
}

impl From<crate::store::ServiceWriteError> for ApiError {
    fn from(e: crate::store::ServiceWriteError) -> Self {
        use crate::store::ServiceWriteError;
        match e {
            ServiceWriteError::DomainTaken {
                index,
                domain,
                owner,
            } => ApiError::DomainTaken {
                field: format!("domains[{index}]"),
                message: format!("{domain} already belongs to service {owner}"),
            },
            ServiceWriteError::NameTaken(name) => ApiError::NameTaken {
                field: "name".into(),
                message: format!("a service named {name} already exists"),
            },
            ServiceWriteError::NotFound => ApiError::NotFound(Resource::Service),
            ServiceWriteError::Store(e) => e.into(),
        }
    }
}
