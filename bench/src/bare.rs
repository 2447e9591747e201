//! The limit of weir's design: a Pingora proxy whose only hook is `upstream_peer`, with the
//! Pingora version and features weir uses. `bench/run.py` measures weir against it.
//!
//! Usage: `bare_pingora LISTEN_ADDR ORIGIN_ADDR [THREADS]` (the system allocator), or
//! `bare_pingora_mimalloc …` (weir's allocator).

use async_trait::async_trait;
use pingora::prelude::*;

/// The proxy: every request goes to the one origin.
struct Bare {
    origin: String,
}

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.origin.as_str(), false, String::new())))
    }
}

/// Runs the proxy with the command line's arguments.
pub fn run() {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(origin)) = (args.next(), args.next()) else {
        eprintln!("usage: bare_pingora LISTEN_ADDR ORIGIN_ADDR [THREADS]");
        std::process::exit(2);
    };
    let threads = args.next().and_then(|t| t.parse().ok()).unwrap_or(1);
    let mut server = Server::new(None).expect("server");
    let conf = std::sync::Arc::get_mut(&mut server.configuration).expect("configuration");
    conf.threads = threads;
    conf.grace_period_seconds = Some(0);
    conf.graceful_shutdown_timeout_seconds = Some(0);
    server.bootstrap();
    let mut proxy = http_proxy_service(&server.configuration, Bare { origin });
    proxy.add_tcp(&listen);
    server.add_service(proxy);
    server.run_forever();
}
