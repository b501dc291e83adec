//! Decoding Kafka values by a declared JSON schema, with Spark's `from_json`
//! semantics (missing field → null, numbers/booleans/objects in a STRING field
//! → their JSON text, extra fields ignored), except that a malformed record is
//! not turned into a row of nulls: it is reported with its reason, for the
//! dead-letter table.

use std::sync::Arc;

use arrow::array::{ArrayRef, StructArray};
use arrow::datatypes::{DataType, Fields, Schema};
use arrow_json::ReaderBuilder;
use serde_json::{Map, Value};

/// The CQL type of the sink key the key field must parse as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    Uuid,
    Text,
    BigInt,
    Int,
}

impl KeyType {
    /// From a CQL type name; other key types are only checked for presence.
    pub fn from_cql(t: &str) -> Self {
        match t {
            "uuid" | "timeuuid" => KeyType::Uuid,
            "bigint" | "counter" => KeyType::BigInt,
            "int" | "smallint" | "tinyint" => KeyType::Int,
            _ => KeyType::Text,
        }
    }
    pub fn cql_name(&self) -> &'static str {
        match self {
            KeyType::Uuid => "uuid",
            KeyType::Text => "text",
            KeyType::BigInt => "bigint",
            KeyType::Int => "int",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ValueDecoder {
    fields: Fields,
    key: Option<(String, KeyType)>,
}

impl ValueDecoder {
    pub fn new(fields: Fields, key: Option<(String, KeyType)>) -> Self {
        Self { fields, key }
    }

    pub fn key(&self) -> Option<&(String, KeyType)> {
        self.key.as_ref()
    }

    pub fn fields(&self) -> &Fields {
        &self.fields
    }

    pub fn data_type(&self) -> DataType {
        DataType::Struct(self.fields.clone())
    }

    /// Checks one value and returns it as an object normalised for Arrow
    /// decoding, or the reason it is malformed.
    pub fn check(&self, value: Option<&[u8]>) -> Result<Map<String, Value>, String> {
        let bytes = match value {
            None => return Err("value is null".into()),
            Some([]) => return Err("value is empty".into()),
            Some(b) => b,
        };
        let text =
            std::str::from_utf8(bytes).map_err(|e| format!("value is not valid UTF-8: {e}"))?;
        // Like Spark's parser, read the first JSON value and ignore the rest.
        let parsed: Value = serde_json::Deserializer::from_str(text)
            .into_iter::<Value>()
            .next()
            .unwrap_or_else(|| Err(serde::de::Error::custom("no JSON value")))
            .map_err(|e| format!("value is not JSON: {e}"))?;
        let Value::Object(mut obj) = parsed else {
            return Err(format!(
                "value is not a JSON object but {}",
                json_kind(&parsed)
            ));
        };
        if let Some((key, ty)) = &self.key {
            check_key(obj.get(key.as_str()), key, *ty)?;
        }
        for f in self.fields.iter() {
            if let Some(v) = obj.get_mut(f.name().as_str()) {
                normalize(f.data_type(), v);
            }
        }
        Ok(obj)
    }

    /// Decodes checked objects into one struct column. On a type error the
    /// caller falls back to one record at a time to find the culprit.
    pub fn decode(&self, objs: &[Map<String, Value>]) -> Result<StructArray, String> {
        let schema = Arc::new(Schema::new(self.fields.clone()));
        let mut decoder = ReaderBuilder::new(schema)
            .with_coerce_primitive(true)
            .with_batch_size(objs.len().max(1))
            .build_decoder()
            .map_err(|e| e.to_string())?;
        decoder
            .serialize(objs)
            .map_err(|e| clean_arrow_error(&e.to_string()))?;
        let batch = decoder
            .flush()
            .map_err(|e| clean_arrow_error(&e.to_string()))?;
        Ok(match batch {
            Some(b) => StructArray::from(b),
            None => StructArray::new_empty_fields(0, None),
        })
    }

    /// Decodes `objs`, reporting each record that cannot be decoded by index.
    pub fn decode_each(
        &self,
        objs: Vec<Map<String, Value>>,
    ) -> (Option<ArrayRef>, Vec<(usize, String)>) {
        if objs.is_empty() {
            return (None, Vec::new());
        }
        if let Ok(a) = self.decode(&objs) {
            return (Some(Arc::new(a)), Vec::new());
        }
        let mut good = Vec::with_capacity(objs.len());
        let mut bad = Vec::new();
        for (i, o) in objs.into_iter().enumerate() {
            match self.decode(std::slice::from_ref(&o)) {
                Ok(_) => good.push(o),
                Err(e) => bad.push((i, format!("value does not match the schema: {e}"))),
            }
        }
        let arr = if good.is_empty() {
            None
        } else {
            self.decode(&good).ok().map(|a| Arc::new(a) as ArrayRef)
        };
        (arr, bad)
    }
}

/// Spark's field-level rules: a STRING field keeps any JSON value as its JSON
/// text; a value that does not fit a numeric or boolean field becomes null
/// (the rest of the record is kept).
fn normalize(dt: &DataType, v: &mut Value) {
    let fits = match dt {
        DataType::Utf8 => {
            if !matches!(v, Value::String(_) | Value::Null) {
                *v = Value::String(v.to_string());
            }
            true
        }
        DataType::Int8 => v.as_i64().is_some_and(|n| i8::try_from(n).is_ok()),
        DataType::Int16 => v.as_i64().is_some_and(|n| i16::try_from(n).is_ok()),
        DataType::Int32 => v.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
        DataType::Int64 => v.as_i64().is_some(),
        DataType::Float32 | DataType::Float64 => v.is_number(),
        DataType::Boolean => v.is_boolean(),
        _ => true,
    };
    if !fits && !v.is_null() {
        *v = Value::Null;
    }
}

fn clean_arrow_error(e: &str) -> String {
    e.trim_start_matches("Json error: ").to_string()
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn check_key(v: Option<&Value>, key: &str, ty: KeyType) -> Result<(), String> {
    let v = match v {
        None | Some(Value::Null) => return Err(format!("key field `{key}` is missing")),
        Some(v) => v,
    };
    let ok = match ty {
        KeyType::Uuid => v.as_str().is_some_and(|s| uuid::Uuid::parse_str(s).is_ok()),
        KeyType::BigInt => {
            v.as_i64().is_some() || v.as_str().is_some_and(|s| s.parse::<i64>().is_ok())
        }
        KeyType::Int => {
            v.as_i64().is_some_and(|n| i32::try_from(n).is_ok())
                || v.as_str().is_some_and(|s| s.parse::<i32>().is_ok())
        }
        KeyType::Text => !matches!(v, Value::Array(_) | Value::Object(_)),
    };
    if ok {
        Ok(())
    } else {
        let mut shown = v.to_string();
        if shown.len() > 80 {
            let mut end = 80;
            while !shown.is_char_boundary(end) {
                end -= 1;
            }
            shown.truncate(end);
            shown.push('…');
        }
        Err(format!(
            "key field `{key}` is not a {}: {shown}",
            ty.cql_name()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::parse_ddl_schema;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::Int32Type;

    fn dec() -> ValueDecoder {
        ValueDecoder::new(
            parse_ddl_schema("id STRING, name STRING, post_code STRING, age INT").unwrap(),
            Some(("id".into(), KeyType::Uuid)),
        )
    }
    const ID: &str = "2b4c8f3e-6a1d-4a8e-9f0b-1c2d3e4f5a6b";

    #[test]
    fn spark_semantics_for_good_records() {
        let d = dec();
        let a = d
            .check(Some(
                format!(r#"{{"id":"{ID}","post_code":12345,"age":7,"extra":true}}"#).as_bytes(),
            ))
            .unwrap();
        let b = d
            .check(Some(
                format!(r#"{{"id":"{ID}","name":{{"x":1}}}}"#).as_bytes(),
            ))
            .unwrap();
        let arr = d.decode(&[a, b]).unwrap();
        let pc = arr.column(2).as_string::<i32>();
        assert_eq!(pc.value(0), "12345"); // a number in a STRING field becomes its text
        assert!(arr.column(1).is_null(0)); // missing → null
        assert_eq!(arr.column(1).as_string::<i32>().value(1), r#"{"x":1}"#);
        assert_eq!(arr.column(3).as_primitive::<Int32Type>().value(0), 7);
    }

    #[test]
    fn malformed_records_have_reasons() {
        let d = dec();
        assert!(d.check(Some(b"")).unwrap_err().contains("empty"));
        assert!(d.check(Some(b"\xff\xfe")).unwrap_err().contains("UTF-8"));
        assert!(d.check(Some(b"not json")).unwrap_err().contains("not JSON"));
        assert!(
            d.check(Some(b"[1,2]"))
                .unwrap_err()
                .contains("not a JSON object")
        );
        assert!(
            d.check(Some(br#"{"name":"x"}"#))
                .unwrap_err()
                .contains("missing")
        );
        assert!(
            d.check(Some(br#"{"id":"nope"}"#))
                .unwrap_err()
                .contains("not a uuid")
        );
        assert!(d.check(None).is_err());
    }

    #[test]
    fn type_mismatch_is_found_per_record() {
        let d = dec();
        let good = d
            .check(Some(format!(r#"{{"id":"{ID}","age":3}}"#).as_bytes()))
            .unwrap();
        // A field of the wrong type is null, as in Spark; the record is kept.
        let odd = d
            .check(Some(format!(r#"{{"id":"{ID}","age":"old"}}"#).as_bytes()))
            .unwrap();
        let (arr, errs) = d.decode_each(vec![good.clone(), odd, good]);
        let arr = arr.unwrap();
        assert_eq!(arr.len(), 3);
        assert!(errs.is_empty());
        let arr = arr.as_struct();
        assert!(arr.column(3).is_null(1));
        assert_eq!(arr.column(3).as_primitive::<Int32Type>().value(0), 3);
    }
}
