//! The Prometheus text exposition format (0.0.4): a family's HELP and TYPE once, before its
//! first sample, and its samples together. Written straight into one buffer: a scrape of
//! thousands of servers makes no per-sample allocation.

use std::fmt::Write;

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
    /// Neither: a HAProxy counter whose name lacks `_total`.
    Untyped,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
            Kind::Untyped => "untyped",
        }
    }
}

/// The whole answer being written.
pub struct Expo {
    out: String,
}

impl Expo {
    pub fn new() -> Self {
        Expo::with_capacity(64 * 1024)
    }

    pub fn with_capacity(bytes: usize) -> Self {
        Expo {
            out: String::with_capacity(bytes),
        }
    }

    pub fn into_string(self) -> String {
        self.out
    }

    /// A family whose HELP and TYPE are written with its first sample, so a family with no
    /// sample (no server anywhere) leaves nothing behind.
    pub fn family<'a>(&'a mut self, name: &'a str, kind: Kind, help: &'a str) -> Family<'a> {
        Family {
            out: &mut self.out,
            name,
            kind,
            help,
            started: false,
        }
    }
}

impl Default for Expo {
    fn default() -> Self {
        Expo::new()
    }
}

pub struct Family<'a> {
    out: &'a mut String,
    name: &'a str,
    kind: Kind,
    help: &'a str,
    started: bool,
}

impl Family<'_> {
    fn head(&mut self) {
        if !self.started {
            self.started = true;
            let (name, kind) = (self.name, self.kind.as_str());
            self.out.push_str("# HELP ");
            self.out.push_str(name);
            self.out.push(' ');
            escape_help(self.help, self.out);
            let _ = write!(self.out, "\n# TYPE {name} {kind}\n");
        }
    }

    /// Starts a sample of this family (`suffix` for a histogram's `_bucket`, `_sum`,
    /// `_count`); labels follow, then `value`.
    pub fn sample(&mut self, suffix: &str) -> Sample<'_> {
        self.head();
        self.out.push_str(self.name);
        self.out.push_str(suffix);
        Sample {
            out: self.out,
            labels: 0,
        }
    }
}

pub struct Sample<'a> {
    out: &'a mut String,
    labels: usize,
}

impl Sample<'_> {
    pub fn label(mut self, name: &str, value: &str) -> Self {
        self.out.push(if self.labels == 0 { '{' } else { ',' });
        self.labels += 1;
        self.out.push_str(name);
        self.out.push_str("=\"");
        escape_label(value, self.out);
        self.out.push('"');
        self
    }

    /// Labels made once by [`labels`] for many samples.
    pub fn labels(mut self, made: &str) -> Self {
        if !made.is_empty() {
            self.out.push(if self.labels == 0 { '{' } else { ',' });
            self.labels += 1;
            self.out.push_str(made);
        }
        self
    }

    /// A value written as it is given: HAProxy's own integers, or `NaN`.
    pub fn raw(self, value: &str) {
        if self.labels > 0 {
            self.out.push('}');
        }
        self.out.push(' ');
        self.out.push_str(value);
        self.out.push('\n');
    }

    pub fn value(self, v: f64) {
        let out = &mut *self.out;
        if self.labels > 0 {
            out.push('}');
        }
        out.push(' ');
        if v.is_nan() {
            out.push_str("NaN");
        } else if v.is_infinite() {
            out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
        } else {
            let _ = write!(out, "{v}");
        }
        out.push('\n');
    }

    pub fn int(self, v: u64) {
        if self.labels > 0 {
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {v}");
    }
}

/// `name="value"` pairs, escaped and joined, for [`Sample::labels`]: a server's labels are
/// the same in each of its families, so they are escaped once.
pub fn labels(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(name);
        out.push_str("=\"");
        escape_label(value, &mut out);
        out.push('"');
    }
    out
}

/// Label values escape backslash, double quote and line feed.
fn escape_label(v: &str, out: &mut String) {
    if !v.bytes().any(|b| matches!(b, b'\\' | b'"' | b'\n')) {
        out.push_str(v);
        return;
    }
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// HELP text escapes backslash and line feed.
fn escape_help(v: &str, out: &mut String) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// A value HAProxy gave as text, checked to be a number the format reads; anything else
/// (an empty field, a word) is `NaN`, as HAProxy's exporter writes an unset field.
pub fn number(field: &str) -> &str {
    let digits = field.strip_prefix('-').unwrap_or(field);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        field
    } else {
        "NaN"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_and_type_come_once_before_the_samples() {
        let mut e = Expo::new();
        let mut f = e.family("x_total", Kind::Counter, "Things.\nMore \\ things.");
        f.sample("").label("a", "1").int(3);
        f.sample("")
            .label("a", "q\"b\\c\nd")
            .label("b", "")
            .value(0.25);
        let mut g = e.family("y", Kind::Gauge, "Unused.");
        let _ = &mut g;
        e.family("z", Kind::Gauge, "Z.").sample("").value(f64::NAN);
        let made = labels(&[("a", "x\"y"), ("b", "")]);
        let mut f = e.family("w", Kind::Gauge, "W.");
        f.sample("").labels(&made).label("c", "1").int(1);
        f.sample("").labels("").int(2);
        assert_eq!(
            e.into_string(),
            "# HELP x_total Things.\\nMore \\\\ things.\n# TYPE x_total counter\n\
             x_total{a=\"1\"} 3\n\
             x_total{a=\"q\\\"b\\\\c\\nd\",b=\"\"} 0.25\n\
             # HELP z Z.\n# TYPE z gauge\nz NaN\n\
             # HELP w W.\n# TYPE w gauge\nw{a=\"x\\\"y\",b=\"\",c=\"1\"} 1\nw 2\n"
        );
    }

    #[test]
    fn only_integers_pass_as_they_are() {
        assert_eq!(number("12"), "12");
        assert_eq!(number("-1"), "-1");
        assert_eq!(number(""), "NaN");
        assert_eq!(number("-"), "NaN");
        assert_eq!(number("1e3"), "NaN");
        assert_eq!(number("UP"), "NaN");
    }
}
