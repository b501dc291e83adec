//! Arrow columns to CQL values, by the sink column's CQL type.

use arrow::array::{Array, ArrayRef, AsArray, StringArray};
use arrow::compute::cast;
use arrow::datatypes::{
    DataType, Date32Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type,
    TimeUnit, TimestampMillisecondType,
};
use scylla::cluster::metadata::ColumnType;
use scylla::serialize::SerializationError;
use scylla::serialize::value::SerializeValue;
use scylla::serialize::writers::{CellWriter, WrittenCellProof};
use scylla::value::{CqlDate, CqlTimestamp, CqlValue};

/// The CQL types the sink writes.
pub fn supported(cql_type: &str) -> bool {
    matches!(
        cql_type,
        "text"
            | "varchar"
            | "ascii"
            | "uuid"
            | "timeuuid"
            | "bigint"
            | "int"
            | "smallint"
            | "tinyint"
            | "double"
            | "float"
            | "boolean"
            | "timestamp"
            | "blob"
            | "date"
    )
}

/// One input column as the sink writes it. Text is read from the Arrow
/// array when the row is serialized, so a cell costs no `String`; other
/// types are converted up front, with per-row errors.
pub enum SinkColumn {
    Text(StringArray),
    Values(Vec<Result<Option<CqlValue>, String>>),
}

impl SinkColumn {
    pub fn new(a: &ArrayRef, cql_type: &str, name: &str) -> Result<SinkColumn, String> {
        match cql_type {
            "text" | "varchar" | "ascii" => Ok(SinkColumn::Text(
                cast_for(a, cql_type, name)?.as_string::<i32>().clone(),
            )),
            _ => column_values(a, cql_type, name).map(SinkColumn::Values),
        }
    }

    /// Why row `i` of this column cannot be written, if it cannot.
    pub fn error(&self, i: usize) -> Option<&str> {
        match self {
            SinkColumn::Values(v) => v.get(i).and_then(|r| r.as_ref().err()).map(String::as_str),
            SinkColumn::Text(_) => None,
        }
    }

    /// Writes row `i`'s cell, which [`Self::error`] passed.
    pub fn serialize<'b>(
        &self,
        i: usize,
        typ: &ColumnType,
        w: CellWriter<'b>,
    ) -> Result<WrittenCellProof<'b>, SerializationError> {
        match self {
            SinkColumn::Text(a) if a.is_null(i) => Ok(w.set_null()),
            SinkColumn::Text(a) => a.value(i).serialize(typ, w),
            SinkColumn::Values(v) => match v.get(i) {
                Some(Ok(c)) => c.serialize(typ, w),
                _ => Err(SerializationError::new(std::io::Error::other(format!(
                    "row {i} has no value to write"
                )))),
            },
        }
    }
}

/// `a` as the Arrow type the sink reads for `cql_type`.
fn cast_for(a: &ArrayRef, cql_type: &str, name: &str) -> Result<ArrayRef, String> {
    let target = match cql_type {
        "text" | "varchar" | "ascii" | "uuid" | "timeuuid" => DataType::Utf8,
        "bigint" => DataType::Int64,
        "int" => DataType::Int32,
        "smallint" => DataType::Int16,
        "tinyint" => DataType::Int8,
        "double" => DataType::Float64,
        "float" => DataType::Float32,
        "boolean" => DataType::Boolean,
        "timestamp" => DataType::Timestamp(TimeUnit::Millisecond, None),
        "blob" => DataType::Binary,
        "date" => DataType::Date32,
        other => {
            return Err(format!(
                "sink column `{name}` has CQL type {other}, which Ember's sink does not write"
            ));
        }
    };
    Ok(if a.data_type() == &target {
        a.clone()
    } else {
        cast(a, &target).map_err(|e| {
            format!(
                "column `{name}`: cannot convert {} to {cql_type}: {e}",
                a.data_type()
            )
        })?
    })
}

/// Converts one column for a CQL type; per-row errors are returned by row.
fn column_values(
    a: &ArrayRef,
    cql_type: &str,
    name: &str,
) -> Result<Vec<Result<Option<CqlValue>, String>>, String> {
    let a = cast_for(a, cql_type, name)?;
    let n = a.len();
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        if a.is_null(i) {
            out.push(Ok(None));
            continue;
        }
        let v = match cql_type {
            "text" | "varchar" => Ok(CqlValue::Text(a.as_string::<i32>().value(i).to_string())),
            "ascii" => Ok(CqlValue::Ascii(a.as_string::<i32>().value(i).to_string())),
            "uuid" | "timeuuid" => {
                let s = a.as_string::<i32>().value(i);
                uuid::Uuid::parse_str(s)
                    .map(|u| {
                        if cql_type == "uuid" {
                            CqlValue::Uuid(u)
                        } else {
                            CqlValue::Timeuuid(u.into())
                        }
                    })
                    .map_err(|e| format!("column `{name}`: {s:?} is not a uuid: {e}"))
            }
            "bigint" => Ok(CqlValue::BigInt(a.as_primitive::<Int64Type>().value(i))),
            "int" => Ok(CqlValue::Int(a.as_primitive::<Int32Type>().value(i))),
            "smallint" => Ok(CqlValue::SmallInt(a.as_primitive::<Int16Type>().value(i))),
            "tinyint" => Ok(CqlValue::TinyInt(a.as_primitive::<Int8Type>().value(i))),
            "double" => Ok(CqlValue::Double(a.as_primitive::<Float64Type>().value(i))),
            "float" => Ok(CqlValue::Float(a.as_primitive::<Float32Type>().value(i))),
            "boolean" => Ok(CqlValue::Boolean(a.as_boolean().value(i))),
            "timestamp" => Ok(CqlValue::Timestamp(CqlTimestamp(
                a.as_primitive::<TimestampMillisecondType>().value(i),
            ))),
            "blob" => Ok(CqlValue::Blob(a.as_binary::<i32>().value(i).to_vec())),
            "date" => Ok(CqlValue::Date(CqlDate(
                (a.as_primitive::<Date32Type>().value(i) as i64 + (1i64 << 31)) as u32,
            ))),
            _ => unreachable!("checked above"),
        };
        out.push(v.map(Some));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};
    use scylla::cluster::metadata::NativeType;
    use scylla::serialize::writers::RowWriter;

    use super::*;

    const ID: &str = "2b4c8f3e-6a1d-4a8e-9f0b-1c2d3e4f5a6b";

    fn cells(col: &SinkColumn, typ: ColumnType, rows: usize) -> Vec<u8> {
        let mut buf = Vec::new();
        let mut w = RowWriter::new(&mut buf);
        for i in 0..rows {
            col.serialize(i, &typ, w.make_cell_writer()).unwrap();
        }
        buf
    }

    #[test]
    fn text_cells_are_written_from_the_array() {
        let a: ArrayRef = Arc::new(StringArray::from(vec![Some("héllo"), None]));
        let col = SinkColumn::new(&a, "text", "name").unwrap();
        assert_eq!(col.error(0), None);
        let mut want = 6i32.to_be_bytes().to_vec();
        want.extend_from_slice("héllo".as_bytes());
        want.extend_from_slice(&(-1i32).to_be_bytes());
        assert_eq!(cells(&col, ColumnType::Native(NativeType::Text), 2), want);
        // A number in a text column is cast to its text.
        let n: ArrayRef = Arc::new(Int64Array::from(vec![42]));
        let col = SinkColumn::new(&n, "text", "n").unwrap();
        let mut want = 2i32.to_be_bytes().to_vec();
        want.extend_from_slice(b"42");
        assert_eq!(cells(&col, ColumnType::Native(NativeType::Text), 1), want);
    }

    #[test]
    fn a_bad_cell_names_its_row_and_column() {
        let a: ArrayRef = Arc::new(StringArray::from(vec![Some(ID), Some("nope"), None]));
        let col = SinkColumn::new(&a, "uuid", "ref").unwrap();
        assert_eq!(col.error(0), None);
        assert_eq!(col.error(2), None);
        let e = col.error(1).expect("row 1 is not a uuid");
        assert!(e.contains("`ref`") && e.contains("not a uuid"), "{e}");
        let mut want = 16i32.to_be_bytes().to_vec();
        want.extend_from_slice(uuid::Uuid::parse_str(ID).unwrap().as_bytes());
        assert_eq!(cells(&col, ColumnType::Native(NativeType::Uuid), 1), want);
        let err = SinkColumn::new(&a, "map<text, int>", "m").err().unwrap();
        assert!(err.contains("does not write"), "{err}");
    }
}
