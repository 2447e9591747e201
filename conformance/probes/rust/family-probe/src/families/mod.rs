//! One module per family of SPEC.md. Each has an HTTP context type `Stream`; the families with
//! root-side behaviour (queue, metrics, timers) also have free functions the root calls.

pub mod body;
pub mod failure;
pub mod headers;
pub mod http_call;
pub mod lifecycle;
pub mod local_reply;
pub mod logging;
pub mod metrics;
pub mod properties;
pub mod queue;
pub mod resume;
pub mod shared_data;
pub mod timers;

/// The stream context of a family whose state is only its observer: `Stream { obs }`, made
/// with `Stream::new(obs)`.
macro_rules! observer_stream {
    () => {
        pub struct Stream {
            obs: crate::observe::Observer,
        }

        impl Stream {
            pub fn new(obs: crate::observe::Observer) -> Stream {
                Stream { obs }
            }
        }
    };
}
pub(crate) use observer_stream;

/// The family a plugin configuration names.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Family {
    Lifecycle,
    Headers,
    Body,
    LocalReply,
    HttpCall,
    SharedData,
    Queue,
    Metrics,
    Properties,
    Timers,
    Resume,
    Logging,
    Failure,
    /// Any other name: logs `unknown_family`, otherwise behaves as `Lifecycle`.
    Unknown,
}

impl Family {
    /// `name` is the configuration with surrounding whitespace already removed.
    pub fn parse(name: &str) -> Family {
        match name {
            "lifecycle" => Family::Lifecycle,
            "headers" => Family::Headers,
            "body" => Family::Body,
            "local_reply" => Family::LocalReply,
            "http_call" => Family::HttpCall,
            "shared_data" => Family::SharedData,
            "queue" => Family::Queue,
            "metrics" => Family::Metrics,
            "properties" => Family::Properties,
            "timers" => Family::Timers,
            "resume" => Family::Resume,
            "logging" => Family::Logging,
            "failure" => Family::Failure,
            _ => Family::Unknown,
        }
    }

    /// Whether the family logs every callback.
    pub fn is_lifecycle(self) -> bool {
        matches!(self, Family::Lifecycle | Family::Unknown)
    }
}
