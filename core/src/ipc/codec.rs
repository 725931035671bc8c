//! Framing: a u32 big-endian length, then one JSON message.
//!
//! A frame whose announced length exceeds [`MAX_FRAME`] is refused from its header alone, before any buffer is
//! grown for it, so a hostile peer cannot make the helper allocate. A message too large to send is an error the
//! sender sees ([`FrameError::TooLarge`]), never a frame silently dropped.

use std::io;
use std::marker::PhantomData;

use bytes::{Bytes, BytesMut};
use serde::{Serialize, de::DeserializeOwned};
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec};

/// Largest frame either side accepts or sends: 1 MiB.
pub const MAX_FRAME: usize = 1 << 20;
/// Bytes of the length field in front of every frame.
pub const HEADER: usize = 4;

/// Why a message could not be made into a frame.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("the message is {size} bytes, more than the {MAX_FRAME} a frame may carry")]
    TooLarge { size: usize },
    #[error("the message cannot be written as JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl From<FrameError> for io::Error {
    fn from(e: FrameError) -> Self {
        match e {
            FrameError::TooLarge { .. } => io::Error::new(io::ErrorKind::InvalidInput, e),
            FrameError::Json(e) => io::Error::other(e),
        }
    }
}

/// One whole frame, length field included, ready to be written as it is: senders that queue messages encode
/// them once, up front, so that what they hold is counted in bytes.
pub fn encode_frame<T: Serialize + ?Sized>(message: &T) -> Result<Bytes, FrameError> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(&[0; HEADER]);
    serde_json::to_writer(&mut out, message)?;
    let size = out.len() - HEADER;
    if size > MAX_FRAME {
        return Err(FrameError::TooLarge { size });
    }
    // `size` fits: MAX_FRAME is far below u32::MAX.
    out[..HEADER].copy_from_slice(&(size as u32).to_be_bytes());
    Ok(Bytes::from(out))
}

/// Decodes `In` and encodes `Out` as length-prefixed JSON.
#[derive(Debug)]
pub struct JsonCodec<In, Out> {
    frames: LengthDelimitedCodec,
    _types: PhantomData<fn(Out) -> In>,
}

impl<In, Out> Default for JsonCodec<In, Out> {
    fn default() -> Self {
        Self {
            frames: LengthDelimitedCodec::builder()
                .big_endian()
                .length_field_length(4)
                .max_frame_length(MAX_FRAME)
                .new_codec(),
            _types: PhantomData,
        }
    }
}

impl<In: DeserializeOwned, Out> Decoder for JsonCodec<In, Out> {
    type Item = In;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> io::Result<Option<In>> {
        let Some(frame) = self.frames.decode(src)? else { return Ok(None) };
        serde_json::from_slice(&frame)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("malformed message: {e}")))
    }
}

impl<In, Out: Serialize> Encoder<Out> for JsonCodec<In, Out> {
    type Error = io::Error;

    fn encode(&mut self, item: Out, dst: &mut BytesMut) -> io::Result<()> {
        let json = serde_json::to_vec(&item).map_err(io::Error::other)?;
        if json.len() > MAX_FRAME {
            return Err(FrameError::TooLarge { size: json.len() }.into());
        }
        self.frames.encode(Bytes::from(json), dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipc::{ClientMessage, Request};

    type Server = JsonCodec<ClientMessage, ()>;

    fn frame(payload: &[u8]) -> BytesMut {
        let mut b = BytesMut::new();
        b.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        b.extend_from_slice(payload);
        b
    }

    #[test]
    fn round_trip() {
        let msg = ClientMessage::Request { id: 7, request: Request::Status { name: None } };
        let mut buf = BytesMut::new();
        JsonCodec::<(), ClientMessage>::default().encode(msg.clone(), &mut buf).unwrap();
        assert_eq!(&buf[..4], &((buf.len() - 4) as u32).to_be_bytes());
        assert_eq!(Server::default().decode(&mut buf).unwrap(), Some(msg));
        assert!(buf.is_empty());
    }

    #[test]
    fn truncated_frames_wait_for_more() {
        let full = frame(br#"{"type":"hello","protocol_version":1}"#);
        for cut in [0, 2, 4, full.len() - 1] {
            let mut part = BytesMut::from(&full[..cut]);
            assert_eq!(Server::default().decode(&mut part).unwrap(), None, "cut at {cut}");
        }
        // The rest of a frame that arrives in pieces completes it.
        let mut codec = Server::default();
        let mut buf = BytesMut::from(&full[..6]);
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
        buf.extend_from_slice(&full[6..]);
        assert_eq!(codec.decode(&mut buf).unwrap(), Some(ClientMessage::Hello { protocol_version: 1 }));
    }

    #[test]
    fn oversized_frames_are_refused_from_the_header() {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&(MAX_FRAME as u32 + 1).to_be_bytes());
        let capacity = buf.capacity();
        let err = Server::default().decode(&mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(buf.capacity() <= capacity.max(64), "buffer grew for a refused frame");
        let mut huge = BytesMut::from(&u32::MAX.to_be_bytes()[..]);
        assert!(Server::default().decode(&mut huge).is_err());
    }

    #[test]
    fn encoded_frames_decode_and_oversized_ones_are_refused() {
        let msg = ClientMessage::Request { id: 3, request: Request::Status { name: Some("lab".into()) } };
        let mut buf = BytesMut::from(&encode_frame(&msg).unwrap()[..]);
        assert_eq!(Server::default().decode(&mut buf).unwrap(), Some(msg));
        let huge = "x".repeat(MAX_FRAME);
        assert!(matches!(encode_frame(&huge), Err(FrameError::TooLarge { size }) if size == MAX_FRAME + 2));
        let mut dst = BytesMut::new();
        let err = JsonCodec::<(), String>::default().encode(huge, &mut dst).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(dst.is_empty(), "nothing may be written for a refused message");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for junk in [&b"not json"[..], b"{}", b"\xff\xfe", br#"{"type":"request","id":-1}"#, b""] {
            let mut buf = frame(junk);
            assert!(Server::default().decode(&mut buf).is_err(), "{junk:?}");
        }
    }
}
