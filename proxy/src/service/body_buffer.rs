//! The body buffer a chain's body callbacks see (`StreamData::request_body`,
//! `response_body`): data moves in and out of it without copies where the bytes allow.

use bytes::{Bytes, BytesMut};

/// Appends data Pingora read to a body buffer. An empty buffer takes the data itself when
/// nothing else holds it (the usual case: one chunk per callback), instead of a copy.
pub fn append(buffer: &mut BytesMut, data: Bytes) {
    if buffer.is_empty() {
        match data.try_into_mut() {
            Ok(owned) => *buffer = owned,
            Err(shared) => buffer.extend_from_slice(&shared),
        }
    } else {
        buffer.extend_from_slice(&data);
    }
}

/// Takes what a body buffer holds, leaving it empty. Taking the whole buffer (not `split`,
/// which makes its storage shared) frees the bytes' owner from a second allocation.
pub fn take(buffer: &mut BytesMut) -> Bytes {
    std::mem::take(buffer).freeze()
}

/// What two callbacks released, in order, as one chunk: copied only when both hold data (a
/// body framed by its length is released by its data's callback and an empty end).
pub fn join(first: Bytes, second: Bytes) -> Bytes {
    match (first.is_empty(), second.is_empty()) {
        (true, _) => second,
        (false, true) => first,
        (false, false) => [first, second].concat().into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_moves_through_without_copies_when_alone() {
        let mut buffer = BytesMut::new();
        let data = Bytes::from(b"hello".to_vec());
        let at = data.as_ptr();
        append(&mut buffer, data);
        assert_eq!(buffer.as_ptr(), at, "an empty buffer takes data nothing else holds");
        append(&mut buffer, Bytes::from_static(b" world"));
        assert_eq!(&buffer[..], b"hello world");
        let out = take(&mut buffer);
        assert_eq!(&out[..], b"hello world");
        assert!(buffer.is_empty());
    }

    #[test]
    fn joining_copies_only_two_nonempty_chunks() {
        let data = Bytes::from(b"body".to_vec());
        let at = data.as_ptr();
        assert_eq!(join(data.clone(), Bytes::new()).as_ptr(), at);
        assert_eq!(join(Bytes::new(), data).as_ptr(), at);
        assert_eq!(&join(Bytes::from_static(b"a"), Bytes::from_static(b"b"))[..], b"ab");
    }

    #[test]
    fn shared_data_is_copied_and_left_intact() {
        let mut buffer = BytesMut::new();
        let data = Bytes::from(b"shared".to_vec());
        let kept = data.clone();
        append(&mut buffer, data);
        buffer[0] = b'S';
        assert_eq!(&kept[..], b"shared", "a filter's change never reaches another holder");
        assert_eq!(&take(&mut buffer)[..], b"Shared");
    }
}
