//! Query parameters, checked strictly: an unknown or repeated parameter, a flag with a
//! value other than `true`/`false`/`1`/`0`, a negative or non-numeric number, a duration
//! without a known unit or above its cap are all a 400 naming the parameter.

use super::error::ApiError;
use axum::extract::rejection::QueryRejection;
use axum::extract::Query;
use std::time::Duration;

/// The parameters of one request.
#[derive(Debug, Default)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// The parameters, refusing any not in `allowed` and any given twice.
    pub fn parse(
        query: Result<Query<Vec<(String, String)>>, QueryRejection>,
        allowed: &[&str],
    ) -> Result<Params, ApiError> {
        let Query(pairs) =
            query.map_err(|e| ApiError::bad(format!("query string: {}", e.body_text())))?;
        for (i, (name, _)) in pairs.iter().enumerate() {
            if !allowed.contains(&name.as_str()) {
                let takes = if allowed.is_empty() {
                    "no parameters".to_string()
                } else {
                    allowed.join(", ")
                };
                return Err(ApiError::bad(format!(
                    "unknown parameter {name:?} (this call takes {takes})"
                )));
            }
            if pairs[..i].iter().any(|(n, _)| n == name) {
                return Err(ApiError::bad(format!("parameter {name:?} given twice")));
            }
        }
        Ok(Params { pairs })
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the flag is set: present with no value, `true` or `1`; `false` or `0`
    /// unset it.
    pub fn flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.get(name) {
            None => Ok(false),
            Some("" | "true" | "1") => Ok(true),
            Some("false" | "0") => Ok(false),
            Some(other) => Err(ApiError::bad(format!(
                "parameter {name} takes no value, true or false, got {other:?}"
            ))),
        }
    }

    /// A non-negative integer.
    pub fn number(&self, name: &str) -> Result<Option<u64>, ApiError> {
        self.get(name)
            .map(|v| {
                v.parse::<u64>().map_err(|_| {
                    ApiError::bad(format!("{name} must be a non-negative integer, got {v:?}"))
                })
            })
            .transpose()
    }

    /// A string (may be empty).
    pub fn string(&self, name: &str) -> Option<String> {
        self.get(name).map(str::to_string)
    }

    /// A duration (`500ms`, `30s`, `5m`, `1h`, or a number of seconds) of at most `cap`.
    pub fn duration(&self, name: &str, cap: Duration) -> Result<Option<Duration>, ApiError> {
        let Some(text) = self.get(name) else {
            return Ok(None);
        };
        let d = parse_duration(text).map_err(|e| ApiError::bad(format!("{name}: {e}")))?;
        if d > cap {
            return Err(ApiError::bad(format!(
                "{name} {text} exceeds the cap of {}",
                show_duration(cap)
            )));
        }
        Ok(Some(d))
    }
}

/// Parses `500ms`, `30s`, `5m`, `1h` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let bad = || format!("expected a duration such as 500ms, 30s or 5m, got {text:?}");
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let ms = match unit {
        "ms" => Some(n),
        "" | "s" => n.checked_mul(1000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        _ => return Err(bad()),
    }
    .ok_or_else(bad)?;
    Ok(Duration::from_millis(ms))
}

/// `10m`, `30s` or `250ms`, whichever is exact.
pub fn show_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)], allowed: &[&str]) -> Result<Params, ApiError> {
        let pairs = pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        Params::parse(Ok(Query(pairs)), allowed)
    }

    #[test]
    fn parameters_are_checked_and_named() {
        let p = params(
            &[("recurse", ""), ("limit", "5")],
            &["recurse", "limit", "keys"],
        )
        .expect("valid");
        assert_eq!(p.flag("recurse").ok(), Some(true));
        assert_eq!(p.flag("keys").ok(), Some(false));
        assert_eq!(p.number("limit").ok(), Some(Some(5)));
        let e = params(&[("recurse", "")], &["keys"]).expect_err("unknown");
        assert!(e.body().error.contains("unknown parameter \"recurse\""));
        let e = params(&[("keys", ""), ("keys", "1")], &["keys"]).expect_err("twice");
        assert!(e.body().error.contains("given twice"));
        let p = params(&[("index", "-1"), ("x", "yes")], &["index", "x"]).expect("parsed");
        let e = p.number("index").expect_err("negative");
        assert!(e.body().error.contains("non-negative integer, got \"-1\""));
        assert!(p.flag("x").is_err());
    }

    #[test]
    fn durations_have_units_and_a_cap() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        for bad in ["", "s", "-1s", "1.5s", "3d", "99999999999999999999h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        let p = params(&[("wait", "11m")], &["wait"]).expect("parsed");
        let e = p
            .duration("wait", Duration::from_secs(600))
            .expect_err("above the cap");
        assert_eq!(e.body().error, "wait 11m exceeds the cap of 10m");
        assert_eq!(show_duration(Duration::from_millis(1500)), "1500ms");
    }
}
