//! Reading a cookie from `cookie` headers and writing the `set-cookie` that pins a variant.

use crate::config::SetCookie;

/// The value of cookie `name` in `cookie` header values (`a=1; b=2`), first one wins.
/// Surrounding double quotes are removed (RFC 6265 allows them).
pub fn find<'a>(headers: impl IntoIterator<Item = &'a [u8]>, name: &str) -> Option<&'a [u8]> {
    headers.into_iter().flat_map(|h| h.split(|b| *b == b';')).find_map(|pair| {
        let eq = pair.iter().position(|b| *b == b'=')?;
        let (key, value) = (pair.get(..eq)?, pair.get(eq + 1..)?);
        if trim(key) != name.as_bytes() {
            return None;
        }
        let value = trim(value);
        Some(value.strip_prefix(b"\"").and_then(|v| v.strip_suffix(b"\"")).unwrap_or(value))
    })
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(start, |e| e + 1);
    bytes.get(start..end).unwrap_or_default()
}

/// The `set-cookie` value keeping the client in `variant`.
pub fn set_cookie(cookie: &SetCookie, variant: &str) -> String {
    format!("{}={variant}; Max-Age={}; Path=/; HttpOnly; SameSite=Lax", cookie.name, cookie.max_age_seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_cookies() {
        let headers: [&[u8]; 2] = [b"a=1; uid = u-42 ;theme=\"dark\"", b"uid=second; v="];
        assert_eq!(find(headers, "uid"), Some(&b"u-42"[..]));
        assert_eq!(find(headers, "theme"), Some(&b"dark"[..]));
        assert_eq!(find(headers, "v"), Some(&b""[..]));
        assert_eq!(find(headers, "b"), None);
        assert_eq!(find(headers, "ui"), None);
        assert_eq!(find([&b"novalue; ;="[..]], "novalue"), None);
    }

    #[test]
    fn writes_set_cookie() {
        let c = SetCookie { name: "weir_variant".into(), max_age_seconds: 86400 };
        assert_eq!(set_cookie(&c, "canary"), "weir_variant=canary; Max-Age=86400; Path=/; HttpOnly; SameSite=Lax");
    }
}
