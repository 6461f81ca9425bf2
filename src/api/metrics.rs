//! `GET /metrics`: Prometheus's scrape of the agent and every HAProxy it runs. Served whichever
//! API families are on, and authenticated like every other route.

use crate::api::ops::{DomainError, Op, Outcome};
use crate::api::{free, words, ApiRoute, Endpoint, Reply};
use crate::error::ApiError;
use crate::http::{Method, Params};
use crate::metrics::expo::CONTENT_TYPE;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Metrics,
}

pub fn routes() -> Vec<ApiRoute> {
    vec![free(
        Method::Get,
        "/metrics",
        Endpoint::Metrics(Key::Metrics),
    )]
}

pub fn parse(_: Key, _: &Params, _: Vec<u8>) -> Result<Op, ApiError> {
    Ok(Op::Metrics)
}

pub fn render(_: Key, r: Result<Outcome, DomainError>) -> Result<Reply, ApiError> {
    match r {
        Ok(Outcome::Metrics(text)) => {
            let mut reply = Reply::text(200, text);
            reply.content_type = CONTENT_TYPE;
            Ok(reply)
        }
        Ok(other) => Err(words::unexpected(&other)),
        Err(e) => Err(words::unexpected(&e)),
    }
}
