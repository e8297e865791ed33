//! Fail closed: when the audit log cannot be written, nothing is served.

use std::time::Duration;

use civex_adapters::Department;
use civex_proto::v1::{CheckpointRequest, ListAttributesRequest};
use civex_tests::{SmallDisk, TestGateway, TestSource, reason};
use tonic::Code;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};

#[tokio::test]
async fn a_full_disk_fails_every_call_closed_and_health_says_so() {
    let root = tempfile::tempdir().unwrap();
    let disk = SmallDisk::mount(root.path().join("disk"), "24m");
    let data = disk.0.join("data");
    let gw = TestGateway::start_with(|c| c.data_dir = data.clone()).await;
    let mut exchange = gw.exchange("qujing-tax").await;
    exchange
        .list_attributes(ListAttributesRequest {})
        .await
        .expect("served while the disk has room");
    let mut health = HealthClient::new(gw.channel("qujing-tax").await);
    let status = |s: i32| ServingStatus::try_from(s).unwrap();
    let check = HealthCheckRequest {
        service: "civex.v1.ExchangeService".into(),
    };
    assert_eq!(
        status(health.check(check.clone()).await.unwrap().into_inner().status),
        ServingStatus::Serving
    );

    let filler = disk.fill();
    // sled writes into space it already holds until it needs more; keep
    // calling until the log runs out of room.
    let mut served: u64 = 0;
    let first_failure = loop {
        match exchange.list_attributes(ListAttributesRequest {}).await {
            Ok(_) => served += 1,
            Err(e) => break e,
        }
        assert!(served < 50_000, "the log never ran out of room");
    };
    eprintln!("served {served} calls on a full disk before the log ran out of room");
    assert_eq!(
        (first_failure.code(), reason(&first_failure).as_str()),
        (Code::Unavailable, "AUDIT_UNAVAILABLE")
    );
    for _ in 0..3 {
        let err = exchange
            .list_attributes(ListAttributesRequest {})
            .await
            .expect_err("no answer without a record");
        assert_eq!(
            (err.code(), reason(&err).as_str()),
            (Code::Unavailable, "AUDIT_UNAVAILABLE")
        );
    }
    assert_eq!(
        status(health.check(check.clone()).await.unwrap().into_inner().status),
        ServingStatus::NotServing
    );

    // Free the space: the gateway reopens its log from disk and serves again,
    // having lost none of the records it acknowledged.
    std::fs::remove_file(filler).unwrap();
    let mut attempts = 0;
    while exchange.list_attributes(ListAttributesRequest {}).await.is_err() {
        attempts += 1;
        assert!(attempts < 100, "the gateway did not recover after the disk was freed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        status(health.check(check).await.unwrap().into_inner().status),
        ServingStatus::Serving
    );
    let checkpoint = gw
        .audit("qujing-audit")
        .await
        .checkpoint(CheckpointRequest {})
        .await
        .unwrap()
        .into_inner();
    // Records: the first call, the ones served on the full disk, the one after recovery, this checkpoint.
    assert_eq!(checkpoint.tree_size, 1 + served + 1 + 1);
}

/// A department system that answers as the reference one does, after a delay.
struct Delayed(Box<civex_tests::SourceService>, Duration);

#[tonic::async_trait]
impl civex_proto::v1::department_source_service_server::DepartmentSourceService for Delayed {
    async fn fetch(
        &self,
        request: tonic::Request<civex_proto::v1::FetchRequest>,
    ) -> Result<tonic::Response<civex_proto::v1::FetchResponse>, tonic::Status> {
        tokio::time::sleep(self.1).await;
        self.0.fetch(request).await
    }
}

/// A query to the tax department's slow system, sent while the gateway is
/// told to stop: how it ended.
async fn query_while_stopping(grace_ms: u64) -> Result<(), tonic::Status> {
    let (gw, _sources) = TestGateway::start_with_sources(
        |_, files| {
            let reference = TestSource::reference(files, Department::Tax);
            vec![(
                Department::Tax,
                Box::new(Delayed(reference, Duration::from_millis(1_200))) as _,
            )]
        },
        |c| c.limits.shutdown_grace_ms = grace_ms,
    )
    .await;
    let id = gw.records(Department::Tax)[0]["citizen_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let consent = gw
        .grant(&id, "qujing-tax", &["tax.registered"], "tax.admin", 0)
        .await
        .consent_id;
    let mut tax = gw.exchange("qujing-tax").await;
    let call = tokio::spawn(async move {
        tax.query(civex_proto::v1::QueryRequest {
            citizen_id: id,
            attributes: vec!["tax.registered".into()],
            purpose: "tax.admin".into(),
            consent_id: consent,
            ..Default::default()
        })
        .await
        .map(drop)
    });
    // The call is waiting on the source when the stop comes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    gw.stop().await;
    call.await.unwrap()
}

#[tokio::test]
async fn a_stopping_gateway_finishes_calls_in_flight_within_its_grace_period_and_cuts_off_the_rest() {
    query_while_stopping(30_000)
        .await
        .expect("drained: answered during the shutdown");
    let cut = query_while_stopping(100)
        .await
        .expect_err("cut off when the grace period ended");
    assert_ne!(reason(&cut), "SOURCE_UNAVAILABLE", "{cut:?}");
}
