//! Timestamps in API answers, written straight into a stack buffer in
//! exactly chrono's serde form (RFC 3339, `Z`, 0/3/6/9 fraction digits as
//! needed). chrono's own `Serialize` goes through `fmt::Display` one
//! character at a time: ~1,300 instructions per timestamp, four per agent
//! (callgrind). Years outside 0..=9999 and leap seconds take chrono's path.

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::{Serialize, Serializer};

/// `YYYY-MM-DDTHH:MM:SS.fffffffffZ` at most.
const MAX: usize = 30;

fn digits(buf: &mut [u8], mut n: u32) {
    for b in buf.iter_mut().rev() {
        *b = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// The text chrono would write, when this fast path can write it.
fn fast(t: &DateTime<Utc>, buf: &mut [u8; MAX]) -> Option<usize> {
    // Once: each accessor of a DateTime converts to local time again.
    let t = t.naive_utc();
    let (year, nanos) = (t.year(), t.nanosecond());
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        return None;
    }
    digits(&mut buf[0..4], year as u32);
    buf[4] = b'-';
    digits(&mut buf[5..7], t.month());
    buf[7] = b'-';
    digits(&mut buf[8..10], t.day());
    buf[10] = b'T';
    digits(&mut buf[11..13], t.hour());
    buf[13] = b':';
    digits(&mut buf[14..16], t.minute());
    buf[16] = b':';
    digits(&mut buf[17..19], t.second());
    let mut n = 19;
    let (width, value) = match nanos {
        0 => (0, 0),
        _ if nanos % 1_000_000 == 0 => (3, nanos / 1_000_000),
        _ if nanos % 1_000 == 0 => (6, nanos / 1_000),
        _ => (9, nanos),
    };
    if width > 0 {
        buf[n] = b'.';
        digits(&mut buf[n + 1..n + 1 + width], value);
        n += 1 + width;
    }
    buf[n] = b'Z';
    Some(n + 1)
}

/// `#[serde(serialize_with = "crate::rfc3339::serialize")]`.
pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    let mut buf = [0u8; MAX];
    match fast(t, &mut buf) {
        // Only ASCII digits and separators were written.
        Some(n) => s.serialize_str(std::str::from_utf8(&buf[..n]).unwrap_or_default()),
        None => t.serialize(s),
    }
}

/// The same for an optional timestamp (`null` when absent).
pub fn option<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => serialize(t, s),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use proptest::prelude::*;

    use super::*;

    #[derive(Serialize)]
    struct Fast(#[serde(serialize_with = "serialize")] DateTime<Utc>);

    fn same(t: DateTime<Utc>) {
        let ours = serde_json::to_string(&Fast(t)).unwrap();
        let chronos = serde_json::to_string(&t).unwrap();
        assert_eq!(ours, chronos, "{t:?}");
    }

    #[test]
    fn every_fraction_width_and_the_edges_read_as_chrono_writes_them() {
        for nanos in [
            0,
            1,
            999,
            1_000,
            120_000,
            123_456_000,
            500_000_000,
            999_999_999,
        ] {
            same(
                Utc.with_ymd_and_hms(2026, 11, 30, 15, 4, 5).unwrap()
                    + chrono::Duration::nanoseconds(nanos),
            );
        }
        same(Utc.with_ymd_and_hms(0, 1, 1, 0, 0, 0).unwrap());
        same(Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap());
        same(Utc.with_ymd_and_hms(10000, 1, 1, 0, 0, 0).unwrap());
        same(Utc.with_ymd_and_hms(-1, 1, 1, 0, 0, 0).unwrap());
    }

    proptest! {
        #[test]
        fn any_instant_reads_as_chrono_writes_it(secs in -62_000_000_000i64..260_000_000_000, nanos in 0u32..1_000_000_000, micro in any::<bool>()) {
            let nanos = if micro { nanos / 1_000 * 1_000 } else { nanos };
            same(DateTime::from_timestamp(secs, nanos).unwrap());
        }
    }
}
