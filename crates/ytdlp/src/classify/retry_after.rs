//! A `Retry-After` header in milliseconds: delay-seconds, or an HTTP-date
//! (RFC 9110 §10.2.3), counted from the answer's own `Date` when it has one
//! (the site's clock against the site's clock), else from now.

use std::time::{SystemTime, UNIX_EPOCH};

/// Longest wait believed: a larger value is a site's error, not a plan.
const MAX_MS: u64 = 7 * 24 * 3600 * 1000;

/// `value` in milliseconds from `date` (the answer's `Date` header) or
/// `now`; `None` if it is neither form. A date in the past is 0.
pub fn retry_after_ms(value: &str, date: Option<&str>, now: SystemTime) -> Option<u64> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        let secs: u64 = value.parse().unwrap_or(u64::MAX);
        return Some(secs.saturating_mul(1000).min(MAX_MS));
    }
    let at = http_date(value)?;
    let from = date.and_then(http_date).unwrap_or_else(|| {
        now.duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    });
    let secs = u64::try_from(at.saturating_sub(from)).unwrap_or(0);
    Some(secs.saturating_mul(1000).min(MAX_MS))
}

/// Seconds since the epoch of an HTTP-date in any of its three forms:
/// `Sun, 06 Nov 1994 08:49:37 GMT` (IMF-fixdate), `Sunday, 06-Nov-94
/// 08:49:37 GMT` (RFC 850) and `Sun Nov  6 08:49:37 1994` (asctime).
pub fn http_date(s: &str) -> Option<i64> {
    let t: Vec<&str> = s
        .split(|c: char| c.is_ascii_whitespace() || c == ',')
        .filter(|x| !x.is_empty())
        .collect();
    let (day, month, year, time) = match t.as_slice() {
        [_, day, month, year, time, "GMT"] => (*day, *month, year.parse::<i64>().ok()?, *time),
        [_, dmy, time, "GMT"] => {
            let mut p = dmy.split('-');
            let (day, month, yy) = (p.next()?, p.next()?, p.next()?);
            let yy: i64 = yy.parse().ok()?;
            // RFC 850's two-digit year: the most recent century that does
            // not put it more than 50 years ahead (RFC 9110 §5.6.7).
            let year = if yy >= 100 {
                yy
            } else if yy < 70 {
                2000 + yy
            } else {
                1900 + yy
            };
            (day, month, year, *time)
        }
        [_, month, day, time, year] => (*day, *month, year.parse::<i64>().ok()?, *time),
        _ => return None,
    };
    let day: i64 = day.parse().ok()?;
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| *m == month)? as i64 + 1;
    let mut hms = time.split(':').map(|x| x.parse::<i64>().ok());
    let (h, m, sec) = (hms.next()??, hms.next()??, hms.next()??);
    if hms.next().is_some()
        || !(1..=31).contains(&day)
        || !(0..24).contains(&h)
        || !(0..60).contains(&m)
        || !(0..=60).contains(&sec)
    {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + sec)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const NOW: u64 = 1_796_152_231; // Tue, 01 Dec 2026 19:10:31 GMT

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(NOW)
    }

    #[test]
    fn the_three_date_forms_read_alike() {
        let want = Some(784_111_777);
        assert_eq!(http_date("Sun, 06 Nov 1994 08:49:37 GMT"), want);
        assert_eq!(http_date("Sunday, 06-Nov-94 08:49:37 GMT"), want);
        assert_eq!(http_date("Sun Nov  6 08:49:37 1994"), want);
        assert_eq!(http_date("Tue, 01 Dec 2026 19:10:31 GMT"), Some(NOW as i64));
        assert_eq!(http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(http_date("Sun, 06 Nov 1994 08:49:37 CET"), None);
        assert_eq!(http_date("Sun, 32 Nov 1994 08:49:37 GMT"), None);
        assert_eq!(http_date("Sun, 06 Nox 1994 08:49:37 GMT"), None);
        assert_eq!(http_date("soon"), None);
    }

    #[test]
    fn seconds_and_dates_become_milliseconds() {
        assert_eq!(retry_after_ms("30", None, now()), Some(30_000));
        assert_eq!(retry_after_ms(" 0 ", None, now()), Some(0));
        // A date counts from the answer's own Date, else from now.
        let at = "Tue, 01 Dec 2026 19:12:01 GMT";
        assert_eq!(
            retry_after_ms(at, Some("Tue, 01 Dec 2026 19:11:31 GMT"), now()),
            Some(30_000)
        );
        assert_eq!(retry_after_ms(at, None, now()), Some(90_000));
        assert_eq!(retry_after_ms(at, Some("garbage"), now()), Some(90_000));
        assert_eq!(
            retry_after_ms("Tue, 01 Dec 2026 19:00:00 GMT", None, now()),
            Some(0)
        );
        // Absurd values are capped, not wrapped.
        assert_eq!(
            retry_after_ms("99999999999999999999999", None, now()),
            Some(MAX_MS)
        );
        assert_eq!(retry_after_ms("-5", None, now()), None);
        assert_eq!(retry_after_ms("1.5", None, now()), None);
        assert_eq!(retry_after_ms("", None, now()), None);
    }
}
