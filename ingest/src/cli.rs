//! Value parsers for command-line flags: clap reports their errors with the
//! flag's name, e.g. "invalid value '2' for '--bad-ratio <RATIO>': ...".

/// A ratio in [0, 1].
pub fn ratio(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is outside 0..=1"))
    }
}

/// A strictly positive, finite rate (messages per second).
pub fn positive_rate(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(format!("{s} must be a positive number"))
    }
}

/// A Kafka topic name (Kafka's own rule: 1-249 of [A-Za-z0-9._-]).
pub fn topic(s: &str) -> Result<String, String> {
    if !s.is_empty()
        && s.len() <= 249
        && s != "."
        && s != ".."
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        Ok(s.to_string())
    } else {
        Err(format!(
            "`{s}` is not a valid topic name (1-249 characters of A-Z a-z 0-9 . _ -)"
        ))
    }
}

/// A plain SQL identifier (it is spliced into DDL, so nothing else is allowed).
pub fn sql_ident(s: &str) -> Result<String, String> {
    let mut chars = s.chars();
    let ok = s.len() <= 48
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "`{s}` is not a valid table name (lowercase letters, digits, _; at most 48)"
        ))
    }
}

/// An http(s) URL.
pub fn http_url(s: &str) -> Result<String, String> {
    match reqwest::Url::parse(s) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(s.to_string()),
        Ok(u) => Err(format!("scheme `{}` is not http or https", u.scheme())),
        Err(e) => Err(format!("`{s}` is not a URL: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsers() {
        assert_eq!(ratio("0.01"), Ok(0.01));
        assert!(ratio("1.5").is_err());
        assert!(ratio("x").is_err());
        assert!(positive_rate("0").is_err());
        assert!(positive_rate("inf").is_err());
        assert_eq!(positive_rate("2.5"), Ok(2.5));
        assert!(topic("users_created").is_ok());
        assert!(topic("bad topic").is_err());
        assert!(sql_ident("ingest_staging_1").is_ok());
        assert!(sql_ident("x; drop table y").is_err());
        assert!(sql_ident("Upper").is_err());
        assert!(http_url("http://127.0.0.1:1/api/").is_ok());
        assert!(http_url("ftp://x").is_err());
    }
}
