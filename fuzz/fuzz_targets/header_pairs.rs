//! A header map a guest hands the host (`proxy_set_header_map_pairs`, local replies, callout
//! headers and metadata): any bytes decode without a panic, and a buffer strict decoding
//! accepts is exactly the encoding of what it decoded (the empty map has two: no bytes, and a
//! zero count).
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_abi_codec::{decode, decode_strict, encode};

fuzz_target!(|data: &[u8]| {
    let lax = decode(data);
    if let Some(pairs) = decode_strict(data) {
        assert_eq!(pairs.len(), lax.len());
        let again = encode(pairs.iter().map(|(k, v)| (k.as_ref(), v.as_ref())));
        let empty = pairs.is_empty() && data == [0, 0, 0, 0];
        assert!(empty || again == data, "strict decoding accepted a buffer it cannot give back");
    } else {
        assert!(lax.is_empty(), "malformed input decodes to nothing");
    }
});
