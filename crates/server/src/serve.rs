//! [`serve`]: binds the address and runs the router until Ctrl-C, with the republish watcher.
//!
//! Connections are served by hyper's HTTP/1 with the limits a production server sets, so idle,
//! slow or abandoned clients cannot pin the server's sockets or memory:
//! - at most [`ServeOptions::max_connections`] open connections (further clients wait in the
//!   kernel's accept queue), sized below the open-files limit, which is first raised to its
//!   hard maximum;
//! - request headers (and the wait for the next request on a kept-alive connection) must
//!   arrive within [`ServeOptions::header_timeout`];
//! - a request body must keep flowing (each chunk within the header timeout) and a whole
//!   request, body and handler included, must finish within
//!   [`ServeOptions::request_timeout`] (408 otherwise).
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::timeout::RequestBodyTimeoutLayer;

use crate::error::ApiError;
use crate::router::router;
use crate::state::AppState;

/// How often the index directory is checked for a republish.
pub const RELOAD_EVERY: Duration = Duration::from_secs(1);

/// File descriptors kept free of connections for the index (RocksDB, tantivy, Parquet) and
/// the process itself.
const RESERVED_FDS: u64 = 128;

/// Connection and timeout limits of [`serve_with`].
#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    /// Open connections at most; 0 picks one from the open-files limit ([`connection_limit`]).
    pub max_connections: usize,
    /// Time for a request's headers, and for the next request on an idle kept-alive
    /// connection; also the longest pause within a request body.
    pub header_timeout: Duration,
    /// Time for a whole request (body and handler): 408 beyond.
    pub request_timeout: Duration,
    /// Time given to open connections to finish at shutdown.
    pub shutdown_grace: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            max_connections: 0,
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Raises the soft open-files limit to the hard one and returns how many connections fit
/// under it with [`RESERVED_FDS`] to spare (at least 16, at most 16,384).
pub fn connection_limit() -> usize {
    #[cfg(unix)]
    let files = {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit write/read only the struct passed.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
                if lim.rlim_cur < lim.rlim_max {
                    let raised = libc::rlimit {
                        rlim_cur: lim.rlim_max,
                        rlim_max: lim.rlim_max,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                        lim.rlim_cur = lim.rlim_max;
                    }
                }
                lim.rlim_cur
            } else {
                1024
            }
        }
    };
    #[cfg(not(unix))]
    let files = 1024u64;
    (files.saturating_sub(RESERVED_FDS) / 2).clamp(16, 16_384) as usize
}

/// Serves `state` on `addr` with [`ServeOptions::default`]; see [`serve_with`].
pub async fn serve(addr: SocketAddr, state: AppState) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    serve_with(listener, state, ServeOptions::default(), shutdown()).await
}

/// Serves `state` on `listener` until `stop` completes (Ctrl-C / SIGTERM for [`serve`]),
/// checking for republishes every [`RELOAD_EVERY`]. Must run inside a Tokio runtime.
pub async fn serve_with(
    listener: TcpListener,
    state: AppState,
    opts: ServeOptions,
    stop: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    Arc::clone(&state.index).spawn_watcher(RELOAD_EVERY);
    let max = if opts.max_connections == 0 {
        connection_limit()
    } else {
        opts.max_connections
    };
    tracing::info!(addr = %listener.local_addr()?, max_connections = max, "serving");
    let app = tower::ServiceBuilder::new()
        .layer(RequestBodyTimeoutLayer::new(opts.header_timeout))
        .service(router(state).layer(axum::middleware::from_fn_with_state(
            opts.request_timeout,
            deadline,
        )));
    let slots = Arc::new(Semaphore::new(max));
    let graceful = GracefulShutdown::new();
    let mut stop = std::pin::pin!(stop);
    loop {
        let slot = tokio::select! {
            s = Arc::clone(&slots).acquire_owned() => s.expect("invariant: never closed"),
            () = &mut stop => break,
        };
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // EMFILE / ENFILE / ECONNABORTED: transient; back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let _ = stream.set_nodelay(true);
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(opts.header_timeout)
            .keep_alive(true);
        let conn =
            builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    tracing::info!("shutting down");
    if tokio::time::timeout(opts.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the grace period; closing them");
    }
    Ok(())
}

/// Answers 408 `request_timeout` when a request (body and handler) takes longer than `limit`.
async fn deadline(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!("the request took longer than {} s", limit.as_secs()),
        )
        .into_response(),
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
