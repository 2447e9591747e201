//! The demo origin the quick start runs behind weir: answers every request with a small JSON
//! document describing what it received (method, path, headers, body and trailers), so a newcomer sees
//! what the filters changed. Also used by tests and benchmarks as a fast, fixed origin.

use std::net::SocketAddr;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Largest request head the demo origin reads.
const MAX_HEAD: usize = 64 << 10;
/// Most body bytes echoed back (as `body`); longer bodies are still read and counted.
const ECHO_LIMIT: usize = 4 << 10;

/// Serves on `listener` forever; `name` is reported in each answer (`"origin"`).
pub async fn serve(listener: TcpListener, name: String) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let name = name.clone();
        tokio::spawn(async move {
            let _ = connection(stream, &name).await;
        });
    }
}

/// Starts the demo origin on its own thread, bound to `addr`.
///
/// # Errors
///
/// When the address cannot be bound.
pub fn spawn(addr: SocketAddr, name: &str) -> std::io::Result<SocketAddr> {
    let listener = bind(addr)?;
    let local = listener.local_addr()?;
    serve_on_thread(listener, name.to_owned())?;
    Ok(local)
}

/// Binds the demo origin's listener (before the process daemonizes, so an error is reported).
///
/// # Errors
///
/// When the address cannot be bound.
pub fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Serves the demo origin on `listener` from a thread of its own.
///
/// # Errors
///
/// When the thread cannot be started.
pub fn serve_on_thread(listener: std::net::TcpListener, name: String) -> std::io::Result<()> {
    std::thread::Builder::new().name(format!("demo-{name}")).spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
        rt.block_on(async move {
            let listener = TcpListener::from_std(listener).expect("listener");
            serve(listener, name).await;
        });
    })?;
    Ok(())
}

async fn connection(stream: TcpStream, name: &str) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).await? == 0 {
            return Ok(());
        }
        let mut parts = request_line.split_whitespace();
        let (method, path) = (parts.next().unwrap_or("").to_owned(), parts.next().unwrap_or("").to_owned());
        let mut headers = Vec::new();
        let mut head = request_line.len();
        let mut content_length = 0usize;
        let mut chunked = false;
        let mut close = false;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            head += line.len();
            if head > MAX_HEAD {
                return Ok(());
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_owned());
                match k.as_str() {
                    "content-length" => content_length = v.parse().unwrap_or(0),
                    "transfer-encoding" => chunked = v.eq_ignore_ascii_case("chunked"),
                    "connection" => close = v.eq_ignore_ascii_case("close"),
                    _ => {}
                }
                headers.push((k, v));
            }
        }
        let mut echo = Vec::new();
        let mut trailers = Vec::new();
        let body_len = if chunked {
            read_chunked(&mut reader, &mut echo, &mut trailers).await?
        } else {
            read_body(&mut reader, content_length, &mut echo).await?
        };
        let doc = serde_json::json!({
            "origin": name,
            "method": method,
            "path": path,
            "headers": headers.iter().map(|(k, v)| serde_json::json!([k, v])).collect::<Vec<_>>(),
            "body_bytes": body_len,
            "body": String::from_utf8_lossy(&echo),
            "trailers": trailers.iter().map(|(k, v)| serde_json::json!([k, v])).collect::<Vec<_>>(),
        });
        let body = doc.to_string() + "\n";
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nx-demo-origin: {name}\r\n{}\r\n{body}",
            body.len(),
            if close { "connection: close\r\n" } else { "" }
        );
        reader.get_mut().write_all(response.as_bytes()).await?;
        if close {
            return Ok(());
        }
    }
}

/// Reads `n` body bytes, keeping the first [`ECHO_LIMIT`] of the whole body in `echo`.
async fn read_body(r: &mut BufReader<TcpStream>, n: usize, echo: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut left = n;
    let mut buf = [0u8; 8192];
    while left > 0 {
        let got = r.read(&mut buf[..left.min(8192)]).await?;
        if got == 0 {
            break;
        }
        let keep = got.min(ECHO_LIMIT.saturating_sub(echo.len()));
        echo.extend_from_slice(&buf[..keep]);
        left -= got;
    }
    Ok(n - left)
}

type Fields = Vec<(String, String)>;

async fn read_chunked(
    r: &mut BufReader<TcpStream>,
    echo: &mut Vec<u8>,
    trailers: &mut Fields,
) -> std::io::Result<usize> {
    let mut total = 0;
    loop {
        let mut size = String::new();
        r.read_line(&mut size).await?;
        let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16).unwrap_or(0);
        if n == 0 {
            // Trailers, then the empty line.
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).await? == 0 || line.trim().is_empty() {
                    return Ok(total);
                }
                if let Some((k, v)) = line.split_once(':') {
                    trailers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
                }
            }
        }
        total += read_body(r, n, echo).await?;
        let mut crlf = String::new();
        r.read_line(&mut crlf).await?;
    }
}
