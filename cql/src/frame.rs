//! Native protocol v4 framing: 9-byte header, body, optional LZ4 body compression.

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::error::CqlError;

pub const VERSION: u8 = 4;
pub const HEADER_LEN: usize = 9;
/// Cassandra's default `native_transport_max_frame_size` is 16 MiB; allow more for big batches
/// while bounding what one header can make us allocate.
pub const MAX_BODY: usize = 64 << 20;

pub const FLAG_COMPRESSION: u8 = 0x01;
pub const FLAG_TRACING: u8 = 0x02;
pub const FLAG_CUSTOM_PAYLOAD: u8 = 0x04;
pub const FLAG_WARNING: u8 = 0x08;

pub mod opcode {
    pub const ERROR: u8 = 0x00;
    pub const STARTUP: u8 = 0x01;
    pub const READY: u8 = 0x02;
    pub const AUTHENTICATE: u8 = 0x03;
    pub const OPTIONS: u8 = 0x05;
    pub const SUPPORTED: u8 = 0x06;
    pub const QUERY: u8 = 0x07;
    pub const RESULT: u8 = 0x08;
    pub const PREPARE: u8 = 0x09;
    pub const EXECUTE: u8 = 0x0A;
    pub const REGISTER: u8 = 0x0B;
    pub const EVENT: u8 = 0x0C;
    pub const BATCH: u8 = 0x0D;
    pub const AUTH_CHALLENGE: u8 = 0x0E;
    pub const AUTH_RESPONSE: u8 = 0x0F;
    pub const AUTH_SUCCESS: u8 = 0x10;
}

#[derive(Debug)]
pub struct Frame {
    pub version: u8,
    pub flags: u8,
    pub stream: i16,
    pub opcode: u8,
    pub body: Bytes,
}

/// What reading a frame produced.
pub enum ReadOutcome {
    Frame(Frame),
    /// The peer closed the connection cleanly between frames.
    Eof,
    /// The frame cannot be served; answer on `stream` and, if `fatal`, close the connection.
    Reject {
        stream: i16,
        error: CqlError,
        fatal: bool,
    },
}

pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<ReadOutcome> {
    let mut hdr = [0u8; HEADER_LEN];
    let mut got = 0;
    while got < HEADER_LEN {
        let n = r.read(&mut hdr[got..]).await?;
        if n == 0 {
            if got == 0 {
                return Ok(ReadOutcome::Eof);
            }
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "truncated frame header",
            ));
        }
        got += n;
    }
    let version = hdr[0] & 0x7f;
    let flags = hdr[1];
    let stream = i16::from_be_bytes([hdr[2], hdr[3]]);
    let opcode = hdr[4];
    let len = u32::from_be_bytes([hdr[5], hdr[6], hdr[7], hdr[8]]) as usize;
    if len > MAX_BODY {
        return Ok(ReadOutcome::Reject {
            stream,
            error: CqlError::protocol(format!(
                "Request is too big: length {len} exceeds maximum allowed length {MAX_BODY}."
            )),
            fatal: true,
        });
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    if version != VERSION {
        // Drivers parse this exact wording and retry with v4.
        return Ok(ReadOutcome::Reject {
            stream,
            error: CqlError::protocol(format!(
                "Invalid or unsupported protocol version ({version}); supported versions are (4/v4)"
            )),
            fatal: true,
        });
    }
    if hdr[0] & 0x80 != 0 {
        return Ok(ReadOutcome::Reject {
            stream,
            error: CqlError::protocol("Received a response frame where a request was expected"),
            fatal: false,
        });
    }
    Ok(ReadOutcome::Frame(Frame {
        version,
        flags,
        stream,
        opcode,
        body: Bytes::from(body),
    }))
}

/// Cassandra v4 LZ4 body: 4-byte big-endian uncompressed length, then an LZ4 block.
pub fn decompress(body: &[u8]) -> Result<Bytes, CqlError> {
    if body.len() < 4 {
        return Err(CqlError::protocol(
            "compressed body shorter than its length prefix",
        ));
    }
    let n = u32::from_be_bytes([body[0], body[1], body[2], body[3]]) as usize;
    if n > MAX_BODY {
        return Err(CqlError::protocol("uncompressed body too large"));
    }
    let out = lz4_flex::block::decompress(&body[4..], n)
        .map_err(|e| CqlError::protocol(format!("LZ4 decompression failed: {e}")))?;
    Ok(Bytes::from(out))
}

pub fn compress(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + lz4_flex::block::get_maximum_output_size(body.len()));
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&lz4_flex::block::compress(body));
    out
}

/// Encodes a response frame, compressing the body when the connection negotiated LZ4.
pub fn encode_response(
    stream: i16,
    opcode: u8,
    body: &[u8],
    compress_body: bool,
    extra_flags: u8,
) -> Bytes {
    let compressed;
    let (flags, body) = if compress_body && !body.is_empty() {
        compressed = compress(body);
        (FLAG_COMPRESSION | extra_flags, &compressed[..])
    } else {
        (extra_flags, body)
    };
    let mut out = BytesMut::with_capacity(HEADER_LEN + body.len());
    out.put_u8(0x80 | VERSION);
    out.put_u8(flags);
    out.put_i16(stream);
    out.put_u8(opcode);
    out.put_u32(body.len() as u32);
    out.put_slice(body);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lz4_roundtrip() {
        let body = b"hello hello hello hello world".repeat(10);
        let c = compress(&body);
        assert_eq!(&decompress(&c).unwrap()[..], &body[..]);
        assert!(decompress(&[0, 0]).is_err());
        assert!(decompress(&[0, 0, 0, 10, 1, 2]).is_err());
    }
}
