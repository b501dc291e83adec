//! Decoding JSON values straight into Arrow builders, for value schemas of
//! strings, integers, floats and booleans (the reference job's). One parse
//! per record, strings borrowed from the message where they need no
//! unescaping; the general path builds a `serde_json::Value` tree per record
//! that arrow-json then walks again (~15% of the executor's CPU in the
//! pipeline benchmark). The semantics are the general path's: a test holds
//! the two to the same arrays and the same reasons.

use std::borrow::Cow;
use std::fmt;

use arrow::array::{
    ArrayBuilder, ArrayRef, BooleanBuilder, PrimitiveBuilder, StringBuilder, StructArray,
};
use arrow::datatypes::{
    ArrowPrimitiveType, DataType, Fields, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type,
    Int64Type,
};
use serde::Deserialize;
use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::{KeyType, KeyVal, Malformed, check_key};

/// Whether `fields` can be decoded directly (and the key, if any, is one of
/// them).
pub(super) fn supports(fields: &Fields, key: Option<&str>) -> bool {
    fields
        .iter()
        .all(|f| Column::new(f.data_type(), 0).is_some())
        && key.is_none_or(|k| fields.iter().any(|f| f.name() == k))
}

/// Decodes `values` into one struct column; see `ValueDecoder::decode_values`.
pub(super) fn decode<'a>(
    fields: &Fields,
    key: Option<&(String, KeyType)>,
    values: impl IntoIterator<Item = Option<&'a [u8]>>,
    mode: Malformed,
) -> (StructArray, Vec<(usize, String)>) {
    let values = values.into_iter();
    let rows = values.size_hint().0;
    let names: Vec<&str> = fields.iter().map(|f| f.name().as_str()).collect();
    let key = key.map(|(k, ty)| {
        let at = names.iter().position(|n| n == k).unwrap_or(0);
        (at, k.as_str(), *ty)
    });
    let mut columns: Vec<Column> = fields
        .iter()
        .filter_map(|f| Column::new(f.data_type(), rows))
        .collect();
    let mut slots: Vec<Slot> = Vec::with_capacity(names.len());
    let mut bad = Vec::new();
    for (i, value) in values.enumerate() {
        slots.clear();
        slots.resize_with(names.len(), || Slot::Null);
        let parsed = parse(value, &names, &mut slots).and_then(|()| match key {
            Some((at, name, ty)) => check_key(slots[at].as_key(), name, ty, || slots[at].json()),
            None => Ok(()),
        });
        match parsed {
            Ok(()) => columns
                .iter_mut()
                .zip(&slots)
                .for_each(|(c, s)| c.append(s)),
            Err(reason) => {
                if mode == Malformed::NullFields {
                    columns.iter_mut().for_each(Column::append_null);
                }
                bad.push((i, reason));
            }
        }
    }
    let arrays = columns.into_iter().map(Column::finish).collect();
    // One column per field, of its type, with a value or a null per record
    // kept, and the fields nullable (as the DDL parser makes them).
    (StructArray::new(fields.clone(), arrays, None), bad)
}

/// Whitespace only, to JSON (which has no value there).
fn is_json_blank(text: &str) -> bool {
    text.bytes()
        .all(|b| matches!(b, b' ' | b'\n' | b'\t' | b'\r'))
}

/// Parses one value into `slots` (one per field), or says why it is
/// malformed, in the general path's words.
fn parse<'de>(
    value: Option<&'de [u8]>,
    names: &[&str],
    slots: &mut [Slot<'de>],
) -> Result<(), String> {
    let bytes = match value {
        None => return Err("value is null".into()),
        Some([]) => return Err("value is empty".into()),
        Some(b) => b,
    };
    let text = std::str::from_utf8(bytes).map_err(|e| format!("value is not valid UTF-8: {e}"))?;
    if is_json_blank(text) {
        return Err("value is not JSON: no JSON value".into());
    }
    // Like Spark's parser (and the general path), the first JSON value counts
    // and the rest is ignored: the deserializer is not asked to end.
    let mut de = serde_json::Deserializer::from_str(text);
    let record = Record {
        names,
        slots,
        next: 0,
    };
    match record.deserialize(&mut de) {
        Ok(None) => Ok(()),
        Ok(Some(kind)) => Err(format!("value is not a JSON object but {kind}")),
        Err(e) => Err(format!("value is not JSON: {e}")),
    }
}

/// One field's value in one record, borrowed from the message where it can be.
enum Slot<'de> {
    /// Missing or JSON null.
    Null,
    Str(Cow<'de, str>),
    I64(i64),
    U64(u64),
    F64(f64),
    Bool(bool),
    /// An object or array, as its compact JSON text (what a STRING field keeps).
    Json(String),
}

impl Slot<'_> {
    fn int(&self) -> Option<i64> {
        match self {
            Slot::I64(n) => Some(*n),
            Slot::U64(n) => i64::try_from(*n).ok(),
            _ => None,
        }
    }

    fn float(&self) -> Option<f64> {
        match self {
            Slot::I64(n) => Some(*n as f64),
            Slot::U64(n) => Some(*n as f64),
            Slot::F64(f) => Some(*f),
            _ => None,
        }
    }

    /// The value as JSON text, as `serde_json::Value` prints it.
    fn json(&self) -> String {
        match self {
            Slot::Null => "null".into(),
            Slot::Str(s) => serde_json::Value::from(s.as_ref()).to_string(),
            Slot::I64(n) => n.to_string(),
            Slot::U64(n) => n.to_string(),
            Slot::F64(f) => serde_json::Value::from(*f).to_string(),
            Slot::Bool(b) => b.to_string(),
            Slot::Json(s) => s.clone(),
        }
    }

    fn as_key(&self) -> KeyVal<'_> {
        match self {
            Slot::Null => KeyVal::Missing,
            Slot::Str(s) => KeyVal::Str(s),
            Slot::Json(_) => KeyVal::Nested,
            other => other.int().map_or(KeyVal::Scalar, KeyVal::Int),
        }
    }
}

/// The builder of one field's column.
enum Column {
    Utf8(StringBuilder),
    Int8(PrimitiveBuilder<Int8Type>),
    Int16(PrimitiveBuilder<Int16Type>),
    Int32(PrimitiveBuilder<Int32Type>),
    Int64(PrimitiveBuilder<Int64Type>),
    Float32(PrimitiveBuilder<Float32Type>),
    Float64(PrimitiveBuilder<Float64Type>),
    Bool(BooleanBuilder),
}

impl Column {
    fn new(dt: &DataType, rows: usize) -> Option<Self> {
        fn p<T: ArrowPrimitiveType>(rows: usize) -> PrimitiveBuilder<T> {
            PrimitiveBuilder::with_capacity(rows)
        }
        Some(match dt {
            DataType::Utf8 => Column::Utf8(StringBuilder::with_capacity(rows, rows * 16)),
            DataType::Int8 => Column::Int8(p(rows)),
            DataType::Int16 => Column::Int16(p(rows)),
            DataType::Int32 => Column::Int32(p(rows)),
            DataType::Int64 => Column::Int64(p(rows)),
            DataType::Float32 => Column::Float32(p(rows)),
            DataType::Float64 => Column::Float64(p(rows)),
            DataType::Boolean => Column::Bool(BooleanBuilder::with_capacity(rows)),
            _ => return None,
        })
    }

    /// Spark's field rules: a STRING field keeps any JSON value as its text;
    /// a value that does not fit a numeric or boolean field is null.
    fn append(&mut self, s: &Slot) {
        let int = || s.int();
        match self {
            Column::Utf8(b) => match s {
                Slot::Null => b.append_null(),
                Slot::Str(v) => b.append_value(v),
                Slot::Json(v) => b.append_value(v),
                other => b.append_value(other.json()),
            },
            Column::Int8(b) => b.append_option(int().and_then(|n| i8::try_from(n).ok())),
            Column::Int16(b) => b.append_option(int().and_then(|n| i16::try_from(n).ok())),
            Column::Int32(b) => b.append_option(int().and_then(|n| i32::try_from(n).ok())),
            Column::Int64(b) => b.append_option(int()),
            Column::Float32(b) => b.append_option(s.float().map(|f| f as f32)),
            Column::Float64(b) => b.append_option(s.float()),
            Column::Bool(b) => b.append_option(match s {
                Slot::Bool(v) => Some(*v),
                _ => None,
            }),
        }
    }

    fn append_null(&mut self) {
        self.append(&Slot::Null)
    }

    fn finish(self) -> ArrayRef {
        fn f(mut b: impl ArrayBuilder) -> ArrayRef {
            b.finish()
        }
        match self {
            Column::Utf8(b) => f(b),
            Column::Int8(b) => f(b),
            Column::Int16(b) => f(b),
            Column::Int32(b) => f(b),
            Column::Int64(b) => f(b),
            Column::Float32(b) => f(b),
            Column::Float64(b) => f(b),
            Column::Bool(b) => f(b),
        }
    }
}

/// The top-level value: fills the slots if it is an object, else names its
/// kind.
struct Record<'s, 'de> {
    names: &'s [&'s str],
    slots: &'s mut [Slot<'de>],
    /// Where the next key is looked for first: records usually list their
    /// fields in the schema's order.
    next: usize,
}

impl<'de> DeserializeSeed<'de> for Record<'_, 'de> {
    type Value = Option<&'static str>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Record<'_, 'de> {
    type Value = Option<&'static str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Self::Value, A::Error> {
        while let Some(field) = map.next_key_seed(Key {
            names: self.names,
            from: self.next,
        })? {
            match field {
                Some(i) => {
                    self.slots[i] = map.next_value_seed(SlotSeed)?;
                    self.next = i + 1;
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(None)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        // Read to its end: the deserializer fails an array left half-read.
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Some("an array"))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Some("null"))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Some("a boolean"))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Some("a number"))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Some("a number"))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Some("a number"))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Some("a string"))
    }
}

/// An object's key, as the index of the field it names (None: not a field).
struct Key<'s> {
    names: &'s [&'s str],
    from: usize,
}

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = Option<usize>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        let n = self.names.len();
        Ok((0..n)
            .map(|k| (self.from + k) % n)
            .find(|&i| self.names[i] == v))
    }
}

/// A field's value.
struct SlotSeed;

impl<'de> DeserializeSeed<'de> for SlotSeed {
    type Value = Slot<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for SlotSeed {
    type Value = Slot<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Slot::Null)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Slot::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Slot::I64(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Slot::U64(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Slot::F64(v))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Slot::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Slot::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        let v = serde_json::Value::deserialize(SeqAccessDeserializer::new(seq))?;
        Ok(Slot::Json(v.to_string()))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let v = serde_json::Value::deserialize(MapAccessDeserializer::new(map))?;
        Ok(Slot::Json(v.to_string()))
    }
}
