//! A property path a guest hands the host (`proxy_get_property`, `proxy_set_property`): any
//! bytes split without a panic into segments that put back together give the path (less the
//! one trailing NUL Envoy tolerates).
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_abi_codec::split_path;

fuzz_target!(|data: &[u8]| {
    let segments = split_path(data);
    let joined = segments.join(&0u8);
    assert_eq!(joined.as_slice(), data.strip_suffix(&[0]).unwrap_or(data));
});
