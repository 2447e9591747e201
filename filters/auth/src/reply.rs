//! The local replies the filter sends instead of forwarding a request.

/// A local reply: status, headers and a short body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// 401, 403 or 500.
    pub status: u32,
    /// Extra headers (`www-authenticate`).
    pub headers: Vec<(String, String)>,
    /// Body text.
    pub body: &'static str,
}

impl Reply {
    /// 401 with one `www-authenticate` header per challenge.
    pub fn unauthorized(challenges: Vec<String>) -> Self {
        let headers = challenges.into_iter().map(|c| ("www-authenticate".to_owned(), c)).collect();
        Self { status: 401, headers, body: "unauthorized" }
    }

    /// 403.
    pub fn forbidden() -> Self {
        Self { status: 403, headers: Vec::new(), body: "forbidden" }
    }

    /// 500, for requests that reach a filter whose configuration was refused.
    pub fn not_configured() -> Self {
        Self { status: 500, headers: Vec::new(), body: "auth filter not configured" }
    }
}
