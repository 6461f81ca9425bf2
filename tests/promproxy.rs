//! Octavia's metrics proxy as the agent runs it (issue 16, item 2): on 127.0.0.1:9102 where
//! HAProxy runs, HAProxy's exporter in Octavia's names, 502 while the exporter is down. Each test
//! has network namespaces of its own, so ports 9101 and 9102 are its own too. The comparison
//! with Octavia's own proxy is in tests/octavia.rs.

mod common;

use common::{curl_in, Agent, Netns, TempDir};
use std::time::Duration;

/// An API 1.0 load balancer: a listener `f` on 127.0.0.1:8080 with pool `pool1` of one member,
/// and HAProxy's exporter where Octavia's template puts it.
fn lb_with_exporter(member: u16) -> String {
    common::http_lb(
        &["127.0.0.1:8080"],
        &format!(
            "    default_backend pool1\n\
frontend prometheus-exporter-internal-endpoint\n    bind 127.0.0.1:9101\n\
    http-request use-service prometheus-exporter if {{ path /metrics }}\n\
    http-request reject\n\
backend pool1\n    server member1 127.0.0.1:{member}\n"
        ),
    )
}

/// The agent runs in one namespace and HAProxy in the tenant namespace: the proxy serves in
/// the tenant's, never in the agent's.
#[test]
fn the_metrics_proxy_serves_where_haproxy_runs() {
    const TEST: &str = "the_metrics_proxy_serves_where_haproxy_runs";
    if common::lacks_root(TEST, "for network namespaces") {
        return;
    }
    let (home, tenant) = (Netns::new("prh"), Netns::new("prt"));
    let dir = TempDir::new("promproxy");
    let member = common::http_backend_in(&tenant.name);
    let agent = Agent::start_in(
        &dir,
        &format!(
            "prometheus_proxy: true\ntenant_namespace: {}\n",
            tenant.name
        ),
        Some(&home.name),
    );
    common::start_lb(&agent, &dir, "lb1", &lb_with_exporter(member));
    let get = |url: &str| curl_in(Some(&tenant.name), &[url]);
    common::wait_for("the exporter", Duration::from_secs(10), || {
        get("http://127.0.0.1:9101/metrics").is_ok_and(|r| r.status == 200)
    });
    for _ in 0..3 {
        assert_eq!(get("http://127.0.0.1:8080/").unwrap().status, 200);
    }

    let r = get("http://127.0.0.1:9102/any/path").unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("text/plain; version=0.0.4"));
    assert_eq!(r.header("cache-control"), Some("no-cache"));
    assert_eq!(r.header("connection"), Some("close"));
    assert!(
        r.body.starts_with("# HELP octavia_loadbalancer_cpu "),
        "{}",
        r.body
    );
    for line in [
        "# TYPE octavia_loadbalancer_memory gauge\n",
        "\noctavia_listener_http_requests_total{listener=\"f\"} 3\n",
        "\noctavia_pool_active_members{pool=\"pool1\"} 1\n",
        "\noctavia_member_sessions_total{pool=\"pool1\",member=\"member1\"} 3\n",
        "\n# TYPE octavia_loadbalancer_current_connections gauge\n",
    ] {
        assert!(r.body.contains(line), "{line:?} in\n{}", r.body);
    }
    for absent in ["haproxy_", "prometheus-exporter", "proxy=", "server="] {
        assert!(!r.body.contains(absent), "{absent:?} in\n{}", r.body);
    }
    let refused = curl_in(Some(&home.name), &["http://127.0.0.1:9102/"]);
    assert!(
        refused.is_err(),
        "served in the agent's namespace: {refused:?}"
    );

    // HAProxy stopped: no exporter, so 502, said once in the log; started again, served again.
    let stop = common::call(&agent, &dir, "PUT", "/1.0/loadbalancer/lb1/stop", None);
    assert_eq!(stop.status, 202, "{}", stop.body);
    for _ in 0..2 {
        assert_eq!(get("http://127.0.0.1:9102/metrics").unwrap().status, 502);
    }
    let start = common::call(&agent, &dir, "PUT", "/1.0/loadbalancer/lb1/start", None);
    assert_eq!(start.status, 202, "{}", start.body);
    common::wait_for("the exporter again", Duration::from_secs(10), || {
        get("http://127.0.0.1:9102/").is_ok_and(|r| r.status == 200)
    });
    let log = agent.app_log();
    assert_eq!(log.matches("answering 502").count(), 1, "{log}");
    assert!(log.contains("answers again"), "{log}");
    let post = curl_in(
        Some(&tenant.name),
        &["-X", "POST", "http://127.0.0.1:9102/"],
    )
    .unwrap();
    assert_eq!(post.status, 405);
}
