//! `GET /openapi.json`: the OpenAPI 3.1 document of every family (`openapi.json` at the top of
//! the repository, built in), served whichever families are on.

use crate::api::ops::{DomainError, Op, Outcome};
use crate::api::{free, words, ApiRoute, Endpoint, Reply};
use crate::error::ApiError;
use crate::http::{Method, Params};

/// The document, as shipped (tests/openapi.rs checks it lists exactly the routes).
pub const DOCUMENT: &str = include_str!("../../openapi.json");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Document,
}

pub fn routes() -> Vec<ApiRoute> {
    vec![free(
        Method::Get,
        "/openapi.json",
        Endpoint::OpenApi(Key::Document),
    )]
}

pub fn parse(_: Key, _: &Params, _: Vec<u8>) -> Result<Op, ApiError> {
    Ok(Op::Nothing)
}

pub fn render(_: Key, r: Result<Outcome, DomainError>) -> Result<Reply, ApiError> {
    match r {
        Ok(Outcome::Done) => {
            let mut reply = Reply::text(200, DOCUMENT);
            reply.content_type = "application/json";
            Ok(reply)
        }
        Ok(other) => Err(words::unexpected(&other)),
        Err(e) => Err(words::unexpected(&e)),
    }
}
