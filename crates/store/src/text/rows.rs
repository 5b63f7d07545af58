//! Streaming reads of the sorted Parquet tables the serving stores are built from: [`Rows`]
//! (one row at a time, with a lookahead head) and the per-feature `max_act` column.
use std::path::Path;

use crate::error::Result;
use crate::layout::IndexLayout;
use crate::parquet::TableReader;
use crate::records::FeatureRecord;

/// Rows of one sorted table, one at a time.
pub(crate) struct Rows<T: crate::parquet::Table> {
    reader: Option<TableReader<T>>,
    buf: std::vec::IntoIter<T>,
    pub(crate) head: Option<T>,
}

impl<T: crate::parquet::Table> Rows<T> {
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let reader = if path.exists() {
            Some(TableReader::<T>::open(path)?)
        } else {
            None
        };
        let mut rows = Rows {
            reader,
            buf: Vec::new().into_iter(),
            head: None,
        };
        rows.head = rows.pull()?;
        Ok(rows)
    }

    fn pull(&mut self) -> Result<Option<T>> {
        loop {
            if let Some(r) = self.buf.next() {
                return Ok(Some(r));
            }
            match self.reader.as_mut().and_then(Iterator::next) {
                Some(batch) => self.buf = batch?.into_iter(),
                None => return Ok(None),
            }
        }
    }

    pub(crate) fn advance(&mut self) -> Result<Option<T>> {
        let next = self.pull()?;
        Ok(std::mem::replace(&mut self.head, next))
    }
}

/// `max_act` of every feature of `sae` (0 where `features.parquet` has no row).
pub(crate) fn feature_maxes(layout: &IndexLayout, sae: &str, d_sae: u32) -> Result<Vec<f32>> {
    let mut max = vec![0.0f32; d_sae as usize];
    let path = layout.features(sae);
    if path.exists() {
        for batch in TableReader::<FeatureRecord>::open(&path)? {
            for r in batch? {
                if let Some(m) = max.get_mut(r.feature as usize) {
                    *m = r.max_act;
                }
            }
        }
    }
    Ok(max)
}
