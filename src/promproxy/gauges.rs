//! The two gauges Octavia's proxy puts before HAProxy's metrics: the load balancer's CPU and
//! memory use in percent, computed as Octavia computes them (psutil's load average and
//! `virtual_memory().percent`). Pure: file contents in, text out.

use std::collections::BTreeMap;

use crate::system;

/// The 1-minute load average per CPU, in percent.
pub fn cpu_percent(loadavg: &str, cpus: usize) -> Option<f64> {
    let one_minute = *system::parse_loadavg(loadavg).first()?;
    (cpus > 0).then(|| one_minute / cpus as f64 * 100.0)
}

/// The share of memory in use, in percent: what MemAvailable leaves of MemTotal, as psutil
/// (and `free`) count it.
pub fn memory_percent(meminfo: &str) -> Option<f64> {
    let m = system::parse_meminfo(meminfo);
    let total = *m.get("MemTotal")?;
    let free = *m.get("MemFree")?;
    if total == 0 {
        return Some(0.0);
    }
    let available = match m.get("MemAvailable") {
        // A zero is a kernel bug psutil works around too.
        Some(&a) if a > 0 => a,
        _ => estimate_available(&m, free),
    };
    // More than the total happens in containers: psutil then takes the free memory.
    let available = if available > total { free } else { available };
    Some((total - available) as f64 / total as f64 * 100.0)
}

/// Kernels before 3.14 have no MemAvailable: free, buffers and reclaimable caches (psutil
/// estimates more finely, from the zone watermarks, but such kernels are long gone).
fn estimate_available(m: &BTreeMap<String, u64>, free: u64) -> u64 {
    let of = |k: &str| m.get(k).copied().unwrap_or(0);
    free + of("Buffers") + of("Cached") + of("SReclaimable")
}

/// One gauge with its HELP and TYPE lines, its value with one decimal as Octavia prints it.
fn gauge(out: &mut String, name: &str, help: &str, value: f64) {
    use std::fmt::Write;
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value:.1}\n"
    );
}

/// Appends the CPU and memory gauges; one whose figures could not be read is left out.
pub fn write(out: &mut String, cpu: Option<f64>, memory: Option<f64>) {
    if let Some(cpu) = cpu {
        let help = "CPU use of the load balancer: the 1-minute load average per CPU, in percent.";
        gauge(out, "octavia_loadbalancer_cpu", help, cpu);
    }
    if let Some(memory) = memory {
        let help =
            "Memory use of the load balancer: the share of memory not available, in percent.";
        gauge(out, "octavia_loadbalancer_memory", help, memory);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMINFO: &str = "\
MemTotal:       24731184 kB
MemFree:        21745304 kB
MemAvailable:   24035184 kB
Buffers:           11768 kB
Cached:          2653852 kB
SReclaimable:     317652 kB
";

    #[test]
    fn cpu_is_the_load_average_per_cpu() {
        let loadavg = "0.52 0.58 0.59 1/336 12345\n";
        assert_eq!(cpu_percent(loadavg, 2), Some(26.0));
        assert_eq!(cpu_percent("1.71 1.09 0.60 1/94 31850\n", 4), Some(42.75));
        assert_eq!(cpu_percent(loadavg, 0), None);
        assert_eq!(cpu_percent("", 2), None);
    }

    #[test]
    fn memory_is_what_is_not_available() {
        let used = memory_percent(MEMINFO).unwrap();
        assert!((used - 2.8142).abs() < 1e-3, "{used}");
        // No MemAvailable (or a zero one): free, buffers and caches count as available.
        let old = MEMINFO.replace("MemAvailable:   24035184 kB\n", "");
        let expect = (24731184.0 - (21745304.0 + 11768.0 + 2653852.0 + 317652.0)) / 24731184.0;
        assert_eq!(memory_percent(&old), Some(expect * 100.0));
        let zero = MEMINFO.replace("24035184", "0");
        assert_eq!(memory_percent(&zero), Some(expect * 100.0));
        // More available than there is: the free memory counts.
        let odd = MEMINFO.replace("24035184", "99999999");
        let expect = (24731184.0 - 21745304.0) / 24731184.0 * 100.0;
        assert_eq!(memory_percent(&odd), Some(expect));
        assert_eq!(memory_percent("MemTotal: 0 kB\nMemFree: 0 kB\n"), Some(0.0));
        assert_eq!(memory_percent("MemFree: 1 kB\n"), None);
    }

    #[test]
    fn gauges_have_one_decimal_rounded_as_python_rounds() {
        let mut out = String::new();
        write(&mut out, Some(12.25), Some(2.8142));
        let samples: Vec<&str> = out.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            samples,
            [
                "octavia_loadbalancer_cpu 12.2",
                "octavia_loadbalancer_memory 2.8"
            ]
        );
        assert!(out.contains("# TYPE octavia_loadbalancer_cpu gauge\n"));
        assert!(out.contains("# TYPE octavia_loadbalancer_memory gauge\n"));
        let mut out = String::new();
        write(&mut out, None, Some(0.05));
        assert!(!out.contains("cpu"));
        assert!(out.ends_with("octavia_loadbalancer_memory 0.1\n"), "{out}");
    }
}
