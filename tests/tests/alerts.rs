//! Alerts that reach the owner, in one boot of the default board with three disks: an SMTP
//! sink and an HTTP sink on the host (the guest reaches the host at 10.0.2.2) receive
//! `alert test`; a pool member pulled out at run time (QMP `device_del`) raises a critical
//! alert that both receive within 60 s, the mail one after the mail sink, down when the disk
//! went, comes back (a reboot in between: the mail waits on the pool); `pool replace` onto the
//! spare disk clears it.
//!
//! Needs the image from `cargo xtask image` (`cargo xtask test` builds it) and
//! qemu-system-x86_64.

use std::time::{Duration, Instant};

use tank_tests::console::{create_pool, disk_named, ok, reboot};
use tank_tests::sinks::{HttpSink, SmtpSink, HOST_FROM_GUEST};

const GIB: u64 = 1 << 30;

#[test]
fn alerts_reach_mail_and_webhook_across_a_pulled_disk() {
    let mut smtp = SmtpSink::start(None).expect("SMTP sink");
    let smtp_port = smtp.port();
    let http = HttpSink::start(None).expect("HTTP sink");
    let disks = tank_tests::fresh_disks("alerts", &[GIB, GIB, GIB]);
    let mut guest = tank_tests::boot_default("alerts", &disks);
    create_pool(&mut guest);

    // Channels: bad input first, then the real ones.
    let out = guest
        .run(
            "alert mail to nobody server 10.0.2.2",
            Duration::from_secs(30),
        )
        .unwrap();
    assert!(
        out.contains("error:") && out.contains("mail address"),
        "{out}"
    );
    let out = guest
        .run("alert webhook ftp://10.0.2.2/x", Duration::from_secs(30))
        .unwrap();
    assert!(out.contains("error:") && out.contains("http://"), "{out}");
    let said = guest
        .run_with_password(
            &format!(
                "alert mail to owner@example.com server {HOST_FROM_GUEST} port {smtp_port} \
                 user tank@example.com tls off"
            ),
            "s3cret-mail",
        )
        .unwrap();
    assert!(
        said.contains("alerts are mailed to owner@example.com"),
        "{said}"
    );
    ok(
        &mut guest,
        &format!("alert webhook {}", http.guest_url("/hook")),
    );
    let show = ok(&mut guest, "alert show");
    assert!(show.contains("mail") && show.contains("webhook"), "{show}");
    assert!(
        !show.contains("s3cret"),
        "alert show printed the password:\n{show}"
    );

    // `alert test` through both, with each result.
    let out = ok(&mut guest, "alert test");
    assert!(
        out.contains("mail: delivered") && out.contains("webhook: delivered"),
        "{out}"
    );
    let mail = smtp
        .wait_for(
            |m| {
                m.subject
                    .as_deref()
                    .is_some_and(|s| s.contains("test alert"))
            },
            Duration::from_secs(30),
        )
        .unwrap();
    assert_eq!(mail.subject.as_deref(), Some("[tank] INFO: test alert"));
    assert_eq!(mail.to, ["owner@example.com"]);
    let auth = mail.auth.as_ref().expect("the client authenticated");
    assert_eq!(
        (auth.user.as_str(), auth.password.as_str()),
        ("tank@example.com", "s3cret-mail")
    );
    let hook = http
        .wait_for(
            |r| r.body_text().contains("\"test\""),
            Duration::from_secs(30),
        )
        .unwrap();
    assert_eq!(
        (hook.method.as_str(), hook.path.as_str()),
        ("POST", "/hook")
    );
    let json = hook.json().unwrap();
    assert_eq!(json["host"], "tank");
    for key in [
        "id", "host", "severity", "state", "title", "message", "time",
    ] {
        assert!(json.get(key).is_some(), "webhook JSON lacks {key}: {json}");
    }
    assert!(
        json["time"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z') && t.contains('T')),
        "{json}"
    );

    // The mail server goes down, then sdb is pulled out.
    smtp.stop();
    let pulled = Instant::now();
    guest.device_del("disk1").expect("QMP device_del of sdb");
    let degraded = http
        .wait_for(
            |r| {
                r.json()
                    .is_ok_and(|j| j["id"] == "pool.degraded" && j["state"] == "raised")
            },
            Duration::from_secs(60),
        )
        .expect("a pool.degraded webhook within 60 s of pulling sdb");
    assert!(pulled.elapsed() < Duration::from_secs(60));
    let json = degraded.json().unwrap();
    assert_eq!(json["severity"], "critical", "{json}");
    assert!(
        json["message"]
            .as_str()
            .is_some_and(|m| m.contains("TANK-SDB")),
        "the alert does not name the pulled disk: {json}"
    );
    let status = guest
        .run_until("status", Duration::from_secs(60), |s| {
            s.contains("DEGRADED")
        })
        .expect("status says degraded");
    assert!(status.contains("pool.degraded"), "{status}");
    assert!(
        status
            .lines()
            .any(|l| l.trim_start().starts_with("alerts") && l.contains("1 critical")),
        "{status}"
    );
    let list = ok(&mut guest, "alert list");
    assert!(
        list.contains("CRITICAL") && list.contains("pool.degraded"),
        "{list}"
    );
    // The mail could not go out: it waits, with the reason.
    let show = guest
        .run_until("alert show", Duration::from_secs(60), |s| {
            s.contains("FAILED")
        })
        .expect("alert show reports the failed mail delivery");
    assert!(
        show.lines()
            .any(|l| l.starts_with("mail") && l.contains("FAILED")),
        "{show}"
    );

    // The undelivered mail waits on the pool: a reboot loses nothing and announces nothing
    // twice (the webhook gets no second "raised").
    reboot(&mut guest);
    // (Not `ok`: the failed delivery's reason holds "Connection error:".)
    let show = guest.run("alert show", Duration::from_secs(30)).unwrap();
    let waiting = show
        .lines()
        .find(|l| l.starts_with("mail"))
        .and_then(|l| l.split("tank@example.com").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse::<u32>().ok());
    assert!(
        waiting.is_some_and(|n| n >= 1) && !show.contains("no mail channel"),
        "the mail is not waiting after the reboot:\n{show}"
    );

    // The sink comes back on the same port: the queued mail arrives.
    let smtp = SmtpSink::start(Some(smtp_port)).expect("SMTP sink again");
    let mail = smtp
        .wait_for(
            |m| m.subject.as_deref().is_some_and(|s| s.contains("degraded")),
            Duration::from_secs(240),
        )
        .expect("the degraded mail after the mail sink came back");
    assert_eq!(
        mail.subject.as_deref(),
        Some("[tank] CRITICAL: pool tank is degraded")
    );
    assert!(mail.text().contains("pool.degraded"), "{}", mail.text());

    // Replace onto the spare: the alert clears, and both channels hear it.
    let spare = disk_named(&mut guest, "TANK-SDC");
    ok(&mut guest, &format!("pool replace missing {spare}"));
    guest
        .run_until("pool status", Duration::from_secs(600), |s| {
            s.contains("ONLINE") && !s.contains("running:")
        })
        .expect("the pool is ONLINE again after replace");
    http.wait_for(
        |r| {
            r.json()
                .is_ok_and(|j| j["id"] == "pool.degraded" && j["state"] == "cleared")
        },
        Duration::from_secs(120),
    )
    .expect("a cleared webhook after the replace");
    let mail = smtp
        .wait_for(
            |m| m.subject.as_deref() == Some("[tank] CLEARED: pool tank is degraded"),
            Duration::from_secs(120),
        )
        .expect("a cleared mail after the replace");
    assert!(mail.text().contains("pool.degraded"));
    // One raise and one clear, no flood.
    let raised = http
        .requests()
        .iter()
        .filter(|r| r.json().is_ok_and(|j| j["id"] == "pool.degraded"))
        .count();
    assert_eq!(raised, 2, "{:?}", http.requests());
    let history = ok(&mut guest, "log alerts");
    assert!(
        history.contains("pool.degraded") && history.contains("replace.finished"),
        "{history}"
    );
    let list = ok(&mut guest, "alert list");
    assert!(list.contains("0 critical"), "{list}");
}
