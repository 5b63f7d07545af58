//! [`serve`]: binds the address and runs the router until Ctrl-C, with the republish watcher.
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::router::router;
use crate::state::AppState;

/// How often the index directory is checked for a republish.
pub const RELOAD_EVERY: Duration = Duration::from_secs(1);

/// Serves `state` on `addr` until Ctrl-C (or SIGTERM), checking for republishes every
/// [`RELOAD_EVERY`]. Must run inside a Tokio runtime.
pub async fn serve(addr: SocketAddr, state: AppState) -> std::io::Result<()> {
    Arc::clone(&state.index).spawn_watcher(RELOAD_EVERY);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "serving");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown())
        .await
}

async fn shutdown() {
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
    tracing::info!("shutting down");
}
