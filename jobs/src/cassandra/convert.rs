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
