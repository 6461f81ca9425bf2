//! LBaaS device API routes (spec/device-api-v1.rst): `/v1/devices...`. Errors are the spec's
//! `{"message","details","code"}`.

use serde_json::json;

use crate::api::{free, ApiRoute, Ctx, Endpoint, Reply, Request};
use crate::devices::{DeviceError, Fields, Registry};
use crate::error::ApiError;
use crate::http::{percent_decode, Method, Params};

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

pub fn routes() -> Vec<ApiRoute> {
    vec![
        free(Method::Get, "/v1/devices", Endpoint::Handler(list)),
        free(Method::Post, "/v1/devices", Endpoint::Handler(create)),
        // Before `{id}`, which would take "usage" for an id.
        free(Method::Get, "/v1/devices/usage", Endpoint::Handler(usage)),
        free(Method::Get, "/v1/devices/{id}", Endpoint::Handler(get)),
        free(Method::Put, "/v1/devices/{id}", Endpoint::Handler(update)),
        free(
            Method::Delete,
            "/v1/devices/{id}",
            Endpoint::Handler(delete),
        ),
    ]
}

impl From<DeviceError> for ApiError {
    fn from(e: DeviceError) -> Self {
        match e {
            DeviceError::Invalid(d) => ApiError::bad_request(d),
            DeviceError::NotFound(id) => ApiError::not_found(format!("device {id} not found")),
            DeviceError::Io(e) => ApiError::internal(format!("device registry: {e}")),
        }
    }
}

fn registry(ctx: &Ctx) -> Result<&Registry, ApiError> {
    ctx.devices
        .as_ref()
        .ok_or_else(|| ApiError::internal("the device registry is not loaded"))
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

fn list(ctx: &Ctx, req: &Request, _: &Params) -> Result<Reply, ApiError> {
    let (marker, limit) = paging(req.query.as_deref())?;
    let devices = registry(ctx)?.list(marker, limit);
    Ok(Reply::json(200, &json!({ "devices": devices })))
}

fn create(ctx: &Ctx, req: &Request, _: &Params) -> Result<Reply, ApiError> {
    let device = registry(ctx)?.create(Fields::parse(&req.body)?)?;
    Ok(Reply::json(200, &json!(device)))
}

fn usage(ctx: &Ctx, _: &Request, _: &Params) -> Result<Reply, ApiError> {
    let (total, free, taken) = registry(ctx)?.usage();
    Ok(Reply::json(
        200,
        &json!({ "total": total, "free": free, "taken": taken }),
    ))
}

fn get(ctx: &Ctx, _: &Request, p: &Params) -> Result<Reply, ApiError> {
    let device = registry(ctx)?.get(device_id(p)?)?;
    Ok(Reply::json(200, &json!(device)))
}

fn update(ctx: &Ctx, req: &Request, p: &Params) -> Result<Reply, ApiError> {
    let id = device_id(p)?;
    let device = registry(ctx)?.update(id, Fields::parse(&req.body)?)?;
    Ok(Reply::json(200, &json!(device)))
}

fn delete(ctx: &Ctx, _: &Request, p: &Params) -> Result<Reply, ApiError> {
    registry(ctx)?.delete(device_id(p)?)?;
    Ok(Reply {
        body: Vec::new(),
        ..Reply::json(204, &json!(null))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_params() {
        assert_eq!(paging(None).unwrap(), (0, DEFAULT_LIMIT));
        assert_eq!(paging(Some("marker=3&limit=2&x=y")).unwrap(), (3, 2));
        for bad in ["limit=0", "limit=1001", "limit=x", "marker=-1", "marker=a"] {
            assert_eq!(paging(Some(bad)).unwrap_err().status, 400, "{bad}");
        }
    }
}
