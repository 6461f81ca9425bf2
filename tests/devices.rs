//! The device registry (/v1/devices) through the real binary: the spec's examples, every 400,
//! ids never reused, concurrent creates, and kill -9 in the middle of writes.

mod common;

use common::{call, curl, Agent, TempDir};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const NAME: &str = "lbaas-v1-067e6162-3b6f-4ae2-a171-2470b63dff00";

fn post(agent: &Agent, dir: &TempDir, body: &str) -> common::Resp {
    call(agent, dir, "POST", "/v1/devices", Some(body.as_bytes()))
}

fn device(name: &str, address: &str) -> String {
    json!({ "name": name, "address": address }).to_string()
}

/// The spec's timestamp shape: `Mon 2012.10.29 at 07:21:48 PM UTC`.
fn spec_time(s: &str) -> bool {
    let w: Vec<&str> = s.split(' ').collect();
    w.len() == 6
        && ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"].contains(&w[0])
        && w[1].len() == 10
        && w[1].as_bytes()[4] == b'.'
        && w[2] == "at"
        && w[3].len() == 8
        && (w[4] == "AM" || w[4] == "PM")
        && w[5] == "UTC"
}

#[test]
fn the_specs_examples() {
    let dir = TempDir::new("dev");
    let agent = Agent::start(&dir, "");
    let r = curl(&[&agent.url("http", "/v1/devices")]).unwrap();
    assert_eq!((r.status, r.json()), (200, json!({"devices": []})));

    let r = curl(&[
        "-X",
        "POST",
        "-H",
        "Content-type:application/json",
        "--data-binary",
        &device(NAME, "15.185.96.125"),
        &agent.url("http", "/v1/devices"),
    ])
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let d = r.json();
    assert_eq!(d["id"], 1);
    assert_eq!(d["name"], NAME);
    assert_eq!(d["address"], "15.185.96.125");
    assert_eq!(d["status"], "OFFLINE");
    assert_eq!(d["loadbalancer"], 0);
    assert_eq!(d["type"], "HAProxy");
    assert!(
        spec_time(d["created"].as_str().unwrap()),
        "{}",
        d["created"]
    );
    assert_eq!(d["created"], d["updated"]);

    assert_eq!(call(&agent, &dir, "GET", "/v1/devices/1", None).json(), d);
    assert_eq!(
        call(&agent, &dir, "GET", "/v1/devices", None).json(),
        json!({"devices": [d]})
    );
    assert_eq!(
        call(&agent, &dir, "GET", "/v1/devices/usage", None).json(),
        json!({"total": 1, "free": 1, "taken": 0})
    );

    // PUT changes name and/or address only; other fields are ignored.
    std::thread::sleep(Duration::from_millis(1100));
    let r = call(
        &agent,
        &dir,
        "PUT",
        "/v1/devices/1",
        Some(br#"{"address":"2001:db8::7","status":"ONLINE","id":99}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let u = r.json();
    assert_eq!(
        (u["id"].clone(), u["address"].clone(), u["status"].clone()),
        (json!(1), json!("2001:db8::7"), json!("OFFLINE"))
    );
    assert_eq!(u["name"], NAME);
    assert_eq!(u["created"], d["created"]);
    assert_ne!(u["updated"], d["updated"]);

    let r = call(&agent, &dir, "DELETE", "/v1/devices/1", None);
    assert_eq!((r.status, r.body.as_str()), (204, ""));
    let r = call(&agent, &dir, "GET", "/v1/devices/1", None);
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json(),
        json!({"message": "Not Found", "details": "device 1 not found", "code": 404})
    );
    assert_eq!(
        call(&agent, &dir, "DELETE", "/v1/devices/1", None).status,
        404
    );
    assert_eq!(
        call(
            &agent,
            &dir,
            "PUT",
            "/v1/devices/1",
            Some(br#"{"name":"x"}"#)
        )
        .status,
        404
    );
}

#[test]
fn every_bad_request_is_a_400_in_the_specs_shape() {
    let dir = TempDir::new("dev");
    let agent = Agent::start(&dir, "max_body: 4096\n");
    assert_eq!(post(&agent, &dir, &device("taken", "10.1.1.1")).status, 200);
    let long = "n".repeat(129);
    let cases: Vec<(String, &str)> = vec![
        ("not json".into(), "not JSON"),
        ("[1,2]".into(), "JSON object"),
        ("\"a string\"".into(), "JSON object"),
        (r#"{"address":"10.0.0.1"}"#.into(), "name is required"),
        (r#"{"name":"a"}"#.into(), "address is required"),
        (device("", "10.0.0.1"), "name must not be empty"),
        (device("a", ""), "address must not be empty"),
        (
            r#"{"name":5,"address":"10.0.0.1"}"#.into(),
            "name must be a string",
        ),
        (
            r#"{"name":"a","address":["10.0.0.1"]}"#.into(),
            "address must be a string",
        ),
        (device("a", "10.0.0.256"), "not a valid IPv4 or IPv6"),
        (device("a", "example.com"), "not a valid IPv4 or IPv6"),
        (device(&long, "10.0.0.1"), "longer than 128"),
        (device("a\nb", "10.0.0.1"), "control characters"),
        (
            device("taken", "10.0.0.1"),
            "device name : taken already exists",
        ),
        (
            device("other", "10.1.1.1"),
            "device address : 10.1.1.1 already exists",
        ),
    ];
    for (body, why) in cases {
        let r = post(&agent, &dir, &body);
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        let v = r.json();
        assert_eq!(v["message"], "Bad Request");
        assert_eq!(v["code"], 400);
        assert!(v["details"].as_str().unwrap().contains(why), "{body}: {v}");
    }
    for id in ["abc", "0", "-1", "1.5", "%31x"] {
        let r = call(&agent, &dir, "GET", &format!("/v1/devices/{id}"), None);
        assert_eq!(r.status, 400, "{id}");
        assert_eq!(
            call(&agent, &dir, "DELETE", &format!("/v1/devices/{id}"), None).status,
            400
        );
    }
    for q in ["limit=0", "limit=5000", "limit=x", "marker=-3"] {
        assert_eq!(
            call(&agent, &dir, "GET", &format!("/v1/devices?{q}"), None).status,
            400,
            "{q}"
        );
    }
    let big = device(&"x".repeat(5000), "10.0.0.9");
    assert_eq!(post(&agent, &dir, &big).status, 413);
    // Renaming onto a taken name is refused too; renaming to itself is fine.
    assert_eq!(
        post(&agent, &dir, &device("second", "10.1.1.2")).status,
        200
    );
    let r = call(
        &agent,
        &dir,
        "PUT",
        "/v1/devices/2",
        Some(br#"{"name":"taken"}"#),
    );
    assert_eq!(r.status, 400);
    let r = call(
        &agent,
        &dir,
        "PUT",
        "/v1/devices/2",
        Some(br#"{"name":"second"}"#),
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        call(&agent, &dir, "PUT", "/v1/devices/2", Some(b"{}")).status,
        400
    );
}

#[test]
fn paging_and_ids_that_are_never_reused() {
    let dir = TempDir::new("dev");
    let mut agent = Agent::start(&dir, "");
    for i in 1..=5 {
        assert_eq!(
            post(
                &agent,
                &dir,
                &device(&format!("d{i}"), &format!("10.0.0.{i}"))
            )
            .json()["id"],
            i
        );
    }
    let page = call(&agent, &dir, "GET", "/v1/devices?marker=2&limit=2", None).json();
    let ids: Vec<u64> = page["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [3, 4]);
    assert_eq!(
        call(&agent, &dir, "DELETE", "/v1/devices/5", None).status,
        204
    );
    agent.signal("TERM");
    agent.child.wait().unwrap();
    let agent = Agent::start(&dir, "");
    assert_eq!(
        post(&agent, &dir, &device("d6", "10.0.0.6")).json()["id"],
        6
    );
    assert_eq!(
        call(&agent, &dir, "GET", "/v1/devices/usage", None).json(),
        json!({"total": 5, "free": 5, "taken": 0})
    );
}

#[test]
fn fifty_concurrent_creates_get_fifty_distinct_ids() {
    let dir = Arc::new(TempDir::new("dev"));
    let agent = Arc::new(Agent::start(&dir, ""));
    let ids = Arc::new(Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..50)
        .map(|i| {
            let (agent, ids) = (agent.clone(), ids.clone());
            std::thread::spawn(move || {
                let body = device(&format!("c{i}"), &format!("10.2.0.{i}"));
                let r = curl(&[
                    "-X",
                    "POST",
                    "--data-binary",
                    &body,
                    &agent.url("http", "/v1/devices"),
                ])
                .unwrap();
                assert_eq!(r.status, 200, "{}", r.body);
                ids.lock().unwrap().push(r.json()["id"].as_u64().unwrap());
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let ids = ids.lock().unwrap();
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 50);
    let all = call(&agent, &dir, "GET", "/v1/devices", None).json();
    assert_eq!(all["devices"].as_array().unwrap().len(), 50);
    eprintln!(
        "50 concurrent POSTs: 50 devices, {} distinct ids",
        ids.len()
    );
}

#[test]
fn kill_9_during_writes_loses_nothing_acknowledged() {
    let dir = TempDir::new("dev");
    let file = dir.path("state/devices.json");
    let mut acknowledged: Vec<String> = Vec::new();
    let rounds = 20;
    for round in 0..rounds {
        let mut agent = Agent::start(&dir, "");
        let port = agent.port;
        let done = Arc::new(Mutex::new(Vec::new()));
        let writer = {
            let done = done.clone();
            std::thread::spawn(move || {
                for i in 0..1000 {
                    let name = format!("r{round}-{i}");
                    let body = device(&name, &format!("2001:db8:{round:x}::{i:x}"));
                    let url = format!("http://127.0.0.1:{port}/v1/devices");
                    match curl(&["-X", "POST", "--data-binary", &body, &url]) {
                        Ok(r) if r.status == 200 => done.lock().unwrap().push(name),
                        _ => return,
                    }
                }
            })
        };
        // Kill at a different moment each round.
        std::thread::sleep(Duration::from_millis(60 + (round as u64 * 37) % 200));
        agent.child.kill().unwrap();
        agent.child.wait().unwrap();
        writer.join().unwrap();
        acknowledged.extend(done.lock().unwrap().drain(..));
        let Ok(text) = std::fs::read_to_string(&file) else {
            // Killed before the first write: nothing may have been acknowledged.
            assert!(
                acknowledged.is_empty(),
                "round {round}: acknowledged writes but no file"
            );
            continue;
        };
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| {
            panic!("round {round}: devices.json does not parse ({e}): {text:?}")
        });
        let names: HashSet<&str> = v["devices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["name"].as_str().unwrap())
            .collect();
        for n in &acknowledged {
            assert!(
                names.contains(n.as_str()),
                "round {round}: acknowledged device {n} lost"
            );
        }
    }
    let agent = Agent::start(&dir, "");
    let total = call(&agent, &dir, "GET", "/v1/devices/usage", None).json()["total"]
        .as_u64()
        .unwrap();
    eprintln!(
        "{rounds} kill -9 rounds: {} acknowledged creates, {total} devices on disk, none lost",
        acknowledged.len()
    );
    assert!(
        acknowledged.len() >= rounds,
        "too few writes happened to mean anything"
    );
    assert!(total as usize >= acknowledged.len());
}

#[test]
fn a_corrupt_registry_stops_the_agent_and_is_kept() {
    let dir = TempDir::new("dev");
    std::fs::create_dir_all(dir.path("state")).unwrap();
    std::fs::write(dir.path("state/devices.json"), "{\"devices\": [tru").unwrap();
    std::fs::write(
        dir.path("agent.yaml"),
        format!("port: 0\nstate_dir: {}\n", dir.path("state").display()),
    )
    .unwrap();
    let out = std::process::Command::new(common::BIN)
        .arg("-c")
        .arg(dir.path("agent.yaml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("devices.json") && err.contains("will not overwrite"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path("state/devices.json")).unwrap(),
        "{\"devices\": [tru"
    );
}
