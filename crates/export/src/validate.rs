//! A small JSON Schema validator for the subset `schemas/neuronpedia-batch.schema.json` uses
//! (draft 2020-12 semantics): `type` (one or a list), `properties`, `required`,
//! `additionalProperties` (bool or schema), `items`, `minItems`, `maxItems`, `minimum`,
//! `maximum`, `enum`, `const` and local `$ref`s (`#/$defs/...`). Annotation keywords
//! (`$schema`, `$id`, `title`, `description`, `$comment`, `$defs`) are ignored; any other
//! keyword is reported, so the schema cannot silently rely on something unchecked.
use serde_json::Value;

/// Validates `instance` against `schema`; returns every violation as `path: message`.
pub fn validate(schema: &Value, instance: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    check(schema, schema, instance, "$", &mut errors);
    errors
}

fn type_ok(t: &str, v: &Value) -> bool {
    match t {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "string" => v.is_string(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        "number" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
        _ => false,
    }
}

fn resolve<'a>(root: &'a Value, r: &str) -> Option<&'a Value> {
    root.pointer(r.strip_prefix('#')?)
}

fn check(root: &Value, schema: &Value, v: &Value, path: &str, errors: &mut Vec<String>) {
    let obj = match schema {
        Value::Bool(true) => return,
        Value::Bool(false) => {
            errors.push(format!("{path}: no value is allowed here"));
            return;
        }
        Value::Object(o) => o,
        _ => {
            errors.push(format!("{path}: schema is not an object"));
            return;
        }
    };
    for (k, s) in obj {
        match k.as_str() {
            "$schema" | "$id" | "title" | "description" | "$comment" | "$defs" | "definitions"
            | "examples" | "default" => {}
            "$ref" => match s.as_str().and_then(|r| resolve(root, r)) {
                Some(target) => check(root, target, v, path, errors),
                None => errors.push(format!("{path}: unresolvable $ref {s}")),
            },
            "type" => {
                let ok = match s {
                    Value::String(t) => type_ok(t, v),
                    Value::Array(ts) => {
                        ts.iter().any(|t| t.as_str().is_some_and(|t| type_ok(t, v)))
                    }
                    _ => false,
                };
                if !ok {
                    errors.push(format!("{path}: expected type {s}, got {}", brief(v)));
                }
            }
            "enum" => {
                if !s.as_array().is_some_and(|e| e.contains(v)) {
                    errors.push(format!("{path}: {} is not one of {s}", brief(v)));
                }
            }
            "const" => {
                if s != v {
                    errors.push(format!("{path}: expected {s}, got {}", brief(v)));
                }
            }
            "minimum" | "maximum" => {
                if let (Some(x), Some(bound)) = (v.as_f64(), s.as_f64()) {
                    let bad = if k == "minimum" { x < bound } else { x > bound };
                    if bad {
                        errors.push(format!("{path}: {x} violates {k} {bound}"));
                    }
                }
            }
            "minItems" | "maxItems" => {
                if let (Some(a), Some(n)) = (v.as_array(), s.as_u64()) {
                    let bad = if k == "minItems" {
                        (a.len() as u64) < n
                    } else {
                        (a.len() as u64) > n
                    };
                    if bad {
                        errors.push(format!("{path}: {} items violates {k} {n}", a.len()));
                    }
                }
            }
            "items" => {
                if let Some(a) = v.as_array() {
                    for (i, item) in a.iter().enumerate() {
                        check(root, s, item, &format!("{path}[{i}]"), errors);
                    }
                }
            }
            "required" => {
                if let (Some(o), Some(req)) = (v.as_object(), s.as_array()) {
                    for r in req.iter().filter_map(Value::as_str) {
                        if !o.contains_key(r) {
                            errors.push(format!("{path}: missing required key {r:?}"));
                        }
                    }
                }
            }
            "properties" => {
                if let (Some(o), Some(props)) = (v.as_object(), s.as_object()) {
                    for (name, sub) in props {
                        if let Some(x) = o.get(name) {
                            check(root, sub, x, &format!("{path}.{name}"), errors);
                        }
                    }
                }
            }
            "additionalProperties" => {
                if let Some(o) = v.as_object() {
                    let props = obj.get("properties").and_then(Value::as_object);
                    for (name, x) in o {
                        if props.is_some_and(|p| p.contains_key(name)) {
                            continue;
                        }
                        check(root, s, x, &format!("{path}.{name}"), errors);
                    }
                }
            }
            other => errors.push(format!("{path}: unsupported schema keyword {other:?}")),
        }
    }
}

fn brief(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 60 {
        format!("{}…", &s[..s.floor_char_boundary_compat(60)])
    } else {
        s
    }
}

trait FloorBoundary {
    fn floor_char_boundary_compat(&self, i: usize) -> usize;
}

impl FloorBoundary for str {
    fn floor_char_boundary_compat(&self, mut i: usize) -> usize {
        while i > 0 && !self.is_char_boundary(i) {
            i -= 1;
        }
        i
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn checks_the_subset() {
        let schema = json!({
            "$defs": {"n": {"type": "integer", "minimum": -1}},
            "type": "object",
            "required": ["a", "b"],
            "additionalProperties": false,
            "properties": {
                "a": {"$ref": "#/$defs/n"},
                "b": {"type": "array", "items": {"type": ["string", "null"]}, "minItems": 1},
                "c": {"enum": [1, 2]}
            }
        });
        assert!(validate(&schema, &json!({"a": 3, "b": ["x", null]})).is_empty());
        assert_eq!(validate(&schema, &json!({"a": -2, "b": []})).len(), 2);
        assert_eq!(
            validate(&schema, &json!({"a": 1.5, "b": [1], "d": 0})).len(),
            3
        );
        assert_eq!(validate(&schema, &json!({"b": ["x"], "c": 3})).len(), 2);
        assert_eq!(validate(&json!({"pattern": "x"}), &json!("x")).len(), 1);
    }
}
