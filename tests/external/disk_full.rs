//! A disk that fills up under the spool. Needs root: it mounts a small tmpfs to fill.

use crate::support::eventually::{ensure, eventually};
use crate::support::{Answer, Downstream, TestRelay, get, numbered, spool_config};

/// A disk that fills up: batches are refused with 503 while the spool cannot persist, what it
/// holds is still delivered, and it recovers on its own once space is free.
#[tokio::test]
async fn full_disk_refuses_then_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let mount = dir.path().join("disk");
    std::fs::create_dir(&mount).unwrap();
    let mounted =
        std::process::Command::new("mount").args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"]).arg(&mount).status();
    assert!(
        mounted.is_ok_and(|s| s.success()),
        "this test mounts a small tmpfs to fill a disk: run the external suite as root (.ci/run does)"
    );
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mount.clone());

    let downstream = Downstream::start().await;
    downstream.always(Answer::status(503));
    let yaml = spool_config(&mount, &downstream.url("/"), "").replace("name: durable", "name: disk-full");
    let relay = TestRelay::start(&yaml).await;
    assert_eq!(relay.post("/webhook", numbered("Before", 1)).await.status, 200);

    // Fill the disk, then write until the spool cannot persist.
    let filler = mount.join("filler");
    let _ = std::fs::write(&filler, vec![0u8; 4 * 1024 * 1024]);
    let mut refused = None;
    for n in 0..200 {
        let reply = relay.post("/webhook", numbered("Fill", n)).await;
        if reply.status == 503 {
            refused = Some(reply);
            break;
        }
    }
    let refused = refused.expect("a full disk makes the spool refuse");
    assert!(refused.text().contains("cannot persist"), "{}", refused.text());
    let status = get(&relay.url("/api/v1/status")).await.json();
    assert_eq!(status["data"]["spool"]["healthy"], false);

    // What was accepted is still delivered while the disk is full.
    downstream.always(Answer::status(200));
    let before = downstream.wait_for(1).await;
    assert!(
        before.iter().any(|r| r.labels("alertname")[0] == "Before" && r.answered == 200) || {
            downstream
                .wait_for(before.len() + 1)
                .await
                .iter()
                .any(|r| r.labels("alertname")[0] == "Before" && r.answered == 200)
        }
    );

    std::fs::remove_file(&filler).unwrap();
    eventually("the spool to take batches again", crate::support::WAIT, async || {
        let reply = relay.post("/webhook", numbered("After", 1)).await;
        ensure(reply.status == 200, || format!("{}: {}", reply.status, reply.text()))
    })
    .await;
    let status = get(&relay.url("/api/v1/status")).await.json();
    assert_eq!(status["data"]["spool"]["healthy"], true);
}
