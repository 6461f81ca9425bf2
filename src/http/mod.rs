//! The ground floor every API family stands on: the request as handlers see it (no tiny_http
//! types), the reply, who the peer is, and the route table. It knows no API family.

pub mod router;

use std::net::SocketAddr;

use crate::error::ApiError;

pub use router::{percent_decode, Match, Params, Route, Router};

/// An HTTP method. Methods no route uses are kept by name, for 405s and the access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Other(Box<str>),
}

impl Method {
    pub fn parse(s: &str) -> Method {
        match s {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            other => Method::Other(other.into()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Other(m) => m,
        }
    }

    /// GET and HEAD only read (RFC 9110 9.2.1).
    pub fn is_safe(&self) -> bool {
        matches!(self, Method::Get | Method::Head)
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who is on the other end, as the network front saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub addr: SocketAddr,
    /// Subject of the verified client certificate, when mTLS is on.
    pub cert_subject: Option<String>,
}

/// A request as handlers see it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub peer: Peer,
    /// The basic-auth user, once authenticated.
    pub user: Option<String>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    pub fn text(status: u16, s: impl Into<String>) -> Self {
        Reply::bytes(status, s.into().into_bytes())
    }

    /// A plain-text body given as bytes (configs are not always UTF-8).
    pub fn bytes(status: u16, body: Vec<u8>) -> Self {
        Reply {
            status,
            content_type: crate::error::TEXT,
            body,
            headers: Vec::new(),
        }
    }

    /// A JSON body: a `Value`, or any value that serializes as JSON whatever it holds (maps
    /// with string keys, strings, numbers), which spares building a `Value` first.
    pub fn json(status: u16, v: &impl serde::Serialize) -> Self {
        Reply {
            status,
            content_type: "application/json",
            body: serde_json::to_vec(v).unwrap_or_default(),
            headers: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }
}

impl From<ApiError> for Reply {
    fn from(e: ApiError) -> Self {
        Reply {
            status: e.status,
            content_type: e.content_type(),
            body: e.body().into_bytes(),
            headers: e.headers,
        }
    }
}
