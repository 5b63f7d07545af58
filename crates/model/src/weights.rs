//! Where weights come from: a GGUF file or an HF directory (`config.json` + safetensors,
//! single-file or sharded with `model.safetensors.index.json`).
//!
//! Every source answers in HF tensor names (`model.layers.{i}.self_attn.q_proj.weight`, ...)
//! and HF orientation (`[out, in]`), as f32 on the requested device, with the shape checked
//! against the config. GGUF-specific renaming and the q/k row un-permutation live in
//! [`crate::gguf`].
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Tensor};

use crate::config::Config;
use crate::families::Family;
use crate::{Error, Result};

/// A store of named model weights.
pub(crate) trait WeightSource {
    /// The file or directory, for error messages.
    fn path(&self) -> &Path;
    /// Whether the tensor (HF name) exists.
    fn has(&self, name: &str) -> bool;
    /// Whether the weights come from a GGUF file (llama.cpp's converter changes some of them,
    /// e.g. Gemma's norm gains).
    fn is_gguf(&self) -> bool {
        false
    }
    /// Loads the tensor (HF name) on `device` in the file's float dtype (a GGUF's dequantized
    /// f32), in HF orientation, without shape checks.
    fn load_raw(&mut self, name: &str, device: &Device) -> Result<Tensor>;

    /// The dtype [`WeightSource::load`] hands out.
    fn dtype(&self) -> DType {
        DType::F32
    }

    /// Loads the tensor in [`WeightSource::dtype`] and checks its shape is `shape`.
    fn load(&mut self, name: &str, shape: &[usize], device: &Device) -> Result<Tensor> {
        let dtype = self.dtype();
        self.load_as(name, shape, device, dtype)
    }

    /// Loads the tensor in f32 whatever [`WeightSource::dtype`] is (norm gains and biases: the
    /// norms run in f32) and checks its shape is `shape`.
    fn load_f32(&mut self, name: &str, shape: &[usize], device: &Device) -> Result<Tensor> {
        self.load_as(name, shape, device, DType::F32)
    }

    #[doc(hidden)]
    fn load_as(
        &mut self,
        name: &str,
        shape: &[usize],
        device: &Device,
        dtype: DType,
    ) -> Result<Tensor> {
        let t = self.load_raw(name, device)?;
        if t.dims() != shape {
            return Err(Error::BadTensor {
                path: self.path().to_path_buf(),
                tensor: name.to_string(),
                detail: format!("has shape {:?}, the config implies {:?}", t.dims(), shape),
            });
        }
        Ok(t.to_dtype(dtype)?)
    }
}

/// A weight source whose [`WeightSource::load`] hands out `dtype` (the backend's): a bf16
/// checkpoint loaded for a bf16 backend goes to the device as stored, never widened on the host.
pub(crate) struct InDtype<'a> {
    pub(crate) inner: &'a mut dyn WeightSource,
    pub(crate) dtype: DType,
}

impl WeightSource for InDtype<'_> {
    fn path(&self) -> &Path {
        self.inner.path()
    }
    fn has(&self, name: &str) -> bool {
        self.inner.has(name)
    }
    fn is_gguf(&self) -> bool {
        self.inner.is_gguf()
    }
    fn load_raw(&mut self, name: &str, device: &Device) -> Result<Tensor> {
        self.inner.load_raw(name, device)
    }
    fn dtype(&self) -> DType {
        self.dtype
    }
}

/// Weights of an HF checkpoint directory, memory-mapped.
pub(crate) struct SafetensorsSource {
    dir: PathBuf,
    names: BTreeSet<String>,
    st: MmapedSafetensors,
}

impl SafetensorsSource {
    /// Opens `dir/model.safetensors`, or the shards listed by `dir/model.safetensors.index.json`.
    pub(crate) fn open(dir: &Path) -> Result<Self> {
        let single = dir.join("model.safetensors");
        let index = dir.join("model.safetensors.index.json");
        let files: Vec<PathBuf> = if single.is_file() {
            vec![single]
        } else if index.is_file() {
            let text = read_text(&index)?;
            let v: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| Error::BadConfig {
                    path: index.clone(),
                    field: "(json)".into(),
                    detail: e.to_string(),
                })?;
            let map = v
                .get("weight_map")
                .and_then(|m| m.as_object())
                .ok_or_else(|| Error::BadConfig {
                    path: index.clone(),
                    field: "weight_map".into(),
                    detail: "is missing or not an object".into(),
                })?;
            let mut shards = BTreeSet::new();
            for (tensor, f) in map {
                let f = f.as_str().ok_or_else(|| Error::BadConfig {
                    path: index.clone(),
                    field: format!("weight_map.{tensor}"),
                    detail: "is not a file name".into(),
                })?;
                shards.insert(dir.join(f));
            }
            shards.into_iter().collect()
        } else {
            return Err(Error::Io {
                path: single,
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "neither model.safetensors nor model.safetensors.index.json exists",
                ),
            });
        };
        for f in &files {
            if !f.is_file() {
                return Err(Error::Io {
                    path: f.clone(),
                    source: std::io::Error::new(std::io::ErrorKind::NotFound, "shard not found"),
                });
            }
        }
        // SAFETY: the files are memory-mapped read-only; as with every mmap-based loader, they
        // must not be truncated while the model loads.
        let st = unsafe { MmapedSafetensors::multi(&files) }.map_err(|e| Error::BadGguf {
            path: dir.to_path_buf(),
            detail: format!("invalid safetensors: {e}"),
        })?;
        let names = st.tensors().into_iter().map(|(n, _)| n).collect();
        Ok(SafetensorsSource {
            dir: dir.to_path_buf(),
            names,
            st,
        })
    }
}

impl WeightSource for SafetensorsSource {
    fn path(&self) -> &Path {
        &self.dir
    }

    fn has(&self, name: &str) -> bool {
        self.names.contains(name)
    }

    fn load_raw(&mut self, name: &str, device: &Device) -> Result<Tensor> {
        if !self.has(name) {
            return Err(Error::BadTensor {
                path: self.dir.clone(),
                tensor: name.to_string(),
                detail: "is missing".into(),
            });
        }
        let t = self.st.load(name, device).map_err(|e| Error::BadTensor {
            path: self.dir.clone(),
            tensor: name.to_string(),
            detail: e.to_string(),
        })?;
        match t.dtype() {
            DType::F32 | DType::F16 | DType::BF16 => Ok(t),
            other => Err(Error::Unsupported {
                path: self.dir.clone(),
                what: "tensor dtype".into(),
                detail: format!("{name} is {other:?} (need f32, f16 or bf16)"),
            }),
        }
    }
}

/// Reads a text file, naming it in the error.
pub(crate) fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads `dir/config.json` and resolves it by its family (`model_type`, else `architectures`).
pub(crate) fn read_hf_config(dir: &Path) -> Result<Config> {
    let path = dir.join("config.json");
    let text = read_text(&path)?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::BadConfig {
        path: path.clone(),
        field: "(json)".into(),
        detail: e.to_string(),
    })?;
    // Gemma 3 4B and up are image-text models whose text model sits in `text_config` and under
    // `language_model` in the weights; say so rather than "unsupported gemma3".
    if json.get("model_type").and_then(|v| v.as_str()) == Some("gemma3") {
        return Err(Error::Unsupported {
            path: path.clone(),
            what: "model_type".into(),
            detail: "`gemma3` (Gemma3ForConditionalGeneration, the image-text 4B+ models): \
                     scopedex runs text-only checkpoints, `gemma3_text` (Gemma 3 270M and 1B)"
                .into(),
        });
    }
    let family = match json.get("model_type").and_then(|v| v.as_str()) {
        Some(mt) => {
            Family::from_model_type(mt).ok_or_else(|| Family::unknown(&path, "model_type", mt))?
        }
        None => {
            let arch = json
                .get("architectures")
                .and_then(|a| a.get(0))
                .and_then(|a| a.as_str())
                .ok_or_else(|| Error::BadConfig {
                    path: path.clone(),
                    field: "model_type".into(),
                    detail: "is missing (and no `architectures` names the model class)".into(),
                })?;
            Family::from_hf_architecture(arch)
                .ok_or_else(|| Family::unknown(&path, "architecture", arch))?
        }
    };
    family.config_from_hf(&json, &path)
}
