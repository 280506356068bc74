//! The REST API. One file per resource (`router()`-free: handlers carry their own
//! `#[utoipa::path]`, and [`router`] registers each through `routes!`, so a route cannot
//! exist without its OpenAPI entry).

mod agents;
mod auth;
mod heartbeat;
mod join_tokens;
mod logs;
mod metrics;
mod services;
mod system;
mod watch;

use std::sync::Arc;

use axum::Router;
use axum::extract::MatchedPath;
use axum::http::Request;
use axum::routing::get;
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::ApiError;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Capstan core API",
        description = "Control plane of a Capstan fleet. Users authenticate with a Bearer access token from /api/auth/login; agents with the X-Capstan-Agent-Id and X-Capstan-Agent-Key headers."
    ),
    modifiers(&SecuritySchemes),
    security(("bearer" = []))
)]
struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "agent_id",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new(
                capstan_proto::HEADER_AGENT_ID,
            ))),
        );
        components.add_security_scheme(
            "agent_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new(
                capstan_proto::HEADER_AGENT_KEY,
            ))),
        );
    }
}

/// Every `/api/` route plus the generated OpenAPI document at `/api/openapi.json`.
pub fn router(state: AppState) -> Router {
    let (router, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(system::ping))
        .routes(routes!(system::ready))
        .routes(routes!(system::info))
        .routes(routes!(auth::login))
        .routes(routes!(auth::refresh))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::me))
        .routes(routes!(auth::change_password))
        .routes(routes!(agents::list_agents, agents::create_agent))
        .routes(routes!(
            agents::get_agent,
            agents::delete_agent,
            agents::update_agent
        ))
        .routes(routes!(agents::rotate_key))
        .routes(routes!(agents::list_tasks, agents::create_task))
        .routes(routes!(agents::register))
        .routes(routes!(
            join_tokens::list_join_tokens,
            join_tokens::create_join_token
        ))
        .routes(routes!(join_tokens::delete_join_token))
        .routes(routes!(heartbeat::heartbeat))
        .routes(routes!(watch::watch))
        .routes(routes!(logs::poll_logs))
        .routes(routes!(logs::upload_logs))
        .routes(routes!(metrics::node_metrics))
        .routes(routes!(metrics::latest))
        .routes(routes!(metrics::container_metrics))
        .routes(routes!(metrics::vm_metrics))
        .routes(routes!(metrics::overview))
        .routes(routes!(services::list_services, services::create_service))
        .routes(routes!(
            services::get_service,
            services::replace_service,
            services::delete_service
        ))
        .routes(routes!(services::routing))
        .split_for_parts();
    let doc = Arc::new(openapi.to_pretty_json().unwrap_or_default());
    router
        .route(
            "/api/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move {
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        doc.as_str().to_owned(),
                    )
                }
            }),
        )
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(state)
}

/// One span per request, named by the matched route (not the raw path, which would make
/// every node ID its own span name).
pub fn trace_layer() -> TraceLayer<
    SharedClassifier<ServerErrorsAsFailures>,
    impl Fn(&Request<axum::body::Body>) -> tracing::Span + Clone,
> {
    TraceLayer::new_for_http().make_span_with(|req: &Request<axum::body::Body>| {
        let route = req
            .extensions()
            .get::<MatchedPath>()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "fallback".to_owned());
        tracing::debug_span!("request", method = %req.method(), route = %route)
    })
}
