//! The heartbeat's message, version 3 (AGENT.md 1.3): one `listeners` entry per frontend and
//! one `pools` entry per backend of every API-1.0 load balancer, with statistics sent as deltas
//! since the last message. The last absolute counters are kept so that an agent restart does
//! not send whole counters again.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::{Deserialize, Serialize};

use crate::haproxy::stat_columns;

/// The `show stat` columns a heartbeat reads, in this order.
const COLUMNS: [&str; 9] = [
    "pxname", "svname", "status", "scur", "stot", "bin", "bout", "ereq", "weight",
];

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

fn num(v: &str) -> u64 {
    v.parse().unwrap_or(0)
}

/// Octavia's internal Prometheus proxies are not the user's listeners or pools.
fn internal(pxname: &str) -> bool {
    pxname.contains("prometheus")
}

/// A JSON string. HAProxy's names and words are plain ASCII as a rule, so most need no escape.
fn string(out: &mut String, s: &str) {
    out.push('"');
    if !s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        out.push_str(s);
        out.push('"');
        return;
    }
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// One `"name": {...}` entry of an object, with the comma that separates it from the last.
fn key(out: &mut String, first: &mut bool, name: &str) {
    if !std::mem::take(first) {
        out.push(',');
    }
    string(out, name);
    out.push(':');
}

/// Builds messages one after another, keeping its buffers (a message of thousands of members
/// is some 100 KB of text; fresh buffers every heartbeat cost page faults). Written as compact
/// JSON text in one pass, with no value tree: a backend's servers come just before its BACKEND
/// row, which closes its pool. The message comes in two parts, `{"id":...,"listeners":{...},
/// "pools":` and the rest, which stays the same while no member changes (see `envelope`).
#[derive(Default)]
pub struct Builder {
    listeners: String,
    /// `{` and the pools so far; the message's tail once finished.
    pools: String,
    /// The `"member":"word"` entries of the backend being read.
    members: String,
    /// `{"id":...,"pools":`, once finished.
    head: String,
    count: usize,
    now: Counters,
}

impl Builder {
    pub fn begin(&mut self) {
        self.listeners.clear();
        self.pools.clear();
        self.pools.push('{');
        self.members.clear();
        self.head.clear();
        self.count = 0;
        self.now.clear();
    }

    /// One load balancer's `show stat`, as HAProxy replied; `last` holds the counters last sent.
    pub fn add(&mut self, reply: &[u8], last: &Counters) {
        let Some(rows) = stat_columns(reply, COLUMNS) else {
            return;
        };
        // A proxy's rows come together: its name is searched once, not on every row.
        let (mut last_px, mut skip) = ("", true);
        for [px, sv, status, scur, stot, bin, bout, ereq, weight] in rows {
            if px != last_px {
                (last_px, skip) = (px, px.is_empty() || internal(px));
            }
            if skip || sv.is_empty() {
                continue;
            }
            match sv {
                "FRONTEND" => {
                    let c = Counts {
                        bin: num(bin),
                        bout: num(bout),
                        ereq: num(ereq),
                        stot: num(stot),
                    };
                    let l = last.get(px).copied().unwrap_or_default();
                    let mut first = self.listeners.is_empty();
                    key(&mut self.listeners, &mut first, px);
                    self.listeners.push_str("{\"status\":");
                    string(&mut self.listeners, status);
                    let _ = write!(
                        self.listeners,
                        ",\"stats\":{{\"rx\":{},\"tx\":{},\"conns\":{},\"totconns\":{},\"ereq\":{}}}}}",
                        delta(c.bin, l.bin),
                        delta(c.bout, l.bout),
                        num(scur),
                        delta(c.stot, l.stot),
                        delta(c.ereq, l.ereq),
                    );
                    self.now.insert(px.to_string(), c);
                }
                "BACKEND" => {
                    let mut first = self.pools.len() == 1;
                    key(&mut self.pools, &mut first, px);
                    self.pools.push_str("{\"status\":");
                    string(&mut self.pools, status);
                    self.pools.push_str(",\"members\":{");
                    self.pools.push_str(&self.members);
                    self.pools.push_str("}}");
                    self.members.clear();
                }
                member => {
                    // HAProxy shows a drained server as UP with weight 0.
                    let word = if status == "UP" && weight == "0" {
                        "DRAIN"
                    } else {
                        status
                    };
                    let mut first = self.members.is_empty();
                    key(&mut self.members, &mut first, member);
                    string(&mut self.members, word);
                    self.count += 1;
                }
            }
        }
    }

    /// The message as its head and its tail, and how many members it reports; `counters`
    /// becomes this message's.
    pub fn finish(
        &mut self,
        amphora_id: &str,
        seq: u64,
        counters: &mut Counters,
    ) -> (&str, &str, usize) {
        *counters = std::mem::take(&mut self.now);
        self.head.push_str("{\"id\":");
        string(&mut self.head, amphora_id);
        let _ = write!(
            self.head,
            ",\"seq\":{seq},\"ver\":{VERSION},\"listeners\":{{{}}},\"pools\":",
            self.listeners
        );
        self.pools.push_str("}}");
        (&self.head, &self.pools, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    /// A message for these replies, and its member count.
    fn build(id: &str, seq: u64, stats: &[String], counters: &mut Counters) -> (Value, usize) {
        let mut b = Builder::default();
        b.begin();
        for reply in stats {
            b.add(reply.as_bytes(), counters);
        }
        let (head, tail, members) = b.finish(id, seq, counters);
        (
            serde_json::from_str(&format!("{head}{tail}")).unwrap(),
            members,
        )
    }

    const STAT: &str = "# pxname,svname,status,scur,stot,bin,bout,ereq,weight\n\
l1,FRONTEND,OPEN,2,10,1000,2000,1,,\n\
p1:l1,s-up,UP,0,5,0,0,,1\n\
p1:l1,s-down,DOWN,0,0,0,0,,1\n\
p1:l1,s-drain,UP,0,0,0,0,,0\n\
p1:l1,s-half,UP 1/3,0,0,0,0,,1\n\
p1:l1,BACKEND,UP,0,5,0,0,,2\n\
prometheus-exporter-internal-endpoint,FRONTEND,OPEN,0,0,0,0,0,,\n\
prometheus-exporter-internal,BACKEND,UP,0,0,0,0,,0\n";

    fn rows(text: &str) -> String {
        text.to_string()
    }

    #[test]
    fn frontends_pools_and_member_words() {
        let mut counters = Counters::new();
        let (msg, members) = build("amp", 0, &[rows(STAT)], &mut counters);
        assert_eq!(members, 4);
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
        let msg = build("amp", 1, &[rows(&later)], &mut counters).0;
        assert_eq!(
            msg["listeners"]["l1"],
            json!({"status": "FULL", "stats": {"rx": 500, "tx": 100, "conns": 3, "totconns": 5, "ereq": 0}})
        );
        // HAProxy restarted: its counters start again from zero.
        let restarted = STAT.replace(
            "l1,FRONTEND,OPEN,2,10,1000,2000,1",
            "l1,FRONTEND,OPEN,1,2,30,40,0",
        );
        let msg = build("amp", 2, &[rows(&restarted)], &mut counters).0;
        assert_eq!(msg["listeners"]["l1"]["stats"]["rx"], 30);
        assert_eq!(msg["listeners"]["l1"]["stats"]["totconns"], 2);
    }

    #[test]
    fn no_load_balancer_is_an_empty_message() {
        let mut counters = Counters::new();
        let msg = build("amp", 7, &[], &mut counters).0;
        assert_eq!(
            msg,
            json!({"id": "amp", "seq": 7, "ver": 3, "listeners": {}, "pools": {}})
        );
    }

    #[test]
    fn names_are_json_strings_whatever_they_hold() {
        let odd = "# pxname,svname,status,weight\nb\"e\\1,s\u{1},UP,1\nb\"e\\1,BACKEND,UP,1\n";
        let msg = build("amp", 0, &[odd.to_string()], &mut Counters::new()).0;
        assert_eq!(
            msg["pools"],
            json!({"b\"e\\1": {"status": "UP", "members": {"s\u{1}": "UP"}}})
        );
    }

    #[test]
    fn rows_without_a_proxy_name_are_left_out() {
        let text =
            "# pxname,svname,status,weight\n,s0,UP,1\n,BACKEND,UP,1\nb,s1,UP,1\nb,BACKEND,UP,1\n";
        let (msg, members) = build("amp", 0, &[text.to_string()], &mut Counters::new());
        assert_eq!(members, 1);
        assert_eq!(
            msg["pools"],
            json!({"b": {"status": "UP", "members": {"s1": "UP"}}})
        );
    }

    #[test]
    fn counters_are_octavias_file_format() {
        let c: Counters =
            serde_json::from_str(r#"{"l1": {"bin": 1, "bout": 2, "ereq": 3, "stot": 4}}"#).unwrap();
        assert_eq!(c["l1"].stot, 4);
    }
}
