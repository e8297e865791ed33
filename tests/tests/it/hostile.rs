//! Hostile input over the wire: each gets its status, none disturbs other
//! clients, memory stays bounded.

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes};
use civex_proto::v1::{ListAttributesRequest, QueryRequest, exchange_service_client::ExchangeServiceClient};
use civex_tests::{TestGateway, reason};
use tonic::{
    Code,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
};

/// Resident memory of this process (gateway and clients), in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

async fn still_serves(gw: &TestGateway) {
    gw.exchange("qujing-edu")
        .await
        .list_attributes(ListAttributesRequest {})
        .await
        .expect("another client is served");
}

#[tokio::test]
async fn oversized_and_absurd_requests_are_refused_without_harm() {
    let gw = TestGateway::start().await;
    let mut psb = gw.exchange("qujing-psb").await;
    let id = gw.records(civex_adapters::Department::PublicSecurity)[0]["citizen_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let base = QueryRequest {
        citizen_id: id.clone(),
        attributes: vec!["ps.hukou.division".into()],
        purpose: "hukou.settlement".into(),
        consent_id: "x".into(),
        ..Default::default()
    };
    // Over the 64 KiB message limit: refused before decoding.
    let huge = QueryRequest {
        operator: "x".repeat(70 * 1024),
        ..base.clone()
    };
    let status = psb.query(huge).await.unwrap_err();
    assert_eq!(
        (status.code(), reason(&status).as_str()),
        (Code::InvalidArgument, "MALFORMED_REQUEST"),
        "{status:?}"
    );
    // 10,000 attributes that fit in 64 KiB: refused by the handler.
    let many = QueryRequest {
        attributes: vec!["a".into(); 10_000],
        ..base.clone()
    };
    let status = psb.query(many).await.unwrap_err();
    assert_eq!(
        (status.code(), reason(&status).as_str()),
        (Code::InvalidArgument, "INVALID_REQUEST")
    );

    let bad_ids = [
        format!("{}\0{}", &id[..6], &id[7..]),
        format!("{}１{}", &id[..6], &id[7..]),
        format!("{} {}", &id[..9], &id[10..]),
        format!(" {id}"),
        id[..17].to_owned(),
        format!("{id}0"),
        "\u{202e}".repeat(18),
    ];
    for bad in bad_ids {
        let status = psb
            .query(QueryRequest {
                citizen_id: bad.clone(),
                ..base.clone()
            })
            .await
            .unwrap_err();
        assert_eq!(
            (status.code(), reason(&status).as_str()),
            (Code::InvalidArgument, "INVALID_CITIZEN_ID"),
            "{bad:?}"
        );
    }
    still_serves(&gw).await;
}

/// Sends whatever bytes it is given as the message: malformed protobuf.
#[derive(Clone, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, tonic::Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

#[tokio::test]
async fn malformed_protobuf_is_refused() {
    let gw = TestGateway::start().await;
    let mut grpc = tonic::client::Grpc::new(gw.channel("qujing-psb").await);
    for garbage in [
        vec![0xff; 32],
        vec![0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f],
        b"\x12\x05ab".to_vec(),
    ] {
        grpc.ready().await.unwrap();
        let path = http::uri::PathAndQuery::from_static("/civex.v1.ExchangeService/Query");
        let status = grpc
            .unary(tonic::Request::new(Bytes::from(garbage)), path, RawCodec)
            .await
            .unwrap_err();
        assert_eq!(
            (status.code(), reason(&status).as_str()),
            (Code::InvalidArgument, "MALFORMED_REQUEST"),
            "{status:?}"
        );
    }
    // Even what the decoder refused is in the log (DESIGN §11).
    let recorded = gw
        .audit("qujing-audit")
        .await
        .search(civex_proto::v1::AuditSearchRequest {
            agency: "qujing-psb".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    let refusals: Vec<(&str, &str)> = recorded
        .iter()
        .map(|e| (e.action.as_str(), e.reason.as_str()))
        .collect();
    assert_eq!(refusals, [("ExchangeService/Query", "MALFORMED_REQUEST"); 3]);
    still_serves(&gw).await;
}

#[tokio::test]
async fn idle_connections_are_capped_and_a_freed_slot_is_reused() {
    let gw = TestGateway::start_with(|c| c.limits.max_connections = 8).await;
    let mut idle = Vec::new();
    for _ in 0..8 {
        let mut c = gw.exchange("qujing-tax").await;
        c.list_attributes(ListAttributesRequest {}).await.unwrap();
        idle.push(c);
    }
    // A ninth client waits: the cap holds.
    let ninth = tokio::spawn({
        let endpoint = gw.endpoint();
        let tls = gw.tls_for(&civex_cli::pki::ClientSpec::agency("qujing-edu"));
        async move {
            let channel = civex_cli::client::connect(&endpoint, &tls).await.unwrap();
            ExchangeServiceClient::new(channel)
                .list_attributes(ListAttributesRequest {})
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!ninth.is_finished(), "a connection beyond the cap was served");
    idle.clear();
    let served = tokio::time::timeout(Duration::from_secs(20), ninth)
        .await
        .expect("a freed slot is reused");
    served.unwrap().expect("served once a slot was free");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_rapid_reset_flood_does_not_hold_up_others_or_grow_memory() {
    let gw = TestGateway::start().await;
    still_serves(&gw).await;
    let before = rss_kib();
    let tls = gw.raw_tls("qujing-tax").await;
    let (mut send, connection) = h2::client::handshake(tls).await.unwrap();
    let driver = tokio::spawn(connection);
    let mut opened = 0u32;
    for _ in 0..20_000 {
        let request = http::Request::post("https://localhost/civex.v1.ExchangeService/ListAttributes")
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .unwrap();
        let Ok(ready) = tokio::time::timeout(Duration::from_secs(5), send.ready()).await else {
            break;
        };
        let Ok(ready) = ready else { break };
        send = ready;
        let Ok((_response, mut stream)) = send.send_request(request, false) else {
            break;
        };
        stream.send_reset(h2::Reason::CANCEL);
        opened += 1;
    }
    // Others are served while (or after) the flood.
    still_serves(&gw).await;
    let grown = rss_kib().saturating_sub(before);
    eprintln!("rapid reset: {opened} streams opened and reset; resident memory grew {grown} KiB");
    assert!(grown < 64 * 1024, "memory grew {grown} KiB during a rapid-reset flood");
    // The server pushes back (GOAWAY) long before the flood is spent.
    assert!(
        opened < 20_000,
        "the server accepted 20,000 rapid resets on one connection"
    );
    driver.abort();
}

#[tokio::test]
async fn an_unknown_method_is_unimplemented_and_its_path_never_logged() {
    let gw = TestGateway::start().await;
    let id = gw.records(civex_adapters::Department::PublicSecurity)[0]["citizen_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut grpc = tonic::client::Grpc::new(gw.channel("qujing-psb").await);
    grpc.ready().await.unwrap();
    let path = http::uri::PathAndQuery::try_from(format!("/civex.v1.ExchangeService/{id}")).unwrap();
    let status = grpc
        .unary(tonic::Request::new(Bytes::new()), path, RawCodec)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented, "{status:?}");
    let entries = gw
        .audit("qujing-audit")
        .await
        .search(civex_proto::v1::AuditSearchRequest::default())
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert!(entries.iter().all(|e| !String::from_utf8_lossy(&e.leaf).contains(&id)));
}
