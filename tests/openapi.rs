//! The OpenAPI document (issue 17, item 3): it describes exactly the routes the agent has
//! (`lbagent --routes`), and the agent serves it at `GET /openapi.json`. scripts/api-fuzz
//! fuzzes the agent from it (schemathesis; `.ci/run`).

mod common;

use common::{call, Agent, TempDir, BIN};
use serde_json::Value;
use std::collections::BTreeSet;
use std::process::Command;

fn document() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json"))
        .expect("openapi.json at the top of the repository");
    serde_json::from_str(&text).expect("openapi.json is JSON")
}

#[test]
fn the_document_lists_exactly_the_routes() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if ["parameters", "summary", "description"].contains(&method.as_str()) {
                continue;
            }
            documented.insert(format!("{} {path}", method.to_uppercase()));
            let responses = op["responses"].as_object().unwrap();
            assert!(
                responses.contains_key("401"),
                "{method} {path}: no 401 (every route asks for credentials when they are set)"
            );
        }
    }
    let out = Command::new(BIN).arg("--routes").output().unwrap();
    let routes: BTreeSet<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let missing: Vec<_> = routes.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&routes).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "undocumented: {missing:?}; documented but not routes: {extra:?}"
    );
}

#[test]
fn the_agent_serves_the_document() {
    let dir = TempDir::new("openapi");
    let agent = Agent::start(&dir, "");
    let r = call(&agent, &dir, "GET", "/openapi.json", None);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(serde_json::from_str::<Value>(&r.body).unwrap(), document());
}
