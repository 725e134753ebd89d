//! Quick add: a trailing due date typed with a to-do's title ("buy milk tomorrow", "call Ana
//! fri", "report 2026-12-01"). Pure: today's date is passed in, so the page resolves a
//! relative date when the command runs (Enter) with the viewer's own calendar.

/// A calendar day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Day {
    pub year: i32,
    pub month: u32,
    pub day: u32,
}

impl Day {
    /// `YYYY-MM-DD`.
    pub fn iso(&self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }

    pub fn parse(text: &str) -> Option<Self> {
        let b = text.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        let num = |r: std::ops::Range<usize>| {
            let part = text.get(r)?;
            part.bytes()
                .all(|c| c.is_ascii_digit())
                .then(|| part.parse::<u32>().ok())
                .flatten()
        };
        let day = Self {
            year: i32::try_from(num(0..4)?).ok()?,
            month: num(5..7)?,
            day: num(8..10)?,
        };
        // A real day: it survives the round trip through the day count.
        (Self::from_days(day.days()) == day && (1..=12).contains(&day.month)).then_some(day)
    }

    /// Days since 1970-01-01 (H. Hinnant's `days_from_civil`).
    pub fn days(&self) -> i64 {
        let y = i64::from(self.year) - i64::from(self.month <= 2);
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let m = i64::from(self.month);
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(self.day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    /// The day `days` after 1970-01-01 (`civil_from_days`).
    pub fn from_days(days: i64) -> Self {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
        Self { year, month, day }
    }

    /// 0 = Monday … 6 = Sunday.
    pub fn weekday(&self) -> u32 {
        // 1970-01-01 was a Thursday (3).
        ((self.days() + 3).rem_euclid(7)) as u32
    }

    pub fn plus(&self, days: i64) -> Self {
        Self::from_days(self.days() + days)
    }
}

const SHORT_WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const SHORT_MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// A due date as people say it: "Today", "Tomorrow", "Yesterday", else "Fri 4 Dec" (with the
/// year when it is not this year's). Without `today` (the server, which does not know the
/// viewer's calendar) the date is given in full.
pub fn spoken(due: Day, today: Option<Day>) -> String {
    if let Some(today) = today {
        match due.days() - today.days() {
            0 => return "Today".into(),
            1 => return "Tomorrow".into(),
            -1 => return "Yesterday".into(),
            _ => {}
        }
    }
    let weekday = SHORT_WEEKDAYS[due.weekday() as usize % 7];
    let month = SHORT_MONTHS[(due.month as usize).saturating_sub(1) % 12];
    match today {
        Some(today) if today.year == due.year => format!("{weekday} {} {month}", due.day),
        _ => format!("{weekday} {} {month} {}", due.day, due.year),
    }
}

/// A title with the due date read from its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuickAdd {
    pub title: String,
    pub due: Option<Day>,
    /// The words the date was read from (shown to the user, who may undo it).
    pub phrase: Option<String>,
}

const WEEKDAYS: [[&str; 2]; 7] = [
    ["mon", "monday"],
    ["tue", "tuesday"],
    ["wed", "wednesday"],
    ["thu", "thursday"],
    ["fri", "friday"],
    ["sat", "saturday"],
    ["sun", "sunday"],
];

/// Reads a trailing date: `today`, `tomorrow`, a weekday (the next one; today's name means
/// today), or `YYYY-MM-DD`. A title that is only a date keeps it as the title.
pub fn parse(text: &str, today: Day) -> QuickAdd {
    let trimmed = text.trim();
    let plain = QuickAdd {
        title: trimmed.to_string(),
        due: None,
        phrase: None,
    };
    let Some((head, last)) = trimmed.rsplit_once(char::is_whitespace) else {
        return plain;
    };
    let head = head.trim_end();
    if head.is_empty() {
        return plain;
    }
    let word = last.to_lowercase();
    let due = match word.as_str() {
        "today" => Some(today),
        "tomorrow" | "tmrw" => Some(today.plus(1)),
        _ => WEEKDAYS
            .iter()
            .position(|names| names.contains(&word.as_str()))
            .map(|wd| {
                let ahead = (wd as i64 - i64::from(today.weekday())).rem_euclid(7);
                today.plus(ahead)
            })
            .or_else(|| Day::parse(last)),
    };
    match due {
        Some(due) => QuickAdd {
            title: head.to_string(),
            due: Some(due),
            phrase: Some(last.to_string()),
        },
        None => plain,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_dates_read_as_people_say_them() {
        let day = |s: &str| Day::parse(s).unwrap();
        let today = Some(TODAY);
        assert_eq!(spoken(day("2026-11-25"), today), "Today");
        assert_eq!(spoken(day("2026-11-26"), today), "Tomorrow");
        assert_eq!(spoken(day("2026-11-24"), today), "Yesterday");
        assert_eq!(spoken(day("2026-12-04"), today), "Fri 4 Dec");
        assert_eq!(spoken(day("2026-01-01"), today), "Thu 1 Jan");
        assert_eq!(spoken(day("2027-01-04"), today), "Mon 4 Jan 2027");
        // The server does not know the viewer's day: the full date, never "Today".
        assert_eq!(spoken(day("2026-11-25"), None), "Wed 25 Nov 2026");
    }

    // 2026-11-25 is a Wednesday.
    const TODAY: Day = Day {
        year: 2026,
        month: 11,
        day: 25,
    };

    fn due(text: &str) -> (String, Option<String>) {
        let q = parse(text, TODAY);
        (q.title, q.due.map(|d| d.iso()))
    }

    #[test]
    fn reads_a_trailing_date() {
        assert_eq!(
            due("buy milk tomorrow"),
            ("buy milk".into(), Some("2026-11-26".into()))
        );
        assert_eq!(
            due("call Ana fri"),
            ("call Ana".into(), Some("2026-11-27".into()))
        );
        assert_eq!(
            due("call Ana Friday"),
            ("call Ana".into(), Some("2026-11-27".into()))
        );
        assert_eq!(due("plan wed"), ("plan".into(), Some("2026-11-25".into())));
        assert_eq!(due("plan tue"), ("plan".into(), Some("2026-12-01".into())));
        assert_eq!(
            due("report 2026-12-01"),
            ("report".into(), Some("2026-12-01".into()))
        );
        assert_eq!(
            due("  pay rent today  "),
            ("pay rent".into(), Some("2026-11-25".into()))
        );
    }

    #[test]
    fn leaves_other_titles_alone() {
        assert_eq!(due("tomorrow"), ("tomorrow".into(), None));
        assert_eq!(
            due("read Friday night lights"),
            ("read Friday night lights".into(), None)
        );
        assert_eq!(due("report 2026-02-30"), ("report 2026-02-30".into(), None));
        assert_eq!(due("milk"), ("milk".into(), None));
        assert_eq!(
            parse("buy milk tomorrow", TODAY).phrase.as_deref(),
            Some("tomorrow")
        );
    }

    #[test]
    fn day_arithmetic_round_trips() {
        assert_eq!(Day::from_days(0).iso(), "1970-01-01");
        assert_eq!(TODAY.weekday(), 2);
        assert_eq!(TODAY.plus(7).iso(), "2026-12-02");
        assert_eq!(
            Day::parse("2024-02-29").map(|d| d.plus(365).iso()),
            Some("2025-02-28".into())
        );
        for days in (-800_000..800_000).step_by(997) {
            assert_eq!(Day::from_days(days).days(), days);
        }
        assert_eq!(Day::parse("2026-13-01"), None);
    }
}
