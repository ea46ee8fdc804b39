//! The order of day, month and year, decided once per file from all its
//! dates, and a header's date and time as epoch milliseconds (the phone's local
//! time read as UTC; the civil calendar computed here, no date library).

use super::header::RawHeader;

/// The order of a date's three numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// `15/01/2020`
    Dmy,
    /// `01/15/2020`
    Mdy,
    /// `2020/01/15`
    Ymd,
    /// `2020/15/01`
    Ydm,
}

impl Order {
    const ALL: [Order; 4] = [Order::Dmy, Order::Mdy, Order::Ymd, Order::Ydm];

    /// The year leads.
    pub fn year_first(self) -> bool {
        matches!(self, Order::Ymd | Order::Ydm)
    }

    fn index(self) -> usize {
        self as usize
    }

    /// Year, month and day from the numbers as written, when each is in its
    /// range (a month up to 12, a day up to 31, a year of 2 or 4 digits).
    fn split(self, nums: [u16; 3], digits: [u8; 3]) -> Option<(i64, u32, u32)> {
        let (y, m, d) = match self {
            Order::Dmy => (2, 1, 0),
            Order::Mdy => (2, 0, 1),
            Order::Ymd => (0, 1, 2),
            Order::Ydm => (0, 2, 1),
        };
        let year = match digits[y] {
            2 => 2000 + i64::from(nums[y]),
            4 => i64::from(nums[y]),
            _ => return None,
        };
        let (month, day) = (u32::from(nums[m]), u32::from(nums[d]));
        ((1..=12).contains(&month) && (1..=31).contains(&day)).then_some((year, month, day))
    }
}

/// The order a file's dates are read in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// The order chosen.
    pub order: Order,
    /// The dates left no other order with the year in the same place (a
    /// two-digit year that could lead as well as end, as in `15/1/20`, goes
    /// to the far more common year last without making the day's place uncertain).
    pub certain: bool,
}

impl Decision {
    /// Day first or month first, when the dates decided it (`None` for a
    /// year-first file or one whose dates fit both).
    pub fn day_first(self) -> Option<bool> {
        match (self.order, self.certain) {
            (Order::Dmy, true) => Some(true),
            (Order::Mdy, true) => Some(false),
            _ => None,
        }
    }
}

/// WhatsApp's first year: an order that reads a date before it (`01/03/20` as
/// 2001) fits worse. Only for deciding: such a date still reads when the file's
/// order says so (a phone whose clock was reset).
const FIRST_YEAR: i64 = 2009;

/// How well one order fits a file's dates.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Fit {
    /// Dates with a number out of its range under this order.
    out_of_range: usize,
    /// Dates earlier than the one before them.
    backward: usize,
}

/// Decides the order from every date of a file (`nums`, `digits` per header):
/// an order under which a number is out of range (a month over 12, a day over
/// 31, a year before WhatsApp) loses to one under which none is; then the order under which the dates
/// run forward wins; a tie goes to the usual order for the clock (month first
/// with AM/PM, day first otherwise) and is reported as uncertain.
pub fn decide(dates: impl Iterator<Item = ([u16; 3], [u8; 3])>, twelve_hour: bool) -> Decision {
    let mut fits = [Fit::default(); 4];
    let mut last: [Option<i64>; 4] = [None; 4];
    for (nums, digits) in dates {
        for order in Order::ALL {
            let k = order.index();
            let Some((y, m, d)) = order.split(nums, digits).filter(|&(y, ..)| y >= FIRST_YEAR)
            else {
                fits[k].out_of_range += 1;
                continue;
            };
            let day = days_from_civil(y, m, d.min(days_in_month(y, m)));
            if last[k].is_some_and(|l| day < l) {
                fits[k].backward += 1;
            }
            last[k] = Some(day);
        }
    }
    let best = fits.iter().copied().min().unwrap_or_default();
    let preference = if twelve_hour {
        [Order::Mdy, Order::Dmy, Order::Ymd, Order::Ydm]
    } else {
        [Order::Dmy, Order::Mdy, Order::Ymd, Order::Ydm]
    };
    let mut fitting = preference.into_iter().filter(|o| fits[o.index()] == best);
    let order = fitting.next().unwrap_or(preference[0]);
    Decision {
        order,
        certain: !fitting.any(|o| o.year_first() == order.year_first()),
    }
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Year, month, day of a count of days since 1970-01-01 (proleptic Gregorian;
/// Howard Hinnant's algorithm): the inverse of [`days_from_civil`].
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

/// How many days a month has.
pub fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The header's moment in ms since the epoch, or `None` when it is not a real
/// date and time (Feb 30, 25:00, a month 13 under the file's order).
pub fn timestamp(order: Order, h: &RawHeader) -> Option<i64> {
    let (year, month, day) = order.split(h.nums, h.digits)?;
    if day > days_in_month(year, month) {
        return None;
    }
    let hour = if h.shape.twelve_hour {
        if h.hour > 12 {
            return None;
        }
        h.hour % 12 + if h.pm { 12 } else { 0 }
    } else {
        h.hour
    };
    if hour > 23 || h.minute > 59 || h.second > 59 {
        return None;
    }
    let seconds = i64::from(hour) * 3600 + i64::from(h.minute) * 60 + i64::from(h.second);
    Some((days_from_civil(year, month, day) * 86_400 + seconds) * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learn::export::header::parse;

    fn dates(lines: &[&str]) -> Vec<([u16; 3], [u8; 3])> {
        lines
            .iter()
            .filter_map(|l| parse(l))
            .map(|h| (h.nums, h.digits))
            .collect()
    }

    #[test]
    fn civil_days_match_known_dates() {
        // Figures from `date -u -d ... +%s` divided by 86400.
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 2, 29), 11_016);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2020, 1, 15), 18_276);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        assert_eq!(days_from_civil(2100, 3, 1), 47_541);
    }

    #[test]
    fn civil_from_days_undoes_days_from_civil() {
        for (y, m, d) in [(1970, 1, 1), (2000, 2, 29), (1969, 12, 31), (2100, 3, 1)] {
            let days = days_from_civil(y, m, d);
            assert_eq!(civil_from_days(days), (y, i64::from(m), i64::from(d)));
        }
    }

    #[test]
    fn month_lengths_follow_leap_years() {
        assert_eq!(days_in_month(2020, 2), 29);
        assert_eq!(days_in_month(2019, 2), 28);
        assert_eq!(days_in_month(1900, 2), 28);
        assert_eq!(days_in_month(2000, 2), 29);
        assert_eq!(days_in_month(2021, 4), 30);
        assert_eq!(days_in_month(2021, 12), 31);
    }

    #[test]
    fn a_day_over_twelve_anywhere_decides_day_first() {
        let d = dates(&[
            "01/02/2020, 10:00 - A: x",
            "03/02/2020, 10:00 - A: x",
            "13/02/2020, 10:00 - A: x",
        ]);
        let decision = decide(d.into_iter(), true);
        assert_eq!(decision.order, Order::Dmy);
        assert_eq!(decision.day_first(), Some(true));
    }

    #[test]
    fn a_day_over_twelve_in_the_middle_decides_month_first() {
        let d = dates(&["1/2/20, 1:00 PM - A: x", "1/20/20, 1:00 PM - A: x"]);
        let decision = decide(d.into_iter(), false);
        assert_eq!(decision.order, Order::Mdy);
        assert_eq!(decision.day_first(), Some(false));
    }

    #[test]
    fn a_number_over_31_is_a_year() {
        let d = dates(&["2020-01-02, 10:00 - A: x"]);
        assert_eq!(decide(d.into_iter(), false).order, Order::Ymd);
        let d = dates(&["2020-01-02, 10:00 - A: x", "2020-25-02, 10:00 - A: x"]);
        let decision = decide(d.into_iter(), false);
        assert_eq!(decision.order, Order::Ydm);
        assert_eq!(decision.day_first(), None);
    }

    #[test]
    fn dates_that_fit_both_orders_are_read_so_they_run_forward() {
        // Day first: 1 Mar, 2 Mar, 1 Apr, 2 Apr. Month first: 3 Jan, 3 Feb, 4 Jan: backward.
        let d = dates(&[
            "01/03/20, 10:00 - A: x",
            "02/03/20, 10:00 - A: x",
            "01/04/20, 10:00 - A: x",
            "02/04/20, 10:00 - A: x",
        ]);
        let decision = decide(d.into_iter(), true);
        assert_eq!(decision.order, Order::Dmy);
        assert_eq!(decision.day_first(), Some(true));
        // Month first: 3 Jan, 4 Jan, 3 Feb, 4 Feb. Day first: 1 Mar, 1 Apr, 2 Mar: backward.
        let d = dates(&[
            "01/03/20, 10:00 - A: x",
            "01/04/20, 10:00 - A: x",
            "02/03/20, 10:00 - A: x",
            "02/04/20, 10:00 - A: x",
        ]);
        let decision = decide(d.into_iter(), false);
        assert_eq!(
            (decision.order, decision.day_first()),
            (Order::Mdy, Some(false))
        );
    }

    #[test]
    fn an_undecidable_file_follows_its_clock_and_says_so() {
        let one = dates(&["3/6/18, 1:55 PM - A: x"]);
        let twelve = decide(one.clone().into_iter(), true);
        assert_eq!((twelve.order, twelve.day_first()), (Order::Mdy, None));
        let twenty_four = decide(one.into_iter(), false);
        assert_eq!(
            (twenty_four.order, twenty_four.day_first()),
            (Order::Dmy, None)
        );
    }

    #[test]
    fn two_digit_years_first_are_found_by_running_forward() {
        // 20/01/15 .. 20/03/02 read as year first run forward; day first they do not.
        let d = dates(&[
            "20/01/15, 10:00 - A: x",
            "20/02/01, 10:00 - A: x",
            "20/03/02, 10:00 - A: x",
        ]);
        assert_eq!(decide(d.into_iter(), false).order, Order::Ymd);
    }

    #[test]
    fn timestamps_validate_the_calendar_and_the_clock() {
        let h = |line: &str| match parse(line) {
            Some(h) => h,
            None => panic!("{line:?}"),
        };
        // 2020-01-15T02:22:56Z = 1579054976 s (date -u -d '2020-01-15 02:22:56' +%s).
        let ts = timestamp(Order::Dmy, &h("[15/01/2020, 02:22:56] A: x"));
        assert_eq!(ts, Some(1_579_054_976_000));
        let ts = timestamp(Order::Mdy, &h("[1/15/20, 2:22:56 AM] A: x"));
        assert_eq!(ts, Some(1_579_054_976_000));
        let ts = timestamp(Order::Mdy, &h("1/15/20, 12:05 AM - A: x"));
        assert_eq!(ts, Some(1_579_046_700_000));
        let ts = timestamp(Order::Mdy, &h("1/15/20, 12:05 PM - A: x"));
        assert_eq!(ts, Some(1_579_089_900_000));
        for bad in [
            "30/02/2020, 10:00 - A: x",
            "29/02/2019, 10:00 - A: x",
            "31/04/2020, 10:00 - A: x",
            "15/13/2020, 10:00 - A: x",
            "15/01/2020, 24:00 - A: x",
            "15/01/2020, 10:60 - A: x",
            "15/01/2020, 13:00 PM - A: x",
            "15/01/202, 10:00 - A: x",
        ] {
            assert_eq!(timestamp(Order::Dmy, &h(bad)), None, "{bad:?}");
        }
        assert!(timestamp(Order::Dmy, &h("29/02/2020, 10:00 - A: x")).is_some());
    }
}
