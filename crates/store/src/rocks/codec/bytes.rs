//! The primitives every value is made of: the version byte, the little-endian writer [`Enc`]
//! and the bounds-checked reader [`Dec`], and shared helpers (in-place little-endian reads,
//! the SAE name table of partner lists).
use crate::error::{Error, Result};

/// Version byte of every value written by this build.
pub(crate) const VALUE_VERSION: u8 = 1;

pub(super) struct Enc(pub(super) Vec<u8>);

impl Enc {
    pub(super) fn new(capacity: usize) -> Self {
        let mut v = Vec::with_capacity(capacity + 1);
        v.push(VALUE_VERSION);
        Enc(v)
    }
    pub(super) fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    pub(super) fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub(super) fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub(super) fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub(super) fn f32(&mut self, v: f32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub(super) fn f64(&mut self, v: f64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub(super) fn len(&mut self, n: usize) {
        // Counts come from in-memory Vecs of records far below 4 G items.
        self.u32(u32::try_from(n).unwrap_or(u32::MAX));
    }
    pub(super) fn str(&mut self, s: &str) {
        self.len(s.len());
        self.0.extend_from_slice(s.as_bytes());
    }
}

/// Reads a value, turning every short read into [`Error::Corrupt`] naming cf and key.
pub(crate) struct Dec<'a> {
    buf: &'a [u8],
    pos: usize,
    cf: &'static str,
    key: &'a [u8],
}

impl<'a> Dec<'a> {
    pub(crate) fn new(cf: &'static str, key: &'a [u8], buf: &'a [u8]) -> Result<Self> {
        let mut d = Dec {
            buf,
            pos: 0,
            cf,
            key,
        };
        let v = d.u8()?;
        if v != VALUE_VERSION {
            return Err(d.err(format!(
                "value version {v}, this build reads {VALUE_VERSION}"
            )));
        }
        Ok(d)
    }

    pub(super) fn err(&self, reason: impl Into<String>) -> Error {
        Error::corrupt(
            format!("rocksdb:{}:{}", self.cf, hex::encode(self.key)),
            reason,
        )
    }

    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.buf.len() - self.pos < n {
            return Err(self.err(format!(
                "truncated: need {n} bytes at offset {}, value has {}",
                self.pos,
                self.buf.len()
            )));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    pub(super) fn arr<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    pub(super) fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    pub(super) fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.arr()?))
    }
    pub(super) fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.arr()?))
    }
    pub(super) fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.arr()?))
    }
    pub(super) fn f32(&mut self) -> Result<f32> {
        Ok(f32::from_le_bytes(self.arr()?))
    }
    pub(super) fn f64(&mut self) -> Result<f64> {
        Ok(f64::from_le_bytes(self.arr()?))
    }
    /// A count of items of `item_bytes` each, checked against the bytes left.
    pub(super) fn count(&mut self, item_bytes: usize) -> Result<usize> {
        let n = self.u32()? as usize;
        let left = self.buf.len() - self.pos;
        if n.saturating_mul(item_bytes.max(1)) > left {
            return Err(self.err(format!("count {n} exceeds the {left} bytes left")));
        }
        Ok(n)
    }
    pub(super) fn str(&mut self) -> Result<String> {
        let n = self.count(1)?;
        let bytes = self.take(n)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| self.err("string is not UTF-8"))
    }
    pub(super) fn vec<T>(
        &mut self,
        item_bytes: usize,
        mut f: impl FnMut(&mut Self) -> Result<T>,
    ) -> Result<Vec<T>> {
        let n = self.count(item_bytes)?;
        (0..n).map(|_| f(self)).collect()
    }
    pub(super) fn at_end(&self) -> bool {
        self.pos == self.buf.len()
    }
    pub(super) fn end(self) -> Result<()> {
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            Err(self.err(format!("{} trailing bytes", self.buf.len() - self.pos)))
        }
    }
}

pub(super) fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

pub(super) fn le_f32(b: &[u8]) -> f32 {
    f32::from_bits(le_u32(b))
}

/// The distinct SAE names of a list, in first-seen order: partner and neighbour values store
/// each name once and refer to it by position.
pub(super) fn name_table<'a>(names: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut table: Vec<&str> = Vec::new();
    for n in names {
        if !table.contains(&n) {
            table.push(n);
        }
    }
    table
}
