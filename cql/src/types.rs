//! CQL data types: names, protocol option ids, ordering of serialized values and
//! conversion of CQL literals to their serialized (native protocol) form.
//!
//! Values are kept in their serialized form everywhere (storage, commit log, results) so a
//! bound value goes from the wire to memory without being decoded.

use std::cmp::Ordering;
use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::CqlError;
use crate::parser::Literal;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CqlType {
    Ascii,
    Bigint,
    Blob,
    Boolean,
    Counter,
    Decimal,
    Double,
    Float,
    Int,
    Timestamp,
    Uuid,
    Text,
    Varint,
    Timeuuid,
    Inet,
    Date,
    Time,
    Smallint,
    Tinyint,
    Duration,
    List(Box<CqlType>),
    Set(Box<CqlType>),
    Map(Box<CqlType>, Box<CqlType>),
    /// `frozen<...>`: same wire format; only the schema string differs.
    Frozen(Box<CqlType>),
}

impl CqlType {
    pub fn from_name(name: &str) -> Option<CqlType> {
        Some(match name.to_ascii_lowercase().as_str() {
            "ascii" => CqlType::Ascii,
            "bigint" => CqlType::Bigint,
            "blob" => CqlType::Blob,
            "boolean" => CqlType::Boolean,
            "counter" => CqlType::Counter,
            "decimal" => CqlType::Decimal,
            "double" => CqlType::Double,
            "float" => CqlType::Float,
            "int" => CqlType::Int,
            "timestamp" => CqlType::Timestamp,
            "uuid" => CqlType::Uuid,
            "text" | "varchar" => CqlType::Text,
            "varint" => CqlType::Varint,
            "timeuuid" => CqlType::Timeuuid,
            "inet" => CqlType::Inet,
            "date" => CqlType::Date,
            "time" => CqlType::Time,
            "smallint" => CqlType::Smallint,
            "tinyint" => CqlType::Tinyint,
            "duration" => CqlType::Duration,
            _ => return None,
        })
    }

    /// Strips `frozen<>`, which does not change the wire format.
    pub fn base(&self) -> &CqlType {
        match self {
            CqlType::Frozen(t) => t.base(),
            t => t,
        }
    }

    pub fn is_collection(&self) -> bool {
        matches!(
            self.base(),
            CqlType::List(_) | CqlType::Set(_) | CqlType::Map(..)
        )
    }

    /// Encodes the type as a protocol `[option]`.
    pub fn write_option(&self, out: &mut BytesMut) {
        let id: u16 = match self.base() {
            CqlType::Ascii => 0x0001,
            CqlType::Bigint => 0x0002,
            CqlType::Blob => 0x0003,
            CqlType::Boolean => 0x0004,
            CqlType::Counter => 0x0005,
            CqlType::Decimal => 0x0006,
            CqlType::Double => 0x0007,
            CqlType::Float => 0x0008,
            CqlType::Int => 0x0009,
            CqlType::Timestamp => 0x000B,
            CqlType::Uuid => 0x000C,
            CqlType::Text => 0x000D,
            CqlType::Varint => 0x000E,
            CqlType::Timeuuid => 0x000F,
            CqlType::Inet => 0x0010,
            CqlType::Date => 0x0011,
            CqlType::Time => 0x0012,
            CqlType::Smallint => 0x0013,
            CqlType::Tinyint => 0x0014,
            CqlType::Duration => 0x0015,
            CqlType::List(_) => 0x0020,
            CqlType::Map(..) => 0x0021,
            CqlType::Set(_) => 0x0022,
            CqlType::Frozen(_) => unreachable!("base() strips frozen"),
        };
        out.put_u16(id);
        match self.base() {
            CqlType::List(t) | CqlType::Set(t) => t.write_option(out),
            CqlType::Map(k, v) => {
                k.write_option(out);
                v.write_option(out);
            }
            _ => {}
        }
    }

    /// Compares two serialized values the way Cassandra orders them for this type.
    pub fn compare(&self, a: &[u8], b: &[u8]) -> Ordering {
        match self.base() {
            CqlType::Bigint | CqlType::Counter | CqlType::Timestamp | CqlType::Time => {
                cmp_int(a, b)
            }
            CqlType::Int | CqlType::Smallint | CqlType::Tinyint | CqlType::Varint => cmp_int(a, b),
            CqlType::Double if a.len() == 8 && b.len() == 8 => {
                let x = f64::from_be_bytes(a.try_into().unwrap_or([0; 8]));
                let y = f64::from_be_bytes(b.try_into().unwrap_or([0; 8]));
                x.total_cmp(&y)
            }
            CqlType::Float if a.len() == 4 && b.len() == 4 => {
                let x = f32::from_be_bytes(a.try_into().unwrap_or([0; 4]));
                let y = f32::from_be_bytes(b.try_into().unwrap_or([0; 4]));
                x.total_cmp(&y)
            }
            // date is an unsigned day count centred on 2^31, so byte order is numeric order.
            CqlType::Timeuuid if a.len() == 16 && b.len() == 16 => cmp_timeuuid(a, b),
            CqlType::Uuid if a.len() == 16 && b.len() == 16 => {
                // Cassandra orders by version, then (time-based) by timestamp, then bytes.
                let va = a[6] >> 4;
                let vb = b[6] >> 4;
                va.cmp(&vb).then_with(|| {
                    if va == 1 {
                        cmp_timeuuid(a, b)
                    } else {
                        a.cmp(b)
                    }
                })
            }
            CqlType::Boolean => a.cmp(b),
            CqlType::Decimal => cmp_decimal(a, b),
            _ => a.cmp(b),
        }
    }

    /// The name as written in schema tables (`system_schema.columns.type`).
    pub fn schema_name(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for CqlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            CqlType::Ascii => "ascii",
            CqlType::Bigint => "bigint",
            CqlType::Blob => "blob",
            CqlType::Boolean => "boolean",
            CqlType::Counter => "counter",
            CqlType::Decimal => "decimal",
            CqlType::Double => "double",
            CqlType::Float => "float",
            CqlType::Int => "int",
            CqlType::Timestamp => "timestamp",
            CqlType::Uuid => "uuid",
            CqlType::Text => "text",
            CqlType::Varint => "varint",
            CqlType::Timeuuid => "timeuuid",
            CqlType::Inet => "inet",
            CqlType::Date => "date",
            CqlType::Time => "time",
            CqlType::Smallint => "smallint",
            CqlType::Tinyint => "tinyint",
            CqlType::Duration => "duration",
            CqlType::List(t) => return write!(f, "list<{t}>"),
            CqlType::Set(t) => return write!(f, "set<{t}>"),
            CqlType::Map(k, v) => return write!(f, "map<{k}, {v}>"),
            CqlType::Frozen(t) => return write!(f, "frozen<{t}>"),
        };
        f.write_str(s)
    }
}

fn cmp_int(a: &[u8], b: &[u8]) -> Ordering {
    // Two's complement big-endian of possibly different lengths (varint): sign, then length,
    // then bytes.
    let neg_a = a.first().is_some_and(|x| x & 0x80 != 0);
    let neg_b = b.first().is_some_and(|x| x & 0x80 != 0);
    match (neg_a, neg_b) {
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => a.len().cmp(&b.len()).then_with(|| a.cmp(b)),
        (true, true) => b.len().cmp(&a.len()).then_with(|| a.cmp(b)),
    }
}

fn timeuuid_ts(u: &[u8]) -> u64 {
    let time_low = u64::from(u32::from_be_bytes([u[0], u[1], u[2], u[3]]));
    let time_mid = u64::from(u16::from_be_bytes([u[4], u[5]]));
    let time_hi = u64::from(u16::from_be_bytes([u[6], u[7]]) & 0x0fff);
    (time_hi << 48) | (time_mid << 32) | time_low
}

fn cmp_timeuuid(a: &[u8], b: &[u8]) -> Ordering {
    timeuuid_ts(a)
        .cmp(&timeuuid_ts(b))
        .then_with(|| a[8..].cmp(&b[8..]))
}

fn cmp_decimal(a: &[u8], b: &[u8]) -> Ordering {
    // Good enough ordering for decimals with equal scale; otherwise compare as f64.
    let to_f = |x: &[u8]| -> f64 {
        if x.len() < 4 {
            return 0.0;
        }
        let scale = i32::from_be_bytes([x[0], x[1], x[2], x[3]]);
        let unscaled = varint_to_i128(&x[4..]).unwrap_or(0) as f64;
        unscaled / 10f64.powi(scale)
    };
    to_f(a).total_cmp(&to_f(b))
}

pub fn varint_to_i128(b: &[u8]) -> Option<i128> {
    if b.is_empty() || b.len() > 16 {
        return None;
    }
    let mut v: i128 = if b[0] & 0x80 != 0 { -1 } else { 0 };
    for &x in b {
        v = (v << 8) | i128::from(x);
    }
    Some(v)
}

pub fn i128_to_varint(v: i128) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let mut start = 0;
    while start < 15 {
        let cur = bytes[start];
        let next = bytes[start + 1];
        if (cur == 0 && next & 0x80 == 0) || (cur == 0xff && next & 0x80 != 0) {
            start += 1;
        } else {
            break;
        }
    }
    bytes[start..].to_vec()
}

/// Checks that a bound (client serialized) value has a valid shape for the type, so that
/// malformed values are refused at write time rather than breaking readers later.
pub fn validate(ty: &CqlType, v: &[u8]) -> Result<(), String> {
    let fixed = |n: usize| {
        if v.len() == n {
            Ok(())
        } else {
            Err(format!("expected {n} bytes for {ty}, got {}", v.len()))
        }
    };
    match ty.base() {
        CqlType::Bigint
        | CqlType::Counter
        | CqlType::Timestamp
        | CqlType::Time
        | CqlType::Double => fixed(8),
        CqlType::Int | CqlType::Float | CqlType::Date => fixed(4),
        CqlType::Smallint => fixed(2),
        CqlType::Tinyint | CqlType::Boolean => fixed(1),
        CqlType::Uuid | CqlType::Timeuuid => fixed(16),
        CqlType::Inet => {
            if v.len() == 4 || v.len() == 16 {
                Ok(())
            } else {
                Err(format!("invalid inet length {}", v.len()))
            }
        }
        CqlType::Text => std::str::from_utf8(v)
            .map(|_| ())
            .map_err(|_| "invalid UTF-8 for text".to_string()),
        CqlType::Ascii => {
            if v.is_ascii() {
                Ok(())
            } else {
                Err("invalid ASCII bytes".to_string())
            }
        }
        CqlType::List(t) | CqlType::Set(t) => {
            let items = decode_collection(v, false).ok_or("malformed collection")?;
            for (e, _) in items {
                validate(t, &e)?;
            }
            Ok(())
        }
        CqlType::Map(k, val) => {
            let items = decode_collection(v, true).ok_or("malformed map")?;
            for (kb, vb) in items {
                validate(k, &kb)?;
                validate(val, vb.as_deref().unwrap_or(&[]))?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// An element (list/set) or key and value (map) of a serialized collection.
pub type CollectionItem = (Vec<u8>, Option<Vec<u8>>);

/// Splits a serialized list/set (pairs=false) or map (pairs=true) into its elements.
pub fn decode_collection(v: &[u8], pairs: bool) -> Option<Vec<CollectionItem>> {
    let mut pos = 0usize;
    let rd_i32 = |pos: &mut usize| -> Option<i32> {
        let b = v.get(*pos..*pos + 4)?;
        *pos += 4;
        Some(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let n = rd_i32(&mut pos)?;
    if n < 0 {
        return None;
    }
    let mut out = Vec::with_capacity((n as usize).min(1024));
    for _ in 0..n {
        let l = rd_i32(&mut pos)?;
        if l < 0 {
            return None;
        }
        let e = v.get(pos..pos + l as usize)?.to_vec();
        pos += l as usize;
        let val = if pairs {
            let l = rd_i32(&mut pos)?;
            if l < 0 {
                return None;
            }
            let e = v.get(pos..pos + l as usize)?.to_vec();
            pos += l as usize;
            Some(e)
        } else {
            None
        };
        out.push((e, val));
    }
    if pos != v.len() {
        return None;
    }
    Some(out)
}

fn encode_collection(elems: &[Vec<u8>]) -> Bytes {
    let mut out = BytesMut::new();
    out.put_i32(elems.len() as i32);
    for e in elems {
        out.put_i32(e.len() as i32);
        out.put_slice(e);
    }
    out.freeze()
}

fn type_err(ty: &CqlType, lit: &Literal) -> CqlError {
    CqlError::invalid(format!(
        "Invalid {} constant ({}) for type {ty}",
        lit.kind(),
        lit
    ))
}

/// Converts a CQL literal to the serialized value for `ty`. `None` means null.
pub fn literal_to_value(ty: &CqlType, lit: &Literal) -> Result<Option<Bytes>, CqlError> {
    if let Literal::Null = lit {
        return Ok(None);
    }
    let v = literal_to_value_inner(ty, lit)?;
    // Cassandra stores an empty non-frozen collection as no value at all.
    if ty.is_collection()
        && !matches!(ty, CqlType::Frozen(_))
        && v.as_deref() == Some(&[0, 0, 0, 0])
    {
        return Ok(None);
    }
    Ok(v)
}

fn literal_to_value_inner(ty: &CqlType, lit: &Literal) -> Result<Option<Bytes>, CqlError> {
    let b: Vec<u8> = match (ty.base(), lit) {
        (CqlType::Text, Literal::Str(s)) => s.as_bytes().to_vec(),
        (CqlType::Ascii, Literal::Str(s)) if s.is_ascii() => s.as_bytes().to_vec(),
        (CqlType::Bigint | CqlType::Counter, Literal::Int(i)) => i64::try_from(*i)
            .map_err(|_| type_err(ty, lit))?
            .to_be_bytes()
            .to_vec(),
        (CqlType::Int, Literal::Int(i)) => i32::try_from(*i)
            .map_err(|_| type_err(ty, lit))?
            .to_be_bytes()
            .to_vec(),
        (CqlType::Smallint, Literal::Int(i)) => i16::try_from(*i)
            .map_err(|_| type_err(ty, lit))?
            .to_be_bytes()
            .to_vec(),
        (CqlType::Tinyint, Literal::Int(i)) => i8::try_from(*i)
            .map_err(|_| type_err(ty, lit))?
            .to_be_bytes()
            .to_vec(),
        (CqlType::Varint, Literal::Int(i)) => i128_to_varint(*i),
        (CqlType::Double, Literal::Int(i)) => (*i as f64).to_be_bytes().to_vec(),
        (CqlType::Double, Literal::Float(s)) => parse_float(s)
            .ok_or_else(|| type_err(ty, lit))?
            .to_be_bytes()
            .to_vec(),
        (CqlType::Float, Literal::Int(i)) => (*i as f32).to_be_bytes().to_vec(),
        (CqlType::Float, Literal::Float(s)) => (parse_float(s).ok_or_else(|| type_err(ty, lit))?
            as f32)
            .to_be_bytes()
            .to_vec(),
        (CqlType::Decimal, Literal::Int(i)) => {
            let mut v = 0i32.to_be_bytes().to_vec();
            v.extend(i128_to_varint(*i));
            v
        }
        (CqlType::Decimal, Literal::Float(s)) => {
            parse_decimal(s).ok_or_else(|| type_err(ty, lit))?
        }
        (CqlType::Boolean, Literal::Bool(b)) => vec![u8::from(*b)],
        (CqlType::Boolean, Literal::Str(s)) if s.eq_ignore_ascii_case("true") => vec![1],
        (CqlType::Boolean, Literal::Str(s)) if s.eq_ignore_ascii_case("false") => vec![0],
        (CqlType::Uuid | CqlType::Timeuuid, Literal::Uuid(u)) => u.as_bytes().to_vec(),
        (CqlType::Uuid | CqlType::Timeuuid, Literal::Str(s)) => uuid::Uuid::parse_str(s)
            .map_err(|_| type_err(ty, lit))?
            .as_bytes()
            .to_vec(),
        (CqlType::Blob, Literal::Blob(b)) => b.clone(),
        (CqlType::Timestamp, Literal::Int(i)) => i64::try_from(*i)
            .map_err(|_| type_err(ty, lit))?
            .to_be_bytes()
            .to_vec(),
        (CqlType::Timestamp, Literal::Str(s)) => parse_timestamp(s)
            .ok_or_else(|| CqlError::invalid(format!("Unable to parse a date/time from '{s}'")))?
            .to_be_bytes()
            .to_vec(),
        (CqlType::Date, Literal::Str(s)) => {
            let days = parse_date(s).ok_or_else(|| {
                CqlError::invalid(format!("Unable to coerce '{s}' to a formatted date"))
            })?;
            ((days + (1i64 << 31)) as u32).to_be_bytes().to_vec()
        }
        (CqlType::Date, Literal::Int(i)) => u32::try_from(*i)
            .map_err(|_| type_err(ty, lit))?
            .to_be_bytes()
            .to_vec(),
        (CqlType::Time, Literal::Int(i)) => i64::try_from(*i)
            .map_err(|_| type_err(ty, lit))?
            .to_be_bytes()
            .to_vec(),
        (CqlType::Time, Literal::Str(s)) => parse_time(s)
            .ok_or_else(|| {
                CqlError::invalid(format!("Unable to coerce '{s}' to a formatted time"))
            })?
            .to_be_bytes()
            .to_vec(),
        (CqlType::Inet, Literal::Str(s)) => match s.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(a)) => a.octets().to_vec(),
            Ok(std::net::IpAddr::V6(a)) => a.octets().to_vec(),
            Err(_) => {
                return Err(CqlError::invalid(format!(
                    "Unable to make inet address from '{s}'"
                )));
            }
        },
        (CqlType::List(t), Literal::List(items)) | (CqlType::Set(t), Literal::Set(items)) => {
            let mut elems = Vec::with_capacity(items.len());
            for it in items {
                let v = literal_to_value(t, it)?
                    .ok_or_else(|| CqlError::invalid("null is not supported inside collections"))?;
                elems.push(v.to_vec());
            }
            if matches!(ty.base(), CqlType::Set(_)) {
                elems.sort_by(|a, b| t.compare(a, b));
                elems.dedup();
            }
            return Ok(Some(encode_collection(&elems)));
        }
        // `{}` parses as an empty map; accept it for sets and lists too.
        (CqlType::Set(_) | CqlType::List(_), Literal::Map(m)) if m.is_empty() => {
            return Ok(Some(encode_collection(&[])));
        }
        (CqlType::Map(kt, vt), Literal::Map(entries)) => {
            let mut pairs = Vec::with_capacity(entries.len());
            for (k, v) in entries {
                let kb = literal_to_value(kt, k)?
                    .ok_or_else(|| CqlError::invalid("null is not supported inside collections"))?;
                let vb = literal_to_value(vt, v)?
                    .ok_or_else(|| CqlError::invalid("null is not supported inside collections"))?;
                pairs.push((kb.to_vec(), vb.to_vec()));
            }
            pairs.sort_by(|a, b| kt.compare(&a.0, &b.0));
            pairs.dedup_by(|a, b| a.0 == b.0);
            let mut out = BytesMut::new();
            out.put_i32(pairs.len() as i32);
            for (k, v) in pairs {
                out.put_i32(k.len() as i32);
                out.put_slice(&k);
                out.put_i32(v.len() as i32);
                out.put_slice(&v);
            }
            return Ok(Some(out.freeze()));
        }
        (CqlType::Map(..), Literal::Set(items)) if items.is_empty() => {
            return Ok(Some(encode_collection(&[])));
        }
        _ => return Err(type_err(ty, lit)),
    };
    Ok(Some(Bytes::from(b)))
}

fn parse_float(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

fn parse_decimal(s: &str) -> Option<Vec<u8>> {
    let (mantissa, exp) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], s[i + 1..].parse::<i32>().ok()?),
        None => (s, 0),
    };
    let (int_part, frac) = match mantissa.find('.') {
        Some(i) => (&mantissa[..i], &mantissa[i + 1..]),
        None => (mantissa, ""),
    };
    let digits = format!("{int_part}{frac}");
    let unscaled: i128 = digits.parse().ok()?;
    let scale = frac.len() as i32 - exp;
    let mut v = scale.to_be_bytes().to_vec();
    v.extend(i128_to_varint(unscaled));
    Some(v)
}

/// Days since 1970-01-01 (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn parse_date(s: &str) -> Option<i64> {
    let mut it = s.trim().splitn(3, '-');
    let y: i64 = it.next()?.parse().ok()?;
    let m: i64 = it.next()?.parse().ok()?;
    let d: i64 = it.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    Some(days_from_civil(y, m, d))
}

/// `hh:mm:ss[.fffffffff]` to nanoseconds since midnight.
fn parse_time(s: &str) -> Option<i64> {
    let (hms, frac) = match s.find('.') {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, ""),
    };
    let mut it = hms.split(':');
    let h: i64 = it.next()?.parse().ok()?;
    let m: i64 = it.next()?.parse().ok()?;
    let sec: i64 = it.next().unwrap_or("0").parse().ok()?;
    if frac.len() > 9 || !frac.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let nanos: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().ok()?
    };
    Some(((h * 60 + m) * 60 + sec) * 1_000_000_000 + nanos)
}

/// Parses the timestamp literal formats Cassandra accepts most often:
/// `yyyy-mm-dd[( |T)hh:mm[:ss[.fff]]][Z|(+|-)hh[:]mm]`, milliseconds since the epoch.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(ms) = s.parse::<i64>() {
        return Some(ms);
    }
    if s.len() < 10 {
        return None;
    }
    let days = parse_date(&s[..10])?;
    let mut rest = s[10..].trim_start_matches([' ', 'T']);
    let mut offset_min = 0i64;
    if let Some(stripped) = rest.strip_suffix('Z') {
        rest = stripped;
    } else if let Some(i) = rest.rfind(['+', '-']) {
        let tz = rest[i + 1..].replace(':', "");
        if tz.len() == 4 {
            let h: i64 = tz[..2].parse().ok()?;
            let m: i64 = tz[2..].parse().ok()?;
            offset_min = (h * 60 + m) * if &rest[i..i + 1] == "-" { -1 } else { 1 };
            rest = &rest[..i];
        }
    }
    let ms_of_day = if rest.is_empty() {
        0
    } else {
        parse_time(rest)? / 1_000_000
    };
    Some(days * 86_400_000 + ms_of_day - offset_min * 60_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_roundtrip() {
        for v in [0i128, 1, -1, 127, 128, -128, -129, 1 << 70, -(1 << 70)] {
            assert_eq!(varint_to_i128(&i128_to_varint(v)), Some(v));
        }
    }

    #[test]
    fn timestamps() {
        assert_eq!(parse_timestamp("1970-01-01"), Some(0));
        assert_eq!(
            parse_timestamp("2011-02-03T04:05:00Z"),
            Some(1_296_705_900_000)
        );
        assert_eq!(
            parse_timestamp("2011-02-03 04:05:00+0100"),
            Some(1_296_702_300_000)
        );
    }

    #[test]
    fn int_order() {
        let t = CqlType::Int;
        assert_eq!(
            t.compare(&(-1i32).to_be_bytes(), &1i32.to_be_bytes()),
            Ordering::Less
        );
        assert_eq!(
            t.compare(&5i32.to_be_bytes(), &1i32.to_be_bytes()),
            Ordering::Greater
        );
    }
}
