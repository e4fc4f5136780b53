//! UTC timestamps from Unix seconds, in the two layouts the stores sign. Done by hand
//! (days-to-civil conversion) so the signers need no date library.

const SECONDS_PER_DAY: u64 = 86_400;

/// A UTC calendar date and time of day.
#[derive(Debug, PartialEq, Eq)]
struct Utc {
    year: u64,
    month: u64,
    day: u64,
    hour: u64,
    minute: u64,
    second: u64,
}

impl Utc {
    fn from_unix(secs: u64) -> Utc {
        let (year, month, day) = civil_from_days(secs / SECONDS_PER_DAY);
        let time = secs % SECONDS_PER_DAY;
        Utc {
            year,
            month,
            day,
            hour: time / 3600,
            minute: time % 3600 / 60,
            second: time % 60,
        }
    }
}

/// Howard Hinnant's `civil_from_days`, restricted to days on or after 1970-01-01 so it
/// stays in unsigned arithmetic. Eras are 400-year cycles starting on 0000-03-01, which
/// puts the leap day at the end of each year of the cycle.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z / 146_097;
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// `YYYYMMDD'T'HHMMSS'Z'`, SigV4's `X-Amz-Date`; its first 8 characters are the scope date.
pub(super) fn amz_date(unix: u64) -> String {
    let t = Utc::from_unix(unix);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

/// `YYYY-MM-DD'T'HH:MM:SS'Z'`, the ISO 8601 form Azure SAS times take (no fractions).
pub(super) fn iso8601(unix: u64) -> String {
    let t = Utc::from_unix(unix);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch() {
        assert_eq!(amz_date(0), "19700101T000000Z");
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn aws_example_dates() {
        assert_eq!(amz_date(1_369_353_600), "20130524T000000Z");
        assert_eq!(amz_date(1_440_938_160), "20150830T123600Z");
    }

    #[test]
    fn leap_days_and_year_ends() {
        assert_eq!(iso8601(951_782_400), "2000-02-29T00:00:00Z"); // divisible by 400: leap
        assert_eq!(iso8601(1_709_164_800), "2024-02-29T00:00:00Z");
        assert_eq!(iso8601(1_709_251_199), "2024-02-29T23:59:59Z");
        assert_eq!(iso8601(1_709_251_200), "2024-03-01T00:00:00Z");
        assert_eq!(iso8601(4_107_456_000), "2100-02-28T00:00:00Z");
        assert_eq!(iso8601(4_107_542_400), "2100-03-01T00:00:00Z"); // 2100 is not leap
        assert_eq!(iso8601(1_704_067_199), "2023-12-31T23:59:59Z");
        assert_eq!(iso8601(2_147_483_647), "2038-01-19T03:14:07Z");
    }

    #[test]
    fn every_day_follows_the_previous_one() {
        // Walks 1970..2500 and checks the calendar never skips or repeats a day.
        let mut previous = civil_from_days(0);
        assert_eq!(previous, (1970, 1, 1));
        for days in 1..(530 * 366) {
            let (y, m, d) = civil_from_days(days);
            let (py, pm, pd) = previous;
            let next_day = (y, m, d) == (py, pm, pd + 1);
            let next_month = (y, m, d) == (py, pm + 1, 1) && pd >= 28;
            let next_year = (y, m, d) == (py + 1, 1, 1) && (pm, pd) == (12, 31);
            assert!(
                next_day || next_month || next_year,
                "{previous:?} -> {y}-{m}-{d}"
            );
            let days_in_month = match pm {
                2 if py % 4 == 0 && (py % 100 != 0 || py % 400 == 0) => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            assert!(
                !next_month && !next_year || pd == days_in_month,
                "{previous:?}"
            );
            previous = (y, m, d);
        }
    }
}
