//! Decoding Kafka values by a declared JSON schema, with Spark's `from_json`
//! semantics (missing field → null, numbers/booleans/objects in a STRING field
//! → their JSON text, extra fields ignored). A malformed record is reported
//! with its reason: the Kafka source leaves it out for the dead-letter table,
//! `from_json` gives it a row of null fields as Spark does.

use std::sync::Arc;

use arrow::array::{StructArray, new_empty_array};
use arrow::datatypes::{DataType, Fields, Schema};
use arrow_json::ReaderBuilder;
use serde_json::{Map, Value};

mod direct;

/// What a malformed record becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// Left out of the column (and reported): the Kafka source's dead letters.
    Report,
    /// A row of null fields (and reported): `from_json`'s PERMISSIVE mode.
    NullFields,
}

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

    /// Decodes `values` into one struct column of the fields, with Spark's
    /// `from_json` semantics, and reports each malformed record by its index
    /// in `values` with the reason. Value schemas of strings, numbers and
    /// booleans are decoded directly into the columns; other types (dates,
    /// timestamps, binary) through `serde_json::Value` and arrow-json.
    pub fn decode_values<'a>(
        &self,
        values: impl IntoIterator<Item = Option<&'a [u8]>>,
        mode: Malformed,
    ) -> (StructArray, Vec<(usize, String)>) {
        let key = self.key.as_ref();
        if direct::supports(&self.fields, key.map(|k| k.0.as_str())) {
            return direct::decode(&self.fields, key, values, mode);
        }
        self.decode_general(values, mode)
    }

    /// `decode_values` through `serde_json::Value` and arrow-json.
    fn decode_general<'a>(
        &self,
        values: impl IntoIterator<Item = Option<&'a [u8]>>,
        mode: Malformed,
    ) -> (StructArray, Vec<(usize, String)>) {
        let mut objs = Vec::new();
        let mut at = Vec::new();
        let mut bad = Vec::new();
        for (i, v) in values.into_iter().enumerate() {
            match self.check(v) {
                Ok(o) => {
                    objs.push(o);
                    at.push(i);
                }
                Err(reason) => {
                    bad.push((i, reason));
                    if mode == Malformed::NullFields {
                        objs.push(Map::new());
                        at.push(i);
                    }
                }
            }
        }
        let (array, failed) = self.decode_each(objs, mode);
        bad.extend(failed.into_iter().map(|(k, reason)| (at[k], reason)));
        bad.sort_by_key(|b| b.0);
        (array, bad)
    }

    /// Checks one value and returns it as an object normalised for Arrow
    /// decoding, or the reason it is malformed.
    fn check(&self, value: Option<&[u8]>) -> Result<Map<String, Value>, String> {
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
            let v = obj.get(key.as_str());
            check_key(value_key(v), key, *ty, || {
                v.map_or_else(|| "null".into(), Value::to_string)
            })?;
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
    fn decode(&self, objs: &[Map<String, Value>]) -> Result<StructArray, String> {
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
            None => self.empty(),
        })
    }

    /// Decodes `objs`, reporting each record that cannot be decoded by its
    /// index (left out, or as null fields, by `mode`).
    fn decode_each(
        &self,
        mut objs: Vec<Map<String, Value>>,
        mode: Malformed,
    ) -> (StructArray, Vec<(usize, String)>) {
        if let Ok(a) = self.decode(&objs) {
            return (a, Vec::new());
        }
        let mut bad = Vec::new();
        let mut good = Vec::with_capacity(objs.len());
        for (i, o) in objs.drain(..).enumerate() {
            match self.decode(std::slice::from_ref(&o)) {
                Ok(_) => good.push(o),
                Err(e) => {
                    bad.push((i, format!("value does not match the schema: {e}")));
                    if mode == Malformed::NullFields {
                        good.push(Map::new());
                    }
                }
            }
        }
        let array = self.decode(&good).unwrap_or_else(|_| self.empty());
        (array, bad)
    }

    fn empty(&self) -> StructArray {
        StructArray::from(new_empty_array(&self.data_type()).to_data())
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

/// A key field's value, as far as the key check looks at it.
enum KeyVal<'a> {
    Missing,
    Str(&'a str),
    /// An integer that fits an i64.
    Int(i64),
    /// Another number, or a boolean.
    Scalar,
    /// An object or an array.
    Nested,
}

fn value_key(v: Option<&Value>) -> KeyVal<'_> {
    match v {
        None | Some(Value::Null) => KeyVal::Missing,
        Some(Value::String(s)) => KeyVal::Str(s),
        Some(Value::Array(_) | Value::Object(_)) => KeyVal::Nested,
        Some(v) => v.as_i64().map_or(KeyVal::Scalar, KeyVal::Int),
    }
}

/// Checks that the key field is present and of the sink key's type; `shown`
/// renders the value as JSON for the reason.
fn check_key(
    v: KeyVal,
    key: &str,
    ty: KeyType,
    shown: impl FnOnce() -> String,
) -> Result<(), String> {
    let ok = match (&v, ty) {
        (KeyVal::Missing, _) => return Err(format!("key field `{key}` is missing")),
        (KeyVal::Str(s), KeyType::Uuid) => uuid::Uuid::parse_str(s).is_ok(),
        (KeyVal::Str(s), KeyType::BigInt) => s.parse::<i64>().is_ok(),
        (KeyVal::Str(s), KeyType::Int) => s.parse::<i32>().is_ok(),
        (KeyVal::Int(_), KeyType::BigInt) => true,
        (KeyVal::Int(n), KeyType::Int) => i32::try_from(*n).is_ok(),
        (KeyVal::Nested, KeyType::Text) => false,
        (_, KeyType::Text) => true,
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        let mut shown = shown();
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
        let (arr, errs) = d.decode_each(vec![good.clone(), odd, good], Malformed::Report);
        assert_eq!(arr.len(), 3);
        assert!(errs.is_empty());
        assert!(arr.column(3).is_null(1));
        assert_eq!(arr.column(3).as_primitive::<Int32Type>().value(0), 3);
    }

    /// Values of every kind, in every field type the direct path takes, and
    /// every way a record can be malformed.
    fn corpus() -> Vec<Option<Vec<u8>>> {
        let rec = |body: &str| Some(format!(r#"{{"id":"{ID}",{body}}}"#).into_bytes());
        let mut c = vec![
            rec(r#""s":"plain","i":7,"b":-3,"f":1.5,"t":true,"g":2"#),
            rec(r#""s":"esc\"aped \u00e9\n","i":2147483647,"b":9223372036854775807"#),
            // Numbers, booleans, objects and arrays in a STRING field: their JSON text.
            rec(r#""s":12345,"i":null,"f":-2"#),
            rec(r#""s":1e20,"f":18446744073709551615"#),
            rec(r#""s":-0.5,"t":false"#),
            rec(r#""s":true"#),
            rec(r#""s":{"x":[1, {"y":"z"}], "w": null},"i":1"#),
            rec(r#""s":[1,"two",3.0]"#),
            // Values that do not fit a field: null there, the record kept.
            rec(r#""i":2147483648,"b":18446744073709551615,"g":300,"h":40000"#),
            rec(r#""i":1.0,"b":"12","f":"1.5","t":1,"g":-129"#),
            rec(r#""i":[1],"f":{"a":1},"t":"true"}"#),
            // Extra, repeated and reordered fields.
            rec(r#""extra":{"deep":[1,2,{"x":null}]},"s":"first","s":"last","i":1"#),
            Some(format!(r#"{{"t":true,"s":"x","id":"{ID}"}} trailing"#).into_bytes()),
            Some(format!(r#"  {{"id":"{ID}"}}"#).into_bytes()),
            // Malformed: each has its reason.
            None,
            Some(Vec::new()),
            Some(b"  \n".to_vec()),
            Some(b"\xff\xfe".to_vec()),
            Some(b"not json".to_vec()),
            Some(br#"{"id":"#.to_vec()),
            Some(b"[1,2]".to_vec()),
            Some(b"\"text\"".to_vec()),
            Some(b"null".to_vec()),
            Some(b"true".to_vec()),
            Some(br#"{"s":"no id"}"#.to_vec()),
            Some(br#"{"id":null}"#.to_vec()),
            Some(br#"{"id":"not-a-uuid"}"#.to_vec()),
            Some(br#"{"id":42}"#.to_vec()),
            Some(br#"{"id":{"nested":"x"}}"#.to_vec()),
            Some(format!(r#"{{"id":"{}"}}"#, "x".repeat(100)).into_bytes()),
        ];
        c.push(rec(r#""s":"\ud83d\ude00 and é""#));
        c
    }

    fn all_types(key: Option<(&str, KeyType)>) -> ValueDecoder {
        ValueDecoder::new(
            parse_ddl_schema(
                "id STRING, s STRING, i INT, b BIGINT, f DOUBLE, t BOOLEAN, g TINYINT, h SMALLINT, r FLOAT",
            )
            .unwrap(),
            key.map(|(k, t)| (k.to_string(), t)),
        )
    }

    #[test]
    fn direct_decoding_matches_the_general_path() {
        let values = corpus();
        let values = || values.iter().map(|v| v.as_deref());
        for key in [
            Some(("id", KeyType::Uuid)),
            Some(("id", KeyType::Text)),
            Some(("i", KeyType::Int)),
            Some(("b", KeyType::BigInt)),
            Some(("s", KeyType::BigInt)),
            None,
        ] {
            let d = all_types(key);
            assert!(direct::supports(d.fields(), key.map(|k| k.0)));
            for mode in [Malformed::Report, Malformed::NullFields] {
                let (want, want_bad) = d.decode_general(values(), mode);
                let (got, got_bad) = direct::decode(d.fields(), d.key(), values(), mode);
                assert_eq!(got_bad, want_bad, "reasons, key {key:?}, {mode:?}");
                assert_eq!(got, want, "columns, key {key:?}, {mode:?}");
            }
        }
        // The corpus exercises both outcomes: kept rows and reasons.
        let (arr, bad) =
            all_types(Some(("id", KeyType::Uuid))).decode_values(values(), Malformed::Report);
        assert_eq!(arr.len() + bad.len(), values().count());
        assert_eq!(bad.len(), 16, "{bad:#?}");
        let s = arr.column(1).as_string::<i32>();
        assert_eq!(s.value(0), "plain");
        assert_eq!(s.value(1), "esc\"aped é\n");
        assert_eq!(s.value(2), "12345");
        assert_eq!(s.value(6), r#"{"w":null,"x":[1,{"y":"z"}]}"#);
        assert_eq!(s.value(11), "last");
    }

    #[test]
    fn malformed_records_become_null_fields_in_from_json_mode() {
        let d = all_types(None);
        let good = format!(r#"{{"id":"{ID}","i":5}}"#);
        let values = [Some(good.as_bytes()), Some(&b"{oops"[..]), None];
        let (arr, bad) = d.decode_values(values, Malformed::NullFields);
        assert_eq!(arr.len(), 3);
        assert_eq!(bad.iter().map(|b| b.0).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(arr.column(2).as_primitive::<Int32Type>().value(0), 5);
        for row in [1, 2] {
            assert!(arr.columns().iter().all(|c| c.is_null(row)), "row {row}");
        }
        let (arr, bad) = d.decode_values(values, Malformed::Report);
        assert_eq!((arr.len(), bad.len()), (1, 2));
    }

    #[test]
    fn dates_and_timestamps_take_the_general_path() {
        let d = ValueDecoder::new(
            parse_ddl_schema("id STRING, at TIMESTAMP").unwrap(),
            Some(("id".into(), KeyType::Uuid)),
        );
        assert!(!direct::supports(d.fields(), Some("id")));
        let good = format!(r#"{{"id":"{ID}","at":"2026-11-26T10:00:00Z"}}"#);
        let odd = format!(r#"{{"id":"{ID}","at":"yesterday"}}"#);
        let (arr, bad) = d.decode_values(
            [Some(good.as_bytes()), Some(odd.as_bytes())],
            Malformed::Report,
        );
        assert_eq!(arr.len(), 1);
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].0, 1);
        assert!(
            bad[0].1.contains("does not match the schema"),
            "{}",
            bad[0].1
        );
    }
}
