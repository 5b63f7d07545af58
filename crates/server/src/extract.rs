//! Extractor wrappers whose rejections are [`ApiError`]s, so a malformed path, query string or
//! body gets the same JSON `{error, detail}` shape (and a 4xx) as every other error.
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// `axum::extract::Path` with a JSON 400 on a bad segment (e.g. a feature that is not a u32).
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

/// `axum::extract::Query` with a JSON 400 on a bad parameter.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

/// `axum::Json` with JSON errors: 400 for bad syntax or content type, 413 for a body over the
/// limit, 422 for a body of the wrong shape.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(ApiPath(v)),
            Err(e) => Err(path_error(e)),
        }
    }
}

fn path_error(e: PathRejection) -> ApiError {
    if e.status().is_server_error() {
        // Only a routing bug (extractor on a route without parameters) gets here.
        return ApiError::internal(e.body_text());
    }
    ApiError::bad_request("invalid_path", e.body_text())
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(e) => Err(query_error(e)),
        }
    }
}

fn query_error(e: QueryRejection) -> ApiError {
    ApiError::bad_request("invalid_query_string", e.body_text())
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(e) => Err(json_error(e)),
        }
    }
}

fn json_error(e: JsonRejection) -> ApiError {
    match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::too_large("body_too_large", e.body_text()),
        StatusCode::UNPROCESSABLE_ENTITY => ApiError::unprocessable("invalid_body", e.body_text()),
        _ => ApiError::bad_request("invalid_json", e.body_text()),
    }
}
