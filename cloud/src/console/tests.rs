//! The console served on loopback over a lake the ingest wrote: pages, sign-in, refusals and
//! the audited acknowledgement.

use super::auth::{Access, COOKIE, Users};
use crate::api::Folders;
use crate::ingest::commit::tests::{T0, data_topic, payload, score, shot};
use crate::ingest::commit::{Committer, Group};
use reqwest::StatusCode;
use std::path::Path;

/// A data folder whose lake holds two shots of M1 and their scores, the second an alarm.
fn data_folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut c, _) = Committer::open(&dir.path().join("lake")).expect("open");
    let mut g = Group::default();
    let records = vec![
        shot(1, "M1", &[("Cycle_Time", 30.0), ("Max_Pressure", 900.0)]),
        score(2, 1, false),
        shot(3, "M1", &[("Cycle_Time", 45.0), ("Max_Pressure", 700.0)]),
        score(4, 3, true),
        moldops_shared::Record {
            seq: 5,
            ..moldops_shared::status::EdgeHealth {
                running: true,
                devices: 2,
                devices_down: 1,
                poll_errors: 7,
                per_device: vec![moldops_shared::status::DeviceHealth {
                    device_id: "TCU-7".into(),
                    up: false,
                    poll_errors: 7,
                    missed_shots: 0,
                }],
                ..Default::default()
            }
            .to_record(T0 + 4000)
        },
    ];
    g.add(&data_topic("e1"), &payload("e1", records), T0);
    // The manager asked e1 for M1 version 2 and M9 version 1; e1 reported M1 still on 1.
    let sha = "a".repeat(64);
    let bundle = |key: &str, v: u32| {
        format!(
            r#"{{"model_key":{{"machine_id":"{key}"}},"bundle":{{"model_id":"{key}@{v}","version":{v},
            "sha256":"{sha}","bytes":10,"chunks":1,"chunk_bytes":10}}}}"#
        )
    };
    let desired = format!(r#"{{"issued_at_ms":{T0},"models":[{},{}]}}"#, bundle("M1", 2), bundle("M9", 1));
    let reported = format!(
        r#"{{"site":"plant","edge_id":"e1","ts_ms":{},"models":{{"M1":{{"model_key":{{"machine_id":"M1"}},
        "state":"downloading","target":null,"active":{{"model_id":"M1@1","version":1,"sha256":"{sha}","bytes":10,"chunks":1,"chunk_bytes":10}},
        "previous":null,"shadow":null,"newest":1,"desired_at_ms":{T0},"ts_ms":{}}}}}}}"#,
        T0 + 10,
        T0 + 10
    );
    let event_topic = |leaf| moldops_shared::topic::topic("plant", "e1", leaf);
    g.add(&event_topic(moldops_shared::topic::Leaf::ModelDesired), desired.as_bytes(), T0 + 5);
    // The manager republishes the same request with a later rollout of another edge's key.
    let again = desired.replace(&format!("\"issued_at_ms\":{T0}"), &format!("\"issued_at_ms\":{}", T0 + 30));
    g.add(&event_topic(moldops_shared::topic::Leaf::ModelDesired), again.as_bytes(), T0 + 35);
    g.add(&event_topic(moldops_shared::topic::Leaf::ModelReported), reported.as_bytes(), T0 + 20);
    c.commit(g).expect("commit");
    std::fs::create_dir_all(dir.path().join("reports")).expect("mkdir");
    std::fs::write(dir.path().join("reports/train.html"), "<h1>train report</h1>").expect("write");
    dir
}

/// Serves the console for `data` with `access` under `base`; returns its root URL.
async fn serve(data: &Path, access: Access, base: &str) -> String {
    let settings = super::Settings {
        folders: Folders::under(data),
        access,
        base_path: base.to_string(),
        rollout: None,
        pipeline: None,
        lake_cache_mib: super::DEFAULT_LAKE_CACHE_MIB,
        follower: None,
    };
    let router = super::router(settings).expect("router");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}{base}")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client")
}

async fn text(r: reqwest::Response) -> (StatusCode, String) {
    let status = r.status();
    (status, r.text().await.expect("body"))
}

#[tokio::test]
async fn every_page_renders_the_lake_and_an_acknowledgement_needs_a_user_and_is_audited() {
    let data = data_folder();
    let users_file = data.path().join("users");
    let token = Users::add(&users_file, "alice").expect("add");
    let users = Users::load(&users_file).expect("users");
    let access = Access::new("127.0.0.1:0".parse().expect("addr"), users).expect("access");
    let root = serve(data.path(), access, "").await;
    let http = client();
    let get = |path: &str| http.get(format!("{root}{path}")).send();

    let (status, fleet) = text(get("/").await.expect("fleet")).await;
    assert_eq!(status, StatusCode::OK, "{fleet}");
    assert!(fleet.contains("href=\"/machines/M1\"") && fleet.contains("e1"), "{fleet}");
    assert!(
        fleet.contains("<tr class=\"device\"><td>e1</td><td>TCU-7</td>") && fleet.contains(">failed<"),
        "{fleet}"
    );
    let (status, machine) = text(get("/machines/M1?feature=Max_Pressure").await.expect("machine")).await;
    assert_eq!(status, StatusCode::OK, "{machine}");
    assert!(machine.contains("<svg") && machine.contains("M1@2") && machine.contains("MOLD-A"), "{machine}");
    assert_eq!(get("/machines/nope").await.expect("404").status(), StatusCode::NOT_FOUND);

    let (_, alarms) = text(get("/alarms").await.expect("alarms")).await;
    assert!(alarms.contains("1 alarm(s) match"), "only the alarm is listed: {alarms}");
    let alarm_ts = T0 + 3000;
    let alarm = format!("/alarms/M1/{alarm_ts}");
    let (status, page) = text(get(&alarm).await.expect("alarm")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("Cycle_Time") && page.contains("width:100.0%"), "contributions as bars: {page}");
    assert!(page.contains("Not acknowledged"), "{page}");

    // Pages say no to frames and scripts; open reads need a loopback Host (DNS rebinding).
    let headers = get("/").await.expect("fleet");
    let csp = headers.headers()["content-security-policy"].to_str().expect("csp").to_string();
    assert!(csp.contains("frame-ancestors 'none'") && !csp.contains("script-src"), "{csp}");
    let rebound =
        http.get(format!("{root}/alarms")).header("host", "evil.example").send().await.expect("get");
    assert_eq!(rebound.status(), StatusCode::UNAUTHORIZED, "a foreign Host gets no open reads");

    // Without a user, the acknowledgement is refused and nothing is stored.
    let ack = format!("{root}{alarm}/acknowledge");
    let refused = http.post(&ack).form(&[("comment", "short shot")]).send().await.expect("post");
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let forged = http.post(&ack).header("cookie", format!("{COOKIE}=guess")).form(&[("comment", "x")]);
    assert_eq!(forged.send().await.expect("post").status(), StatusCode::UNAUTHORIZED);
    assert!(super::audit::read(&data.path().join("lake")).expect("audit").is_empty());

    // Signed in with the cookie the sign-in sets, it is stored with the user and shown.
    let signed =
        http.post(format!("{root}/login")).form(&[("token", token.as_str())]).send().await.expect("login");
    let cookie = signed.headers()["set-cookie"].to_str().expect("cookie").to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let cookie = cookie.split(';').next().expect("pair").to_string();
    let cross_site = http
        .post(&ack)
        .header("cookie", &cookie)
        .header("origin", "http://evil.example")
        .form(&[("comment", "forged")]);
    assert_eq!(cross_site.send().await.expect("post").status(), StatusCode::FORBIDDEN, "a cross-site change");
    let sibling = http.post(&ack).header("cookie", &cookie).header("sec-fetch-site", "same-site");
    assert_eq!(
        sibling.form(&[("comment", "forged")]).send().await.expect("post").status(),
        StatusCode::FORBIDDEN
    );
    let done = http.post(&ack).header("cookie", &cookie).form(&[("comment", "short shot, part scrapped")]);
    assert_eq!(done.send().await.expect("post").status(), StatusCode::SEE_OTHER);
    let audit = super::audit::read(&data.path().join("lake")).expect("audit");
    assert_eq!(audit.len(), 1);
    assert_eq!(
        (audit[0].user.as_str(), audit[0].target.as_str()),
        ("alice", format!("M1@{alarm_ts}").as_str())
    );
    let (_, page) = text(get(&alarm).await.expect("alarm")).await;
    assert!(page.contains("short shot, part scrapped") && page.contains("alice"), "{page}");
    let (_, open) = text(get("/alarms?state=open").await.expect("open")).await;
    assert!(open.contains("0 alarm(s) match"), "{open}");
    let no_such = http.post(format!("{root}/alarms/M1/5/acknowledge")).header("cookie", &cookie);
    assert_eq!(no_such.form(&[("comment", "")]).send().await.expect("post").status(), StatusCode::NOT_FOUND);

    // The other pages, over an empty registry and no runs; a report inside the data folder only.
    let (_, metrics) = text(get("/metrics").await.expect("metrics")).await;
    assert!(
        metrics.contains("moldops_console_actions_total{action=\"acknowledge\",outcome=\"ok\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics
            .contains("moldops_console_requests_total{route=\"/alarms/{machine}/{ts_ms}\",status=\"200\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("moldops_pipeline_store_readable 1") && metrics.ends_with("# EOF\n"),
        "{metrics}"
    );
    // The alarm's files were read again for each page above: from memory after the first time.
    let hits = metrics
        .lines()
        .find_map(|l| l.strip_prefix("moldops_console_lake_cache_hits_total "))
        .and_then(|v| v.parse::<u64>().ok());
    assert!(hits.is_some_and(|h| h > 0), "{metrics}");
    let (_, rollouts) = text(get("/rollouts").await.expect("rollouts")).await;
    let row = |key: &str| {
        rollouts
            .split("<tr class=\"rollout\">")
            .find(|r| r.contains(&format!("<td>{key}</td>")))
            .unwrap_or_else(|| panic!("a row for {key}: {rollouts}"))
            .split("</tr>")
            .next()
            .expect("a row")
            .to_string()
    };
    let m1 = row("M1");
    assert!(m1.contains(">2</span>") && m1.contains("downloading"), "asked for 2, reported: {m1}");
    assert!(m1.contains("<td class=\"num warn\">1</td>"), "active 1 is behind what was asked: {m1}");
    assert_eq!(
        rollouts.matches("<td>desired</td>").count(),
        2,
        "a request repeated unchanged is listed once"
    );
    let m9 = row("M9");
    assert!(m9.contains(">1</span>") && m9.contains("not reported"), "asked for, not reported yet: {m9}");
    for path in ["/models", "/pipeline", "/reports", "/api/lake", "/healthz"] {
        assert_eq!(get(path).await.expect(path).status(), StatusCode::OK, "{path}");
    }
    let (_, report) = text(get("/reports/view?path=reports/train.html").await.expect("report")).await;
    assert!(report.contains("train report"));
    assert_eq!(get("/reports/view?path=../users").await.expect("escape").status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_networked_console_asks_every_reader_to_sign_in_and_serves_under_its_base_path() {
    let data = data_folder();
    let users_file = data.path().join("users");
    let token = Users::add(&users_file, "bob").expect("add");
    let access = Access::new("0.0.0.0:0".parse().expect("addr"), Users::load(&users_file).expect("users"))
        .expect("access");
    let root = serve(data.path(), access, "/moldops").await;
    let http = client();
    let browser = http.get(format!("{root}/alarms")).header("accept", "text/html").send().await.expect("get");
    assert_eq!(browser.status(), StatusCode::SEE_OTHER);
    assert_eq!(browser.headers()["location"], "/moldops/login");
    let script = http.get(format!("{root}/api/lake")).send().await.expect("get");
    assert_eq!(script.status(), StatusCode::UNAUTHORIZED);
    let (status, login) = text(http.get(format!("{root}/login")).send().await.expect("login")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(login.contains("action=\"/moldops/login\""), "{login}");
    let in_url = http.get(format!("{root}/login?token={token}")).send().await.expect("login");
    assert_eq!(in_url.status(), StatusCode::BAD_REQUEST, "no token in URLs off loopback");
    let refused = http.post(format!("{root}/login")).form(&[("token", "nope")]).send().await.expect("login");
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let probe = http.get(root.replace("/moldops", "/healthz")).send().await.expect("healthz");
    assert_eq!(probe.status(), StatusCode::OK, "probes find /healthz without the prefix");
    let (status, fleet) = text(http.get(&root).bearer_auth(&token).send().await.expect("fleet")).await;
    assert_eq!(status, StatusCode::OK, "{fleet}");
    assert!(
        fleet.contains("href=\"/moldops/machines/M1\"") && fleet.contains("signed in as <b>bob</b>"),
        "{fleet}"
    );
    let slash = http.get(format!("{root}/")).bearer_auth(&token).send().await.expect("slash");
    assert_eq!(slash.headers()["location"], "/moldops");
}

/// A lake of many small part files (an ingest that committed every few shots): a page reads
/// each file once, and what it shows from memory is what it showed from the files.
#[test]
fn a_page_over_many_part_files_reads_each_once_and_shows_the_same_from_memory() {
    const GROUPS: u64 = 300;
    let dir = tempfile::tempdir().expect("tempdir");
    let lake_dir = dir.path().join("lake");
    let (mut c, _) = Committer::open(&lake_dir).expect("open");
    for i in 0..GROUPS {
        let mut g = Group::default();
        let records = vec![
            shot(2 * i + 1, "M1", &[("Cycle_Time", 30.0 + i as f64), ("Max_Pressure", 900.0)]),
            score(2 * i + 2, 2 * i + 1, i % 10 == 0),
        ];
        g.add(&data_topic("e1"), &payload("e1", records), T0 + i as i64);
        c.commit(g).expect("commit");
    }
    crate::lake::cache::enable(super::DEFAULT_LAKE_CACHE_MIB << 20);
    let list = || {
        let started = std::time::Instant::now();
        let view =
            super::alarms::alarm_list(&lake_dir, vec!["M1".into()], Default::default()).expect("alarms");
        (format!("{view:?}"), started.elapsed())
    };
    let (from_files, cold) = list();
    let scores =
        crate::lake::list_machine_parts(&lake_dir, moldops_shared::RecordKind::Score.dataset(), "M1")
            .expect("score parts");
    assert_eq!(scores.len() as u64, GROUPS, "one score part file per commit");
    assert!(scores.iter().all(|f| crate::lake::cache::holds(f)), "every file read is held");
    let (from_memory, warm) = list();
    assert_eq!(from_memory, from_files);
    assert!(from_files.contains("matching: 30"), "every tenth shot alarmed");
    eprintln!("alarm list over {GROUPS} groups' part files: {cold:?} from the files, {warm:?} from memory");
}

#[tokio::test]
async fn acknowledging_with_a_verdict_labels_the_shot_and_the_quality_page_shows_it() {
    use crate::labels::operator::{self, Verdict};
    let data = data_folder();
    let lake = data.path().join("lake");
    let users_file = data.path().join("users");
    let token = Users::add(&users_file, "alice").expect("add");
    let access = Access::new("127.0.0.1:0".parse().expect("addr"), Users::load(&users_file).expect("users"))
        .expect("access");
    let root = serve(data.path(), access, "").await;
    let http = client();
    let get = |path: &str| http.get(format!("{root}{path}")).send();
    let signed =
        http.post(format!("{root}/login")).form(&[("token", token.as_str())]).send().await.expect("login");
    let cookie =
        signed.headers()["set-cookie"].to_str().expect("cookie").split(';').next().expect("pair").to_string();

    // Before any label: the model is on the quality page, without precision or recall.
    let (status, quality) = text(get("/quality").await.expect("quality")).await;
    assert_eq!(status, StatusCode::OK, "{quality}");
    assert!(quality.contains("href=\"/quality\" class=\"on\""), "in the navigation: {quality}");
    assert!(quality.contains("data-key=\"M1\" data-version=\"2\""), "{quality}");
    assert!(quality.contains("<td class=\"precision\">–</td><td class=\"recall\">–</td>"), "{quality}");
    assert!(quality.contains("id=\"no-lots\""), "{quality}");

    let alarm_ts = T0 + 3000;
    let alarm = format!("/alarms/M1/{alarm_ts}");
    let (_, page) = text(get(&alarm).await.expect("alarm")).await;
    assert!(page.contains("id=\"verdict-select\"") && page.contains("none yet"), "{page}");
    let ack = format!("{root}{alarm}/acknowledge");
    let post = |form: Vec<(&'static str, &'static str)>| {
        http.post(&ack).header("cookie", &cookie).form(&form).send()
    };

    // An unknown verdict is refused and stores nothing.
    let (status, body) = text(post(vec![("comment", "x"), ("verdict", "broken")]).await.expect("post")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("false_alarm"), "the refusal names the verdicts: {body}");
    assert!(super::audit::read(&lake).expect("audit").is_empty());
    assert!(operator::read(&lake).expect("marks").is_empty());

    // A verdict is the shot's operator label, audited beside the acknowledgement.
    let done =
        post(vec![("comment", "flash on the parting line"), ("verdict", "defect")]).await.expect("post");
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    let marks = operator::read(&lake).expect("marks");
    assert_eq!(marks.len(), 1);
    let m = &marks[0];
    assert_eq!(
        (m.machine_id.as_str(), m.shot_ts_ms, m.shot_number, m.mold.as_deref(), m.verdict, m.user.as_str()),
        ("M1", alarm_ts, Some(1003), Some("MOLD-A"), Verdict::Defect, "alice")
    );
    let audit = super::audit::read(&lake).expect("audit");
    let kinds: Vec<(&str, &str)> = audit.iter().map(|a| (a.kind.as_str(), a.comment.as_str())).collect();
    assert!(
        kinds.contains(&("acknowledge", "flash on the parting line")) && kinds.contains(&("label", "defect")),
        "{kinds:?}"
    );
    let (_, page) = text(get(&alarm).await.expect("alarm")).await;
    assert!(page.contains("<span class=\"pill bad\">defect</span>"), "the shot's verdict: {page}");
    assert!(page.contains("<td>alice</td><td>defect</td><td>flash on the parting line</td>"), "{page}");
    let (_, alarms) = text(get("/alarms").await.expect("alarms")).await;
    assert!(alarms.contains("<td class=\"verdict\">defect</td>"), "{alarms}");
    let (_, quality) = text(get("/quality").await.expect("quality")).await;
    assert!(quality.contains("<td class=\"precision\"><b>100.0 %</b>"), "{quality}");
    assert!(quality.contains("<td class=\"recall\">–</td>"), "a verdict never feeds recall: {quality}");

    // Marked again: the later verdict replaces it; an acknowledgement without one adds none.
    let again =
        post(vec![("comment", "looked again: good part"), ("verdict", "false_alarm")]).await.expect("post");
    assert_eq!(again.status(), StatusCode::SEE_OTHER);
    let plain = post(vec![("comment", "seen")]).await.expect("post");
    assert_eq!(plain.status(), StatusCode::SEE_OTHER);
    assert_eq!(operator::read(&lake).expect("marks").len(), 2);
    let (_, page) = text(get(&alarm).await.expect("alarm")).await;
    assert!(page.contains("<span class=\"pill ok\">false alarm</span>"), "{page}");
    assert!(page.contains("<td>alice</td><td>–</td><td>seen</td>"), "{page}");
    let (_, quality) = text(get("/quality").await.expect("quality")).await;
    assert!(quality.contains("<td class=\"precision\"><b>0.0 %</b>"), "{quality}");
    let (_, metrics) = text(get("/metrics").await.expect("metrics")).await;
    assert!(
        metrics.contains("moldops_console_actions_total{action=\"label\",outcome=\"ok\"} 2"),
        "{metrics}"
    );
}
