//! Recognises the statuses tonic itself gives a request it could not read, so
//! the observe layer can mark them `MALFORMED_REQUEST` like the ones agentd's
//! codec marks (`grpc::codec::MarkingDecoder`). These come without an
//! ErrorInfo, and the only way to tell them from agentd's own INTERNAL
//! failures is tonic's wording, pinned by the tests below so that a tonic
//! upgrade which rewords one fails here rather than sending its calls back
//! into the P1 alert's error ratio.

use tonic::Code;

/// One way tonic words a request it could not read.
enum Wording {
    Exact(&'static str),
    Prefix(&'static str),
}

impl Wording {
    fn matches(&self, message: &str) -> bool {
        match self {
            Wording::Exact(text) => message == *text,
            Wording::Prefix(text) => message.starts_with(text),
        }
    }
}

/// tonic 0.14's INTERNAL statuses for a request it could not read: the frame
/// loop of `codec/decode.rs`, the unary handler of `server/grpc.rs`, and
/// tonic-prost's decoder, which health and reflection use directly (agentd's
/// services decode through `MarkingDecoder`). Decompression errors are left
/// out: agentd accepts no compressed requests, so tonic answers them
/// UNIMPLEMENTED before reading a frame.
const TONIC_UNREADABLE: [Wording; 5] = [
    // A payload that does not parse as the method's message.
    Wording::Prefix("failed to decode Protobuf message: "),
    // A frame's compression flag is neither 0 nor 1.
    Wording::Prefix("protocol error: received message with invalid compression flag: "),
    // Compression flag 1 on a call that named no grpc-encoding.
    Wording::Exact(
        "protocol error: received message with compressed-flag but no grpc-encoding was specified",
    ),
    // The request ended inside a frame.
    Wording::Exact("Unexpected EOF decoding stream."),
    // A unary or server-streaming call whose request carried no message.
    Wording::Exact("Missing request message."),
];

/// Whether a status without an ErrorInfo is tonic refusing a request it could
/// not read.
pub(super) fn is_unreadable_by_tonic(code: Code, message: &str) -> bool {
    code == Code::Internal
        && TONIC_UNREADABLE
            .iter()
            .any(|wording| wording.matches(message))
}

#[cfg(test)]
mod tests {
    //! Each case sends bytes through tonic's own server path for a unary method
    //! (`tonic::server::Grpc::unary`, as the generated services do) and reads
    //! the status it answers, so the wordings are tonic's, not copies of them.

    use bytes::Bytes;
    use http_body::Frame;
    use tonic::body::Body;
    use tonic_types::StatusExt;

    use super::*;
    use crate::error::MALFORMED_REQUEST;
    use crate::grpc::codec::SmallBufferCodec;
    use crate::pb::{GetStatusRequest, GetStatusResponse};

    /// A request body that yields `bytes` as one data frame, then ends.
    struct OneFrame(Option<Bytes>);

    impl http_body::Body for OneFrame {
        type Data = Bytes;
        type Error = tonic::Status;

        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            std::task::Poll::Ready(self.0.take().map(|bytes| Ok(Frame::data(bytes))))
        }
    }

    fn request(body: &[u8]) -> http::Request<Body> {
        let body = (!body.is_empty()).then(|| Bytes::copy_from_slice(body));
        http::Request::builder()
            .uri("/agentd.v1.AdminService/GetStatus")
            .header("content-type", "application/grpc")
            .body(Body::new(OneFrame(body)))
            .unwrap()
    }

    /// The status tonic answers a unary call whose request body is `body`,
    /// decoded with agentd's codec, or with tonic-prost's when `plain`.
    async fn answer(body: &[u8], plain: bool) -> tonic::Status {
        let handler = tower::service_fn(|_: tonic::Request<GetStatusRequest>| async {
            Ok::<_, tonic::Status>(tonic::Response::new(GetStatusResponse::default()))
        });
        let response = if plain {
            let codec = tonic_prost::ProstCodec::<GetStatusResponse, GetStatusRequest>::default();
            tonic::server::Grpc::new(codec)
                .unary(handler, request(body))
                .await
        } else {
            let codec = SmallBufferCodec::<GetStatusResponse, GetStatusRequest>::default();
            tonic::server::Grpc::new(codec)
                .unary(handler, request(body))
                .await
        };
        tonic::Status::from_header_map(response.headers()).expect("a trailers-only error")
    }

    fn frame(flag: u8, declared_len: u32, payload: &[u8]) -> Vec<u8> {
        let mut frame = vec![flag];
        frame.extend_from_slice(&declared_len.to_be_bytes());
        frame.extend_from_slice(payload);
        frame
    }

    #[tokio::test]
    async fn agentds_codec_marks_a_message_that_does_not_parse() {
        // Field number 0 is invalid in every message: this always fails.
        let status = answer(&frame(0, 1, &[0x00]), false).await;
        assert_eq!(status.code(), Code::Internal);
        assert_eq!(
            status.message(),
            "failed to decode Protobuf message: invalid tag value: 0"
        );
        let info = status.get_details_error_info().expect("an ErrorInfo");
        assert_eq!(info.reason, MALFORMED_REQUEST);
        assert_eq!(info.domain, crate::error::ERROR_DOMAIN);
    }

    #[tokio::test]
    async fn tonics_own_wordings_for_unreadable_requests_are_recognised() {
        let cases: [(&str, Vec<u8>, bool); 5] = [
            (
                "undecodable, tonic-prost's codec",
                frame(0, 1, &[0x00]),
                true,
            ),
            ("compression flag 2", frame(2, 1, &[0x00]), false),
            (
                "compressed without grpc-encoding",
                frame(1, 1, &[0x00]),
                false,
            ),
            ("ends inside a frame", frame(0, 10, &[0x08]), false),
            ("no message", Vec::new(), false),
        ];
        for (case, body, plain) in cases {
            let status = answer(&body, plain).await;
            assert_eq!(status.code(), Code::Internal, "{case}: {status:?}");
            assert!(
                status.get_details_error_info().is_none(),
                "{case}: tonic's own status carries no ErrorInfo"
            );
            assert!(
                is_unreadable_by_tonic(status.code(), status.message()),
                "{case}: tonic now says {:?}",
                status.message()
            );
        }
    }

    #[test]
    fn agentds_own_internal_errors_are_not_malformed_requests() {
        assert!(!is_unreadable_by_tonic(Code::Internal, "internal error"));
        // The right words with another code, or not at the start, do not count.
        assert!(!is_unreadable_by_tonic(
            Code::Unavailable,
            "Missing request message."
        ));
        assert!(!is_unreadable_by_tonic(
            Code::Internal,
            "h2 protocol error: stream error received"
        ));
        assert!(!is_unreadable_by_tonic(
            Code::Internal,
            "Missing request message. and more"
        ));
    }
}
