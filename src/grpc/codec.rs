//! The protobuf codec of agentd's services (server and generated clients):
//! tonic-prost's, with a smaller encode buffer, and decode errors marked as the
//! caller's.
//!
//! tonic allocates the encoder's buffer when a call starts and keeps it as long
//! as the call's response body lives, so for an open `Chat` stream it is held for
//! the whole turn. Its default, 8 KiB, was the largest single cost of an idle
//! open stream, while the messages it holds (deltas, tool events) are tens to
//! hundreds of bytes. 512 bytes covers those; a larger message (a long
//! `completed`, a `GetSession` history) grows the buffer as needed. Decoding keeps
//! tonic's default: its buffer lives only while a request is read.
//!
//! A message that does not parse ends INTERNAL, as the gRPC spec lists it, so
//! random bytes from a broken client looked like agentd failing: logged at
//! ERROR and counted by the P1 alert's error ratio. [`MarkingDecoder`] gives
//! that status the ErrorInfo reason `MALFORMED_REQUEST`, which the observe
//! layer logs at WARN and counts in `agentd_malformed_requests_total`, and
//! which the alert subtracts. The generated clients share this codec, so a
//! response they cannot decode carries the same reason; only agentd's own
//! commands use them (`agentd usage`, `ingest`, `eval`, the bench), and they
//! print the message, which says what failed.

use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

use crate::error::AppError;

/// Initial size of a call's encode buffer.
const ENCODE_BUFFER_BYTES: usize = 512;
/// How many ready messages' bytes are batched into one send (tonic's default).
const YIELD_THRESHOLD_BYTES: usize = 32 * 1024;

/// [`ProstCodec`] with a 512-byte encode buffer.
#[derive(Debug, Clone, Copy)]
pub struct SmallBufferCodec<T, U>(std::marker::PhantomData<(T, U)>);

impl<T, U> Default for SmallBufferCodec<T, U> {
    fn default() -> Self {
        Self(std::marker::PhantomData)
    }
}

impl<T, U> Codec for SmallBufferCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = MarkingDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(BufferSettings::new(
            ENCODE_BUFFER_BYTES,
            YIELD_THRESHOLD_BYTES,
        ))
    }

    fn decoder(&mut self) -> Self::Decoder {
        MarkingDecoder(ProstCodec::<T, U>::default().decoder())
    }
}

/// [`ProstDecoder`] whose errors are [`AppError::MalformedRequest`]: still
/// INTERNAL with prost's text, plus the ErrorInfo reason `MALFORMED_REQUEST`.
#[derive(Debug)]
pub struct MarkingDecoder<U>(ProstDecoder<U>);

impl<U: prost::Message + Default> Decoder for MarkingDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        // ProstDecoder fails only on prost's DecodeError, as INTERNAL with its text.
        self.0
            .decode(buf)
            .map_err(|status| AppError::MalformedRequest(status.message().to_owned()).into())
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}
