//! `/logging`: log levels at run time, as Envoy's admin `POST /logging` changes them.
//!
//! - `GET /logging`: the default level and each plugin's, with where it comes from.
//! - `POST /logging?level=debug`: weir's own logs and every plugin without a level of its own.
//! - `POST /logging?plugin=NAME&level=debug`: one plugin's level (`proxy_get_log_level`, and
//!   which of its lines are kept), until the process ends.

use http::StatusCode;
use serde_json::{Value, json};
use weir_abi::LogLevel;

use crate::filter_log::levels as filter_levels;
use crate::generation::Generation;

/// The levels now.
pub fn levels(generation: &Generation) -> Value {
    let levels = filter_levels();
    let plugins: serde_json::Map<String, Value> = generation
        .plugins
        .keys()
        .map(|name| {
            let (level, source) = levels.effective(name);
            (name.clone(), json!({ "level": level.name(), "source": source }))
        })
        .collect();
    json!({ "level": levels.default_level().name(), "plugins": plugins })
}

/// Applies `query`; the levels after it, or the status and reason it was refused.
pub fn change(generation: &Generation, query: &str) -> Result<Value, (StatusCode, String)> {
    let mut level = None;
    let mut plugin = None;
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match key.as_ref() {
            "level" => level = Some(value.into_owned()),
            "plugin" => plugin = Some(value.into_owned()),
            other => {
                return Err((StatusCode::BAD_REQUEST, format!("unknown parameter `{other}`: use level= and plugin=")));
            }
        }
    }
    let Some(level) = level else {
        return Err((StatusCode::BAD_REQUEST, "missing level=: trace, debug, info, warn, error or critical".into()));
    };
    match plugin {
        None => crate::logging::set_level(&level).map_err(|e| (StatusCode::BAD_REQUEST, e))?,
        Some(plugin) => {
            let parsed = LogLevel::from_name(&level)
                .ok_or_else(|| (StatusCode::BAD_REQUEST, crate::logging::unknown_level(&level)))?;
            if !generation.plugins.contains_key(&plugin) {
                let known: Vec<&str> = generation.plugins.keys().map(String::as_str).collect();
                return Err((StatusCode::NOT_FOUND, format!("no plugin `{plugin}`; plugins: {}", known.join(", "))));
            }
            filter_levels().set_override(&plugin, parsed);
        }
    }
    tracing::info!(target: "weir::admin", query, "log levels changed");
    Ok(levels(generation))
}
