//! Spark's JSON functions for the transform SQL: `from_json(string, schema)`
//! and `get_json_object(string, path)`. DataFusion's Spark library has only
//! `json_tuple`. Semantics follow Spark's defaults (PERMISSIVE mode: a
//! malformed input gives null, never an error).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StringBuilder, StructArray, new_null_array};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{ScalarValue, exec_err, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};
use datafusion::prelude::SessionContext;
use serde_json::Value;

use crate::decode::{Malformed, ValueDecoder};
use crate::schema::parse_ddl_schema;

/// Every Ember function, for registration on each side of a cluster.
pub fn all() -> Vec<Arc<ScalarUDF>> {
    vec![
        Arc::new(ScalarUDF::from(FromJson::new())),
        Arc::new(ScalarUDF::from(GetJsonObject::new())),
    ]
}

pub fn register(ctx: &SessionContext) {
    for f in all() {
        ctx.register_udf(f.as_ref().clone());
    }
}

/// Looks one of Ember's functions up by name (for the codecs).
pub fn by_name(name: &str) -> Option<Arc<ScalarUDF>> {
    all().into_iter().find(|f| f.name() == name)
}

fn string_arg(v: &ColumnarValue, rows: usize) -> Result<ArrayRef> {
    let a = v.to_array(rows)?;
    Ok(match a.data_type() {
        DataType::Utf8 => a,
        DataType::Null => new_null_array(&DataType::Utf8, rows),
        _ => arrow::compute::cast(&a, &DataType::Utf8)?,
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct FromJson {
    signature: Signature,
}

impl FromJson {
    pub fn new() -> Self {
        Self {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl Default for FromJson {
    fn default() -> Self {
        Self::new()
    }
}

fn schema_literal(v: Option<&ScalarValue>) -> Result<String> {
    match v {
        Some(
            ScalarValue::Utf8(Some(s))
            | ScalarValue::LargeUtf8(Some(s))
            | ScalarValue::Utf8View(Some(s)),
        ) => Ok(s.clone()),
        _ => plan_err!(
            "from_json: the second argument must be a schema string literal, e.g. 'id STRING, age INT'"
        ),
    }
}

impl ScalarUDFImpl for FromJson {
    fn name(&self) -> &str {
        "from_json"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        plan_err!("from_json: the return type comes from the schema literal")
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let ddl = schema_literal(args.scalar_arguments.get(1).copied().flatten())?;
        let fields = parse_ddl_schema(&ddl)
            .map_err(|e| datafusion::error::DataFusionError::Plan(format!("from_json: {e}")))?;
        Ok(Arc::new(Field::new(
            self.name(),
            DataType::Struct(fields),
            true,
        )))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let DataType::Struct(fields) = args.return_field.data_type().clone() else {
            return exec_err!("from_json: unexpected return type");
        };
        let rows = args.number_rows;
        let input = string_arg(&args.args[0], rows)?;
        let input = input.as_string::<i32>();
        let dec = ValueDecoder::new(fields, None);
        // Spark (PERMISSIVE): a malformed record gives a struct of null
        // fields; only a null or empty input gives a null struct.
        let values = (0..rows).map(|i| (!input.is_null(i)).then(|| input.value(i).as_bytes()));
        let (decoded, _malformed) = dec.decode_values(values, Malformed::NullFields);
        let present = NullBuffer::from_iter(
            (0..rows).map(|i| !input.is_null(i) && !input.value(i).is_empty()),
        );
        let (fields, columns, _) = decoded.into_parts();
        let out: ArrayRef = Arc::new(StructArray::try_new(fields, columns, Some(present))?);
        Ok(ColumnarValue::Array(out))
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct GetJsonObject {
    signature: Signature,
}

impl GetJsonObject {
    pub fn new() -> Self {
        Self {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl Default for GetJsonObject {
    fn default() -> Self {
        Self::new()
    }
}

impl ScalarUDFImpl for GetJsonObject {
    fn name(&self) -> &str {
        "get_json_object"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let json = string_arg(&args.args[0], rows)?;
        let json = json.as_string::<i32>();
        let paths = string_arg(&args.args[1], rows)?;
        let paths = paths.as_string::<i32>();
        let mut out = StringBuilder::with_capacity(rows, rows * 16);
        let mut cached: Option<(String, Option<Vec<PathStep>>)> = None;
        for i in 0..rows {
            if json.is_null(i) || paths.is_null(i) {
                out.append_null();
                continue;
            }
            let p = paths.value(i);
            if cached.as_ref().is_none_or(|(s, _)| s != p) {
                cached = Some((p.to_string(), parse_path(p)));
            }
            let steps = cached.as_ref().and_then(|c| c.1.as_ref());
            out.append_option(steps.and_then(|s| get_json_object(json.value(i), s)));
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

#[derive(Debug, Clone, PartialEq)]
enum PathStep {
    Key(String),
    Index(usize),
    Wildcard,
}

/// Spark's JSON path subset: `$`, `.name`, `['name']`, `[n]`, `[*]`.
fn parse_path(p: &str) -> Option<Vec<PathStep>> {
    let mut rest = p.strip_prefix('$')?;
    let mut steps = Vec::new();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let name = &r[..end];
            if name.is_empty() {
                return None;
            }
            steps.push(if name == "*" {
                PathStep::Wildcard
            } else {
                PathStep::Key(name.to_string())
            });
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix("['") {
            let end = r.find("']")?;
            steps.push(PathStep::Key(r[..end].to_string()));
            rest = &r[end + 2..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            let inner = r[..end].trim();
            steps.push(if inner == "*" {
                PathStep::Wildcard
            } else {
                PathStep::Index(inner.parse().ok()?)
            });
            rest = &r[end + 1..];
        } else {
            return None;
        }
    }
    Some(steps)
}

fn get_json_object(json: &str, steps: &[PathStep]) -> Option<String> {
    let root: Value = serde_json::from_str(json).ok()?;
    let mut current = vec![&root];
    let mut wildcard = false;
    for step in steps {
        let mut next = Vec::new();
        for v in current {
            match (step, v) {
                (PathStep::Key(k), Value::Object(m)) => next.extend(m.get(k)),
                (PathStep::Index(i), Value::Array(a)) => next.extend(a.get(*i)),
                (PathStep::Wildcard, Value::Array(a)) => {
                    wildcard = true;
                    next.extend(a.iter());
                }
                _ => {}
            }
        }
        current = next;
    }
    let render = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match current.as_slice() {
        [] => None,
        [Value::Null] if !wildcard => None,
        [one] if !wildcard => Some(render(one)),
        many => Some(Value::Array(many.iter().map(|v| (*v).clone()).collect()).to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(json: &str, path: &str) -> Option<String> {
        get_json_object(json, &parse_path(path)?)
    }

    #[test]
    fn get_json_object_paths() {
        let j = r#"{"a":{"b":[1,{"c":"x"}],"n":12.5,"t":true,"z":null},"s":"str"}"#;
        assert_eq!(g(j, "$.s").as_deref(), Some("str"));
        assert_eq!(g(j, "$.a.n").as_deref(), Some("12.5"));
        assert_eq!(g(j, "$.a.t").as_deref(), Some("true"));
        assert_eq!(g(j, "$.a.b[1].c").as_deref(), Some("x"));
        assert_eq!(g(j, "$['a']['b'][0]").as_deref(), Some("1"));
        assert_eq!(g(j, "$.a.b").as_deref(), Some(r#"[1,{"c":"x"}]"#));
        assert_eq!(g(j, "$.a.z"), None);
        assert_eq!(g(j, "$.missing"), None);
        assert_eq!(g("not json", "$.a"), None);
        assert_eq!(g(j, "a.b"), None);
    }
}
