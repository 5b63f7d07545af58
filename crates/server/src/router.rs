//! [`router`]: the only place routes are listed.
//!
//! | method | path | handler |
//! |---|---|---|
//! | GET | `/api/health` | liveness, model loaded, format version |
//! | GET | `/api/index` | manifest in brief |
//! | GET | `/api/saes` | every SAE's summary |
//! | GET | `/api/saes/{sae}` | one SAE's summary |
//! | GET | `/api/saes/{sae}/features` | sorted features (`sort`, `order`, `live`, `limit`, `offset`) |
//! | GET | `/api/saes/{sae}/random` | a random live feature |
//! | GET | `/api/saes/{sae}/features/{feature}` | the feature dashboard |
//! | GET | `/api/saes/{sae}/features/{feature}/examples` | examples (`kind`, `limit`, `offset`) |
//! | GET | `/api/saes/{sae}/features/{feature}/cooccurrence` | partners (`other_sae`, `limit`) |
//! | GET | `/api/saes/{sae}/features/{feature}/occurrences` | every context it fires in (`cursor`, `limit`; needs the activation log) |
//! | GET | `/api/search` | contexts by words, phrases and features (`q`, `limit`) |
//! | GET | `/api/features/search` | features by their explanation (`q`, `sae`, `limit`) |
//! | GET | `/api/contexts/{id}/similar` | "more like this" by shared features (`sae`, `limit`) |
//! | POST | `/api/activate` | live activation, optionally with similar contexts (503 without a model) |
//! | GET | `/`, `/sae/...`, `/search`, `/activate` | the web UI's `index.html` (SPA routes) |
//! | GET | anything else | a file under the web directory, or 404 |
//!
//! Path parameters are only looked up in the manifest and RocksDB, never joined to a path;
//! static files go through `tower_http::services::ServeDir`, which refuses `..` segments.
use axum::extract::DefaultBodyLimit;
use axum::http::{header, Method};
use axum::routing::{any, get, post};
use axum::Router;
use tower::util::option_layer;
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::services::{ServeDir, ServeFile};
use tower_http::trace::TraceLayer;

use crate::handlers::{self, activations, features, search};
use crate::state::AppState;

/// Largest request body accepted (413 beyond).
pub const MAX_BODY_BYTES: usize = 64 << 10;

/// The whole application: API routes, static web UI, body limit, request tracing, state.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/api/health", get(handlers::health))
        .route("/api/index", get(handlers::index))
        .route("/api/saes", get(features::saes))
        .route("/api/saes/{sae}", get(features::sae))
        .route("/api/saes/{sae}/features", get(features::list))
        .route("/api/saes/{sae}/random", get(features::random))
        .route(
            "/api/saes/{sae}/features/{feature}",
            get(features::dashboard),
        )
        .route(
            "/api/saes/{sae}/features/{feature}/examples",
            get(features::examples),
        )
        .route(
            "/api/saes/{sae}/features/{feature}/cooccurrence",
            get(features::cooccurrence),
        )
        .route(
            "/api/saes/{sae}/features/{feature}/occurrences",
            get(search::occurrences),
        )
        .route("/api/search", get(search::search))
        .route("/api/features/search", get(search::feature_search))
        .route("/api/contexts/{id}/similar", get(search::similar))
        .route("/api/activate", post(activations::activate))
        .route("/api", any(handlers::api_not_found))
        .route("/api/{*rest}", any(handlers::api_not_found));

    let app = match &state.web {
        Some(dir) => {
            let index = ServeFile::new(dir.join("index.html"));
            api.route_service("/", index.clone())
                .route_service("/search", index.clone())
                .route_service("/activate", index.clone())
                .route_service("/sae", index.clone())
                .route_service("/sae/{*rest}", index)
                .fallback_service(ServeDir::new(dir))
        }
        None if crate::web::embedded() => api
            .route("/", get(crate::web::index))
            .route("/search", get(crate::web::index))
            .route("/activate", get(crate::web::index))
            .route("/sae", get(crate::web::index))
            .route("/sae/{*rest}", get(crate::web::index))
            .fallback(crate::web::asset),
        None => api,
    };
    let cors = state.cors.as_ref().map(|origins| {
        let allow = if origins.iter().any(|o| o == "*") {
            AllowOrigin::any()
        } else {
            AllowOrigin::list(origins.iter().cloned())
        };
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::HEAD, Method::POST])
            .allow_headers([header::CONTENT_TYPE, header::IF_NONE_MATCH])
            .expose_headers([header::ETAG, header::RETRY_AFTER])
            .max_age(std::time::Duration::from_secs(3600))
    });
    app.layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(CompressionLayer::new())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::http::caching,
        ))
        .layer(option_layer(cors))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
