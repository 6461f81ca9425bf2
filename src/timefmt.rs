//! UTC calendar arithmetic for log timestamps (no time-zone database needed: logs are UTC).

use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utc {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub min: u32,
    pub sec: u32,
    /// 0 = Sunday.
    pub weekday: u32,
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

impl Utc {
    pub fn now() -> Self {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        Utc::from_unix(secs)
    }

    /// Howard Hinnant's days-to-civil algorithm.
    pub fn from_unix(secs: i64) -> Self {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        Utc {
            year,
            month,
            day,
            hour: (rem / 3600) as u32,
            min: (rem % 3600 / 60) as u32,
            sec: (rem % 60) as u32,
            weekday: (days + 4).rem_euclid(7) as u32,
        }
    }

    /// Common Log Format: `26/Nov/2026:15:22:39 +0000`.
    pub fn clf(&self) -> String {
        format!(
            "{:02}/{}/{}:{:02}:{:02}:{:02} +0000",
            self.day,
            MONTHS[(self.month as usize).saturating_sub(1) % 12],
            self.year,
            self.hour,
            self.min,
            self.sec
        )
    }

    /// BSD syslog's (RFC 3164), as glibc's syslog(3) writes it: `Nov  6 15:22:39`.
    pub fn rfc3164(&self) -> String {
        format!(
            "{} {:>2} {:02}:{:02}:{:02}",
            MONTHS[(self.month as usize).saturating_sub(1) % 12],
            self.day,
            self.hour,
            self.min,
            self.sec
        )
    }

    /// ISO 8601: `2026-11-26T15:22:39Z`.
    pub fn iso(&self) -> String {
        format!(
            "{}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            self.year, self.month, self.day, self.hour, self.min, self.sec
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        let t = Utc::from_unix(0);
        assert_eq!(t.iso(), "1970-01-01T00:00:00Z");
        assert_eq!(t.weekday, 4);
        // The device spec's example instant: Mon 2012.10.29 at 07:21:48 PM UTC.
        let t = Utc::from_unix(1_351_538_508);
        assert_eq!(t.iso(), "2012-10-29T19:21:48Z");
        assert_eq!(t.weekday, 1);
        assert_eq!(t.rfc3164(), "Oct 29 19:21:48");
        assert_eq!(Utc::from_unix(0).rfc3164(), "Jan  1 00:00:00");
        assert_eq!(
            Utc::from_unix(1_795_706_559).clf(),
            "26/Nov/2026:15:22:39 +0000"
        );
        assert_eq!(Utc::from_unix(951_782_400).iso(), "2000-02-29T00:00:00Z");
    }
}
