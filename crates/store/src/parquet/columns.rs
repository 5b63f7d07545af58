//! Building and reading Arrow columns with typed errors instead of panics: every downcast or
//! null found in a file becomes [`Error::Corrupt`] naming the file and column.
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, ArrowPrimitiveType, ListArray, PrimitiveArray, RecordBatch, StringArray,
    StructArray,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, FieldRef, Fields};

use crate::error::{Error, Result};

/// A non-null field.
pub(crate) fn field(name: &str, t: DataType) -> Field {
    Field::new(name, t, false)
}

/// `list<t>` with non-null items named `item` (Arrow's default name).
pub(crate) fn list_of(t: DataType) -> DataType {
    DataType::List(Arc::new(Field::new("item", t, false)))
}

/// The item field of a list type built by [`list_of`].
fn item_field(list: &DataType) -> FieldRef {
    match list {
        DataType::List(f) => f.clone(),
        // The schemas in this crate only pass list types here.
        other => unreachable!("item_field called with {other}"),
    }
}

/// A primitive column.
pub(crate) fn prim<T: ArrowPrimitiveType>(values: Vec<T::Native>) -> ArrayRef {
    Arc::new(PrimitiveArray::<T>::from_iter_values(values))
}

/// A string column.
pub(crate) fn strings<'a>(values: impl Iterator<Item = &'a str>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(values))
}

/// A binary column.
pub(crate) fn binaries<'a>(values: impl Iterator<Item = &'a [u8]>) -> ArrayRef {
    Arc::new(arrow::array::BinaryArray::from_iter_values(values))
}

/// A `list<T>` column from per-row slices.
pub(crate) fn list_prim<'a, T: ArrowPrimitiveType>(
    rows: impl Iterator<Item = &'a [T::Native]> + Clone,
) -> ArrayRef {
    let offsets = OffsetBuffer::<i32>::from_lengths(rows.clone().map(|r| r.len()));
    let values: Vec<T::Native> = rows.flat_map(|r| r.iter().copied()).collect();
    let list_type = list_of(T::DATA_TYPE);
    Arc::new(ListArray::new(
        item_field(&list_type),
        offsets,
        prim::<T>(values),
        None,
    ))
}

/// A `list<struct<...>>` column: `lengths` per row, `children` flattened over all rows.
pub(crate) fn list_struct(
    list_type: &DataType,
    lengths: impl Iterator<Item = usize>,
    children: Vec<ArrayRef>,
) -> ArrayRef {
    let item = item_field(list_type);
    let fields: Fields = match item.data_type() {
        DataType::Struct(f) => f.clone(),
        other => unreachable!("list_struct called with list<{other}>"),
    };
    let values = StructArray::new(fields, children, None);
    Arc::new(ListArray::new(
        item,
        OffsetBuffer::<i32>::from_lengths(lengths),
        Arc::new(values),
        None,
    ))
}

/// Typed, checked access to a batch's columns.
pub(crate) struct Columns<'a> {
    batch: &'a RecordBatch,
    location: &'a str,
}

impl<'a> Columns<'a> {
    pub(crate) fn new(batch: &'a RecordBatch, location: &'a str) -> Self {
        Columns { batch, location }
    }

    fn bad(&self, name: &str, reason: impl Into<String>) -> Error {
        Error::corrupt(format!("{} column {name}", self.location), reason)
    }

    fn column(&self, name: &str) -> Result<&'a ArrayRef> {
        let col = self
            .batch
            .column_by_name(name)
            .ok_or_else(|| self.bad(name, "column missing"))?;
        if col.null_count() > 0 {
            return Err(self.bad(name, "contains nulls"));
        }
        Ok(col)
    }

    /// A primitive column's values.
    pub(crate) fn prim<T: ArrowPrimitiveType>(&self, name: &str) -> Result<&'a [T::Native]> {
        let col = self.column(name)?;
        col.as_any()
            .downcast_ref::<PrimitiveArray<T>>()
            .map(|a| &a.values()[..])
            .ok_or_else(|| {
                self.bad(
                    name,
                    format!("type {}, expected {}", col.data_type(), T::DATA_TYPE),
                )
            })
    }

    /// A string column.
    pub(crate) fn strings(&self, name: &str) -> Result<&'a StringArray> {
        let col = self.column(name)?;
        col.as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| self.bad(name, format!("type {}, expected string", col.data_type())))
    }

    /// A binary column.
    pub(crate) fn binaries(&self, name: &str) -> Result<&'a arrow::array::BinaryArray> {
        let col = self.column(name)?;
        col.as_any()
            .downcast_ref::<arrow::array::BinaryArray>()
            .ok_or_else(|| self.bad(name, format!("type {}, expected binary", col.data_type())))
    }

    /// A list column: its offsets (`len + 1`) and its values array.
    pub(crate) fn list(&self, name: &str) -> Result<(&'a [i32], &'a ArrayRef)> {
        let col = self.column(name)?;
        let list = col
            .as_any()
            .downcast_ref::<ListArray>()
            .ok_or_else(|| self.bad(name, format!("type {}, expected list", col.data_type())))?;
        if list.values().null_count() > 0 {
            return Err(self.bad(name, "list items contain nulls"));
        }
        Ok((list.value_offsets(), list.values()))
    }

    /// A `list<T>` column as one `Vec<T>` per row.
    pub(crate) fn list_prim<T: ArrowPrimitiveType>(
        &self,
        name: &str,
    ) -> Result<Vec<Vec<T::Native>>> {
        let (offsets, values) = self.list(name)?;
        let values = self.downcast_values::<T>(name, values)?;
        Ok(split(offsets, values).map(<[T::Native]>::to_vec).collect())
    }

    /// The primitive values array of a list column (or of a struct child).
    pub(crate) fn downcast_values<T: ArrowPrimitiveType>(
        &self,
        name: &str,
        values: &'a ArrayRef,
    ) -> Result<&'a [T::Native]> {
        values
            .as_any()
            .downcast_ref::<PrimitiveArray<T>>()
            .map(|a| &a.values()[..])
            .ok_or_else(|| {
                self.bad(
                    name,
                    format!(
                        "items of type {}, expected {}",
                        values.data_type(),
                        T::DATA_TYPE
                    ),
                )
            })
    }

    /// A struct child of a `list<struct>` column's values.
    pub(crate) fn struct_child<T: ArrowPrimitiveType>(
        &self,
        name: &str,
        values: &'a ArrayRef,
        child: &str,
    ) -> Result<&'a [T::Native]> {
        let s = values
            .as_any()
            .downcast_ref::<StructArray>()
            .ok_or_else(|| {
                self.bad(
                    name,
                    format!("items of type {}, expected struct", values.data_type()),
                )
            })?;
        let c = s
            .column_by_name(child)
            .ok_or_else(|| self.bad(name, format!("struct field {child} missing")))?;
        if c.null_count() > 0 {
            return Err(self.bad(name, format!("struct field {child} contains nulls")));
        }
        self.downcast_values::<T>(name, c)
    }
}

/// Splits flat list values by offsets into per-row slices.
pub(crate) fn split<'a, T>(
    offsets: &'a [i32],
    values: &'a [T],
) -> impl Iterator<Item = &'a [T]> + 'a {
    offsets
        .windows(2)
        .map(move |w| &values[w[0] as usize..w[1] as usize])
}
