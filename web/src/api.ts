// The scopedex HTTP API (schemas/openapi.yaml) as typed fetch calls.

export interface ApiErrorBody {
  error: string;
  detail: string;
}

export class ApiError extends Error {
  constructor(
    public status: number,
    public kind: string,
    public detail: string,
    /** invalid_query: 0-based character position of the error in the query. */
    public position?: number,
  ) {
    super(`${status} ${kind}: ${detail}`);
  }
}

export interface Health {
  status: string;
  model_loaded: boolean;
  format_version: number;
}
export interface IndexInfo {
  format_version: number;
  model: { id: string; sha256?: string };
  corpus: { files: string[] };
  ctx_len: number;
  n_contexts: number;
  saes: string[];
  created?: string;
}
export interface SaeSummary {
  sae_id: string;
  d_in: number;
  d_sae: number;
  hook_in?: string;
  hook_out?: string;
  tokens_indexed: number;
  mean_l0: number;
  dead_features: number;
  explained_variance: number;
  density_hist: number[];
  density_hist_edges: number[];
  warning?: string;
}
export interface FeatureBrief {
  feature: number;
  density: number;
  max_act: number;
  mean_act: number;
  explanation: string | null;
  explanation_score: number | null;
}
export interface Scores {
  n: number;
  precision: number | null;
  recall: number | null;
  f1: number | null;
  balanced_accuracy: number | null;
  auroc: number | null;
}
export interface Explanation {
  text: string;
  model: string;
  prompt_version: string;
  created: string;
  scorer_model: string | null;
  scored: string | null;
  detection: Scores | null;
  fuzzing: Scores | null;
  /** Detection balanced accuracy, else fuzzing's. */
  score: number | null;
}
export interface FeatureSearchHit {
  sae: string;
  feature: number;
  score: number;
  explanation: Explanation;
  density: number | null;
  max_act: number | null;
}
export interface FeatureSearchResults {
  query: string;
  sae: string | null;
  hits: FeatureSearchHit[];
}
export interface FeatureList {
  sae: string;
  total: number;
  features: FeatureBrief[];
}
export interface TokenCount {
  token_id: number;
  token: string;
  count: number;
}
export interface TokenValue {
  token_id: number;
  token: string;
  value: number;
}
export interface Example {
  kind?: string;
  rank: number;
  context_id: number;
  doc_id: string;
  max_act: number;
  max_pos: number;
  token_ids: number[];
  tokens: string[];
  acts: number[];
}
export interface Examples {
  sae: string;
  feature: number;
  examples: Example[];
}
export interface Partner {
  other_sae: string;
  other_feature: number;
  n_both: number;
  jaccard: number;
  npmi: number;
}
export interface Interval {
  interval: number;
  min: number;
  max: number;
  examples: Example[];
}
export interface FeatureDashboard {
  sae: string;
  feature: number;
  d_sae: number;
  density: number;
  n_fired: number;
  max_act: number;
  mean_act: number;
  act_hist: number[];
  act_hist_edges: number[];
  top_tokens: TokenCount[];
  logit_pos: TokenValue[];
  logit_neg: TokenValue[];
  /** Counts of the logit effects over the vocabulary, equal-width bins across logit_hist_range. */
  logit_hist: number[];
  logit_hist_range: [number, number];
  top_examples: Example[];
  intervals: Interval[];
  cooccurrence: Partner[];
  decoder_neighbours: Neighbour[];
  explanation: Explanation | null;
}
export interface Neighbour {
  other_sae: string;
  other_feature: number;
  cosine: number;
}
export interface FeatureMatch {
  sae: string;
  feature: number;
  max_act: number;
  pos: number;
  /** UTF-8 byte range of the firing token in `text`. */
  start: number;
  end: number;
  explanation: string | null;
}
export interface SearchHit {
  context_id: number;
  doc_id: string;
  score: number;
  text: string;
  features: { sae: string; feature: number; max_act: number; explanation: string | null }[];
  matches: FeatureMatch[];
  /** Features whose strongest token is a matched word, strongest first. */
  at_words: { sae: string; feature: number; max_act: number; explanation: string | null }[];
}
export interface QueryFeature {
  sae: string;
  feature: number;
  min_strength: number;
  negated: boolean;
}
export interface SearchResults {
  query: string;
  features: QueryFeature[];
  /** The SAEs whose strongest features each hit lists, in index order. */
  feature_saes: string[];
  hits: SearchHit[];
}
export interface SimilarHit {
  context_id: number;
  doc_id: string;
  score: number;
  text: string;
  shared: { sae: string; feature: number; weight: number; max_act: number }[];
}
export interface SimilarResults {
  context_id?: number;
  sae?: string;
  terms: number;
  hits: SimilarHit[];
}
export interface Activation {
  tokens: {
    pos: number;
    token_id: number;
    token: string;
    features: { sae: string; feature: number; act: number }[];
  }[];
}

async function request<T>(path: string, init?: RequestInit): Promise<T> {
  let res: Response;
  try {
    res = await fetch(path, { headers: { Accept: "application/json" }, ...init });
  } catch (e) {
    if (e instanceof DOMException && e.name === "AbortError") throw e;
    throw new ApiError(0, "network", "The scopedex server could not be reached. Is `scopedex serve` running?");
  }
  const text = await res.text();
  let body: unknown = undefined;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    /* not JSON */
  }
  if (!res.ok) {
    const b = body as Partial<ApiErrorBody> | undefined;
    throw new ApiError(
      res.status,
      typeof b?.error === "string" ? b.error : `http_${res.status}`,
      typeof b?.detail === "string" ? b.detail : text.slice(0, 300) || res.statusText,
      typeof (b as { position?: unknown } | undefined)?.position === "number" ? (b as { position: number }).position : undefined,
    );
  }
  if (body === undefined) throw new ApiError(res.status, "bad_response", "The server sent a response that is not JSON.");
  return body as T;
}

const enc = encodeURIComponent;

export const api = {
  health: (signal?: AbortSignal) => request<Health>("/api/health", { signal }),
  index: (signal?: AbortSignal) => request<IndexInfo>("/api/index", { signal }),
  saes: (signal?: AbortSignal) => request<{ saes: SaeSummary[] }>("/api/saes", { signal }),
  sae: (sae: string, signal?: AbortSignal) => request<SaeSummary>(`/api/saes/${enc(sae)}`, { signal }),
  features: (
    sae: string,
    q: { sort: string; order: string; live: boolean; limit: number; offset: number },
    signal?: AbortSignal,
  ) =>
    request<FeatureList>(
      `/api/saes/${enc(sae)}/features?sort=${enc(q.sort)}&order=${enc(q.order)}&live=${q.live}&limit=${q.limit}&offset=${q.offset}`,
      { signal },
    ),
  random: (sae: string, signal?: AbortSignal) =>
    request<{ sae: string; feature: number }>(`/api/saes/${enc(sae)}/random`, { signal }),
  feature: (sae: string, f: number, signal?: AbortSignal) =>
    request<FeatureDashboard>(`/api/saes/${enc(sae)}/features/${f}`, { signal }),
  examples: (sae: string, f: number, kind: string, limit: number, offset: number, signal?: AbortSignal) =>
    request<Examples>(
      `/api/saes/${enc(sae)}/features/${f}/examples?kind=${enc(kind)}&limit=${limit}&offset=${offset}`,
      { signal },
    ),
  featureSearch: (q: string, limit: number, signal?: AbortSignal) =>
    request<FeatureSearchResults>(`/api/features/search?q=${enc(q)}&limit=${limit}`, { signal }),
  search: (q: string, limit: number, sae: string | null, signal?: AbortSignal) =>
    request<SearchResults>(`/api/search?q=${enc(q)}&limit=${limit}${sae ? `&sae=${enc(sae)}` : ""}`, { signal }),
  similar: (contextId: number, sae: string | null, limit: number, signal?: AbortSignal) =>
    request<SimilarResults>(
      `/api/contexts/${contextId}/similar?limit=${limit}${sae ? `&sae=${enc(sae)}` : ""}`,
      { signal },
    ),
  activate: (text: string, topN: number, signal?: AbortSignal) =>
    request<Activation>("/api/activate", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ text, top_n: topN }),
      signal,
    }),
};
