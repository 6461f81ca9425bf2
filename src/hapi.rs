//! HApi's domain logic (spec/hapi.md): node lists by status and enabling/disabling a node in
//! every backend of a frontend. Knows HAProxy, not HTTP.

use crate::haproxy::{Command, HaproxyError, Runtime, StatRow};
use crate::names::{InvalidName, ProxyName};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeStatus {
    Up,
    Down,
    Maint,
}

impl NodeStatus {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "up" => Some(NodeStatus::Up),
            "down" => Some(NodeStatus::Down),
            "maint" => Some(NodeStatus::Maint),
            _ => None,
        }
    }

    /// Whether a `show stat` status belongs to this class: `UP` and its transitional `UP 1/3`,
    /// every `MAINT...` form, every `DOWN...` form.
    fn matches(self, status: &str) -> bool {
        let word = crate::haproxy::status_word(status);
        match self {
            NodeStatus::Up => word == "UP",
            NodeStatus::Down => word == "DOWN",
            NodeStatus::Maint => word == "MAINT",
        }
    }
}

/// `"<backend>: <server>"` for each server row in the given status; with a prefix, only servers
/// named `<prefix><digits>`.
pub fn nodes(rows: &[StatRow], status: NodeStatus, prefix: Option<&str>) -> Vec<String> {
    rows.iter()
        .filter_map(|r| {
            let (px, sv, st) = (r.get("pxname")?, r.get("svname")?, r.get("status")?);
            let is_server = sv != "FRONTEND" && sv != "BACKEND";
            let named = match prefix {
                Some(p) => sv
                    .strip_prefix(p)
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())),
                None => true,
            };
            (is_server && named && status.matches(st)).then(|| format!("{px}: {sv}"))
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Enable,
    Disable,
}

impl Action {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "enable" => Some(Action::Enable),
            "disable" => Some(Action::Disable),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Enable => "enable",
            Action::Disable => "disable",
        }
    }
}

/// The server a node number names: `<prefix><node>`, or the node itself without a prefix.
pub fn server_name(prefix: Option<&str>, node: &str) -> Result<ProxyName, InvalidName> {
    ProxyName::parse(&format!("{}{node}", prefix.unwrap_or("")))
}

/// Why a pool change failed part-way: which backend, and what was already changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolError {
    pub backend: ProxyName,
    pub server: ProxyName,
    pub done: Vec<ProxyName>,
    pub cause: HaproxyError,
}

/// Applies `action` to `server` in each backend, in order, stopping at the first refusal.
pub fn set_server(
    rt: &Runtime,
    backends: &[ProxyName],
    server: &ProxyName,
    action: Action,
) -> Result<(), PoolError> {
    let mut done = Vec::new();
    for b in backends {
        let cmd = match action {
            Action::Enable => Command::EnableServer(b.clone(), server.clone()),
            Action::Disable => Command::DisableServer(b.clone(), server.clone()),
        };
        if let Err(cause) = rt.execute(&cmd) {
            return Err(PoolError {
                backend: b.clone(),
                server: server.clone(),
                done,
                cause,
            });
        }
        done.push(b.clone());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::haproxy::parse_stat;

    const STAT: &str = "# pxname,svname,status\n\
fe,FRONTEND,OPEN\n\
be,lamp1,UP\n\
be,lamp2,DOWN\n\
be,lamp3,MAINT\n\
be,lamp4,UP 1/3\n\
be,lamp5,DOWN 1/2\n\
be,lamp6,MAINT (resolution)\n\
be,lamp7,no check\n\
be,other8,UP\n\
be,lampX,UP\n\
be,UPPER,DRAIN\n\
be,BACKEND,UP\n";

    #[test]
    fn nodes_by_status_and_prefix() {
        let rows = parse_stat(STAT).unwrap();
        let up = nodes(&rows, NodeStatus::Up, Some("lamp"));
        assert_eq!(up, ["be: lamp1", "be: lamp4"]);
        let all_up = nodes(&rows, NodeStatus::Up, None);
        assert_eq!(
            all_up,
            ["be: lamp1", "be: lamp4", "be: other8", "be: lampX"]
        );
        assert_eq!(
            nodes(&rows, NodeStatus::Down, Some("lamp")),
            ["be: lamp2", "be: lamp5"]
        );
        assert_eq!(
            nodes(&rows, NodeStatus::Maint, None),
            ["be: lamp3", "be: lamp6"]
        );
        assert!(nodes(&[], NodeStatus::Up, None).is_empty());
    }

    #[test]
    fn words_and_names() {
        assert_eq!(NodeStatus::parse("up"), Some(NodeStatus::Up));
        assert_eq!(NodeStatus::parse("UP"), None);
        assert_eq!(Action::parse("disable"), Some(Action::Disable));
        assert_eq!(Action::parse("drain"), None);
        assert_eq!(server_name(Some("lamp"), "1").unwrap().as_str(), "lamp1");
        assert_eq!(server_name(None, "web2").unwrap().as_str(), "web2");
        assert!(server_name(Some("lamp"), "1;shutdown").is_err());
        assert!(server_name(None, "").is_err());
    }
}
