//! [`ApiError`]: the one error type of the API, rendered as JSON `{error, detail}`.
//!
//! Caller mistakes keep their 4xx status and are not logged above debug; an index that is not
//! (or no longer) readable is a 503; internal faults (storage errors, bugs) are a 500 with a
//! generic detail, the real error going to the log. Bad input never becomes a 500: every
//! extractor rejection goes through [`crate::extract`] into this type.
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An API error: HTTP status, a short machine-readable kind (`unknown_sae`, ...) and a
/// human-readable detail.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{detail}")]
pub struct ApiError {
    /// The HTTP status (4xx for caller mistakes, 503 when the index/model is unavailable).
    pub status: StatusCode,
    /// Short machine-readable kind, e.g. `unknown_sae`.
    pub kind: &'static str,
    /// Human-readable explanation.
    pub detail: String,
    /// For a query that does not parse: the 0-based character position of the error.
    pub position: Option<usize>,
    /// Seconds after which a refused request may be retried (`Retry-After`).
    pub retry_after: Option<u64>,
}

/// The JSON body of an error (`components/schemas/Error` in `schemas/openapi.yaml`).
#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    /// [`ApiError::kind`].
    pub error: &'a str,
    /// [`ApiError::detail`].
    pub detail: &'a str,
    /// [`ApiError::position`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<usize>,
}

/// `Result` with [`ApiError`].
pub type ApiResult<T> = std::result::Result<T, ApiError>;

impl ApiError {
    /// An error with any status.
    pub fn new(status: StatusCode, kind: &'static str, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            kind,
            detail: detail.into(),
            position: None,
            retry_after: None,
        }
    }

    /// 400: malformed or out-of-range parameter.
    pub fn bad_request(kind: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, kind, detail)
    }

    /// 404: no such SAE, feature or route.
    pub fn not_found(kind: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, kind, detail)
    }

    /// 413: body or text too large.
    pub fn too_large(kind: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, kind, detail)
    }

    /// 422: well-formed request that cannot be processed (unknown SAE in a body, ...).
    pub fn unprocessable(kind: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, kind, detail)
    }

    /// 503: the index or the model is not available.
    pub fn unavailable(kind: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, kind, detail)
    }

    /// 503 `overloaded`: expensive work is at its limit; retry after `retry_after` seconds.
    pub fn overloaded(detail: impl Into<String>, retry_after: u64) -> Self {
        ApiError {
            retry_after: Some(retry_after),
            ..Self::unavailable("overloaded", detail)
        }
    }

    /// 500 with a generic detail; `cause` is logged, not sent.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error (see the server log)",
        )
    }

    /// True when the request (or command-line argument) was at fault, or the index is missing
    /// or of another format: what the CLI reports with exit code 2.
    pub fn is_user_error(&self) -> bool {
        self.status.is_client_error() || self.kind == "index_unavailable"
    }
}

impl From<scopedex_store::Error> for ApiError {
    fn from(e: scopedex_store::Error) -> Self {
        use scopedex_store::Error as E;
        match &e {
            E::UnknownSae { .. } => ApiError::not_found("unknown_sae", e.to_string()),
            E::FeatureOutOfRange { .. } => {
                ApiError::not_found("feature_out_of_range", e.to_string())
            }
            E::Query { position, .. } => ApiError {
                position: *position,
                ..ApiError::bad_request("invalid_query", e.to_string())
            },
            E::InvalidInput(_) => ApiError::bad_request("invalid_input", e.to_string()),
            E::MissingIndex { .. } | E::FormatVersion { .. } => {
                ApiError::unavailable("index_unavailable", e.to_string())
            }
            _ => ApiError::internal(e),
        }
    }
}

impl From<scopedex_model::Error> for ApiError {
    fn from(e: scopedex_model::Error) -> Self {
        ApiError::internal(e)
    }
}

impl From<scopedex_index::Error> for ApiError {
    fn from(e: scopedex_index::Error) -> Self {
        ApiError::internal(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(status = %self.status, kind = self.kind, "request failed");
        } else {
            tracing::debug!(status = %self.status, kind = self.kind, detail = %self.detail);
        }
        let body = ErrorBody {
            error: self.kind,
            detail: &self.detail,
            position: self.position,
        };
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(s) = self.retry_after {
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, s.into());
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_map_to_statuses() {
        let e: ApiError = scopedex_store::Error::UnknownSae {
            sae: "x".into(),
            known: "a".into(),
        }
        .into();
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        assert!(e.is_user_error());
        let e: ApiError = scopedex_store::Error::MissingIndex {
            path: "/nope".into(),
            reason: "gone".into(),
        }
        .into();
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(e.is_user_error());
        let e: ApiError = scopedex_store::Error::Corrupt {
            location: "k".into(),
            reason: "r".into(),
        }
        .into();
        assert_eq!(e.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!e.detail.contains('k'), "internal details are not sent");
    }
}
