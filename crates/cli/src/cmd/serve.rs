//! `scopedex serve INDEX`: the JSON API and the web UI.
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use scopedex_server::{AppState, IndexHandle, LiveModel};

use crate::args::ServeArgs;

/// Runs `scopedex serve` until Ctrl-C.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let handle = IndexHandle::open(&args.index)
        .with_context(|| format!("opening the index {}", args.index.display()))?;
    let mut state = AppState::new(Arc::new(handle));
    if !args.no_model {
        let manifest = state.index.snapshot().reader.manifest().clone();
        match LiveModel::load(&manifest) {
            Ok(live) => state = state.with_live(Arc::new(live)),
            Err(e) => tracing::warn!(
                error = %e,
                "model or SAEs not loaded; /api/activate will answer 503 (--no-model silences this)"
            ),
        }
    }
    let web = args
        .web
        .or_else(|| Some(PathBuf::from("web/dist")).filter(|d| d.join("index.html").is_file()));
    match web {
        Some(dir) => {
            tracing::info!(web = %dir.display(), "serving the web UI");
            state = state.with_web(dir);
        }
        None => tracing::info!("no web UI (build it with `npm run build` in web/); API only"),
    }
    eprintln!(
        "scopedex: serving {} on http://{}",
        args.index.display(),
        args.addr
    );
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(scopedex_server::serve(args.addr, state))
        .with_context(|| format!("serving on {}", args.addr))
}
