//! A client for any OpenAI-compatible chat-completions endpoint (llama.cpp's server, vLLM,
//! Ollama, hosted APIs): one blocking POST per request, retried with exponential backoff on
//! 429, 5xx, timeouts and dropped connections; other 4xx fail at once (a retry cannot fix a
//! bad model name or key). The API key is read from an environment variable and only ever put
//! in the `Authorization` header: never logged, never in an error.
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Environment variables read for the API key, first set wins.
pub const API_KEY_VARS: [&str; 2] = ["SCOPEDEX_LLM_API_KEY", "OPENAI_API_KEY"];

/// Settings of a [`ChatClient`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EndpointConfig {
    /// Base URL (`http://127.0.0.1:8080/v1`) or the full `.../chat/completions` URL.
    pub url: String,
    /// Model name sent in each request.
    pub model: String,
    /// Timeout of one request, whole response included.
    pub timeout: Duration,
    /// Retries after the first try (429, 5xx, timeouts, transport errors).
    pub max_retries: u32,
    /// First backoff; doubled on each retry, capped at 30 s, with jitter.
    pub backoff: Duration,
}

impl EndpointConfig {
    /// Defaults for `url` and `model`: 120 s timeout, 5 retries, 500 ms first backoff.
    pub fn new(url: impl Into<String>, model: impl Into<String>) -> Self {
        EndpointConfig {
            url: url.into(),
            model: model.into(),
            timeout: Duration::from_secs(120),
            max_retries: 5,
            backoff: Duration::from_millis(500),
        }
    }

    fn endpoint(&self, path: &str) -> String {
        let base = self.url.trim_end_matches('/');
        let base = base
            .strip_suffix("/chat/completions")
            .or_else(|| base.strip_suffix("/embeddings"))
            .unwrap_or(base);
        format!("{base}/{path}")
    }
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

impl Message {
    /// A message with `role`.
    pub fn new(role: &str, content: impl Into<String>) -> Self {
        Message {
            role: role.to_string(),
            content: content.into(),
        }
    }
}

/// Generation settings of one request.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sampling {
    /// Temperature (delphi: 0).
    pub temperature: f32,
    /// Most tokens generated.
    pub max_tokens: u32,
    /// Ask for the top-5 log probabilities of each generated token (AUROC of the scorers);
    /// endpoints that ignore it return none and the AUROC is left out.
    pub logprobs: bool,
}

/// The top alternatives of one generated token.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TokenLogprobs {
    /// The token generated.
    pub token: String,
    /// `(token, log probability)` of the top alternatives, the generated one included.
    pub top: Vec<(String, f32)>,
}

/// What the endpoint answered.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Completion {
    /// The assistant's text (empty when it said nothing).
    pub text: String,
    /// `stop`, `length` (truncated), ... as the endpoint reports it.
    pub finish_reason: String,
    /// Prompt tokens, as the endpoint counts them (0 when it does not say).
    pub prompt_tokens: u64,
    /// Generated tokens.
    pub completion_tokens: u64,
    /// Per generated token, when logprobs were asked for and returned.
    pub logprobs: Vec<TokenLogprobs>,
    /// Tries it took (1 = no retry).
    pub attempts: u32,
    /// Time from the first try to the answer, retries and backoff included.
    pub elapsed: Duration,
}

/// A chat-completions client; cheap to clone and share between threads.
#[derive(Clone)]
pub struct ChatClient {
    config: EndpointConfig,
    agent: ureq::Agent,
    api_key: Option<String>,
}

impl std::fmt::Debug for ChatClient {
    // The key is left out on purpose.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatClient")
            .field("config", &self.config)
            .field("api_key", &self.api_key.as_ref().map(|_| "<set>"))
            .finish()
    }
}

#[derive(Deserialize)]
struct ChatResponse {
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    message: Option<ChoiceMessage>,
    #[serde(default)]
    finish_reason: Option<String>,
    #[serde(default)]
    logprobs: Option<ChoiceLogprobs>,
}

#[derive(Deserialize)]
struct ChoiceMessage {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

#[derive(Deserialize)]
struct ChoiceLogprobs {
    #[serde(default)]
    content: Option<Vec<LogprobEntry>>,
}

#[derive(Deserialize)]
struct LogprobEntry {
    token: String,
    #[serde(default)]
    logprob: f32,
    #[serde(default)]
    top_logprobs: Vec<TopLogprob>,
}

#[derive(Deserialize)]
struct TopLogprob {
    token: String,
    logprob: f32,
}

#[derive(Deserialize)]
struct EmbeddingResponse {
    data: Vec<EmbeddingRow>,
}

#[derive(Deserialize)]
struct EmbeddingRow {
    #[serde(default)]
    index: Option<usize>,
    embedding: Vec<f32>,
}

/// Why one try failed, and whether another may succeed.
enum TryError {
    Retry(String, Option<Duration>),
    Fatal(Error),
}

impl ChatClient {
    /// A client with the key from the first of [`API_KEY_VARS`] that is set (none: no
    /// `Authorization` header, as local servers expect).
    pub fn new(config: EndpointConfig) -> Result<Self> {
        let key = API_KEY_VARS
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|k| !k.is_empty()));
        Self::with_key(config, key)
    }

    /// A client with an explicit key (tests; callers outside should use [`Self::new`]).
    pub fn with_key(config: EndpointConfig, api_key: Option<String>) -> Result<Self> {
        if !(config.url.starts_with("http://") || config.url.starts_with("https://")) {
            return Err(Error::InvalidInput(format!(
                "endpoint {:?}: expected an http:// or https:// URL",
                config.url
            )));
        }
        if config.model.trim().is_empty() {
            return Err(Error::InvalidInput("the model name is empty".into()));
        }
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(config.timeout))
            .http_status_as_error(false)
            .max_idle_connections_per_host(256)
            .build()
            .new_agent();
        Ok(ChatClient {
            config,
            agent,
            api_key,
        })
    }

    /// The settings.
    pub fn config(&self) -> &EndpointConfig {
        &self.config
    }

    /// Sends one chat request, retrying as the module docs say.
    pub fn chat(&self, messages: &[Message], sampling: Sampling) -> Result<Completion> {
        let mut body = serde_json::json!({
            "model": self.config.model,
            "messages": messages,
            "temperature": sampling.temperature,
            "max_tokens": sampling.max_tokens,
        });
        if sampling.logprobs {
            body["logprobs"] = true.into();
            body["top_logprobs"] = 5.into();
        }
        let url = self.config.endpoint("chat/completions");
        let start = Instant::now();
        let (text, attempts) = self.post_with_retries(&url, &body)?;
        let mut c = parse_chat_response(&url, &text)?;
        c.attempts = attempts;
        c.elapsed = start.elapsed();
        Ok(c)
    }

    /// Embeds `inputs` through the endpoint's `/embeddings` (one vector per input, in order).
    pub fn embed(&self, inputs: &[String]) -> Result<Vec<Vec<f32>>> {
        let url = self.config.endpoint("embeddings");
        let body = serde_json::json!({ "model": self.config.model, "input": inputs });
        let (text, _) = self.post_with_retries(&url, &body)?;
        let bad = |detail: String| Error::BadResponse {
            url: url.clone(),
            detail,
        };
        let r: EmbeddingResponse =
            serde_json::from_str(&text).map_err(|e| bad(format!("{e}: {}", excerpt(&text))))?;
        if r.data.len() != inputs.len() {
            return Err(bad(format!(
                "{} embeddings for {} inputs",
                r.data.len(),
                inputs.len()
            )));
        }
        let mut out = vec![Vec::new(); inputs.len()];
        for (i, row) in r.data.into_iter().enumerate() {
            let at = row.index.unwrap_or(i);
            match out.get_mut(at) {
                Some(slot) => *slot = row.embedding,
                None => return Err(bad(format!("embedding index {at} out of range"))),
            }
        }
        Ok(out)
    }

    fn post_with_retries(&self, url: &str, body: &serde_json::Value) -> Result<(String, u32)> {
        let payload = body.to_string();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            match self.try_post(url, &payload) {
                Ok(text) => return Ok((text, attempt)),
                Err(TryError::Fatal(e)) => return Err(e),
                Err(TryError::Retry(detail, retry_after)) => {
                    if attempt > self.config.max_retries {
                        return Err(Error::Endpoint {
                            url: url.to_string(),
                            detail: format!("{detail} (gave up after {attempt} tries)"),
                        });
                    }
                    let wait = retry_after.unwrap_or_else(|| backoff(self.config.backoff, attempt));
                    tracing::debug!(url, attempt, wait_ms = wait.as_millis() as u64, %detail, "retrying");
                    std::thread::sleep(wait);
                }
            }
        }
    }

    fn try_post(&self, url: &str, payload: &str) -> std::result::Result<String, TryError> {
        let mut req = self
            .agent
            .post(url)
            .header("content-type", "application/json");
        if let Some(key) = &self.api_key {
            req = req.header("authorization", format!("Bearer {key}"));
        }
        let response = match req.send(payload) {
            Ok(r) => r,
            Err(e) => return Err(classify_transport(url, e)),
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(|s| Duration::from_secs_f64(s.min(60.0)));
        let text = match response.into_body().read_to_string() {
            Ok(t) => t,
            Err(e) => return Err(classify_transport(url, e)),
        };
        match status {
            200..=299 => Ok(text),
            429 | 500..=599 => Err(TryError::Retry(
                format!("HTTP {status}: {}", excerpt(&text)),
                retry_after,
            )),
            _ => Err(TryError::Fatal(Error::Endpoint {
                url: url.to_string(),
                detail: format!("HTTP {status}: {}", excerpt(&text)),
            })),
        }
    }
}

fn classify_transport(url: &str, e: ureq::Error) -> TryError {
    match e {
        ureq::Error::BadUri(_) | ureq::Error::Http(_) | ureq::Error::RequireHttpsOnly(_) => {
            TryError::Fatal(Error::InvalidInput(format!("endpoint {url}: {e}")))
        }
        ureq::Error::Timeout(t) => TryError::Retry(format!("timed out ({t})"), None),
        other => TryError::Retry(other.to_string(), None),
    }
}

/// Exponential backoff with ±25% jitter (from the clock: no RNG state to share).
fn backoff(first: Duration, attempt: u32) -> Duration {
    let base = first.as_secs_f64() * 2f64.powi(attempt.saturating_sub(1).min(16) as i32);
    let base = base.min(30.0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let jitter = 0.75 + 0.5 * (nanos as f64 / 1e9);
    Duration::from_secs_f64(base * jitter)
}

/// The first 200 characters of a body, for error messages.
fn excerpt(text: &str) -> String {
    let t = text.trim();
    match t.char_indices().nth(200) {
        Some((i, _)) => format!("{}...", &t[..i]),
        None if t.is_empty() => "(empty body)".into(),
        None => t.to_string(),
    }
}

/// Parses a chat-completions body (public for the recorded-response tests).
pub fn parse_chat_response(url: &str, text: &str) -> Result<Completion> {
    let bad = |detail: String| Error::BadResponse {
        url: url.to_string(),
        detail,
    };
    let r: ChatResponse =
        serde_json::from_str(text).map_err(|e| bad(format!("{e}: {}", excerpt(text))))?;
    let choice = r
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| bad("no choices".into()))?;
    let logprobs = choice
        .logprobs
        .and_then(|l| l.content)
        .unwrap_or_default()
        .into_iter()
        .map(|e| {
            let mut top: Vec<(String, f32)> = e
                .top_logprobs
                .into_iter()
                .map(|t| (t.token, t.logprob))
                .collect();
            if top.is_empty() {
                top.push((e.token.clone(), e.logprob));
            }
            TokenLogprobs {
                token: e.token,
                top,
            }
        })
        .collect();
    let usage = r.usage.unwrap_or(Usage {
        prompt_tokens: 0,
        completion_tokens: 0,
    });
    Ok(Completion {
        text: choice.message.and_then(|m| m.content).unwrap_or_default(),
        finish_reason: choice.finish_reason.unwrap_or_default(),
        prompt_tokens: usage.prompt_tokens,
        completion_tokens: usage.completion_tokens,
        logprobs,
        attempts: 1,
        elapsed: Duration::ZERO,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_paths_accept_a_base_or_a_full_url() {
        let c = EndpointConfig::new("http://h:1/v1/", "m");
        assert_eq!(
            c.endpoint("chat/completions"),
            "http://h:1/v1/chat/completions"
        );
        let c = EndpointConfig::new("http://h:1/v1/chat/completions", "m");
        assert_eq!(c.endpoint("embeddings"), "http://h:1/v1/embeddings");
    }

    #[test]
    fn responses_parse_with_and_without_usage_and_logprobs() {
        let c = parse_chat_response(
            "u",
            r#"{"choices":[{"message":{"content":"hi"},"finish_reason":"stop",
               "logprobs":{"content":[{"token":"1","logprob":-0.1,
               "top_logprobs":[{"token":"1","logprob":-0.1},{"token":"0","logprob":-2.4}]}]}}],
               "usage":{"prompt_tokens":5,"completion_tokens":1}}"#,
        )
        .unwrap();
        assert_eq!(c.text, "hi");
        assert_eq!(c.prompt_tokens, 5);
        assert_eq!(c.logprobs[0].top.len(), 2);
        let c = parse_chat_response("u", r#"{"choices":[{"message":{"content":null}}]}"#).unwrap();
        assert_eq!(c.text, "");
        for bad in ["", "not json", r#"{"choices":[]}"#, r#"{"error":"x"}"#] {
            let e = parse_chat_response("u", bad).unwrap_err();
            assert!(matches!(e, Error::BadResponse { .. }), "{bad}: {e}");
        }
    }

    #[test]
    fn the_key_is_not_in_debug_output() {
        let c = ChatClient::with_key(
            EndpointConfig::new("http://h/v1", "m"),
            Some("sk-secret".into()),
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("sk-secret"));
    }
}
