//! Fail closed: when the audit log cannot be written, nothing is served.

use std::{io::Write, path::PathBuf, process::Command};

use civex_proto::v1::{CheckpointRequest, ListAttributesRequest};
use civex_tests::{TestGateway, reason};
use tonic::Code;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};

/// A small tmpfs of our own, so the test can fill it; unmounted on drop.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(at: PathBuf, size: &str) -> Option<SmallDisk> {
        std::fs::create_dir_all(&at).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&at)
            .status();
        ok.ok().filter(|s| s.success()).map(|_| SmallDisk(at))
    }

    /// Writes zeros until the disk is full; returns the filler's path.
    fn fill(&self) -> PathBuf {
        let path = self.0.join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        let block = vec![0u8; 64 * 1024];
        while file.write_all(&block).is_ok() {}
        let _ = file.sync_all();
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[tokio::test]
async fn a_full_disk_fails_every_call_closed_and_health_says_so() {
    let root = tempfile::tempdir().unwrap();
    let Some(disk) = SmallDisk::mount(root.path().join("disk"), "24m") else {
        // Mounting needs CAP_SYS_ADMIN, which CI (root) has.
        eprintln!("skipped: cannot mount a tmpfs here");
        return;
    };
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
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
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
