//! LBaaS device API routes (spec/device-api-v1.rst): `/v1/devices...`. Errors are the spec's
//! `{"message","details","code"}`.

use std::net::IpAddr;

use serde_json::{json, Value};

use crate::api::ops::{DeviceOp, DomainError, Op, Outcome};
use crate::api::{free, words, ApiRoute, Endpoint, Reply};
use crate::devices::{DeviceError, Fields};
use crate::error::ApiError;
use crate::http::{percent_decode, Method, Params};

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;
/// Longest device name, in bytes.
const MAX_NAME: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    List,
    Create,
    Usage,
    Get,
    Update,
    Delete,
}

pub fn routes() -> Vec<ApiRoute> {
    let r = |method, pattern, key| free(method, pattern, Endpoint::Devices(key));
    vec![
        r(Method::Get, "/v1/devices", Key::List),
        r(Method::Post, "/v1/devices", Key::Create),
        // Before `{id}`, which would take "usage" for an id.
        r(Method::Get, "/v1/devices/usage", Key::Usage),
        r(Method::Get, "/v1/devices/{id}", Key::Get),
        r(Method::Put, "/v1/devices/{id}", Key::Update),
        r(Method::Delete, "/v1/devices/{id}", Key::Delete),
    ]
}

/// The query string matters only to the list (its paging).
pub fn parse(key: Key, p: &Params, query: Option<&str>, body: Vec<u8>) -> Result<Op, ApiError> {
    Ok(Op::Device(match key {
        Key::List => {
            let (marker, limit) = paging(query)?;
            DeviceOp::List { marker, limit }
        }
        Key::Create => DeviceOp::Create(fields(&body)?),
        Key::Usage => DeviceOp::Usage,
        Key::Get => DeviceOp::Get(device_id(p)?),
        Key::Update => {
            let id = device_id(p)?;
            DeviceOp::Update(id, fields(&body)?)
        }
        Key::Delete => DeviceOp::Delete(device_id(p)?),
    }))
}

pub fn render(_: Key, r: Result<Outcome, DomainError>) -> Result<Reply, ApiError> {
    Ok(match r.map_err(error)? {
        Outcome::Devices(devices) => Reply::json(200, &json!({ "devices": devices })),
        Outcome::Device(device) => Reply::json(200, &json!(device)),
        Outcome::Usage { total, free, taken } => Reply::json(
            200,
            &json!({ "total": total, "free": free, "taken": taken }),
        ),
        Outcome::Done => Reply {
            body: Vec::new(),
            ..Reply::json(204, &json!(null))
        },
        other => return Err(words::unexpected(&other)),
    })
}

/// A create's or update's body: an object whose `name` and `address` (when present) are valid;
/// other keys are ignored, as the spec says.
pub(crate) fn fields(body: &[u8]) -> Result<Fields, ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("request body is not JSON: {e}")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| ApiError::bad_request("request body must be a JSON object"))?;
    let text = |key: &str| -> Result<Option<String>, ApiError> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => {
                Err(ApiError::bad_request(format!("{key} must not be empty")))
            }
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(ApiError::bad_request(format!("{key} must be a string"))),
        }
    };
    let (name, address) = (text("name")?, text("address")?);
    if let Some(n) = &name {
        if n.len() > MAX_NAME {
            return Err(ApiError::bad_request(format!(
                "name is longer than {MAX_NAME} bytes"
            )));
        }
        if n.chars().any(char::is_control) {
            return Err(ApiError::bad_request(
                "name must not hold control characters",
            ));
        }
    }
    if let Some(a) = &address {
        a.parse::<IpAddr>().map_err(|_| {
            ApiError::bad_request(format!("address : {a} is not a valid IPv4 or IPv6 address"))
        })?;
    }
    Ok(Fields { name, address })
}

fn error(e: DomainError) -> ApiError {
    match e {
        DomainError::Device(DeviceError::Missing(field)) => {
            ApiError::bad_request(format!("{field} is required"))
        }
        DomainError::Device(DeviceError::NothingToChange) => {
            ApiError::bad_request("name or address is required")
        }
        DomainError::Device(DeviceError::NameTaken(name)) => {
            ApiError::bad_request(format!("device name : {name} already exists"))
        }
        DomainError::Device(DeviceError::AddressTaken(address)) => {
            ApiError::bad_request(format!("device address : {address} already exists"))
        }
        DomainError::Device(DeviceError::NotFound(id)) => {
            ApiError::not_found(format!("device {id} not found"))
        }
        DomainError::Device(DeviceError::Io(e)) => {
            ApiError::internal(format!("device registry: {e}"))
        }
        DomainError::NoRegistry => ApiError::internal("the device registry is not loaded"),
        other => words::unexpected(&other),
    }
}

fn device_id(p: &Params) -> Result<u64, ApiError> {
    let raw = p.get("id")?;
    match raw.parse::<u64>() {
        Ok(id) if id > 0 && raw.bytes().all(|b| b.is_ascii_digit()) => Ok(id),
        _ => Err(ApiError::bad_request(format!(
            "device id must be a positive integer, not {raw:?}"
        ))),
    }
}

/// `marker` (list after this id) and `limit` from the query string.
fn paging(query: Option<&str>) -> Result<(u64, usize), ApiError> {
    let (mut marker, mut limit) = (0, DEFAULT_LIMIT);
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_decode(v).unwrap_or_default();
        match k {
            "marker" => {
                marker = v.parse().map_err(|_| {
                    ApiError::bad_request(format!("marker must be a device id, not {v:?}"))
                })?
            }
            "limit" => {
                limit = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "limit must be a whole number from 1 to {MAX_LIMIT}, not {v:?}"
                        ))
                    })?
            }
            _ => {}
        }
    }
    Ok((marker, limit))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::api::{parse_request as parse, refusal};

    #[test]
    fn every_route_parses() {
        let f = || Fields {
            name: Some("d1".into()),
            address: Some("192.0.2.1".into()),
        };
        let body = r#"{"name":"d1","address":"192.0.2.1"}"#;
        let cases = [
            (
                "GET",
                "/v1/devices?marker=2&limit=5",
                "",
                DeviceOp::List {
                    marker: 2,
                    limit: 5,
                },
            ),
            (
                "GET",
                "/v1/devices",
                "",
                DeviceOp::List {
                    marker: 0,
                    limit: DEFAULT_LIMIT,
                },
            ),
            ("POST", "/v1/devices", body, DeviceOp::Create(f())),
            ("GET", "/v1/devices/usage", "", DeviceOp::Usage),
            ("GET", "/v1/devices/7", "", DeviceOp::Get(7)),
            ("PUT", "/v1/devices/7", body, DeviceOp::Update(7, f())),
            ("DELETE", "/v1/devices/7", "", DeviceOp::Delete(7)),
        ];
        for (method, path, body, op) in cases {
            assert_eq!(
                parse(method, path, body).unwrap(),
                Op::Device(op),
                "{method} {path}"
            );
        }
    }

    #[test]
    fn bad_ids_paging_and_bodies_are_bad_requests() {
        let bad = |d: &str| (400, "Bad Request".to_string(), Some(d.to_string()));
        let cases = [
            (
                "GET",
                "/v1/devices/0",
                "",
                bad("device id must be a positive integer, not \"0\""),
            ),
            (
                "PUT",
                "/v1/devices/+7",
                "{}",
                bad("device id must be a positive integer, not \"+7\""),
            ),
            (
                "DELETE",
                "/v1/devices/x",
                "",
                bad("device id must be a positive integer, not \"x\""),
            ),
            (
                "GET",
                "/v1/devices?limit=0",
                "",
                bad("limit must be a whole number from 1 to 1000, not \"0\""),
            ),
            (
                "POST",
                "/v1/devices",
                "[]",
                bad("request body must be a JSON object"),
            ),
            (
                "PUT",
                "/v1/devices/7",
                r#"{"name":""}"#,
                bad("name must not be empty"),
            ),
        ];
        for (method, path, body, want) in cases {
            assert_eq!(refusal(parse(method, path, body)), want, "{method} {path}");
        }
    }

    #[test]
    fn paging_params() {
        assert_eq!(paging(None).unwrap(), (0, DEFAULT_LIMIT));
        assert_eq!(paging(Some("marker=3&limit=2&x=y")).unwrap(), (3, 2));
        for bad in ["limit=0", "limit=1001", "limit=x", "marker=-1", "marker=a"] {
            assert_eq!(paging(Some(bad)).unwrap_err().status, 400, "{bad}");
        }
    }

    #[test]
    fn fields_from_bodies() {
        let f = fields(br#"{"name":"a","address":"::1","extra":1}"#).unwrap();
        assert_eq!(f.name.as_deref(), Some("a"));
        for (body, why) in [
            (&b"nope"[..], "not JSON"),
            (b"[1]", "JSON object"),
            (br#"{"name":""}"#, "must not be empty"),
            (br#"{"name":1}"#, "must be a string"),
            (br#"{"name":"a\u0001"}"#, "control"),
            (br#"{"address":"1.2.3"}"#, "not a valid"),
            (br#"{"address":"10.0.0.1/24"}"#, "not a valid"),
        ] {
            let e = fields(body).unwrap_err();
            assert_eq!((e.status, e.message.as_str()), (400, "Bad Request"));
            let d = e.details.unwrap_or_default();
            assert!(d.contains(why), "{d}");
        }
        let long = format!(r#"{{"name":"{}"}}"#, "n".repeat(MAX_NAME + 1));
        assert!(fields(long.as_bytes()).is_err());
    }

    #[test]
    fn registry_refusals_keep_their_words() {
        let bad = |e: DeviceError| {
            let e = error(DomainError::Device(e));
            (e.status, e.message, e.details.unwrap_or_default())
        };
        let want = |d: &str| (400, "Bad Request".to_string(), d.to_string());
        assert_eq!(bad(DeviceError::Missing("name")), want("name is required"));
        assert_eq!(
            bad(DeviceError::NothingToChange),
            want("name or address is required")
        );
        assert_eq!(
            bad(DeviceError::NameTaken("d1".into())),
            want("device name : d1 already exists")
        );
        assert_eq!(
            bad(DeviceError::AddressTaken("::1".into())),
            want("device address : ::1 already exists")
        );
    }
}
