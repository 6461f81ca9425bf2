//! What a listener is and how it is doing, from its config text and its `show stat` rows
//! (DESIGN section 5): type, pools (backends) and members (servers) with amphora API statuses.

use serde::Serialize;

use crate::haproxy::StatRow;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ListenerType {
    #[serde(rename = "TCP")]
    Tcp,
    #[serde(rename = "HTTP")]
    Http,
    #[serde(rename = "TERMINATED_HTTPS")]
    TerminatedHttps,
}

/// A `bind` with `ssl` terminates TLS; otherwise `mode http` is HTTP, and HAProxy's default
/// mode is TCP.
pub fn listener_type(config: &str) -> ListenerType {
    let mut http = false;
    for line in config.lines() {
        let line = line.split('#').next().unwrap_or("");
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.first() {
            Some(&"bind") if words.contains(&"ssl") => return ListenerType::TerminatedHttps,
            Some(&"mode") if words.get(1) == Some(&"http") => http = true,
            _ => {}
        }
    }
    if http {
        ListenerType::Http
    } else {
        ListenerType::Tcp
    }
}

/// The frontends (and `listen` sections) of a config with their types: an API 1.0 load
/// balancer's config holds one frontend per listener, named by the listener's id. A frontend
/// without a `mode` takes the one of the `defaults` section before it.
pub fn frontends(config: &str) -> Vec<(String, ListenerType)> {
    let mut out = Vec::new();
    let mut default_http = false;
    // (keyword, name, body lines) of the section being read.
    let mut section: Option<(&str, &str, Vec<&str>)> = None;
    let mut finish = |s: Option<(&str, &str, Vec<&str>)>, default_http: &mut bool| {
        let Some((keyword, name, body)) = s else {
            return;
        };
        let body = body.join("\n");
        let kind = listener_type(&body);
        let explicit_mode = body
            .lines()
            .any(|l| l.split('#').next().unwrap_or("").split_whitespace().next() == Some("mode"));
        match keyword {
            "defaults" => *default_http = kind == ListenerType::Http,
            "frontend" | "listen" if !name.is_empty() => {
                let kind = if kind == ListenerType::Tcp && !explicit_mode && *default_http {
                    ListenerType::Http
                } else {
                    kind
                };
                out.push((name.to_string(), kind));
            }
            _ => {}
        }
    };
    for line in config.lines() {
        let starts_section = !line.starts_with(char::is_whitespace) && !line.starts_with('#');
        let mut words = line.split_whitespace();
        match (starts_section, words.next()) {
            (
                true,
                Some(
                    k @ ("global" | "defaults" | "frontend" | "backend" | "listen" | "peers"
                    | "resolvers" | "userlist" | "program" | "cache" | "mailers" | "ring"),
                ),
            ) => {
                finish(section.take(), &mut default_http);
                section = Some((k, words.next().unwrap_or(""), Vec::new()));
            }
            _ => {
                if let Some((_, _, body)) = section.as_mut() {
                    body.push(line);
                }
            }
        }
    }
    finish(section.take(), &mut default_http);
    out
}

/// A member's status word for the amphora API.
fn member_status(stat: &str) -> &'static str {
    let word = crate::haproxy::status_word(stat);
    match word {
        "UP" => "UP",
        "DOWN" => "DOWN",
        "MAINT" => "MAINT",
        "DRAIN" | "NOLB" => "DRAIN",
        "no" if stat.starts_with("no check") => "NO_CHECK",
        _ => "DOWN",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pool {
    pub uuid: String,
    pub status: &'static str,
    /// `[{"<server>": "<status>"}]`, in config order.
    pub members: Vec<serde_json::Map<String, serde_json::Value>>,
}

/// Pools from `show stat`: a backend whose row says DOWN is DOWN; one with some members down
/// (or in maintenance) is DEGRADED; otherwise UP.
pub fn pools(rows: &[StatRow]) -> Vec<Pool> {
    let mut pools: Vec<Pool> = Vec::new();
    let mut degraded: Vec<bool> = Vec::new();
    for r in rows {
        let (Some(px), Some(sv), Some(st)) = (r.get("pxname"), r.get("svname"), r.get("status"))
        else {
            continue;
        };
        if sv == "FRONTEND" {
            continue;
        }
        let i = match pools.iter().position(|p| &p.uuid == px) {
            Some(i) => i,
            None => {
                pools.push(Pool {
                    uuid: px.clone(),
                    status: "UP",
                    members: Vec::new(),
                });
                degraded.push(false);
                pools.len() - 1
            }
        };
        if sv == "BACKEND" {
            if member_status(st) == "DOWN" {
                pools[i].status = "DOWN";
            }
            continue;
        }
        let ms = member_status(st);
        if ms == "DOWN" || ms == "MAINT" {
            degraded[i] = true;
        }
        let mut m = serde_json::Map::new();
        m.insert(sv.clone(), serde_json::Value::from(ms));
        pools[i].members.push(m);
    }
    for (p, d) in pools.iter_mut().zip(degraded) {
        if p.status == "UP" && d {
            p.status = "DEGRADED";
        }
    }
    // A frontend-only proxy shows up with no members and no BACKEND row: not a pool.
    pools.retain(|p| !p.members.is_empty() || p.status == "DOWN");
    pools
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::haproxy::parse_stat;

    #[test]
    fn types() {
        assert_eq!(
            listener_type("frontend f\n  mode tcp\n  bind :80\n"),
            ListenerType::Tcp
        );
        assert_eq!(listener_type("defaults\n  mode http\n"), ListenerType::Http);
        assert_eq!(
            listener_type("frontend f\n  mode http\n  bind :443 ssl crt /x.pem\n"),
            ListenerType::TerminatedHttps
        );
        assert_eq!(
            listener_type("# mode http\nfrontend f\n  bind :80 # ssl\n"),
            ListenerType::Tcp
        );
        assert_eq!(listener_type(""), ListenerType::Tcp);
    }

    #[test]
    fn members_and_pools() {
        assert_eq!(member_status("UP 1/3"), "UP");
        assert_eq!(member_status("DOWN 1/2"), "DOWN");
        assert_eq!(member_status("MAINT (resolution)"), "MAINT");
        assert_eq!(member_status("DRAIN"), "DRAIN");
        assert_eq!(member_status("no check"), "NO_CHECK");
        let rows = parse_stat(
            "# pxname,svname,status\nfe,FRONTEND,OPEN\nbe,a,UP\nbe,b,DOWN\nbe,c,MAINT\nbe,BACKEND,UP\n\
ok,x,UP\nok,y,no check\nok,BACKEND,UP\ndead,z,DOWN\ndead,BACKEND,DOWN\n",
        )
        .unwrap();
        let p = pools(&rows);
        let summary: Vec<(&str, &str, usize)> = p
            .iter()
            .map(|p| (p.uuid.as_str(), p.status, p.members.len()))
            .collect();
        assert_eq!(
            summary,
            [("be", "DEGRADED", 3), ("ok", "UP", 2), ("dead", "DOWN", 1)]
        );
        assert_eq!(p[0].members[2]["c"], "MAINT");
        assert_eq!(p[1].members[1]["y"], "NO_CHECK");
    }

    #[test]
    fn frontends_of_a_load_balancer_config() {
        let cfg =
            "global\n    daemon\ndefaults\n    mode http\nfrontend l1\n    bind 127.0.0.1:80\n\
                   frontend l2\n    mode tcp\n    bind :81\nbackend p1:l1\n    mode http\n\
                   listen l3\n    bind :443 ssl crt-list /certs/l3.pem\n    mode http\n";
        assert_eq!(
            frontends(cfg),
            vec![
                ("l1".to_string(), ListenerType::Http),
                ("l2".to_string(), ListenerType::Tcp),
                ("l3".to_string(), ListenerType::TerminatedHttps),
            ]
        );
        assert_eq!(
            frontends("frontend f\n  bind :1\n"),
            vec![("f".to_string(), ListenerType::Tcp)]
        );
        assert!(frontends("").is_empty());
    }
}
