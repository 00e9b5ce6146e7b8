//! UTC calendar arithmetic for daily and monthly usage, without a clock.

/// Milliseconds in a day.
pub const DAY_MS: u64 = 86_400_000;

/// The day number (days since 1970-01-01, UTC) of a time in ms.
pub fn day_of(ms: u64) -> u64 {
    ms / DAY_MS
}

/// The first day (UTC, ms) of the calendar month that contains `ms`, and of the next one.
pub fn month_bounds(ms: u64) -> (u64, u64) {
    let days = ms / 86_400_000;
    let (y, m, _) = civil_from_days(days as i64);
    let start = days_from_civil(y, m, 1);
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    let end = days_from_civil(ny, nm, 1);
    (start as u64 * 86_400_000, end as u64 * 86_400_000)
}

/// (year, month, day) of a day count since 1970-01-01 (H. Hinnant's algorithm).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Days since 1970-01-01 of a civil date.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_round_trip() {
        for days in [-1, 0, 59, 365, 10_957, 20_000, 20_517] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_517), (2026, 3, 5));
    }

    #[test]
    fn months_have_their_bounds() {
        // 2026-02-14T12:00Z
        let ms = days_from_civil(2026, 2, 14) as u64 * 86_400_000 + 43_200_000;
        let (start, end) = month_bounds(ms);
        assert_eq!(start, days_from_civil(2026, 2, 1) as u64 * 86_400_000);
        assert_eq!(end, days_from_civil(2026, 3, 1) as u64 * 86_400_000);
        let dec = days_from_civil(2025, 12, 31) as u64 * 86_400_000;
        assert_eq!(
            month_bounds(dec).1,
            days_from_civil(2026, 1, 1) as u64 * 86_400_000
        );
    }
}
