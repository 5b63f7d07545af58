//! Typed access to fields of a JSON config object, with errors naming the file and field.
//!
//! serde's derive would report a wrong type without the field's name and has no notion of
//! "required unless another field says otherwise", so the loaders read fields one by one.
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// A parsed JSON object and the file it came from.
pub(crate) struct Fields {
    pub path: PathBuf,
    pub map: Map<String, Value>,
}

impl Fields {
    /// Reads and parses `path`, which must hold a JSON object.
    pub fn read(path: &Path) -> Result<Fields> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let value: Value = serde_json::from_str(&text).map_err(|source| Error::Json {
            path: path.to_path_buf(),
            source,
        })?;
        match value {
            Value::Object(map) => Ok(Fields {
                path: path.to_path_buf(),
                map,
            }),
            _ => Err(Error::invalid(path, "(root)", "expected a JSON object")),
        }
    }

    /// The same file viewed through a nested object (e.g. SAELens v6 `metadata`).
    pub fn nested(&self, key: &str) -> Option<Fields> {
        match self.map.get(key) {
            Some(Value::Object(map)) => Some(Fields {
                path: self.path.clone(),
                map: map.clone(),
            }),
            _ => None,
        }
    }

    /// The raw value; JSON `null` counts as absent.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    fn wrong(&self, key: &str, what: &str, v: &Value) -> Error {
        Error::invalid(&self.path, key, format!("expected {what}, found {v}"))
    }

    pub fn opt_usize(&self, key: &str) -> Result<Option<usize>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) => Ok(Some(n as usize)),
                // Some configs write integral widths as floats (e.g. 8.0).
                None => match v.as_f64() {
                    Some(f) if f >= 0.0 && f.fract() == 0.0 => Ok(Some(f as usize)),
                    _ => Err(self.wrong(key, "a non-negative integer", v)),
                },
            },
        }
    }

    pub fn usize(&self, key: &str) -> Result<usize> {
        self.opt_usize(key)?
            .ok_or_else(|| Error::missing(&self.path, key))
    }

    pub fn opt_f32(&self, key: &str) -> Result<Option<f32>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.as_f64() {
                Some(f) if f.is_finite() => Ok(Some(f as f32)),
                _ => Err(self.wrong(key, "a finite number", v)),
            },
        }
    }

    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_bool()
                .map(Some)
                .ok_or_else(|| self.wrong(key, "true or false", v)),
        }
    }

    pub fn bool(&self, key: &str) -> Result<bool> {
        self.opt_bool(key)?
            .ok_or_else(|| Error::missing(&self.path, key))
    }

    pub fn opt_str(&self, key: &str) -> Result<Option<String>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(self.wrong(key, "a string", v)),
        }
    }

    pub fn str(&self, key: &str) -> Result<String> {
        self.opt_str(key)?
            .ok_or_else(|| Error::missing(&self.path, key))
    }
}
