//! [`AppState`]: what every handler reaches through `State<AppState>`.
use std::path::PathBuf;
use std::sync::Arc;

use crate::live::LiveModel;
use crate::snapshot::IndexHandle;

/// Shared, cheaply cloned state of the server.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The served index (current snapshot, swapped on republish).
    pub index: Arc<IndexHandle>,
    /// Model and SAEs for `/api/activate`; `None` answers 503.
    pub live: Option<Arc<LiveModel>>,
    /// The built web UI (`web/dist/`) served at `/`; `None` serves the API only.
    pub web: Option<PathBuf>,
    /// Origins allowed to call the API from a browser (CORS); `None`: no CORS headers.
    pub cors: Option<Vec<axum::http::HeaderValue>>,
    /// An OpenAI-compatible embeddings endpoint: `/api/features/search` ranks by meaning too.
    pub embeddings: Option<Arc<scopedex_explain::ChatClient>>,
}

impl AppState {
    /// State serving `index`, without a live model.
    pub fn new(index: Arc<IndexHandle>) -> Self {
        AppState {
            index,
            live: None,
            web: None,
            cors: None,
            embeddings: None,
        }
    }

    /// The same state with a live model.
    pub fn with_live(mut self, live: Arc<LiveModel>) -> Self {
        self.live = Some(live);
        self
    }

    /// The same state allowing browser calls from `origins` (`*` allows any).
    pub fn with_cors(mut self, origins: Vec<axum::http::HeaderValue>) -> Self {
        self.cors = Some(origins);
        self
    }

    /// The same state serving the web UI from `dir`.
    pub fn with_web(mut self, dir: PathBuf) -> Self {
        self.web = Some(dir);
        self
    }
}
