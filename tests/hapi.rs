//! HApi endpoints against a real HAProxy on loopback.

mod common;

use common::{curl, free_port, up_server, wait_for, Agent, Haproxy, TempDir};
use std::time::Duration;

/// HAProxy with backend `wwwbackend`: lamp1 up, lamp2 down (closed port), lamp3 up, and a
/// server outside the `lamp<N>` naming; backend `other` has lamp1 too.
fn setup(dir: &TempDir) -> (Haproxy, Agent) {
    let (up1, up3, closed, fe) = (up_server(), up_server(), free_port(), free_port());
    let hap = Haproxy::start(
        dir,
        &format!(
            "frontend http-frontend\n    bind 127.0.0.1:{fe}\n    default_backend wwwbackend\n\
backend wwwbackend\n\
    server lamp1 127.0.0.1:{up1} check inter 100 rise 1 fall 1\n\
    server lamp2 127.0.0.1:{closed} check inter 100 rise 1 fall 1\n\
    server lamp3 127.0.0.1:{up3} check inter 100 rise 1 fall 1\n\
    server spare 127.0.0.1:{up3} check inter 100 rise 1 fall 1\n\
backend other\n\
    server lamp1 127.0.0.1:{up1} check inter 100 rise 1 fall 1\n"
        ),
    );
    let agent = Agent::start(
        dir,
        &format!(
            "socat: {}\nserver: lamp\nhttp-frontend: ['wwwbackend', 'other']\nsolo: ['other']\n",
            hap.sock.display()
        ),
    );
    (hap, agent)
}

fn get(agent: &Agent, path: &str) -> common::Resp {
    curl(&[&agent.url("http", path)]).unwrap()
}

fn post(agent: &Agent, path: &str) -> common::Resp {
    curl(&["-X", "POST", &agent.url("http", path)]).unwrap()
}

fn nodes(agent: &Agent, status: &str) -> serde_json::Value {
    let r = get(agent, &format!("/loadBalancer/nodes/{status}"));
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

#[test]
fn status_shows_every_show_info_field_as_strings() {
    let dir = TempDir::new("hapi");
    let (_hap, agent) = setup(&dir);
    let r = get(&agent, "/loadBalancer/status");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    let v = r.json();
    let info = v[0].as_object().unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(info["Name"], "HAProxy");
    assert!(info["Version"].as_str().unwrap().starts_with("2."));
    for key in [
        "Pid",
        "Uptime",
        "Uptime_sec",
        "CurrConns",
        "Maxconn",
        "node",
        "description",
    ] {
        assert!(
            info[key].is_string(),
            "{key} missing or not a string: {info:?}"
        );
    }
    assert!(info.len() > 40, "only {} fields", info.len());
    assert!(info.values().all(|v| v.is_string()));
}

/// The CLI sessions open on HAProxy's socket other than the one asking.
fn cli_sessions(hap: &Haproxy) -> usize {
    let sess = common::haproxy_cli(&hap.sock, "show sess");
    sess.lines().filter(|l| l.contains("fe=GLOBAL")).count() - 1
}

fn status_pid(agent: &Agent) -> String {
    let r = get(agent, "/loadBalancer/status");
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()[0]["Pid"].as_str().unwrap().to_string()
}

/// HApi's queries reuse CLI sessions (at most two stay open), answers after a reload come
/// from the new HAProxy and the old one is let go, and a session HAProxy closed costs no error.
#[test]
fn kept_cli_sessions_follow_reloads_and_closes() {
    let dir = TempDir::new("hapi-kept");
    let (mut old, agent) = setup(&dir);
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let url = agent.url("http", "/loadBalancer/status");
            std::thread::spawn(move || curl(&[&url]).unwrap().status)
        })
        .collect();
    for c in calls {
        assert_eq!(c.join().unwrap(), 200);
    }
    let open = cli_sessions(&old);
    assert!((1..=2).contains(&open), "{open} sessions kept");
    assert_eq!(status_pid(&agent), old.pid().to_string());

    let new = old.reload(&dir);
    assert_eq!(status_pid(&agent), new.pid().to_string());
    wait_for("the old haproxy to exit", Duration::from_secs(10), || {
        !old.running()
    });

    // HAProxy ends the kept sessions itself: the next answer comes on a new one.
    let sess = common::haproxy_cli(&new.sock, "show sess");
    for id in sess.lines().filter(|l| l.contains("fe=GLOBAL")) {
        let id = id.split(':').next().unwrap();
        common::haproxy_cli(&new.sock, &format!("shutdown session {id}"));
    }
    assert_eq!(status_pid(&agent), new.pid().to_string());
    // Idle sessions are closed within a few seconds.
    wait_for("idle sessions to close", Duration::from_secs(5), || {
        cli_sessions(&new) == 0
    });
}

#[test]
fn nodes_by_status_and_maintenance_round_trip() {
    let dir = TempDir::new("hapi");
    let (_hap, agent) = setup(&dir);
    wait_for("checks to settle", Duration::from_secs(10), || {
        nodes(&agent, "down")[1]["Nodes"] == serde_json::json!(["wwwbackend: lamp2"])
            && nodes(&agent, "up")[1]["Nodes"].as_array().unwrap().len() == 3
    });
    let up = nodes(&agent, "up");
    assert_eq!(up[0]["found"], "True");
    assert_eq!(
        up[1]["Nodes"],
        serde_json::json!(["wwwbackend: lamp1", "wwwbackend: lamp3", "other: lamp1"]),
        "servers not named lamp<N> are left out"
    );
    assert_eq!(
        nodes(&agent, "maint"),
        serde_json::json!([{"found": "False"}, {"Nodes": []}])
    );

    let r = post(&agent, "/loadBalancer/poolManager/http-frontend/disable/1");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json(),
        serde_json::json!({"action": "disable", "backend": "['wwwbackend', 'other']",
                           "backends": ["wwwbackend", "other"], "node": "1"})
    );
    assert_eq!(
        nodes(&agent, "maint")[1]["Nodes"],
        serde_json::json!(["wwwbackend: lamp1", "other: lamp1"])
    );
    assert_eq!(
        nodes(&agent, "up")[1]["Nodes"],
        serde_json::json!(["wwwbackend: lamp3"])
    );

    let r = post(&agent, "/loadBalancer/poolManager/http-frontend/enable/1");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["action"], "enable");
    assert_eq!(nodes(&agent, "maint")[0]["found"], "False");
    wait_for("lamp1 up again", Duration::from_secs(10), || {
        nodes(&agent, "up")[1]["Nodes"].as_array().unwrap().len() == 3
    });
}

#[test]
fn haproxy_refusals_reach_the_caller() {
    let dir = TempDir::new("hapi");
    let (_hap, agent) = setup(&dir);
    // lamp3 exists in wwwbackend but not in other: HAProxy says "No such server."
    let r = post(&agent, "/loadBalancer/poolManager/http-frontend/disable/3");
    assert_eq!(r.status, 404, "{}", r.body);
    let v = r.json();
    let details = v["details"].as_str().unwrap();
    assert!(
        details.contains("backend other, server lamp3: No such server."),
        "{details}"
    );
    assert!(
        details.contains("already done in ['wwwbackend']"),
        "{details}"
    );
    assert_eq!(v["code"], 404);
    post(&agent, "/loadBalancer/poolManager/http-frontend/enable/3");
    let r = post(&agent, "/loadBalancer/poolManager/solo/disable/9");
    assert_eq!(r.status, 404);
    assert!(r.details().contains("No such server"));
}

#[test]
fn bad_input_is_a_json_4xx() {
    let dir = TempDir::new("hapi");
    let (_hap, agent) = setup(&dir);
    for (method, path, status) in [
        ("GET", "/loadBalancer/nodes/sideways", 400),
        ("GET", "/loadBalancer/nodes/UP", 400),
        (
            "POST",
            "/loadBalancer/poolManager/http-frontend/drain/1",
            400,
        ),
        ("POST", "/loadBalancer/poolManager/nope/disable/1", 404),
        // Config keys that are not frontends.
        ("POST", "/loadBalancer/poolManager/server/disable/1", 404),
        ("POST", "/loadBalancer/poolManager/socat/disable/1", 404),
        (
            "POST",
            "/loadBalancer/poolManager/http-frontend/disable/1%3Bshutdown",
            400,
        ),
        (
            "POST",
            "/loadBalancer/poolManager/http-frontend/disable/1%0Ashow%20info",
            400,
        ),
    ] {
        let r = curl(&["-X", method, &agent.url("http", path)]).unwrap();
        assert_eq!(r.status, status, "{method} {path}: {}", r.body);
        assert_eq!(r.json()["code"], status);
        assert!(r.json()["message"].is_string());
    }
}

#[test]
fn missing_socket_is_503_with_its_path() {
    let dir = TempDir::new("hapi");
    let sock = dir.path("absent.stat");
    let agent = Agent::start(&dir, &format!("socat: {}\nfe: ['be']\n", sock.display()));
    for (m, p) in [
        ("GET", "/loadBalancer/status"),
        ("GET", "/loadBalancer/nodes/up"),
        ("POST", "/loadBalancer/poolManager/fe/disable/1"),
    ] {
        let r = curl(&["-X", m, &agent.url("http", p)]).unwrap();
        assert_eq!(r.status, 503, "{p}");
        assert!(r.details().contains(&sock.display().to_string()));
    }
    // A socket file nobody listens on: refused, still 503.
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    assert_eq!(get(&agent, "/loadBalancer/status").status, 503);
}
