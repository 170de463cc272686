//! The protobuf codec of agentd's services (server and generated clients):
//! tonic-prost's, with a smaller encode buffer.
//!
//! tonic allocates the encoder's buffer when a call starts and keeps it as long
//! as the call's response body lives, so for an open `Chat` stream it is held for
//! the whole turn. Its default, 8 KiB, was the largest single cost of an idle
//! open stream, while the messages it holds (deltas, tool events) are tens to
//! hundreds of bytes. 512 bytes covers those; a larger message (a long
//! `completed`, a `GetSession` history) grows the buffer as needed. Decoding keeps
//! tonic's default: its buffer lives only while a request is read.

use tonic::codec::{BufferSettings, Codec};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

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
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(BufferSettings::new(
            ENCODE_BUFFER_BYTES,
            YIELD_THRESHOLD_BYTES,
        ))
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstCodec::<T, U>::default().decoder()
    }
}
