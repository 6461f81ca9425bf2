//! Listener lifecycle through the amphora API with real HAProxy processes: upload, start,
//! traffic, status with pools and members, seamless reloads under load, a failed reload, stop,
//! delete, crash recovery and adoption after an agent restart.

mod common;

use common::{
    call, curl, free_port, haproxy_cli, haproxy_pids, http_backend, wait_for, Agent, Resp, TempDir,
};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const AMP: &str = "6e2bc8a0-2548-4fb7-a5f0-fb1ef4a696ce";
const LID: &str = "7e9f91eb-b3e6-4e3b-a1a7-d6f7fdc1de7c";

struct Lb {
    fe: u16,
    up: u16,
    closed: u16,
}

impl Lb {
    fn new() -> Lb {
        Lb {
            fe: free_port(),
            up: http_backend(),
            closed: free_port(),
        }
    }

    fn config(&self, note: &str) -> String {
        format!(
            "# {note}\nglobal\n    daemon\n    maxconn 256\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 10s\n    timeout server 10s\n    retries 3\n    option redispatch\n\
frontend {LID}\n    bind 127.0.0.1:{fe}\n    default_backend pool-1\n\
backend pool-1\n    server member-up 127.0.0.1:{up} check inter 100 rise 1 fall 1\n    server member-down 127.0.0.1:{closed} check inter 100 rise 1 fall 1\n    server member-maint 127.0.0.1:{up} check inter 100 rise 1 fall 1\n",
            fe = self.fe,
            up = self.up,
            closed = self.closed
        )
    }

    fn get(&self) -> Option<String> {
        let r = curl(&["--max-time", "3", &format!("http://127.0.0.1:{}/", self.fe)]).ok()?;
        (r.status == 200).then_some(r.body)
    }
}

fn upload(agent: &Agent, dir: &TempDir, cfg: &str) -> Resp {
    call(
        agent,
        dir,
        "PUT",
        &format!("/v0.1/listeners/{AMP}/{LID}/haproxy"),
        Some(cfg.as_bytes()),
    )
}

/// The listener's stored config, as GET returns it.
fn live_config(agent: &Agent, dir: &TempDir) -> common::Resp {
    call(
        agent,
        dir,
        "GET",
        &format!("/v0.1/listeners/{LID}/haproxy"),
        None,
    )
}

fn action(agent: &Agent, dir: &TempDir, what: &str) -> Resp {
    call(
        agent,
        dir,
        "PUT",
        &format!("/v0.1/listeners/{LID}/{what}"),
        None,
    )
}

fn status(agent: &Agent, dir: &TempDir) -> serde_json::Value {
    let r = call(agent, dir, "GET", &format!("/v0.1/listeners/{LID}"), None);
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

fn master_pids(dir: &TempDir) -> Vec<u32> {
    // Masters carry -S <master.sock>; workers are forked and carry the same argv.
    haproxy_pids(&dir.path("state").display().to_string())
}

#[test]
fn lifecycle_with_traffic_status_and_reloads() {
    let dir = TempDir::new("lst");
    let agent = Agent::start(&dir, "");
    let lb = Lb::new();

    assert_eq!(action(&agent, &dir, "start").status, 404);
    let r = action(&agent, &dir, "jump");
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["message"], "Invalid Request");
    assert_eq!(r.json()["details"], "Unknown action: jump");

    assert_eq!(upload(&agent, &dir, &lb.config("v1")).status, 201);
    let list = call(&agent, &dir, "GET", "/v0.1/listeners", None).json();
    assert_eq!(
        list,
        serde_json::json!([{"status": "STOPPED", "uuid": LID, "type": "HTTP"}])
    );

    let r = action(&agent, &dir, "start");
    assert_eq!(r.status, 202, "{}", r.body);
    let details = r.details().to_string();
    assert!(
        details.starts_with("Configuration file is valid\nhaproxy daemon for"),
        "{details}"
    );
    assert!(details.contains("started (pid "), "{details}");
    let again = action(&agent, &dir, "start");
    assert!(again.details().contains("already running"));
    assert_eq!(lb.get().as_deref(), Some("ok"));

    // One member in maintenance, set over the listener's own socket as an operator would.
    let sock = dir.path(&format!("state/listeners/{LID}/run/stats.sock"));
    assert_eq!(
        haproxy_cli(&sock, "set server pool-1/member-maint state maint").trim(),
        ""
    );
    assert_eq!(
        haproxy_cli(&sock, "set weight pool-1/member-up 42").trim(),
        ""
    );
    wait_for("member states", Duration::from_secs(10), || {
        status(&agent, &dir)["pools"][0]["members"]
            == serde_json::json!([{"member-up": "UP"}, {"member-down": "DOWN"}, {"member-maint": "MAINT"}])
    });
    let st = status(&agent, &dir);
    assert_eq!(st["status"], "ACTIVE");
    assert_eq!(st["type"], "HTTP");
    assert_eq!(st["pools"][0]["uuid"], "pool-1");
    assert_eq!(st["pools"][0]["status"], "DEGRADED");

    // 20 reloads with a changed config while a client keeps requesting: no request fails.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load = {
        let (stop, ok, failed, fe) = (stop.clone(), ok.clone(), failed.clone(), lb.fe);
        std::thread::spawn(move || {
            let lb = Lb {
                fe,
                up: 0,
                closed: 0,
            };
            while !stop.load(Ordering::SeqCst) {
                match lb.get() {
                    Some(_) => ok.fetch_add(1, Ordering::SeqCst),
                    None => failed.fetch_add(1, Ordering::SeqCst),
                };
            }
        })
    };
    for i in 0..20 {
        assert_eq!(
            upload(&agent, &dir, &lb.config(&format!("v{}", i + 2))).status,
            201
        );
        let r = action(&agent, &dir, "reload");
        assert_eq!(r.status, 202, "reload {i}: {}", r.body);
        assert!(r.details().contains("reloaded (new worker pid"));
    }
    stop.store(true, Ordering::SeqCst);
    load.join().unwrap();
    let (ok, failed) = (ok.load(Ordering::SeqCst), failed.load(Ordering::SeqCst));
    eprintln!("requests during 20 reloads: {ok} ok, {failed} failed");
    assert!(ok > 20, "the load client barely ran: {ok}");
    assert_eq!(failed, 0, "{failed} requests failed during reloads");
    // The maintenance state and the changed weight survived every reload.
    assert_eq!(
        status(&agent, &dir)["pools"][0]["members"][2],
        serde_json::json!({"member-maint": "MAINT"})
    );
    let weight = haproxy_cli(&sock, "get weight pool-1/member-up");
    assert!(weight.starts_with("42 "), "{weight}");

    // A bad upload to a running listener: 400, and the old config goes on serving.
    let r = upload(&agent, &dir, "global\n    no-such-keyword\n");
    assert_eq!(r.status, 400);
    assert!(r.details().contains("no-such-keyword"));
    assert_eq!(lb.get().as_deref(), Some("ok"));
    // A config HAProxy finds valid but that would serve nothing: 400 in HAProxy's words, not
    // a listener that reports ACTIVE while serving nothing.
    for empty in ["", "global\n    maxconn 10\n"] {
        let r = upload(&agent, &dir, empty);
        assert_eq!(r.status, 400, "{empty:?}");
        assert!(r.details().contains("no listener"), "{}", r.details());
    }
    let live = live_config(&agent, &dir);
    assert_eq!(live.body, lb.config("v21"));

    // A reload that HAProxy refuses at run time (its port is taken): old workers keep serving,
    // the live config goes back to the last good one, and the caller sees HAProxy's words.
    let good = lb.config("v21");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let bad = good.replace(
        &format!("    bind 127.0.0.1:{}\n", lb.fe),
        &format!(
            "    bind 127.0.0.1:{}\n    bind 127.0.0.1:{}\n",
            lb.fe,
            taken.local_addr().unwrap().port()
        ),
    );
    assert_eq!(upload(&agent, &dir, &bad).status, 201);
    let r = action(&agent, &dir, "reload");
    assert_eq!(r.status, 500, "{}", r.body);
    assert_eq!(r.json()["message"], "Error reloading haproxy");
    assert!(r.details().contains("cannot bind"), "{}", r.body);
    assert_eq!(lb.get().as_deref(), Some("ok"));
    let live = live_config(&agent, &dir);
    assert_eq!(live.body, good);
    assert_eq!(status(&agent, &dir)["status"], "ACTIVE");

    // Stop, then stop again, then delete.
    let r = action(&agent, &dir, "stop");
    assert_eq!(r.status, 202);
    assert!(r.details().ends_with("stopped"));
    assert!(action(&agent, &dir, "stop")
        .details()
        .contains("not running"));
    assert_eq!(lb.get(), None);
    assert_eq!(status(&agent, &dir)["status"], "STOPPED");
    assert!(master_pids(&dir).is_empty());
    // Reload of a stopped listener starts it.
    let r = action(&agent, &dir, "reload");
    assert!(r.details().contains("started (pid"), "{}", r.body);
    assert_eq!(lb.get().as_deref(), Some("ok"));
    let r = call(
        &agent,
        &dir,
        "DELETE",
        &format!("/v0.1/listeners/{LID}"),
        None,
    );
    assert_eq!(r.status, 200);
    assert!(
        master_pids(&dir).is_empty(),
        "haproxy still running after delete"
    );
    assert!(!dir.path(&format!("state/listeners/{LID}")).exists());
    assert_eq!(lb.get(), None);
    assert_eq!(
        call(&agent, &dir, "GET", &format!("/v0.1/listeners/{LID}"), None).status,
        404
    );
}

#[test]
fn a_start_that_fails_reports_haproxys_words() {
    let dir = TempDir::new("lst");
    let agent = Agent::start(&dir, "");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let lb = Lb {
        fe: taken.local_addr().unwrap().port(),
        ..Lb::new()
    };
    assert_eq!(upload(&agent, &dir, &lb.config("v1")).status, 201);
    let r = action(&agent, &dir, "start");
    assert_eq!(r.status, 500);
    assert_eq!(r.json()["message"], "Error starting haproxy");
    assert!(r.details().contains("cannot bind"), "{}", r.body);
    assert_eq!(status(&agent, &dir)["status"], "ERROR");
    drop(taken);
}

#[test]
fn a_killed_haproxy_comes_back_and_a_restarted_agent_adopts_it() {
    let dir = TempDir::new("lst");
    let mut agent = Agent::start(&dir, "");
    let lb = Lb::new();
    assert_eq!(upload(&agent, &dir, &lb.config("v1")).status, 201);
    assert_eq!(action(&agent, &dir, "start").status, 202);
    let pidfile = dir.path(&format!("state/listeners/{LID}/run/haproxy.pid"));
    let master: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();

    // kill -9 of its HAProxy: status shows it, then it is back.
    common::run(std::process::Command::new("kill").args(["-9", &master.to_string()]));
    wait_for("ERROR status", Duration::from_secs(5), || {
        status(&agent, &dir)["status"] == "ERROR"
    });
    wait_for("a restarted haproxy", Duration::from_secs(15), || {
        status(&agent, &dir)["status"] == "ACTIVE" && lb.get().is_some()
    });
    let restarted: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_ne!(restarted, master);
    assert!(agent.app_log().contains("haproxy is not running"));

    // kill -9 of the agent, then a new agent on the same state: it adopts, no second HAProxy.
    agent.child.kill().unwrap();
    agent.child.wait().unwrap();
    assert_eq!(
        lb.get().as_deref(),
        Some("ok"),
        "listeners outlive the agent"
    );
    let before = master_pids(&dir);
    let agent2 = Agent::start(&dir, "");
    wait_for("adoption", Duration::from_secs(10), || {
        agent2.app_log().contains("adopted haproxy")
    });
    assert_eq!(status(&agent2, &dir)["status"], "ACTIVE");
    assert_eq!(
        master_pids(&dir),
        before,
        "no duplicate haproxy after adoption"
    );
    let now: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(now, restarted);
}

#[test]
fn a_new_certificate_reaches_a_running_haproxy_without_a_reload() {
    let pki = common::Pki::new();
    let dir = TempDir::new("lst");
    let agent = Agent::start(&dir, "");
    let (fe, be) = (free_port(), http_backend());
    let bundle = |name: &str| {
        format!(
            "{}{}",
            std::fs::read_to_string(pki.file(&format!("{name}.key"))).unwrap(),
            std::fs::read_to_string(pki.file(&format!("{name}.pem"))).unwrap()
        )
    };
    // The legacy API creates the instance with its certificate; v0.1 runs it.
    let r = call(
        &agent,
        &dir,
        "PUT",
        &format!("/instances/{LID}/certificates/localhost.pem"),
        Some(bundle("server").as_bytes()),
    );
    assert_eq!(r.status, 201);
    let crt = dir.path(&format!("certs/{LID}/localhost.pem"));
    let cfg = format!(
        "global\n    maxconn 64\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n\
frontend fe\n    bind 127.0.0.1:{fe} ssl crt {}\n    default_backend be\nbackend be\n    server s1 127.0.0.1:{be}\n",
        crt.display()
    );
    assert_eq!(upload(&agent, &dir, &cfg).status, 201);
    assert_eq!(status(&agent, &dir)["type"], "TERMINATED_HTTPS");
    assert_eq!(action(&agent, &dir, "start").status, 202);
    let https = |ca: &str| {
        curl(&[
            "--cacert",
            &pki.file(ca),
            &format!("https://localhost:{fe}/"),
        ])
        .ok()
    };
    assert_eq!(https("ca.pem").map(|r| r.body).as_deref(), Some("ok"));
    assert!(https("other-ca.pem").is_none());
    let master_sock = dir.path(&format!("state/listeners/{LID}/run/master.sock"));
    let reloads = |_: ()| {
        let proc = haproxy_cli(&master_sock, "show proc");
        proc.lines()
            .find(|l| l.contains("master"))
            .unwrap()
            .split_whitespace()
            .nth(2)
            .unwrap()
            .to_string()
    };
    let before = reloads(());

    let r = call(
        &agent,
        &dir,
        "PUT",
        &format!("/v0.1/listeners/{LID}/certificates/localhost.pem"),
        Some(bundle("server2").as_bytes()),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        r.json()["details"],
        "Certificate applied to the running haproxy"
    );
    assert_eq!(https("other-ca.pem").map(|r| r.body).as_deref(), Some("ok"));
    assert!(https("ca.pem").is_none());
    assert_eq!(reloads(()), before, "no reload was needed");
    // The stored file is the new one too, so a later restart serves it.
    assert_eq!(std::fs::read_to_string(&crt).unwrap(), bundle("server2"));
}

#[test]
fn a_master_left_without_workers_is_replaced() {
    let dir = TempDir::new("lst");
    let agent = Agent::start(&dir, "");
    let lb = Lb::new();
    assert_eq!(upload(&agent, &dir, &lb.config("v1")).status, 201);
    assert_eq!(action(&agent, &dir, "start").status, 202);
    let master_sock = dir.path(&format!("state/listeners/{LID}/run/master.sock"));
    let worker = |proc: &str| -> Option<String> {
        let mut in_workers = false;
        for line in proc.lines() {
            if line.starts_with("# ") {
                in_workers = line.trim() == "# workers";
            } else if in_workers && line.contains("worker") {
                return line.split_whitespace().next().map(str::to_string);
            }
        }
        None
    };
    let first = worker(&haproxy_cli(&master_sock, "show proc")).unwrap();
    common::run(std::process::Command::new("kill").args(["-TERM", &first]));
    wait_for("a serving haproxy again", Duration::from_secs(20), || {
        lb.get().is_some() && status(&agent, &dir)["status"] == "ACTIVE"
    });
    let now = worker(&haproxy_cli(&master_sock, "show proc")).unwrap();
    assert_ne!(now, first);
}

/// The status word of `server` in `show stat` on the listener's own socket.
fn server_status(dir: &TempDir, server: &str) -> String {
    let sock = dir.path(&format!("state/listeners/{LID}/run/stats.sock"));
    let stat = haproxy_cli(&sock, "show stat");
    stat.lines()
        .find(|l| l.split(',').nth(1) == Some(server))
        .and_then(|l| l.split(',').nth(17))
        .unwrap_or_default()
        .to_string()
}

/// A member found down stays down across reloads, whether HAProxy reads it back from the
/// config's server-state file (Octavia's template names one: then no request reaches it under
/// continuous traffic) or the agent tells the new worker through the runtime API.
#[test]
fn a_down_member_stays_down_across_reloads() {
    for state_file in [true, false] {
        let dir = TempDir::new("health");
        let agent = Agent::start(&dir, "");
        let (fe, up, closed) = (free_port(), http_backend(), free_port());
        let (global, load) = if state_file {
            let f = dir.path(&format!("state/{LID}/servers-state"));
            (
                format!("    server-state-file {}\n", f.display()),
                "    load-server-state-from-file global\n",
            )
        } else {
            (String::new(), "")
        };
        // No retry, no redispatch: a request sent to the closed member fails.
        let cfg = format!(
            "global\n    maxconn 256\n{global}defaults\n    mode http\n    retries 0\n    timeout connect 1s\n    timeout client 10s\n    timeout server 10s\n\
frontend {LID}\n    bind 127.0.0.1:{fe}\n    default_backend pool-1\n\
backend pool-1\n{load}    balance roundrobin\n    server m-up 127.0.0.1:{up} check inter 2s fall 1 rise 1\n    server m-down 127.0.0.1:{closed} check inter 2s fall 1 rise 1\n"
        );
        assert_eq!(upload(&agent, &dir, &cfg).status, 201);
        assert_eq!(action(&agent, &dir, "start").status, 202);
        wait_for(
            "the closed member to be found down",
            Duration::from_secs(10),
            || server_status(&dir, "m-down") == "DOWN",
        );
        let stop = Arc::new(AtomicBool::new(false));
        let failed = Arc::new(AtomicUsize::new(0));
        let traffic = {
            let (stop, failed) = (stop.clone(), failed.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let url = format!("http://127.0.0.1:{fe}/");
                    match curl(&["--max-time", "3", &url]) {
                        Ok(r) if r.status == 200 => {}
                        _ => {
                            failed.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
            })
        };
        for i in 0..20 {
            assert_eq!(action(&agent, &dir, "reload").status, 202, "reload {i}");
            // Checks run every 2 s: right after a reload only the kept state can say DOWN.
            let now = server_status(&dir, "m-down");
            assert!(
                now.starts_with("DOWN"),
                "state_file {state_file}, reload {i}: {now}"
            );
        }
        stop.store(true, Ordering::SeqCst);
        traffic.join().unwrap();
        // Through the runtime API the new worker takes traffic a moment before it is told:
        // the documented window. With the file, none.
        if state_file {
            assert_eq!(failed.load(Ordering::SeqCst), 0);
            let kept = std::fs::read_to_string(dir.path(&format!("state/{LID}/servers-state")));
            assert!(kept.unwrap().contains("m-down"));
        }
    }
}
