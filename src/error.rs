//! The one error type every handler returns, and its JSON rendering (DESIGN section 3).

use serde_json::json;

pub const TEXT: &str = "text/plain; charset=utf-8";

/// An error with the HTTP status it maps to; rendered as `{"message","details","code"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
    pub details: Option<String>,
    /// Extra response headers (e.g. `Allow`, `WWW-Authenticate`).
    pub headers: Vec<(&'static str, String)>,
    /// Rendered as plain text (`message`, then `details` on the next line): the legacy
    /// appliance API's bodies are text.
    pub plain: bool,
}

impl ApiError {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            details: None,
            headers: Vec::new(),
            plain: false,
        }
    }

    /// An error whose body is plain text.
    pub fn plain(status: u16, message: impl Into<String>) -> Self {
        ApiError {
            plain: true,
            ..ApiError::new(status, message)
        }
    }

    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = Some(details.into());
        self
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn bad_request(details: impl Into<String>) -> Self {
        ApiError::new(400, "Bad Request").with_details(details)
    }

    pub fn not_found(details: impl Into<String>) -> Self {
        ApiError::new(404, "Not Found").with_details(details)
    }

    pub fn internal(details: impl Into<String>) -> Self {
        ApiError::new(500, "Internal Server Error").with_details(details)
    }

    /// The JSON body of DESIGN section 3, or the text of a plain error.
    pub fn body(&self) -> String {
        match (self.plain, &self.details) {
            (false, _) => error_body(self.status, &self.message, self.details.as_deref()),
            (true, Some(d)) => format!("{}\n{d}", self.message),
            (true, None) => self.message.clone(),
        }
    }

    pub fn content_type(&self) -> &'static str {
        if self.plain {
            TEXT
        } else {
            "application/json"
        }
    }
}

/// Renders the error shape; shared with the network front, which answers some errors itself.
pub fn error_body(status: u16, message: &str, details: Option<&str>) -> String {
    let mut v = json!({ "message": message, "code": status });
    if let Some(d) = details {
        v["details"] = json!(d);
    }
    v.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_design_shape() {
        let e = ApiError::not_found("No such server.");
        let v: serde_json::Value = serde_json::from_str(&e.body()).unwrap();
        assert_eq!(v["message"], "Not Found");
        assert_eq!(v["details"], "No such server.");
        assert_eq!(v["code"], 404);
        let v: serde_json::Value = serde_json::from_str(&error_body(413, "x", None)).unwrap();
        assert!(v.get("details").is_none());
    }
}
