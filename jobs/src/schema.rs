//! Spark DDL schema strings (`"id STRING, age INT"`) to Arrow, as `from_json`
//! and the job spec's value schema take them.

use arrow::datatypes::{DataType, Field, Fields, TimeUnit};

/// Parses a Spark DDL schema string. Types: STRING, INT/INTEGER, BIGINT/LONG,
/// SMALLINT/SHORT, TINYINT/BYTE, DOUBLE, FLOAT/REAL, BOOLEAN, TIMESTAMP, DATE,
/// BINARY. Field names may be back-quoted.
pub fn parse_ddl_schema(ddl: &str) -> Result<Fields, String> {
    let mut fields = Vec::new();
    for (i, part) in ddl.split(',').enumerate() {
        let part = part.trim();
        if part.is_empty() {
            return Err(format!("schema: field {} is empty in `{ddl}`", i + 1));
        }
        let (name, ty) = split_name_type(part)
            .ok_or_else(|| format!("schema: `{part}` is not `<name> <TYPE>`"))?;
        let data_type = spark_type(ty).ok_or_else(|| {
            format!("schema: unknown type `{ty}` for field `{name}` (known: STRING, INT, BIGINT, SMALLINT, TINYINT, DOUBLE, FLOAT, BOOLEAN, TIMESTAMP, DATE, BINARY)")
        })?;
        if fields.iter().any(|f: &Field| f.name() == name) {
            return Err(format!("schema: field `{name}` is declared twice"));
        }
        fields.push(Field::new(name, data_type, true));
    }
    Ok(fields.into())
}

fn split_name_type(part: &str) -> Option<(&str, &str)> {
    if let Some(rest) = part.strip_prefix('`') {
        let end = rest.find('`')?;
        let ty = rest[end + 1..].trim();
        (!ty.is_empty()).then(|| (&rest[..end], ty))
    } else {
        let mut it = part.splitn(2, char::is_whitespace);
        let name = it.next()?;
        let ty = it.next()?.trim().trim_start_matches(':').trim();
        (!ty.is_empty()).then_some((name, ty))
    }
}

/// The Arrow type of a Spark SQL type name.
pub fn spark_type(name: &str) -> Option<DataType> {
    Some(match name.to_ascii_uppercase().as_str() {
        "STRING" | "VARCHAR" | "TEXT" => DataType::Utf8,
        "INT" | "INTEGER" => DataType::Int32,
        "BIGINT" | "LONG" => DataType::Int64,
        "SMALLINT" | "SHORT" => DataType::Int16,
        "TINYINT" | "BYTE" => DataType::Int8,
        "DOUBLE" => DataType::Float64,
        "FLOAT" | "REAL" => DataType::Float32,
        "BOOLEAN" | "BOOL" => DataType::Boolean,
        "TIMESTAMP" => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        "DATE" => DataType::Date32,
        "BINARY" => DataType::Binary,
        _ => return None,
    })
}

/// The Spark name of an Arrow type this module produces (for round trips
/// through the plan-node encoding).
pub fn spark_type_name(dt: &DataType) -> &'static str {
    match dt {
        DataType::Utf8 => "STRING",
        DataType::Int32 => "INT",
        DataType::Int64 => "BIGINT",
        DataType::Int16 => "SMALLINT",
        DataType::Int8 => "TINYINT",
        DataType::Float64 => "DOUBLE",
        DataType::Float32 => "FLOAT",
        DataType::Boolean => "BOOLEAN",
        DataType::Timestamp(_, _) => "TIMESTAMP",
        DataType::Date32 => "DATE",
        DataType::Binary => "BINARY",
        _ => "STRING",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_spark_ddl() {
        let f = parse_ddl_schema("id STRING, `first name` string, age INT, n BIGINT").unwrap();
        assert_eq!(f.len(), 4);
        assert_eq!(f[1].name(), "first name");
        assert_eq!(f[2].data_type(), &DataType::Int32);
        assert_eq!(f[3].data_type(), &DataType::Int64);
    }

    #[test]
    fn names_the_bad_type_and_field() {
        let e = parse_ddl_schema("id STRING, age NUMBERISH").unwrap_err();
        assert!(e.contains("NUMBERISH") && e.contains("age"), "{e}");
        let e = parse_ddl_schema("id STRING, id INT").unwrap_err();
        assert!(e.contains("twice"), "{e}");
        assert!(parse_ddl_schema("id").is_err());
    }
}
