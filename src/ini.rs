//! The INI dialect of oslo.config files (Octavia's `amphora-agent.conf`): `[section]` headers,
//! `key = value` (or `key: value`) lines, `#` and `;` comments, indented continuation lines.
//! Hand-written: the format is a few rules, and no interpolation or typing is wanted here.

use std::collections::BTreeMap;

/// Sections by name, each its keys by name; the last of a repeated key wins, as in oslo.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ini {
    sections: BTreeMap<String, BTreeMap<String, String>>,
}

/// A line that is none of the above: its number (from 1) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IniError {
    pub line: usize,
    pub why: String,
}

impl Ini {
    pub fn get(&self, section: &str, key: &str) -> Option<&str> {
        self.sections.get(section)?.get(key).map(String::as_str)
    }

    pub fn parse(text: &str) -> Result<Ini, Vec<IniError>> {
        let mut ini = Ini::default();
        let mut errors = Vec::new();
        let mut section: Option<String> = None;
        // The key the previous line set, which an indented line continues.
        let mut last: Option<(String, String)> = None;
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            let err = |why: &str| IniError {
                line: i + 1,
                why: why.to_string(),
            };
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if raw.starts_with([' ', '\t']) {
                if let Some((s, k)) = &last {
                    if let Some(v) = ini.sections.get_mut(s).and_then(|m| m.get_mut(k)) {
                        v.push('\n');
                        v.push_str(line);
                        continue;
                    }
                }
                errors.push(err("an indented line continues no value"));
                continue;
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                let name = name.trim();
                if name.is_empty() {
                    errors.push(err("a section needs a name"));
                }
                ini.sections.entry(name.to_string()).or_default();
                section = Some(name.to_string());
                last = None;
                continue;
            }
            let Some(at) = line.find(['=', ':']) else {
                errors.push(err("expected [section] or key = value"));
                continue;
            };
            let (key, value) = (line[..at].trim(), line[at + 1..].trim());
            match (&section, key.is_empty()) {
                (None, _) => errors.push(err("a key before any [section]")),
                (Some(_), true) => errors.push(err("a value without a key")),
                (Some(s), false) => {
                    ini.sections
                        .entry(s.clone())
                        .or_default()
                        .insert(key.to_string(), value.to_string());
                    last = Some((s.clone(), key.to_string()));
                }
            }
        }
        if errors.is_empty() {
            Ok(ini)
        } else {
            Err(errors)
        }
    }

    /// Whether `text` looks like INI rather than YAML: its first line that says anything is a
    /// `[section]` header (a YAML config is a mapping, never a flow list on one line).
    pub fn looks_like(text: &str) -> bool {
        text.lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
            .is_some_and(|l| {
                l.strip_prefix('[')
                    .and_then(|l| l.strip_suffix(']'))
                    .is_some_and(|n| {
                        !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                    })
            })
    }
}

/// oslo.config's list: comma-separated, each item trimmed, empty items dropped.
pub fn list(value: &str) -> Vec<&str> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// oslo.config's booleans.
pub fn boolean(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_keys_comments_and_continuations() {
        let ini = Ini::parse(
            "# top\n[DEFAULT]\ndebug = False\n\n[health_manager]\n\
             controller_ip_port_list = 192.0.2.10:5555, [2001:db8::10]:5555\n\
             heartbeat_key: s3cret=with=equals\n; note\nlong = a\n  b\n",
        )
        .unwrap();
        assert_eq!(ini.get("DEFAULT", "debug"), Some("False"));
        assert_eq!(
            ini.get("health_manager", "heartbeat_key"),
            Some("s3cret=with=equals")
        );
        assert_eq!(ini.get("health_manager", "long"), Some("a\nb"));
        assert_eq!(
            list(
                ini.get("health_manager", "controller_ip_port_list")
                    .unwrap()
            ),
            ["192.0.2.10:5555", "[2001:db8::10]:5555"]
        );
        assert_eq!(ini.get("health_manager", "nope"), None);
        assert_eq!(ini.get("nope", "debug"), None);
    }

    #[test]
    fn every_bad_line_is_named() {
        let errs = Ini::parse("key = before\n[]\nwhat\n[s]\n = v\n").unwrap_err();
        let lines: Vec<usize> = errs.iter().map(|e| e.line).collect();
        assert_eq!(lines, [1, 2, 3, 5]);
    }

    #[test]
    fn ini_or_yaml() {
        assert!(Ini::looks_like("# c\n\n[DEFAULT]\ndebug = True\n"));
        assert!(!Ini::looks_like("port: 6000\n"));
        assert!(!Ini::looks_like("[a, b]\n"));
        assert!(!Ini::looks_like(""));
        assert_eq!(boolean("TRUE"), Some(true));
        assert_eq!(boolean("off"), Some(false));
        assert_eq!(boolean("perhaps"), None);
    }
}
