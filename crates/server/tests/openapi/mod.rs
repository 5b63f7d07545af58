//! A minimal validator of responses against `schemas/openapi.yaml`: finds the operation by
//! method and path template, the response by status, and checks the JSON body against its
//! schema (`$ref`, `type`, `required`, `properties` — undeclared properties are errors, so the
//! shapes stay exactly as specified —, `items`, `enum`, `minimum`/`maximum`).
use std::path::Path;

use serde_json::Value;

pub struct Spec {
    doc: Value,
}

impl Spec {
    pub fn load() -> Spec {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas/openapi.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        Spec {
            doc: serde_yaml::from_str(&text).unwrap(),
        }
    }

    /// The path template of `path` (query string stripped), e.g. `/api/saes/{sae}`.
    fn template(&self, path: &str) -> Option<String> {
        let path = path.split('?').next().unwrap();
        let segs: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        let paths = self.doc["paths"].as_object().unwrap();
        // Prefer literal matches over parameters (`/random` vs `{feature}` never clash, but be safe).
        let mut best: Option<(usize, String)> = None;
        for t in paths.keys() {
            let ts: Vec<&str> = t.split('/').collect();
            if ts.len() != segs.len() {
                continue;
            }
            let mut literal = 0;
            let ok = ts.iter().zip(&segs).all(|(a, b)| {
                if a.starts_with('{') {
                    true
                } else {
                    literal += 1;
                    a == b
                }
            });
            if ok && best.as_ref().is_none_or(|(l, _)| literal > *l) {
                best = Some((literal, t.clone()));
            }
        }
        best.map(|(_, t)| t)
    }

    fn resolve<'a>(&'a self, mut v: &'a Value) -> &'a Value {
        while let Some(r) = v.get("$ref").and_then(Value::as_str) {
            let mut cur = &self.doc;
            for part in r.trim_start_matches("#/").split('/') {
                cur = &cur[part];
            }
            assert!(!cur.is_null(), "dangling $ref {r}");
            v = cur;
        }
        v
    }

    /// Checks that `status` is documented for the operation and `body` matches its schema.
    pub fn check(&self, method: &str, path: &str, status: u16, body: &Value) -> Result<(), String> {
        let t = self
            .template(path)
            .ok_or_else(|| format!("{path}: no path in the spec"))?;
        let op = &self.doc["paths"][&t][method.to_lowercase()];
        if op.is_null() {
            return Err(format!("{method} {t}: no operation in the spec"));
        }
        let resp = &op["responses"][status.to_string()];
        if resp.is_null() {
            return Err(format!("{method} {t}: status {status} is not documented"));
        }
        let resp = self.resolve(resp);
        let schema = &resp["content"]["application/json"]["schema"];
        if schema.is_null() {
            return Err(format!("{method} {t} {status}: no JSON schema"));
        }
        let mut errors = Vec::new();
        self.validate(schema, body, "$", &mut errors);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{method} {path} {status}:\n  {}",
                errors.join("\n  ")
            ))
        }
    }

    fn validate(&self, schema: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
        let s = self.resolve(schema);
        if v.is_null() && s.get("nullable").and_then(Value::as_bool) == Some(true) {
            return;
        }
        for part in s
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            self.validate(part, v, at, errors);
        }
        if let Some(t) = s.get("type").and_then(Value::as_str) {
            let ok = match t {
                "object" => v.is_object(),
                "array" => v.is_array(),
                "string" => v.is_string(),
                "integer" => v.is_u64() || v.is_i64(),
                "number" => v.is_number(),
                "boolean" => v.is_boolean(),
                other => panic!("unsupported type {other}"),
            };
            if !ok {
                errors.push(format!("{at}: expected {t}, got {v}"));
                return;
            }
        }
        if let Some(e) = s.get("enum").and_then(Value::as_array) {
            if !e.contains(v) {
                errors.push(format!("{at}: {v} not in {e:?}"));
            }
        }
        if let (Some(min), Some(x)) = (s.get("minimum").and_then(Value::as_f64), v.as_f64()) {
            if x < min {
                errors.push(format!("{at}: {x} < minimum {min}"));
            }
        }
        if let (Some(max), Some(x)) = (s.get("maximum").and_then(Value::as_f64), v.as_f64()) {
            if x > max {
                errors.push(format!("{at}: {x} > maximum {max}"));
            }
        }
        if let Some(obj) = v.as_object() {
            let props = s.get("properties").and_then(Value::as_object);
            for r in s
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let r = r.as_str().unwrap();
                if !obj.contains_key(r) {
                    errors.push(format!("{at}: missing required {r}"));
                }
            }
            if let Some(props) = props {
                for (k, val) in obj {
                    match props.get(k) {
                        Some(ps) => self.validate(ps, val, &format!("{at}.{k}"), errors),
                        None => errors.push(format!("{at}: undeclared property {k}")),
                    }
                }
            }
        }
        if let (Some(items), Some(arr)) = (s.get("items"), v.as_array()) {
            for (i, x) in arr.iter().enumerate() {
                self.validate(items, x, &format!("{at}[{i}]"), errors);
            }
        }
    }
}
