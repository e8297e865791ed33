//! Only a certificate from the civex CA naming exactly one agency reaches a
//! handler; identity never comes from request metadata.

use std::time::Duration;

use civex_cli::{
    client::{self, ClientTls},
    pki::{ClientSpec, DevCa},
};
use civex_gateway::{authority::Ca, net::identity::agency_uri};
use civex_proto::v1::{GrantConsentRequest, ListAttributesRequest, exchange_service_client::ExchangeServiceClient};
use civex_tests::{TestGateway, reason};
use time::OffsetDateTime;
use tonic::{Code, Request};

/// A call with `tls` must fail before any handler: no civex reason, not OK.
async fn refused(gw: &TestGateway, tls: &ClientTls) -> bool {
    let Ok(channel) = client::connect(&gw.endpoint(), tls).await else {
        return true;
    };
    match ExchangeServiceClient::new(channel)
        .list_attributes(ListAttributesRequest {})
        .await
    {
        Ok(_) => false,
        Err(status) => reason(&status).is_empty(),
    }
}

#[tokio::test]
async fn only_civex_certificates_naming_one_agency_get_through() {
    let gw = TestGateway::start().await;
    let now = OffsetDateTime::now_utc();
    let spec = |uris: Vec<String>| ClientSpec {
        common_name: "qujing-psb".into(),
        uris,
        not_before: now - time::Duration::days(1),
        not_after: now + time::Duration::days(1),
    };
    let psb = agency_uri("qujing-psb");

    // The control: a proper certificate is served.
    assert!(!refused(&gw, &gw.tls_for(&ClientSpec::agency("qujing-psb"))).await);

    let other_ca = Ca::generate("another CA").unwrap();
    let foreign = other_ca.issue_agency("qujing-psb").unwrap();
    let cases: Vec<(&str, ClientTls)> = vec![
        ("no URI", gw.tls_for(&spec(vec![]))),
        (
            "two URIs",
            gw.tls_for(&spec(vec![psb.clone(), agency_uri("qujing-tax")])),
        ),
        (
            "not an agency URI",
            gw.tls_for(&spec(vec!["spiffe://civex/user/qujing-psb".into()])),
        ),
        (
            "expired",
            gw.tls_for(&ClientSpec {
                not_before: now - time::Duration::days(30),
                not_after: now - time::Duration::days(1),
                ..spec(vec![psb.clone()])
            }),
        ),
        (
            "another CA",
            ClientTls {
                ca_pem: gw.ca.cert_pem().into(),
                cert_pem: foreign.cert_pem,
                key_pem: foreign.key_pem,
            },
        ),
    ];
    for (name, tls) in cases {
        assert!(refused(&gw, &tls).await, "{name}: reached a handler");
    }
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused() {
    let gw = TestGateway::start().await;
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(gw.ca.cert_pem()));
    let endpoint = tonic::transport::Endpoint::from_shared(gw.endpoint())
        .unwrap()
        .tls_config(tls)
        .unwrap();
    let result = match endpoint.connect().await {
        Err(_) => None,
        Ok(channel) => Some(
            ExchangeServiceClient::new(channel)
                .list_attributes(ListAttributesRequest {})
                .await,
        ),
    };
    if let Some(result) = result {
        let status = result.expect_err("served without a client certificate");
        assert_eq!(reason(&status), "");
    }
}

#[tokio::test]
async fn identity_headers_in_metadata_are_ignored() {
    let gw = TestGateway::start().await;
    // qujing-psb is a requester, not a consent registrar: pretending to be the
    // portal through metadata must not help.
    let mut consents = gw.consents("qujing-psb").await;
    let mut request = Request::new(GrantConsentRequest::default());
    request
        .metadata_mut()
        .insert("x-agency", "qujing-portal".parse().unwrap());
    request.metadata_mut().insert(
        "x-forwarded-client-cert",
        format!("URI={}", agency_uri("qujing-portal")).parse().unwrap(),
    );
    let status = consents.grant(request).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(reason(&status), "ROLE_REQUIRED");
}

#[tokio::test]
async fn a_silent_client_does_not_hold_up_others() {
    let gw = TestGateway::start_with(|c| c.limits.handshake_timeout_ms = 300).await;
    // Open TCP and never send a ClientHello.
    let silent = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let mut exchange = gw.exchange("qujing-tax").await;
    exchange.list_attributes(ListAttributesRequest {}).await.unwrap();
    // After the handshake deadline the gateway hangs up on the silent client.
    let mut buf = [0u8; 1];
    silent.readable().await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match silent.try_read(&mut buf) {
                Ok(n) => return n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => silent.readable().await.unwrap(),
                Err(_) => return 0,
            }
        }
    })
    .await
    .expect("the gateway closes a connection that never completes its handshake");
    assert_eq!(n, 0);
}
