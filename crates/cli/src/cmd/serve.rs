//! `scopedex serve INDEX`: the JSON API and the web UI.
use std::sync::Arc;

use anyhow::Context as _;
use scopedex_server::live::ModelOverride;
use scopedex_server::serve::{serve_with, shutdown, ServeOptions};
use scopedex_server::{AppState, IndexHandle, LiveModel};

use crate::args::ServeArgs;

/// Runs `scopedex serve` until Ctrl-C.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let handle = IndexHandle::open(&args.index)
        .with_context(|| format!("opening the index {}", args.index.display()))?;
    let mut state = AppState::new(Arc::new(handle));
    if let Some(url) = &args.embeddings_endpoint {
        let client = scopedex_explain::ChatClient::new(scopedex_explain::EndpointConfig::new(
            url,
            &args.embeddings_model,
        ))?;
        state.embeddings = Some(Arc::new(client));
    }
    if !args.no_model {
        let manifest = state.index.snapshot().reader.manifest().clone();
        let over = ModelOverride {
            model: args.model.clone(),
            force: args.force,
            backend: crate::backend()?,
        };
        match LiveModel::load_with(&manifest, &over) {
            Ok(live) => state = state.with_live(Arc::new(live)),
            // A model the user named must load: a wrong or mismatched file is an error.
            Err(e) if args.model.is_some() => return Err(e.into()),
            Err(e) => tracing::warn!(
                error = %e,
                "model or SAEs not loaded; /api/activate will answer 503 (--no-model silences this)"
            ),
        }
    }
    // The UI embedded in the binary, unless --web names a build to serve instead.
    match args.web {
        Some(dir) => {
            if !dir.join("index.html").is_file() {
                anyhow::bail!(scopedex_store::Error::InvalidInput(format!(
                    "--web {}: no index.html there (build the UI with `npm run build` in web/)",
                    dir.display()
                )));
            }
            tracing::info!(web = %dir.display(), "serving the web UI from a directory");
            state = state.with_web(dir);
        }
        None if scopedex_server::web::embedded() => tracing::info!("serving the embedded web UI"),
        None => tracing::info!(
            "this binary has no web UI (build web/ with `npm run build` before the binary, or \
             pass --web DIR); API only"
        ),
    }
    if !args.cors.is_empty() {
        let origins = args
            .cors
            .iter()
            .map(|o| {
                o.parse::<axum::http::HeaderValue>()
                    .with_context(|| format!("--cors {o:?} is not a valid origin"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        state = state.with_cors(origins);
    }
    let opts = ServeOptions {
        max_connections: args.max_connections,
        ..ServeOptions::default()
    };
    eprintln!(
        "scopedex: serving {} on http://{}",
        args.index.display(),
        args.addr
    );
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            let listener = tokio::net::TcpListener::bind(args.addr).await?;
            serve_with(listener, state, opts, shutdown()).await
        })
        .with_context(|| format!("serving on {}", args.addr))
}
