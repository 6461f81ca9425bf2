//! The heartbeat's message, version 3 (AGENT.md 1.3): one `listeners` entry per frontend and
//! one `pools` entry per backend of every API-1.0 load balancer, with statistics sent as deltas
//! since the last message. The last absolute counters are kept so that an agent restart does
//! not send whole counters again.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::haproxy::StatRow;

/// The message version: statistics are deltas.
pub const VERSION: u64 = 3;

/// The absolute counters of one frontend, as Octavia's agent keeps them
/// (`stats_counters.json`: `{listener_id: {"bin", "bout", "ereq", "stot"}}`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub bin: u64,
    pub bout: u64,
    pub ereq: u64,
    pub stot: u64,
}

pub type Counters = BTreeMap<String, Counts>;

/// Since `last`; the current value when HAProxy restarted and its counters went down.
fn delta(now: u64, last: u64) -> u64 {
    now.checked_sub(last).unwrap_or(now)
}

fn num(row: &StatRow, key: &str) -> u64 {
    row.get(key).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// Octavia's internal Prometheus proxies are not the user's listeners or pools.
fn internal(pxname: &str) -> bool {
    pxname.contains("prometheus")
}

/// The message for `show stat` of each running load balancer; `counters` goes in as the last
/// sent and comes out as this message's.
pub fn build(amphora_id: &str, seq: u64, stats: &[Vec<StatRow>], counters: &mut Counters) -> Value {
    let mut listeners = Map::new();
    let mut pools: BTreeMap<String, (String, Map<String, Value>)> = BTreeMap::new();
    let mut now = Counters::new();
    for row in stats.iter().flatten() {
        let (Some(px), Some(sv), Some(status)) =
            (row.get("pxname"), row.get("svname"), row.get("status"))
        else {
            continue;
        };
        if internal(px) {
            continue;
        }
        match sv.as_str() {
            "FRONTEND" => {
                let c = Counts {
                    bin: num(row, "bin"),
                    bout: num(row, "bout"),
                    ereq: num(row, "ereq"),
                    stot: num(row, "stot"),
                };
                let last = counters.get(px).copied().unwrap_or_default();
                listeners.insert(
                    px.clone(),
                    json!({
                        "status": status,
                        "stats": {
                            "rx": delta(c.bin, last.bin),
                            "tx": delta(c.bout, last.bout),
                            "conns": num(row, "scur"),
                            "totconns": delta(c.stot, last.stot),
                            "ereq": delta(c.ereq, last.ereq),
                        },
                    }),
                );
                now.insert(px.clone(), c);
            }
            "BACKEND" => pools.entry(px.clone()).or_default().0 = status.clone(),
            member => {
                // HAProxy shows a drained server as UP with weight 0.
                let word = if status == "UP" && row.get("weight").is_some_and(|w| w == "0") {
                    "DRAIN"
                } else {
                    status
                };
                let pool = pools.entry(px.clone()).or_default();
                pool.1.insert(member.to_string(), Value::from(word));
            }
        }
    }
    *counters = now;
    let pools: Map<String, Value> = pools
        .into_iter()
        .map(|(name, (status, members))| (name, json!({ "status": status, "members": members })))
        .collect();
    json!({
        "id": amphora_id,
        "seq": seq,
        "ver": VERSION,
        "listeners": listeners,
        "pools": pools,
    })
}

/// How many members a message reports (for the log when it is too large to send).
pub fn member_count(msg: &Value) -> usize {
    msg["pools"].as_object().map_or(0, |p| {
        p.values()
            .map(|v| v["members"].as_object().map_or(0, Map::len))
            .sum()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::haproxy::parse_stat;

    const STAT: &str = "# pxname,svname,status,scur,stot,bin,bout,ereq,weight\n\
l1,FRONTEND,OPEN,2,10,1000,2000,1,,\n\
p1:l1,s-up,UP,0,5,0,0,,1\n\
p1:l1,s-down,DOWN,0,0,0,0,,1\n\
p1:l1,s-drain,UP,0,0,0,0,,0\n\
p1:l1,s-half,UP 1/3,0,0,0,0,,1\n\
p1:l1,BACKEND,UP,0,5,0,0,,2\n\
prometheus-exporter-internal-endpoint,FRONTEND,OPEN,0,0,0,0,0,,\n\
prometheus-exporter-internal,BACKEND,UP,0,0,0,0,,0\n";

    fn rows(text: &str) -> Vec<StatRow> {
        parse_stat(text).unwrap()
    }

    #[test]
    fn frontends_pools_and_member_words() {
        let mut counters = Counters::new();
        let msg = build("amp", 0, &[rows(STAT)], &mut counters);
        assert_eq!(msg["id"], "amp");
        assert_eq!(msg["ver"], 3);
        assert_eq!(
            msg["listeners"],
            json!({"l1": {"status": "OPEN",
                          "stats": {"rx": 1000, "tx": 2000, "conns": 2, "totconns": 10, "ereq": 1}}})
        );
        assert_eq!(
            msg["pools"],
            json!({"p1:l1": {"status": "UP", "members": {
                "s-up": "UP", "s-down": "DOWN", "s-drain": "DRAIN", "s-half": "UP 1/3"}}})
        );
        assert_eq!(member_count(&msg), 4);
        assert_eq!(
            counters["l1"],
            Counts {
                bin: 1000,
                bout: 2000,
                ereq: 1,
                stot: 10
            }
        );
    }

    #[test]
    fn deltas_since_the_last_message_and_after_a_restart() {
        let mut counters = Counters::new();
        build("amp", 0, &[rows(STAT)], &mut counters);
        let later = STAT.replace(
            "l1,FRONTEND,OPEN,2,10,1000,2000,1",
            "l1,FRONTEND,FULL,3,15,1500,2100,1",
        );
        let msg = build("amp", 1, &[rows(&later)], &mut counters);
        assert_eq!(
            msg["listeners"]["l1"],
            json!({"status": "FULL", "stats": {"rx": 500, "tx": 100, "conns": 3, "totconns": 5, "ereq": 0}})
        );
        // HAProxy restarted: its counters start again from zero.
        let restarted = STAT.replace(
            "l1,FRONTEND,OPEN,2,10,1000,2000,1",
            "l1,FRONTEND,OPEN,1,2,30,40,0",
        );
        let msg = build("amp", 2, &[rows(&restarted)], &mut counters);
        assert_eq!(msg["listeners"]["l1"]["stats"]["rx"], 30);
        assert_eq!(msg["listeners"]["l1"]["stats"]["totconns"], 2);
    }

    #[test]
    fn no_load_balancer_is_an_empty_message() {
        let mut counters = Counters::new();
        let msg = build("amp", 7, &[], &mut counters);
        assert_eq!(
            msg,
            json!({"id": "amp", "seq": 7, "ver": 3, "listeners": {}, "pools": {}})
        );
    }

    #[test]
    fn counters_are_octavias_file_format() {
        let c: Counters =
            serde_json::from_str(r#"{"l1": {"bin": 1, "bout": 2, "ereq": 3, "stot": 4}}"#).unwrap();
        assert_eq!(c["l1"].stot, 4);
    }
}
