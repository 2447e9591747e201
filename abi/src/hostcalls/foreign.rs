//! Foreign functions (docs/abi.md#foreign-function-hostcall, #foreign-functions): `compress`, `uncompress` (zlib), `clear_route_cache`.
//! Any other name is NOT_FOUND.

use std::io::{Read, Write};

use super::{Registrar, hostcall, tri};
use crate::memory;
use crate::types::Status;

/// Most bytes `uncompress` produces, so a small input cannot exhaust the host's memory.
const MAX_UNCOMPRESSED: u64 = 16 << 20;

fn compress(data: &[u8]) -> Result<Vec<u8>, Status> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).map_err(|_| Status::SerializationFailure)?;
    e.finish().map_err(|_| Status::SerializationFailure)
}

fn uncompress(data: &[u8]) -> Result<Vec<u8>, Status> {
    let mut out = Vec::new();
    let mut d = flate2::read::ZlibDecoder::new(data).take(MAX_UNCOMPRESSED + 1);
    d.read_to_end(&mut out).map_err(|_| Status::SerializationFailure)?;
    if out.len() as u64 > MAX_UNCOMPRESSED {
        return Err(Status::SerializationFailure);
    }
    Ok(out)
}

pub(super) fn add(r: &mut Registrar<'_>) -> wasmtime::Result<()> {
    hostcall!(r, "proxy_call_foreign_function", |c, np: i32, nl: i32, ap: i32, al: i32, ret_ptr: i32, ret_len: i32| {
        let name = tri!(memory::read(&mut c, np, nl));
        let args = tri!(memory::read(&mut c, ap, al));
        let result = match name.as_slice() {
            b"compress" => tri!(compress(&args)),
            b"uncompress" => tri!(uncompress(&args)),
            b"clear_route_cache" => {
                c.data_mut().frame.effects.clear_route_cache = true;
                Vec::new()
            }
            _ => return Ok(Status::NotFound.code()),
        };
        if ret_ptr != 0 {
            tri!(memory::hand_out(&mut c, &result, ret_ptr, ret_len)?);
        }
        Ok(Status::Ok.code())
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage() {
        let data = b"hello hello hello hello".repeat(10);
        assert_eq!(uncompress(&compress(&data).unwrap()).unwrap(), data);
        assert_eq!(uncompress(b"not zlib"), Err(Status::SerializationFailure));
    }
}
