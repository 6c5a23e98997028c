//! Length-prefixed frames: how this binary talks to its own worker
//! processes, the task engine's (over pipes) and the chat server's hub
//! link (over Unix sockets) alike.
//!
//! A frame is a `u32` little-endian length, then that many bytes (a
//! postcard message). Every reader refuses a length over [`MAX_FRAME`]
//! before buffering it: a corrupt or hostile stream must not make the other
//! side allocate what its length field claims.

use std::io::{self, Read, Write};

use serde::Serialize;

/// Largest frame accepted; anything bigger means a corrupt stream.
pub const MAX_FRAME: usize = 64 << 20;

/// Writes one frame.
pub fn write_frame(w: &mut impl Write, payload: &[u8]) -> io::Result<()> {
    let len =
        u32::try_from(payload.len()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
    w.write_all(&len.to_le_bytes())?;
    w.write_all(payload)
}

fn too_large(len: usize) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("frame of {len} bytes"))
}

/// Reads one frame; `Ok(None)` on a clean end of stream between frames.
pub fn read_frame(r: &mut impl Read) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(too_large(len));
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf)?;
    Ok(Some(buf))
}

/// A frame's bytes: length prefix and payload in one buffer (one `write`).
pub fn frame(payload: &[u8]) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(4 + payload.len());
    write_frame(&mut bytes, payload)?;
    Ok(bytes)
}

/// Appends `message` to `into` as one frame of its postcard bytes.
pub fn encode<T: Serialize>(message: &T, into: &mut Vec<u8>) -> io::Result<()> {
    let payload = postcard::to_allocvec(message).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    write_frame(into, &payload)
}

/// Hands each whole frame at the start of `buf` to `take` (until it
/// returns `false`) and returns how many bytes they used; a partial frame
/// at the end waits for more bytes. A length over [`MAX_FRAME`] is an error.
pub fn whole_frames(buf: &[u8], mut take: impl FnMut(&[u8]) -> bool) -> io::Result<usize> {
    let mut at = 0;
    while let Some(&[a, b, c, d]) = buf.get(at..at + 4) {
        let len = u32::from_le_bytes([a, b, c, d]) as usize;
        if len > MAX_FRAME {
            return Err(too_large(len));
        }
        let Some(payload) = buf.get(at + 4..at + 4 + len) else { break };
        if !take(payload) {
            break;
        }
        at += 4 + len;
    }
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_frames_are_taken_and_a_partial_one_waits() {
        let mut buf = frame(b"one").expect("frame");
        buf.extend(frame(b"").expect("frame"));
        buf.extend(frame(b"three").expect("frame"));
        let whole = buf.len();
        buf.extend(&frame(b"partial").expect("frame")[..6]);
        let mut seen: Vec<Vec<u8>> = Vec::new();
        let used = whole_frames(&buf, |p| {
            seen.push(p.to_vec());
            true
        })
        .expect("frames");
        assert_eq!(used, whole);
        assert_eq!(seen, [b"one".to_vec(), Vec::new(), b"three".to_vec()]);
        // A frame split anywhere, even inside its length, waits for the rest.
        for cut in 0..4 {
            assert_eq!(whole_frames(&buf[..cut], |_| unreachable!()).expect("nothing yet"), 0);
        }
        // `take` can stop early: what it refused is not used.
        let used = whole_frames(&buf, |p| p != b"three").expect("frames");
        assert_eq!(used, 4 + 3 + 4);
        // The same bytes through read_frame, the blocking reader.
        let mut r = &buf[..whole];
        assert_eq!(read_frame(&mut r).expect("read").as_deref(), Some(&b"one"[..]));
    }

    #[test]
    fn an_oversized_length_is_an_error_for_both_readers() {
        let len = u32::try_from(MAX_FRAME + 1).expect("fits").to_le_bytes();
        let err = whole_frames(&len, |_| true).expect_err("too large");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        let err = read_frame(&mut &len[..]).expect_err("too large");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn an_encoded_message_is_one_frame_of_its_postcard_bytes() {
        let mut bytes = Vec::new();
        encode(&(7u64, "seven"), &mut bytes).expect("encode");
        let mut r = &bytes[..];
        let payload = read_frame(&mut r).expect("read").expect("a frame");
        assert_eq!(postcard::from_bytes::<(u64, String)>(&payload).expect("decode"), (7, "seven".into()));
        assert!(r.is_empty());
    }
}
