//! The health check keepalived tracks (Octavia's `vrrp_script`): `<state_dir>/vrrp/check_script.sh`
//! runs every script in `vrrp/check_scripts/` and fails when any fails, and
//! `check_scripts/haproxy_check_script.sh` runs `lbagent --vrrp-check <state_dir>`, which probes
//! each listener's HAProxy. Octavia's keepalived config names these paths under its
//! `base_path`, which is lbagent's state directory in Octavia mode.
//!
//! The scripts hold no listener list: the probe reads the listener store when it runs, so a
//! load balancer's start or stop takes effect at the next check without rewriting anything.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{listeners, store};

/// How long one HAProxy may take to answer the probe: below keepalived's check interval, so a
/// hung HAProxy fails the check rather than outliving it.
const PROBE_TIMEOUT: Duration = Duration::from_millis(900);

fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("vrrp")
}

/// The script keepalived's config tracks.
pub fn script_path(state_dir: &Path) -> PathBuf {
    dir(state_dir).join("check_script.sh")
}

/// `s` as one single-quoted shell word.
fn quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// keepalived runs these scripts itself (Octavia's configs name them): the agent never runs a
/// shell; the only words in them are paths it quotes.
fn main_script(scripts: &Path) -> String {
    format!(
        "#!/bin/sh\n\
# Written by lbagent: runs every check script and fails when any fails (keepalived tracks it).\n\
status=0\n\
for f in {}/*; do\n    [ -f \"$f\" ] || continue\n    sh \"$f\" || status=1\ndone\nexit $status\n",
        quoted(&scripts.to_string_lossy())
    )
}

fn haproxy_script(exe: &Path, state_dir: &Path) -> String {
    format!(
        "# Written by lbagent: fails when a listener's HAProxy does not answer on its stats socket.\n\
exec {} --vrrp-check {}\n",
        quoted(&exe.to_string_lossy()),
        quoted(&state_dir.to_string_lossy())
    )
}

/// Puts both scripts in place (0755), rewriting them only when they differ. Before keepalived
/// checks or runs a config that tracks them: a missing script fails `keepalived -t` and
/// disables the check at run time.
pub fn install(state_dir: &Path) -> io::Result<()> {
    let exe = std::env::current_exe()?;
    let scripts = dir(state_dir).join("check_scripts");
    store::ensure_dir(&scripts, 0o755)?;
    for (path, text) in [
        (script_path(state_dir), main_script(&scripts)),
        (
            scripts.join("haproxy_check_script.sh"),
            haproxy_script(&exe, state_dir),
        ),
    ] {
        if fs::read(&path).ok().as_deref() != Some(text.as_bytes()) {
            store::write_atomic(&path, text.as_bytes(), 0o755)?;
        }
    }
    Ok(())
}

/// `lbagent --vrrp-check <state_dir>`: Ok with how many listeners answered, or why the check
/// fails.
pub fn probe(state_dir: &Path) -> Result<usize, String> {
    listeners::probe_all(state_dir, PROBE_TIMEOUT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn words_are_quoted_for_the_shell() {
        assert_eq!(quoted("/var/lib/octavia"), "'/var/lib/octavia'");
        assert_eq!(quoted("it's"), r"'it'\''s'");
    }

    /// The main script, run by the real shell: it passes when every script passes, and fails
    /// when one fails, whatever the others do.
    #[test]
    fn the_main_script_fails_when_any_check_fails() {
        let d = std::env::temp_dir().join(format!("lbagent-vrrp-{}", std::process::id()));
        let scripts = d.join("it's here");
        fs::create_dir_all(&scripts).unwrap();
        let main = d.join("check_script.sh");
        fs::write(&main, main_script(&scripts)).unwrap();
        let run = || {
            Command::new("sh")
                .arg(&main)
                .status()
                .unwrap()
                .code()
                .unwrap()
        };
        assert_eq!(run(), 0, "no scripts");
        fs::write(scripts.join("a.sh"), "exit 0\n").unwrap();
        assert_eq!(run(), 0);
        fs::write(scripts.join("b.sh"), "exit 3\n").unwrap();
        fs::write(scripts.join("c.sh"), "exit 0\n").unwrap();
        assert_eq!(run(), 1);
        fs::remove_dir_all(&d).unwrap();
    }
}
