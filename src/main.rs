//! lbagent: manages HAProxy over HTTPS (HApi, Octavia amphora, appliance and device APIs).

use std::path::PathBuf;
use std::process::ExitCode;

use lbagent::{agent, config};

const HELP: &str = "\
lbagent: manage HAProxy over HTTPS (HApi, Octavia amphora, appliance and device APIs)

Usage:
  lbagent [--config PATH]                 serve until SIGTERM/SIGINT (SIGHUP re-opens logs)
  lbagent --check-config [--config PATH]  validate the config: prints OK or every problem
  lbagent --routes                         list every route (method and path pattern)
  lbagent --vrrp-check STATE_DIR           keepalived's check: exit 0 when every listener
                                           meant to run answers on its stats socket
  lbagent --version | --help

Options:
  -c, --config PATH   config file (default /etc/lbagent/lbagent.yaml)
";

struct Args {
    config: Option<PathBuf>,
    check: bool,
}

enum Cli {
    Run(Args),
    Exit(ExitCode),
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Cli {
    let mut args = Args {
        config: None,
        check: false,
    };
    while let Some(a) = it.next() {
        match a.as_str() {
            "-c" | "--config" => match it.next() {
                Some(p) => args.config = Some(PathBuf::from(p)),
                None => {
                    eprintln!("lbagent: {a} needs a path\n\n{HELP}");
                    return Cli::Exit(ExitCode::from(2));
                }
            },
            s if s.starts_with("--config=") => args.config = Some(PathBuf::from(&s[9..])),
            "--check-config" => args.check = true,
            "--routes" => {
                // Every route of every API family, for operators and for the auth audit test.
                for r in agent::routes() {
                    println!("{r}");
                }
                return Cli::Exit(ExitCode::SUCCESS);
            }
            "--vrrp-check" => {
                return Cli::Exit(match it.next() {
                    Some(dir) => agent::vrrp_check(std::path::Path::new(&dir)),
                    None => {
                        eprintln!("lbagent: {a} needs the state directory\n\n{HELP}");
                        ExitCode::from(2)
                    }
                });
            }
            "-V" | "--version" => {
                println!("lbagent {}", env!("CARGO_PKG_VERSION"));
                return Cli::Exit(ExitCode::SUCCESS);
            }
            "-h" | "--help" => {
                print!("{HELP}");
                return Cli::Exit(ExitCode::SUCCESS);
            }
            other => {
                eprintln!("lbagent: unknown argument {other:?}\n\n{HELP}");
                return Cli::Exit(ExitCode::from(2));
            }
        }
    }
    Cli::Run(args)
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Cli::Run(a) => a,
        Cli::Exit(code) => return code,
    };
    let path = args
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from(config::DEFAULT_PATH));
    let loaded = agent::load(&path);
    if args.check {
        return match loaded {
            Ok(_) => {
                println!("OK");
                ExitCode::SUCCESS
            }
            Err(problems) => {
                for p in problems {
                    println!("{}: {p}", path.display());
                }
                ExitCode::FAILURE
            }
        };
    }
    let (cfg, tls) = match loaded {
        Ok(v) => v,
        Err(problems) => {
            for p in problems {
                eprintln!("lbagent: {}: {p}", path.display());
            }
            if args.config.is_none() {
                eprintln!("lbagent: no usable config at the default path; give one with --config");
            }
            return ExitCode::FAILURE;
        }
    };
    match agent::serve(cfg, tls) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("lbagent: {e}");
            ExitCode::FAILURE
        }
    }
}
